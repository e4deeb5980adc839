"""Rates per (dimension, key) over event-time windows, against baselines learned per key; incidents become alerts.

- **Windows** are ``window`` seconds of *event* time, aligned to the epoch. A window stays open until the watermark
  (the newest event time seen, moved on by the wall-clock time that passed since the last batch arrived, so windows
  also close when traffic stops) is ``lateness`` seconds past its end. Records for a window already closed are
  *late*: counted in ``late`` and not rated — a backlog shipped after an outage lands in its own, long-closed
  windows instead of looking like a spike now. Records more than ``max_skew`` seconds in the future are dropped the
  same way (``future``).
- **Baseline** (short): per key, an exponentially weighted mean of its count in the windows where it occurred
  (weight ``1/baseline_windows``, the plain mean while it has fewer windows than that). Windows without the key do
  not pull it down, so an endpoint used once a minute keeps a baseline of ~1 and a nightly job keeps its usual size.
  A key never seen has a baseline of 0: the floor alone decides.
- **Long-horizon level**: per key, a bias-corrected exponentially weighted mean over *every* window since the
  detector started, the windows without the key counting as 0 (weight ``1/horizon``, a day of one-minute windows by
  default). It raises no alert itself: a window that is above the key's baseline *and* more than ``factor`` × its
  long-horizon level is learned into the baseline only at the slow rate (below). So a ramp from a quiet history
  (0 → 500 a minute over 100 minutes) does not teach the baseline as it grows and alerts once it crosses the floor,
  and so does a ramp of an established key to more than ``factor`` × its usual level within the horizon. Not caught:
  growth slow enough for the long-horizon level to keep up (over more than about ``horizon`` windows), and anything
  below the floor.
- **Anomaly**: a closed window whose count is at least the dimension's ``floor`` and more than ``factor`` × the key's
  baseline (before this window). Nothing is raised during the ``warmup`` after the first record (the baselines are
  learning).
- **Incidents**: consecutive anomalous windows of a key, and any within ``cooldown`` seconds of the last, are one
  incident with one id. Its events: ``open`` as soon as its first window closes (the alert, at once), ``ongoing``
  every ``sustain`` anomalous windows while it lasts, and ``closed`` with the final counts once it has been quiet for
  ``cooldown`` (or at shutdown). During an incident the key's baseline is frozen — anomalous windows are not learned
  — so a sustained attack stays anomalous; after ``sustain`` anomalous windows (an hour of one-minute windows by
  default) its mean level becomes the baseline (a lasting new level is then normal, and the incident ends once it
  has been normal for ``cooldown``). An incident that ends sooner is learned when it closes, its windows at the
  ordinary weight ``1/baseline_windows`` each: a new recurring burst alerts on its first two or three occurrences.
- **Memory**: at most ``max_keys`` keys per dimension (least recently active evicted first, and any idle for a
  week); a window holding ``max_keys`` keys of a dimension counts further new ones under ``OTHER``. Evictions are
  counted in ``evicted``.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .fields import DIMENSIONS, Tally

__all__ = ["OTHER", "Alert", "DetectorSettings", "RateDetector"]

OTHER = "(other keys)"
MAX_RELATED = 32  # distinct values kept per related field and window
MAX_OBJECTS = 5
STATE_VERSION = 2
OPEN, ONGOING, CLOSED = "open", "ongoing", "closed"


@dataclass(frozen=True)
class DetectorSettings:
    window: int = 60
    factor: float = 5.0
    floors: Mapping[str, int] = field(default_factory=lambda: {"*": 100})
    warmup: int = 600
    baseline_windows: int = 30
    lateness: int = 120
    cooldown: int = 120
    max_keys: int = 5000
    max_skew: int = 300
    idle_evict: int = 7 * 86400
    sustain: int = 60  # anomalous windows an incident keeps its key's baseline frozen
    horizon: int = 1440  # windows of the long-horizon level
    dimensions: frozenset[str] = frozenset(DIMENSIONS)  # rated; the others are only counted (volume: records)

    def floor(self, dimension: str) -> int:
        return int(self.floors.get(dimension, self.floors.get("*", 100)))

    @property
    def slow(self) -> float:
        """The learning weight that takes ``sustain`` windows to bring a baseline from 0 to 1/``factor`` of a new
        level (where that level stops being anomalous)."""
        return 1.0 - (1.0 - 1.0 / self.factor) ** (1.0 / max(1, self.sustain)) if self.factor > 1 else 1.0


@dataclass(frozen=True)
class Alert:
    """One event of an incident: ``count`` records in its anomalous windows so far, between ``window_start`` and
    ``window_end``. ``state``: ``open`` (the first window), ``ongoing`` (an update), ``closed`` (final counts)."""

    dimension: str
    key: str
    window_start: int  # epoch seconds
    window_end: int
    window_seconds: int
    windows: int  # anomalous windows in the incident
    count: int
    peak_count: int
    peak_window_start: int
    baseline: float  # per window, before the incident
    factor: float
    floor: int
    related: dict[str, list[str]]  # per field, the values seen most often first
    objects: list[str]  # archive objects holding some of the incident's records
    state: str = CLOSED
    revision: int = 1  # 1 for the open event, then one more per event of the incident
    end_reason: str | None = None  # closed: "quiet" or "shutdown"
    learned: bool = False  # the incident's level became the key's baseline (it lasted ``sustain`` windows)

    @property
    def ongoing(self) -> bool:
        return self.state != CLOSED


@dataclass
class _Key:
    baseline: float = 0.0
    active: int = 0  # windows in which the key occurred and that were learned
    last: int = -1  # index of the last window with the key
    level: float = 0.0  # the long-horizon EWMA (not bias-corrected), as of window ``level_at``
    level_at: int = -1


@dataclass
class _Entry:
    count: int = 0
    related: dict[str, Counter[str]] = field(default_factory=dict)
    objects: list[str] = field(default_factory=list)


@dataclass
class _Incident:
    first: int
    baseline: float
    last: int = -1
    windows: int = 0
    count: int = 0
    peak: int = 0
    peak_window: int = 0
    revision: int = 0
    since_learned: int = 0  # anomalous windows since the start or since its level was learned
    learned: bool = False
    related: dict[str, Counter[str]] = field(default_factory=dict)
    objects: list[str] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return self.count / max(1, self.windows)


def _merge_related(into: dict[str, Counter[str]], fields: Mapping[str, Mapping[str, int]]) -> None:
    for name, values in fields.items():
        mine = into.setdefault(name, Counter())
        for value, n in values.items():
            if value in mine or len(mine) < MAX_RELATED:
                mine[value] += n


def _add_objects(into: list[str], objects: Iterable[str]) -> None:
    for key in objects:
        if len(into) >= MAX_OBJECTS:
            return
        if key not in into:
            into.append(key)


class RateDetector:
    """Feed it tallies (``add``), move time on (``advance``), collect alerts. Not thread-safe (the pipeline thread)."""

    def __init__(self, settings: DetectorSettings) -> None:
        self.settings = settings
        self.alpha = 1.0 / max(1, settings.baseline_windows)
        self.beta = 1.0 / max(1, settings.horizon)
        self._keys: dict[str, OrderedDict[str, _Key]] = {d: OrderedDict() for d in DIMENSIONS}
        self._open: dict[int, dict[tuple[str, str], _Entry]] = {}
        self._open_keys: dict[int, Counter[str]] = {}
        self._incidents: dict[tuple[str, str], _Incident] = {}
        self._start: int | None = None  # first window with data: warm-up and the long-horizon level run from here
        self._closed_through: int | None = None  # every window up to this index is closed
        self._max_event: int | None = None
        self._arrival = 0.0  # wall time of the last batch
        self.late = 0
        self.future = 0
        self.evicted: Counter[str] = Counter()

    # -- input
    def add(self, found: Tally, *, wall: float, objects: Iterable[str] = ()) -> None:
        """Count a batch's tally; its untimed records (second -1) count at ``wall``."""
        s, objects = self.settings, tuple(objects)
        self._arrival = wall
        newest = int(wall) if found.last_second < 0 and found.counts else found.last_second
        if newest <= wall + s.max_skew and (self._max_event is None or newest > self._max_event):
            self._max_event = newest
        touched: set[tuple[str, str, int]] = set()
        for (dimension, key, second), n in found.counts.items():
            if n <= 0:
                continue
            if second < 0:
                second = int(wall)
            if second > wall + s.max_skew:
                self.future += n if dimension == "volume" else 0  # (records: every one counts toward volume)
                continue
            index = second // s.window
            if self._closed_through is not None and index <= self._closed_through:
                self.late += n if dimension == "volume" else 0
                continue
            if dimension not in s.dimensions:
                continue
            if self._start is None:
                self._start = index
            entries = self._open.setdefault(index, {})
            entry = entries.get((dimension, key))
            if entry is None:
                counted = self._open_keys.setdefault(index, Counter())
                if counted[dimension] >= s.max_keys:
                    key = OTHER
                    entry = entries.get((dimension, key))
                if entry is None:
                    entry = entries[(dimension, key)] = _Entry()
                    counted[dimension] += 1
            entry.count += n
            if (dimension, key, index) not in touched:
                touched.add((dimension, key, index))
                related = found.related.get((dimension, key))
                if related:
                    _merge_related(entry.related, related)
                _add_objects(entry.objects, objects)

    # -- time
    def watermark(self, wall: float) -> float | None:
        if self._max_event is None:
            return None
        return self._max_event + max(0.0, wall - self._arrival)

    def advance(self, wall: float) -> list[Alert]:
        """Close the windows the watermark has passed (plus ``lateness``): the incidents' events."""
        mark = self.watermark(wall)
        if mark is None:
            return []
        s = self.settings
        alerts: list[Alert] = []
        for index in sorted(i for i in self._open if (i + 1) * s.window + s.lateness <= mark):
            alerts += self._close(index)
        due = math.floor((mark - s.lateness) / s.window) - 1  # the last window that could be closed by now
        if self._closed_through is None or due > self._closed_through:
            self._closed_through = due
            alerts += self._end_incidents(due)
        return alerts

    def flush(self) -> list[Alert]:
        """Shutdown: close every open window and every incident, over or not."""
        alerts: list[Alert] = []
        for index in sorted(self._open):
            alerts += self._close(index)
        for where in list(self._incidents):
            alerts.append(self._finish(where, self._incidents.pop(where), "shutdown"))
        return alerts

    # -- windows
    def _close(self, index: int) -> list[Alert]:
        s = self.settings
        entries = self._open.pop(index)
        self._open_keys.pop(index, None)
        warm = self._start is not None and index >= self._start + math.ceil(s.warmup / s.window)
        alerts: list[Alert] = []
        for (dimension, key), entry in entries.items():
            state = self._state(dimension, key)
            level = self._level(state, index, entry.count)
            base = state.baseline if state.active else 0.0
            count = entry.count
            state.last = index
            incident = self._incidents.get((dimension, key))
            if warm and count >= s.floor(dimension) and count > s.factor * base:
                if incident is None:
                    incident = self._incidents[(dimension, key)] = _Incident(first=index, baseline=base)
                incident.last = index
                incident.windows += 1
                incident.since_learned += 1
                incident.count += count
                if count > incident.peak:
                    incident.peak, incident.peak_window = count, index
                _merge_related(incident.related, entry.related)
                _add_objects(incident.objects, entry.objects)
                if incident.revision == 0:
                    alerts.append(self._event((dimension, key), incident, OPEN))
                elif incident.since_learned >= s.sustain:
                    # A level this lasting is the key's new normal: learn it (the incident ends once it is normal).
                    state.baseline = incident.mean
                    state.active = max(state.active, 1)
                    incident.since_learned, incident.learned = 0, True
                    alerts.append(self._event((dimension, key), incident, ONGOING))
                continue  # frozen: an anomalous window is not learned
            if not state.active:
                state.baseline, state.active = float(count), 1  # a key's first window is its normal
                continue
            # Far above the key's long-horizon level and rising above its baseline: learned only slowly, so a ramp
            # does not teach the baseline as it grows. Otherwise the plain mean while the key is new, then the EWMA.
            rising = level is not None and count > s.factor * level and count > base
            state.active += 1
            weight = s.slow if rising else max(self.alpha, 1.0 / state.active)
            state.baseline = base + weight * (count - base)
        self._closed_through = max(index, self._closed_through if self._closed_through is not None else index)
        self._evict_idle(index)
        return alerts + self._end_incidents(index)

    def _level(self, state: _Key, index: int, count: int) -> float | None:
        """The key's bias-corrected long-horizon level before window ``index``; then ``count`` is added to it."""
        start = self._start if self._start is not None else index
        keep = 1.0 - self.beta
        before = state.level * keep ** max(0, index - 1 - state.level_at) if state.level_at >= 0 else 0.0
        seen = index - start  # windows from the first one to the one before this
        level = before / (1.0 - keep ** seen) if seen > 0 else None
        state.level, state.level_at = keep * before + self.beta * count, index
        return level

    def _end_incidents(self, index: int) -> list[Alert]:
        quiet = math.ceil(self.settings.cooldown / self.settings.window)
        alerts = []
        for where, incident in list(self._incidents.items()):
            if incident.last <= index - quiet:
                del self._incidents[where]
                alerts.append(self._finish(where, incident, "quiet"))
        return alerts

    def _finish(self, where: tuple[str, str], incident: _Incident, reason: str) -> Alert:
        """The closed event. The incident's windows are learned now, each at the EWMA weight (as anomalous windows
        always were, but only once the incident is over) — unless its level was learned already."""
        state = self._state(*where)
        if not incident.learned:
            state.active += incident.windows
            state.baseline = incident.mean + (state.baseline - incident.mean) * (1.0 - self.alpha) ** incident.windows
        return self._event(where, incident, CLOSED, reason)

    def _event(self, where: tuple[str, str], incident: _Incident, kind: str, reason: str | None = None) -> Alert:
        s = self.settings
        incident.revision += 1
        related = {name: [value for value, _ in values.most_common(5)] for name, values in incident.related.items()
                   if values}
        return Alert(dimension=where[0], key=where[1], window_start=incident.first * s.window,
                     window_end=(incident.last + 1) * s.window, window_seconds=s.window, windows=incident.windows,
                     count=incident.count, peak_count=incident.peak, peak_window_start=incident.peak_window * s.window,
                     baseline=round(incident.baseline, 3), factor=s.factor, floor=s.floor(where[0]), related=related,
                     objects=list(incident.objects), state=kind, revision=incident.revision, end_reason=reason,
                     learned=incident.learned)

    # -- keys
    def _state(self, dimension: str, key: str) -> _Key:
        keys = self._keys.setdefault(dimension, OrderedDict())
        state = keys.get(key)
        if state is None:
            state = keys[key] = _Key()
            if len(keys) > self.settings.max_keys:
                keys.popitem(last=False)
                self.evicted[dimension] += 1
        else:
            keys.move_to_end(key)
        return state

    def _evict_idle(self, index: int) -> None:
        oldest = index - self.settings.idle_evict // self.settings.window
        for dimension, keys in self._keys.items():
            while keys:
                key, state = next(iter(keys.items()))
                if state.last >= oldest or (dimension, key) in self._incidents:
                    break
                del keys[key]
                self.evicted[dimension] += 1

    @property
    def key_counts(self) -> dict[str, int]:
        return {dimension: len(keys) for dimension, keys in self._keys.items()}

    # -- persistence (the baselines survive a restart; open windows and incidents are closed at shutdown)
    def snapshot(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "window": self.settings.window, "start": self._start,
                "closed_through": self._closed_through, "max_event": self._max_event,
                "keys": {d: [[k, round(st.baseline, 6), st.active, st.last, round(st.level, 9), st.level_at]
                             for k, st in keys.items()] for d, keys in self._keys.items() if keys}}

    def restore(self, state: Mapping[str, Any], *, wall: float) -> bool:
        """Take over a snapshot; False (and nothing changed) when it does not fit these settings. A version-1
        snapshot (no long-horizon levels) is taken over with levels of 0."""
        if state.get("version") not in (1, STATE_VERSION) or state.get("window") != self.settings.window:
            return False
        keys = {}
        for d, rows in state.get("keys", {}).items():
            if d in self._keys:
                keys[d] = OrderedDict((str(row[0]), _Key(float(row[1]), int(row[2]), int(row[3]),
                                                         *((float(row[4]), int(row[5])) if len(row) > 5 else ())))
                                      for row in rows)
        self._keys.update(keys)
        self._start = state.get("start")
        self._closed_through = state.get("closed_through")
        self._max_event = state.get("max_event")
        self._arrival = wall
        return True
