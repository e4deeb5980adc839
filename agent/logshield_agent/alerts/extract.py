"""From a shipped batch's bytes to counts per (dimension, key, event second), cheaply.

Three ways through a batch, cheapest first:

- a large batch (``sample_from``, 256 KiB) of one kind of lines in time order: sampled (``sampled.py``) — lines per
  window by ``bytes.count``, one regex pass per field that occurs (a pass for the loggers other than the dominant
  one; for an actor, event or redaction summary on a quarter of the lines or more), and a look at each line that
  carries a rarer field;
- all library lines (``{"timestamp":"…Z","level":…,"logger":…`` first): one regex pass over the whole body counts
  them per (second, level, logger); only lines with an ``actor``, ``redaction``, ``audit`` or ``event`` field get a
  look of their own (a targeted regex; a JSON parse for audit and event lines, where only the top level counts);
- anything else (other programs' JSON, plain text, a mix): line by line — JSON is parsed, text only counts toward
  volume at its leading ISO-8601 timestamp (a line without one: at the time of the line before it).

Other programs' ``event`` values are counted hashed (``fields.hashed``): they are often messages.

A record with an ``event`` field counts under that event and under its logger.
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
    hashed,
    key_text,
    parse_json,
    record_fields,
    regex_fields,
    value_key,
)

__all__ = ["tally"]

_HEAD_NEXT = re.compile(b"\n" + HEAD.pattern)  # a literal prefix: the engine skips to candidates at C speed
_OTHER_LOGGERS: dict[bytes, re.Pattern[bytes]] = {}
_FIELD_VALUES: dict[str, re.Pattern[bytes]] = {}
_USEFUL = {"actor": {"actor"}, "entity": {"entity"}, "audit": {"action", "actor_action"}, "event": {"event"}}


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
            out.sampled = True
            spans = _count_segments(out, body, found, service, wanted)
            if found.kind == "library":
                _count_loggers(out, body, found, spans, wanted)
                # A field on a quarter of the lines or more (an actor on every request): one regex pass per window;
                # rarer ones (most redactions): a look at each line that has it, which also notes its logger.
                dense = {m for m in ("actor", "entity", "event") if 4 * found.marker_probes[m] >= found.probes}
                _count_dense(out, body, dense & found.markers, spans, wanted)
                _marked_lines(out, body, seconds, wanted - dense, found.markers - dense, window)
            elif found.kind == "json":
                _count_json_fields(out, body, found, spans, seconds, wanted)
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


def _count_segments(out: Tally, body: bytes, found: sampled.SamplePlan, service: str,
                    wanted: frozenset[str]) -> list[tuple[int, int, int, int]]:
    """Lines per window (volume); returns the windows as (start, end, first second, lines)."""
    bounds = [offset for offset, _ in found.segments] + [len(body)]
    spans = [(bounds[i], bounds[i + 1]) for i in range(len(found.segments))]
    widest = max(range(len(spans)), key=lambda i: spans[i][1] - spans[i][0])
    counts = [0 if i == widest else body.count(b"\n", a, b) for i, (a, b) in enumerate(spans)]
    counts[widest] = out.lines - sum(counts)
    if found.segments[0][1] < 0:
        out.untimed += out.lines
    for (_, second), n in zip(found.segments, counts, strict=True):
        if "volume" in wanted:
            out.add("volume", service, second, n)
    return [(a, b, second, n) for (a, b), (_, second), n in zip(spans, found.segments, counts, strict=True)]


def _count_loggers(out: Tally, body: bytes, found: sampled.SamplePlan, spans: list[tuple[int, int, int, int]],
                   wanted: frozenset[str]) -> None:
    """Library lines: the dominant logger is what the other loggers' regex pass leaves (no pass with just one)."""
    if "logger" not in wanted:
        return
    dominant = found.loggers.most_common(1)[0][0]
    other = None
    if len(found.loggers) > 1:
        other = _OTHER_LOGGERS.get(dominant)
        if other is None:
            if len(_OTHER_LOGGERS) > 64:
                _OTHER_LOGGERS.clear()
            other = _OTHER_LOGGERS[dominant] = re.compile(
                rb'"logger": ?"(?!' + re.escape(dominant) + rb'")([^"\\]*)"')
    for a, b, second, n in spans:
        rest = n
        if other is not None:
            for logger, m in Counter(other.findall(body, a, b)).items():
                out.add("logger", key_text(logger), second, m)
                rest -= m
        out.add("logger", key_text(dominant), second, max(rest, 0))
    for logger, levels in found.levels.items():  # a sample: which levels the probes saw
        related = out.related.setdefault(("logger", key_text(logger)), {})
        related.setdefault("levels", Counter()).update({key_text(lv): c for lv, c in levels.items()})


def _field_pattern(name: str) -> re.Pattern[bytes]:
    pattern = _FIELD_VALUES.get(name)
    if pattern is None:
        pattern = _FIELD_VALUES[name] = re.compile(
            b'"' + re.escape(name.encode()) + rb'": ?(?:"([^"\\]*(?:\\.[^"\\]*)*)"|(-?\d{1,30})[,}])')
    return pattern


def _count_dense(out: Tally, body: bytes, names: set[str], spans: list[tuple[int, int, int, int]],
                 wanted: frozenset[str]) -> None:
    for name in sorted(names & wanted):
        _relate_sample(out, body, name)
        pattern = ENTITIES if name == "entity" else _field_pattern(name)
        for a, b, second, _ in spans:
            for found, n in Counter(pattern.findall(body, a, b)).items():
                if name == "entity":
                    for entity, count in ENTITY.findall(found):  # type: ignore[arg-type]
                        if int(count):
                            out.add("entity", key_text(entity), second, int(count) * n)
                    continue
                text, number = found
                key = key_text(text) if not number else number.decode()
                if key:
                    out.add(name, key, second, n)


def _relate_sample(out: Tally, body: bytes, name: str, lines: int = 64) -> None:
    """The loggers (and levels) of up to ``lines`` lines carrying field ``name``, spread over the batch."""
    marker, step, seen = MARKERS[name], max(1, len(body) // lines), set()
    for offset in range(0, len(body), step):
        pos = body.find(marker, offset)
        start = body.rfind(b"\n", 0, pos) + 1 if pos >= 0 else -1
        if start < 0 or start in seen:
            continue
        seen.add(start)
        end = body.find(b"\n", start)
        line = body[start:end if end >= 0 else len(body)]
        head = HEAD.match(line)
        if head is None:
            continue
        logger, level = key_text(head.group(3)), key_text(head.group(2))
        if name == "entity" and (found := ENTITIES.search(line)) is not None:
            for entity, _ in ENTITY.findall(found.group(1)):
                out.relate("entity", key_text(entity), loggers=logger)
        elif name != "entity" and (value := _field_pattern(name).search(line)) is not None:
            key = key_text(value.group(1)) if value.group(2) is None else value.group(2).decode()
            out.relate(name, key, loggers=logger, **({"levels": level} if name == "event" else {}))


def _count_json_fields(out: Tally, body: bytes, found: sampled.SamplePlan, spans: list[tuple[int, int, int, int]],
                       seconds: EventSeconds, wanted: frozenset[str]) -> None:
    """Other programs' JSON: one regex pass per field that occurs (logger, event, actor) per window; lines with
    redactions or audit records are parsed."""
    fields = [("logger", name) for name in sorted(found.logger_fields)]
    fields += [(name, name) for name in ("event", "actor") if name in found.markers]
    for dimension, name in fields:
        if dimension not in wanted:
            continue
        pattern = _field_pattern(name)
        for a, b, second, _ in spans:
            for (text, number), n in Counter(pattern.findall(body, a, b)).items():
                key = key_text(text) if not number else number.decode()
                if key:
                    out.add(dimension, hashed(key) if dimension == "event" else key, second, n)
    rest = wanted & {"entity", "action", "actor_action"}
    names = [MARKERS[m] for m in ("entity", "audit") if m in found.markers]
    if not rest or not names:
        return
    starts = sorted({start for marker in names for start in _line_starts(body, marker)})
    segment = 0
    for start in starts:
        while segment + 1 < len(spans) and spans[segment + 1][0] <= start:
            segment += 1
        end = body.find(b"\n", start)
        doc = parse_json(body[start:end if end >= 0 else len(body)])
        if doc is not None:
            logger = next((value_key(doc[f]) for f in LOGGER_FIELDS if isinstance(doc.get(f), str)), None)
            record_fields(out, doc, spans[segment][2], logger, None, rest, head_counted=True, foreign=True)


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
            target, second = (out, last) if last is not None else (waiting, 0)
        if "volume" in wanted:
            target.add("volume", service, second)
        if doc is not None:
            record_fields(target, doc, second, logger, level, wanted, foreign=head is None)
        elif head is not None:
            if "logger" in wanted and logger is not None:
                target.add("logger", logger, second, levels=level or "")
            regex_fields(target, line, second, logger or "", wanted)
    if waiting.counts:
        if first is None:
            out.untimed += sum(n for (dimension, _, _), n in waiting.counts.items() if dimension == "volume")
        out.merge(waiting, -1 if first is None else first)
