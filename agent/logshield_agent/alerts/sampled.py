"""The cheap way through a large batch: look at one line every ``STRIDE`` bytes, not at all of them.

A file is written by one program, in time order. Probing a line every 8 KiB tells what kind of lines the batch holds
(the library's, other JSON, plain text), the loggers present, which of the ``actor``, ``redaction``, ``audit`` and
``event`` fields occur, and — from the probes' times — the batch's windows (the exact first line of each is found by
scanning the lines between the two probes that straddle a window boundary). Counting is then C-level work over byte
ranges (``bytes.count`` for lines per window, one regex pass per field that occurs, the marker pass of ``extract``)
instead of Python work per line. For library lines only every ``TIME_EVERY``-th probe reads its time; the others
just check for markers and whether the line has the batch's usual logger.

What this gives up, and why it cannot hide an alert: a field is counted when at least one probe saw it in the batch.
A run of consecutive lines longer than the stride (~30 lines) is always probed; a key scattered over a large batch
is probed about once per 30 occurrences — so anything that could reach an alert floor (100 by default) is seen and
then counted exactly, while a key with a handful of lines in a large batch may go uncounted (a marker field) or be
counted under the batch's dominant logger. In other programs' JSON, the per-field regex pass also counts a field of
the same name nested deeper in a record. Batches mixing kinds of lines, or whose probes are out of time order by
more than ``SKEW`` seconds, are counted exactly instead.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .fields import HEAD, LOGGER_FIELDS, MARKERS, EventSeconds, parse_json

__all__ = ["MIN_BYTES", "STRIDE", "SamplePlan", "plan"]

STRIDE = 8192
MIN_BYTES = 256 * 1024  # smaller batches are cheap enough to count exactly
TIME_EVERY = 8  # for library lines, every 8th probe reads the line's time
SKEW = 2  # seconds a probe may be older than the one before it and still count as "in time order"
_FIELD_MARKERS = {"actor": "actor", "redaction": "entity", "audit": "audit", "event": "event"}


@dataclass
class SamplePlan:
    """``kind`` of lines (``library``, ``json``, ``text``); ``segments``: (byte offset, first second) of each window's
    first line, in order (second -1: no line had a time); what the probes saw: ``loggers`` and ``levels`` (library),
    ``logger_fields`` (the field names other JSON uses), ``markers``."""

    kind: str
    segments: list[tuple[int, int]] = field(default_factory=list)
    last_second: int = -1
    loggers: Counter[bytes] = field(default_factory=Counter)
    levels: dict[bytes, Counter[bytes]] = field(default_factory=dict)
    logger_fields: set[str] = field(default_factory=set)
    markers: set[str] = field(default_factory=set)
    marker_probes: Counter[str] = field(default_factory=Counter)  # probes carrying each marker (library lines)
    probes: int = 0


def _line_time(kind: str, line: bytes, seconds: EventSeconds) -> int | None | bool:
    """A line's event second; None when it has none; False when it is not of the batch's kind."""
    if kind == "library":
        head = HEAD.match(line)
        return False if head is None else seconds.utc(head.group(1))
    if kind == "json":
        doc = parse_json(line)
        return False if doc is None else seconds.record(doc)
    return False if line.lstrip()[:1] == b"{" else seconds.text(line)


def plan(body: bytes, seconds: EventSeconds, window: int) -> SamplePlan | None:
    """Probe ``body``; None when it mixes kinds of lines or is not in time order (the caller counts exactly)."""
    first_line = body[:body.find(b"\n")]
    head = HEAD.match(first_line)
    kind = "library" if head is not None else "json" if first_line.lstrip()[:1] == b"{" else "text"
    result = SamplePlan(kind)
    probes = _probe_library(body, seconds, result, head) if head is not None else _probe(body, seconds, result)
    if probes is None:
        return None
    last = body.rfind(b"\n", 0, len(body) - 1) + 1
    if not probes or last > probes[-1][0]:
        end = body.find(b"\n", last)
        second = _line_time(kind, body[last:end if end >= 0 else len(body)], seconds)
        if second is False or (second is not None and probes and second < probes[-1][1] - SKEW):
            return None
        if second is not None:
            probes.append((last, second))
    if not probes:
        result.segments.append((0, -1))
        return result
    result.last_second = max(second for _, second in probes)
    result.segments.append((0, probes[0][1]))
    for (a, sa), (b, sb) in zip(probes, probes[1:], strict=False):
        if sb // window > sa // window:
            result.segments.extend(_boundaries(body, a, b, sa // window, window, kind, seconds))
    return result


def _probe_library(body: bytes, seconds: EventSeconds, result: SamplePlan, first) -> list[tuple[int, int]] | None:
    size = len(body)
    # The first line's logger field exactly as written (compact or spaced): a probe containing it needs no regex.
    usual = body[body.rfind(b'"logger"', 0, first.start(3)):first.end(3) + 1]
    probes: list[tuple[int, int]] = []  # (line start, second) of the probes whose head was read
    heads: list[tuple[bytes, bytes]] = []  # (logger, level) of those
    cheap = 0  # probes recognised by ``usual`` alone
    seen = result.marker_probes
    actor, redaction, audit, event = MARKERS["actor"], MARKERS["entity"], MARKERS["audit"], MARKERS["event"]
    start = index = 0
    while True:
        end = body.find(b"\n", start)
        if end < 0:
            end = size
        line = body[start:end]
        if actor in line:
            seen["actor"] += 1
        if redaction in line:
            seen["entity"] += 1
        if audit in line:
            seen["audit"] += 1
        if event in line:
            seen["event"] += 1
        if index % TIME_EVERY and usual in line:
            cheap += 1
        else:
            head = HEAD.match(line)
            second = None if head is None else seconds.utc(head.group(1))
            if second is None or (probes and second < probes[-1][1] - SKEW):
                return None
            probes.append((start, second))
            heads.append((head.group(3), head.group(2)))  # type: ignore[union-attr]
        index += 1
        nxt = body.find(b"\n", start + STRIDE) + 1
        if nxt <= 0 or nxt >= size:
            break
        start = nxt
    result.markers.update(seen)
    result.probes = index
    for logger, level in heads:
        result.loggers[logger] += 1
        result.levels.setdefault(logger, Counter())[level] += 1
    result.loggers[first.group(3)] += cheap
    return probes


def _probe(body: bytes, seconds: EventSeconds, result: SamplePlan) -> list[tuple[int, int]] | None:
    """Probes of other JSON (parsed) or plain text (leading timestamp only)."""
    size = len(body)
    probes: list[tuple[int, int]] = []
    start = 0
    while True:
        end = body.find(b"\n", start)
        line = body[start:end if end >= 0 else size]
        if result.kind == "json":
            doc = parse_json(line)
            if doc is None:
                return None
            second = seconds.record(doc)
            name = next((f for f in LOGGER_FIELDS if isinstance(doc.get(f), str)), None)
            if name is not None:
                result.logger_fields.add(name)
            result.markers.update(marker for name, marker in _FIELD_MARKERS.items() if name in doc)
        else:
            if line.lstrip()[:1] == b"{":
                return None
            second = seconds.text(line)
        if second is not None:
            if probes and second < probes[-1][1] - SKEW:
                return None
            probes.append((start, second))
        nxt = body.find(b"\n", start + STRIDE) + 1
        if nxt <= 0 or nxt >= size:
            return probes
        start = nxt


def _boundaries(body: bytes, start: int, stop: int, current: int, window: int, kind: str,
                seconds: EventSeconds) -> list[tuple[int, int]]:
    """The first line of each later window among the lines in ``[start, stop]`` (a stride or a few of them)."""
    found = []
    pos = start
    while pos <= stop:
        end = body.find(b"\n", pos)
        if end < 0:
            end = len(body)
        second = _line_time(kind, body[pos:end], seconds)
        if isinstance(second, int) and not isinstance(second, bool) and second // window > current:
            current = second // window
            found.append((pos, second))
        pos = end + 1
    return found
