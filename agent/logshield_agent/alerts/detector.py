"""Rates per (dimension, key) over event-time windows, against a baseline learned per key; incidents become alerts.

- **Windows** are ``window`` seconds of *event* time, aligned to the epoch. A window stays open until the watermark
  (the newest event time seen, moved on by the wall-clock time that passed since the last batch arrived, so windows
  also close when traffic stops) is ``lateness`` seconds past its end. Records for a window already closed are
  *late*: counted in ``late`` and not rated — a backlog shipped after an outage lands in its own, long-closed
  windows instead of looking like a spike now. Records more than ``max_skew`` seconds in the future are dropped the
  same way (``future``).
- **Baseline**: per key, an exponentially weighted mean of its count in the windows where it occurred (weight
  ``1/baseline_windows``, the plain mean while it has fewer windows than that). Windows without the key do not pull
  it down, so an endpoint used once a minute keeps a baseline of ~1 and a nightly job keeps its usual size. A key
  never seen has a baseline of 0: the floor alone decides.
- **Anomaly**: a closed window whose count is at least the dimension's ``floor`` and more than ``factor`` × the key's
  baseline (before this window). Nothing is raised during the ``warmup`` after the first record (the baselines are
  learning). Anomalous windows are learned too, but only at the slow rate, so a lasting new level is one incident
  for a few windows and then becomes normal.
- **Incidents**: consecutive anomalous windows of a key, and any within ``cooldown`` seconds of the last, are one
  incident — one alert, raised once it has been quiet for ``cooldown`` (or at shutdown), with its final counts.
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
MAX_INCIDENT_WINDOWS = 60  # an incident longer than this is reported (``ongoing``) and a new one starts
MAX_RELATED = 32  # distinct values kept per related field and window
MAX_OBJECTS = 5
STATE_VERSION = 1


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
    dimensions: frozenset[str] = frozenset(DIMENSIONS)  # rated; the others are only counted (volume: records)

    def floor(self, dimension: str) -> int:
        return int(self.floors.get(dimension, self.floors.get("*", 100)))


@dataclass(frozen=True)
class Alert:
    """One incident: ``count`` records in its anomalous windows, between ``window_start`` and ``window_end``."""

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
    ongoing: bool = False  # reported because it lasted MAX_INCIDENT_WINDOWS, not because it ended


@dataclass
class _Key:
    baseline: float = 0.0
    active: int = 0  # windows in which the key occurred (and was learned)
    last: int = -1  # index of the last such window


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
    related: dict[str, Counter[str]] = field(default_factory=dict)
    objects: list[str] = field(default_factory=list)


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
        self._keys: dict[str, OrderedDict[str, _Key]] = {d: OrderedDict() for d in DIMENSIONS}
        self._open: dict[int, dict[tuple[str, str], _Entry]] = {}
        self._open_keys: dict[int, Counter[str]] = {}
        self._incidents: dict[tuple[str, str], _Incident] = {}
        self._start: int | None = None  # first window with data: warm-up runs from here
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
        """Close the windows the watermark has passed (plus ``lateness``); the incidents that ended."""
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
        """Shutdown: close every open window and report every incident, over or not."""
        alerts: list[Alert] = []
        for index in sorted(self._open):
            alerts += self._close(index)
        for where in list(self._incidents):
            alerts.append(self._report(where, self._incidents.pop(where)))
        return alerts

    # -- windows
    def _close(self, index: int) -> list[Alert]:
        s = self.settings
        entries = self._open.pop(index)
        self._open_keys.pop(index, None)
        warm = self._start is not None and index >= self._start + math.ceil(s.warmup / s.window)
        for (dimension, key), entry in entries.items():
            state = self._state(dimension, key)
            base = state.baseline if state.active else 0.0
            floor = s.floor(dimension)
            anomalous = warm and entry.count >= floor and entry.count > s.factor * base
            if anomalous:
                incident = self._incidents.get((dimension, key))
                if incident is None:
                    incident = self._incidents[(dimension, key)] = _Incident(first=index, baseline=base)
                incident.last = index
                incident.windows += 1
                incident.count += entry.count
                if entry.count > incident.peak:
                    incident.peak, incident.peak_window = entry.count, index
                _merge_related(incident.related, entry.related)
                _add_objects(incident.objects, entry.objects)
            state.active += 1
            # The plain mean while a key is new (its first windows are its normal) — but an anomaly only moves the
            # baseline at the slow rate: a sustained spike stays one incident for several windows before it is
            # the new normal, instead of becoming it at once.
            weight = self.alpha if anomalous else max(self.alpha, 1.0 / state.active)
            state.baseline = base + weight * (entry.count - base)
            state.last = index
        self._closed_through = max(index, self._closed_through if self._closed_through is not None else index)
        self._evict_idle(index)
        return self._end_incidents(index)

    def _end_incidents(self, index: int) -> list[Alert]:
        s = self.settings
        quiet = math.ceil(s.cooldown / s.window)
        alerts = []
        for where, incident in list(self._incidents.items()):
            ongoing = index - incident.first + 1 >= MAX_INCIDENT_WINDOWS
            if incident.last <= index - quiet or ongoing:
                del self._incidents[where]
                alerts.append(self._report(where, incident, ongoing=ongoing and incident.last > index - quiet))
        return alerts

    def _report(self, where: tuple[str, str], incident: _Incident, *, ongoing: bool = False) -> Alert:
        s = self.settings
        related = {name: [value for value, _ in values.most_common(5)] for name, values in incident.related.items()
                   if values}
        return Alert(dimension=where[0], key=where[1], window_start=incident.first * s.window,
                     window_end=(incident.last + 1) * s.window, window_seconds=s.window, windows=incident.windows,
                     count=incident.count, peak_count=incident.peak, peak_window_start=incident.peak_window * s.window,
                     baseline=round(incident.baseline, 3), factor=s.factor, floor=s.floor(where[0]), related=related,
                     objects=list(incident.objects), ongoing=ongoing)

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
                if state.last >= oldest:
                    break
                del keys[key]
                self.evicted[dimension] += 1

    @property
    def key_counts(self) -> dict[str, int]:
        return {dimension: len(keys) for dimension, keys in self._keys.items()}

    # -- persistence (the baselines survive a restart; open windows and incidents are reported at shutdown)
    def snapshot(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "window": self.settings.window, "start": self._start,
                "closed_through": self._closed_through, "max_event": self._max_event,
                "keys": {d: [[k, round(st.baseline, 6), st.active, st.last] for k, st in keys.items()]
                         for d, keys in self._keys.items() if keys}}

    def restore(self, state: Mapping[str, Any], *, wall: float) -> bool:
        """Take over a snapshot; False (and nothing changed) when it does not fit these settings."""
        if state.get("version") != STATE_VERSION or state.get("window") != self.settings.window:
            return False
        keys = {d: OrderedDict((str(k), _Key(float(b), int(a), int(last))) for k, b, a, last in rows)
                for d, rows in state.get("keys", {}).items() if d in self._keys}
        self._keys.update(keys)
        self._start = state.get("start")
        self._closed_through = state.get("closed_through")
        self._max_event = state.get("max_event")
        self._arrival = wall
        return True
