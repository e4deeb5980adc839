"""From a shipped batch's bytes to counts per (dimension, key, event second), cheaply.

Three ways through a batch, cheapest first:

- a large, time-ordered run of library lines: sampled (``sampled.py``) — C-level counting over byte ranges;
- all library lines (``{"timestamp":"…Z","level":…,"logger":…`` first): one regex pass over the whole body counts
  them per (second, level, logger); only lines with an ``actor``, ``redaction``, ``audit`` or ``event`` field get a
  look of their own (a targeted regex; a JSON parse for audit and event lines, where only the top level counts);
- anything else (other programs' JSON, plain text): line by line — JSON is parsed, text only counts toward volume at
  its leading ISO-8601 timestamp.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator

from . import sampled
from .fields import (
    ACTOR,
    DIMENSIONS,
    ENTITIES,
    ENTITY,
    HEAD,
    LOGGER_FIELDS,
    MARKERS,
    NEEDS_PARSE,
    EventSeconds,
    Tally,
    key_text,
    parse_json,
    record_fields,
    regex_fields,
    value_key,
)

__all__ = ["tally"]

_HEAD_NEXT = re.compile(b"\n" + HEAD.pattern)  # a literal prefix: the engine skips to candidates at C speed
_OTHER_LOGGERS: dict[bytes, re.Pattern[bytes]] = {}
_USEFUL = {"actor": {"actor"}, "entity": {"entity"}, "audit": {"action", "actor_action"}, "event": {"event", "logger"}}


def tally(body: bytes, *, service: str, lines: int | None = None, window: int = 60,
          dimensions: Iterable[str] = DIMENSIONS, sample_from: int = sampled.MIN_BYTES) -> Tally:
    """Count the records of ``body`` (newline-terminated lines; ``lines`` of them when the caller knows). Bodies of
    ``sample_from`` bytes or more may be counted by sampling (see ``sampled.py``)."""
    wanted = frozenset(dimensions) | {"volume"}  # volume: the records, always counted (late/future are records)
    out = Tally(lines=body.count(b"\n") if lines is None else lines)
    if not out.lines:
        return out
    seconds = EventSeconds()
    if len(body) >= sample_from:
        found = sampled.plan(body, seconds, window)
        if found is not None:
            _count_sampled(out, body, found, service, wanted)
            _marked_lines(out, body, seconds, wanted, found.markers, window)
            out.last_second = max(out.last_second, found.last_second)
            return out
    heads: Counter[tuple[bytes, bytes, bytes]] = Counter(_HEAD_NEXT.findall(body))
    first = HEAD.match(body)
    if first is not None:
        heads[first.groups()] += 1  # type: ignore[index]
    if sum(heads.values()) == out.lines:
        for (stamp, level, logger), n in heads.items():
            second = seconds.utc(stamp)
            if second is None:
                second = -1
                out.untimed += n
            if "volume" in wanted:
                out.add("volume", service, second, n)
            if "logger" in wanted:
                out.add("logger", key_text(logger), second, n, levels=key_text(level))
        _marked_lines(out, body, seconds, wanted, set(MARKERS), window)
    else:
        _each_line(out, body, seconds, service, wanted)
    return out


def _count_sampled(out: Tally, body: bytes, found: sampled.SamplePlan, service: str, wanted: frozenset[str]) -> None:
    out.sampled = True
    bounds = [offset for offset, _ in found.segments] + [len(body)]
    spans = [(bounds[i], bounds[i + 1]) for i in range(len(found.segments))]
    widest = max(range(len(spans)), key=lambda i: spans[i][1] - spans[i][0])
    counts = [0 if i == widest else body.count(b"\n", a, b) for i, (a, b) in enumerate(spans)]
    counts[widest] = out.lines - sum(counts)
    dominant = found.loggers.most_common(1)[0][0]
    other = None
    if len(found.loggers) > 1:
        other = _OTHER_LOGGERS.get(dominant)
        if other is None:
            if len(_OTHER_LOGGERS) > 64:
                _OTHER_LOGGERS.clear()
            other = _OTHER_LOGGERS[dominant] = re.compile(
                rb'"logger": ?"(?!' + re.escape(dominant) + rb'")([^"\\]*)"')
    for (a, b), (_, second), n in zip(spans, found.segments, counts, strict=True):
        if "volume" in wanted:
            out.add("volume", service, second, n)
        if "logger" not in wanted:
            continue
        rest = n
        if other is not None:
            for logger, m in Counter(other.findall(body, a, b)).items():
                out.add("logger", key_text(logger), second, m)
                rest -= m
        out.add("logger", key_text(dominant), second, max(rest, 0))
    if "logger" in wanted:
        for logger, levels in found.levels.items():  # a sample: which levels the probes saw
            related = out.related.setdefault(("logger", key_text(logger)), {})
            related.setdefault("levels", Counter()).update({key_text(lv): c for lv, c in levels.items()})


def _marked_lines(out: Tally, body: bytes, seconds: EventSeconds, wanted: frozenset[str], names: set[str],
                  window: int) -> None:
    """Library lines carrying the markers ``names``: each looked at once, whichever markers it carries. Per line only
    bytes are collected; keys are decoded once per distinct (second, logger, value)."""
    names = {name for name in names if _USEFUL[name] & wanted}
    if not names:
        return
    starts: Iterable[int]
    if len(names) == 1:
        starts = _line_starts(body, MARKERS[next(iter(names))])
    else:
        starts = sorted({start for name in names for start in _line_starts(body, MARKERS[name])})
    actors: list[tuple[int, bytes, bytes | None, bytes | None]] = []
    entities: list[tuple[int, bytes, bytes]] = []
    want_actor, want_entity = "actor" in wanted, "entity" in wanted
    for start in starts:
        end = body.find(b"\n", start)
        line = body[start:end]
        head = HEAD.match(line)
        if head is None:  # pragma: no cover - only library lines come this way
            continue
        second = seconds.utc(head.group(1))
        second = -1 if second is None else second - second % window  # aggregate per window, not per line
        if b'"audit":' in line or b'"event":' in line:
            doc = parse_json(line)
            if doc is not None:
                record_fields(out, doc, second, key_text(head.group(3)), key_text(head.group(2)), wanted,
                              head_counted=True)
                continue
        if want_actor and (found := ACTOR.search(line)) is not None:
            actors.append((second, head.group(3), *found.groups()))
        if want_entity and (found := ENTITIES.search(line)) is not None:
            entities.append((second, head.group(3), found.group(1)))
    for (second, logger, text, number), n in Counter(actors).items():
        actor = key_text(text) if text is not None else (number or b"").decode()
        if actor:
            out.add("actor", actor, second, n, loggers=key_text(logger))
    for (second, logger, summary), n in Counter(entities).items():
        for name, count in ENTITY.findall(summary):
            if int(count):
                out.add("entity", key_text(name), second, int(count) * n, loggers=key_text(logger))


def _line_starts(body: bytes, marker: bytes) -> Iterator[int]:
    """The start of each line containing ``marker``, in order, once."""
    pos = body.find(marker)
    while pos >= 0:
        yield body.rfind(b"\n", 0, pos) + 1
        end = body.find(b"\n", pos)
        if end < 0:
            return
        pos = body.find(marker, end)


def _each_line(out: Tally, body: bytes, seconds: EventSeconds, service: str, wanted: frozenset[str]) -> None:
    """A batch that is not all library lines: one look per line. A line without a time of its own takes the time
    of the line before it (the first lines: of the first timed line); second ``-1`` when no line has one."""
    first: int | None = None
    last: int | None = None
    waiting = Tally()  # records before the first timed line, at second 0 until that is known
    for line in body.split(b"\n")[:-1]:
        head = HEAD.match(line)
        doc = None
        logger = level = None
        if head is not None:
            own = seconds.utc(head.group(1))
            level, logger = key_text(head.group(2)), key_text(head.group(3))
            if any(marker in line for marker in NEEDS_PARSE):
                doc = parse_json(line)
        elif line.lstrip()[:1] == b"{" and (doc := parse_json(line)) is not None:
            own = seconds.record(doc)
            logger = next((value_key(doc[f]) for f in LOGGER_FIELDS if isinstance(doc.get(f), str)), None)
            level_value = doc.get("level") or doc.get("levelname")
            level = value_key(level_value) if isinstance(level_value, str) else None
        else:
            own = seconds.text(line)
        target, second = out, own
        if own is not None:
            last = own
            first = own if first is None else first
        else:
            out.untimed += 1
            target, second = (out, last) if last is not None else (waiting, 0)
        if "volume" in wanted:
            target.add("volume", service, second)
        if doc is not None:
            record_fields(target, doc, second, logger, level, wanted)
        elif head is not None:
            if "logger" in wanted and logger is not None:
                target.add("logger", logger, second, levels=level or "")
            regex_fields(target, line, second, logger or "", wanted)
    if waiting.counts:
        out.merge(waiting, -1 if first is None else first)
