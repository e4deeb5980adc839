"""The cheap way through a large batch of library lines: look at one line every ``STRIDE`` bytes, not at all of them.

A batch of library records is a run of lines in time order (one writer per file). Probing a line every 8 KiB gives
the loggers present and whether any line carries an ``actor``, ``redaction``, ``audit`` or ``event`` field; every
``TIME_EVERY``-th probe also reads the line's time, which gives the batch's windows (the exact first line of each is
found by scanning the lines between the two probes that straddle a window boundary). Counting is then C-level work
over byte ranges — ``bytes.count`` for lines per window, one regex pass for the loggers other than the dominant one
(only when a probe saw another), the marker pass of ``extract`` (only for markers a probe saw) — instead of Python
work per line.

What this gives up, and why it cannot hide an alert: a field is counted when at least one probe saw it in the batch.
A run of consecutive lines longer than the stride (~30 lines) is always probed; a key scattered over a large batch
is probed about once per 30 occurrences — so anything that could reach an alert floor (100 by default) is seen and
then counted exactly, while a key with a handful of lines in a large batch may go uncounted (a marker field) or be
counted under the batch's dominant logger. Batches that are not all library lines, or whose probes are out of time
order by more than ``SKEW`` seconds, are counted exactly instead.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .fields import HEAD, MARKERS, EventSeconds

__all__ = ["MIN_BYTES", "STRIDE", "SamplePlan", "plan"]

STRIDE = 8192
MIN_BYTES = 256 * 1024  # smaller batches are cheap enough to count exactly
TIME_EVERY = 8  # every 8th probe reads the line's time (all of them check markers and the logger)
SKEW = 2  # seconds a probe may be older than the one before it and still count as "in time order"


@dataclass
class SamplePlan:
    """Windows of a sorted batch of library lines: ``segments`` are (byte offset, first second) of each window's
    first line, in order; ``loggers`` and ``levels`` as seen by the probes; ``markers`` the field markers seen."""

    segments: list[tuple[int, int]]
    last_second: int = -1
    loggers: Counter[bytes] = field(default_factory=Counter)
    levels: dict[bytes, Counter[bytes]] = field(default_factory=dict)
    markers: set[str] = field(default_factory=set)


def _head(body: bytes, start: int, seconds: EventSeconds) -> tuple[int, bytes, bytes, int] | None:
    """(second, level, logger, end of line) of the library line starting at ``start``, else None."""
    end = body.find(b"\n", start)
    if end < 0:
        end = len(body)
    match = HEAD.match(body, start, end)
    if match is None:
        return None
    second = seconds.utc(match.group(1))
    if second is None:
        return None
    return second, match.group(2), match.group(3), end


def plan(body: bytes, seconds: EventSeconds, window: int) -> SamplePlan | None:
    """Probe ``body``; None when it is not a time-ordered run of library lines (the caller counts exactly)."""
    size = len(body)
    first = HEAD.match(body)
    if first is None:
        return None
    # The dominant logger's field exactly as written (compact or spaced): a probe containing it needs no regex.
    usual = body[body.rfind(b'"logger"', 0, first.start(3)):first.end(3) + 1]
    probes: list[tuple[int, int]] = []  # (line start, second) of the probes whose head was read
    heads: list[tuple[bytes, bytes]] = []  # (logger, level) of those
    result = SamplePlan(segments=[])
    cheap = 0  # probes recognised by ``usual`` alone
    seen = result.markers
    actor, redaction, audit, event = MARKERS["actor"], MARKERS["entity"], MARKERS["audit"], MARKERS["event"]
    start = index = 0
    while True:
        end = body.find(b"\n", start)
        if end < 0:
            end = size
        line = body[start:end]
        if actor in line:
            seen.add("actor")
        if redaction in line:
            seen.add("entity")
        if audit in line:
            seen.add("audit")
        if event in line:
            seen.add("event")
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
    last = body.rfind(b"\n", 0, size - 1) + 1
    if last > probes[-1][0]:
        head = _head(body, last, seconds)
        if head is None or head[0] < probes[-1][1] - SKEW:
            return None
        probes.append((last, head[0]))
    for logger, level in heads:
        result.loggers[logger] += 1
        result.levels.setdefault(logger, Counter())[level] += 1
    result.loggers[first.group(3)] += cheap
    result.last_second = max(second for _, second in probes)
    result.segments.append((0, probes[0][1]))
    for (a, sa), (b, sb) in zip(probes, probes[1:], strict=False):
        if sb // window > sa // window:
            result.segments.extend(_boundaries(body, a, b, sa // window, window, seconds))
    return result


def _boundaries(body: bytes, start: int, stop: int, current: int, window: int,
                seconds: EventSeconds) -> list[tuple[int, int]]:
    """The first line of each later window among the lines in ``[start, stop]`` (at most a stride of them)."""
    found = []
    pos = start
    while pos <= stop:
        head = _head(body, pos, seconds)
        if head is None:  # pragma: no cover - the probes matched; lines between are the writer's too
            break
        second, _, _, end = head
        if second // window > current:
            current = second // window
            found.append((pos, second))
        pos = end + 1
    return found
