"""The few fields of a record the detector counts, and the tally they go into.

Dimensions: ``volume`` (every line, keyed by the stream's service), ``logger`` (JSON records, by logger name) or
``event`` (a record with a top-level string ``event`` counts there instead), ``actor`` (top-level ``actor``),
``entity`` (``redaction.entities``: redacted values per type), ``action`` and ``actor_action`` (audit records: a
top-level ``audit`` object with an ``action``). Keys are those fields' values, at most ``MAX_KEY_CHARS`` characters;
nothing else of a line is kept. The ``event`` of another program's JSON is often its message (structlog's is), so
it is counted under ``hashed(event)`` — only the library's own records (redacted where they were written) keep
their event names.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..config import ALERT_DIMENSIONS

__all__ = ["DIMENSIONS", "MAX_KEY_CHARS", "EventSeconds", "Tally", "hashed", "record_fields", "regex_fields"]

DIMENSIONS = ALERT_DIMENSIONS
MAX_KEY_CHARS = 200
TIME_FIELDS = ("timestamp", "@timestamp", "time", "ts")
LOGGER_FIELDS = ("logger", "logger_name")

# The library's record head: timestamp (UTC, "Z"), level, logger — compact, or json.dumps' ", " / ": " spacing.
HEAD = re.compile(rb'\{"timestamp": ?"([^"]{19})[.\d]*Z", ?"level": ?"([^"\\]*)", ?"logger": ?"([^"\\]*)"')
# A line needs a look of its own when it carries one of these (each a substring of the compact and spaced forms).
MARKERS = {"actor": b'"actor":', "entity": b'"redaction":', "audit": b'"audit":', "event": b'"event":'}
NEEDS_PARSE = (b'"audit":', b'"event":')  # only the top level counts for these: parse the line
ACTOR = re.compile(rb'"actor": ?(?:"((?:[^"\\]|\\.)*)"|(-?\d{1,30})[,}])')
ENTITIES = re.compile(rb'"redaction": ?\{"entities": ?\{([^{}]*)\}')
ENTITY = re.compile(rb'"((?:[^"\\]|\\.)*)": ?(\d{1,9})')
_UTC = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
_TEXT_TIME = re.compile(rb"\s*\[?(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:[.,]\d+)?(Z|[+-]\d\d:?\d\d)?")


def hashed(text: str) -> str:
    """``sha256:<16 hex>``: the first 64 bits of the SHA-256 of ``text`` (UTF-8), marked as a hash."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass
class Tally:
    """Counts found in one batch: ``counts[(dimension, key, second)]``; ``related[(dimension, key)]`` holds, per
    field name (``levels``, ``loggers``, ``actors``, ``actions``, ``outcomes``), how often each value went with it.
    Second ``-1`` means "no line of the batch had a time" (the caller uses the ship time)."""

    counts: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    related: dict[tuple[str, str], dict[str, Counter[str]]] = field(default_factory=dict)
    lines: int = 0
    untimed: int = 0  # lines counted at the ship time: no line of the batch had an event time
    last_second: int = -1  # the newest event time in the batch (counts may be filed under a window's first second)
    sampled: bool = False  # counted by the sampled path (see ``sampled.py``)

    def add(self, dimension: str, key: str, second: int, n: int = 1, **related: str) -> None:
        self.counts[(dimension, key, second)] += n
        if second > self.last_second:
            self.last_second = second
        if related:
            fields = self.related.setdefault((dimension, key), {})
            for name, value in related.items():
                fields.setdefault(name, Counter())[value] += n

    def relate(self, dimension: str, key: str, **related: str) -> None:
        """Note values that went with a key (a sample), without counting the key."""
        fields = self.related.setdefault((dimension, key), {})
        for name, value in related.items():
            fields.setdefault(name, Counter())[value] += 1

    def merge(self, other: Tally, second: int | None = None) -> None:
        """Add ``other``'s counts (all at ``second`` when given) and related values."""
        for (dimension, key, own), n in other.counts.items():
            self.counts[(dimension, key, own if second is None else second)] += n
        for where, fields in other.related.items():
            mine = self.related.setdefault(where, {})
            for name, values in fields.items():
                mine.setdefault(name, Counter()).update(values)


def key_text(raw: bytes) -> str:
    """A JSON string's raw bytes (between the quotes) as text, unescaped, at most MAX_KEY_CHARS characters."""
    if b"\\" in raw:
        try:
            text = json.loads(b'"' + raw + b'"')
        except ValueError:
            text = raw.decode("utf-8", "replace")
    else:
        text = raw.decode("utf-8", "replace")
    return text if len(text) <= MAX_KEY_CHARS else text[:MAX_KEY_CHARS - 1] + "…"


def value_key(value: Any) -> str | None:
    """A parsed field as a key: strings and integers; None for anything else or empty."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value)
    if not text:
        return None
    return text if len(text) <= MAX_KEY_CHARS else text[:MAX_KEY_CHARS - 1] + "…"


def parse_json(line: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


class EventSeconds:
    """Event-time strings → epoch seconds, memoised (a batch has few distinct seconds)."""

    def __init__(self) -> None:
        self._cache: dict[bytes, int | None] = {}

    def utc(self, text: bytes) -> int | None:
        """``YYYY-MM-DDTHH:MM:SS`` (UTC)."""
        found = self._cache.get(text, -1)
        if found != -1:
            return found
        second: int | None = None
        if _UTC.fullmatch(text):
            try:
                second = calendar.timegm(datetime(int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]),
                                                  int(text[14:16]), int(text[17:19])).timetuple())
            except ValueError:  # month 13, hour 25…
                second = None
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[text] = second
        return second

    def text(self, line: bytes) -> int | None:
        """A leading ISO-8601 timestamp of a text line (without a zone: UTC)."""
        match = _TEXT_TIME.match(line)
        if match is None:
            return None
        second = self.utc(match.group(1) + b"T" + match.group(2))
        zone = match.group(3)
        if second is not None and zone and zone != b"Z":
            digits = zone[1:].replace(b":", b"")
            offset = int(digits[:2]) * 3600 + int(digits[2:4]) * 60
            second -= offset if zone[:1] == b"+" else -offset
        return second

    def value(self, value: Any) -> int | None:
        """A JSON time field: an ISO-8601 string or a number of s / ms / µs / ns since the epoch."""
        if isinstance(value, str):
            return self.text(value.encode("utf-8", "replace"))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
            number /= 1e9 if number > 1e17 else 1e6 if number > 1e14 else 1e3 if number > 1e11 else 1
            return int(number) if 0 <= number < 1e11 else None
        return None

    def record(self, doc: dict[str, Any]) -> int | None:
        """The first time field of a parsed record that holds a time."""
        for name in TIME_FIELDS:
            if name in doc:
                second = self.value(doc[name])
                if second is not None:
                    return second
        return None


def regex_fields(out: Tally, line: bytes, second: int, logger: str, wanted: frozenset[str]) -> None:
    """``actor`` and redacted entities of a library line, by targeted regex (no parse)."""
    if "actor" in wanted:
        match = ACTOR.search(line)
        if match is not None:
            actor = key_text(match.group(1)) if match.group(1) is not None else match.group(2).decode()
            if actor:
                out.add("actor", actor, second, loggers=logger)
    if "entity" in wanted:
        match = ENTITIES.search(line)
        if match is not None:
            for name, count in ENTITY.findall(match.group(1)):
                if int(count):
                    out.add("entity", key_text(name), second, int(count), loggers=logger)


def record_fields(out: Tally, doc: dict[str, Any], second: int, logger: str | None, level: str | None,
                  wanted: frozenset[str], *, head_counted: bool = False, foreign: bool = False) -> None:
    """Every dimension but volume, from a parsed record (``head_counted``: its logger is counted already;
    ``foreign``: another program's record, whose event is counted hashed)."""
    event = value_key(doc.get("event")) if isinstance(doc.get("event"), str) else None
    if event is not None and foreign:
        event = hashed(event)
    related = {"levels": level} if level else {}
    if event is not None and "event" in wanted:
        out.add("event", event, second, **related, **({"loggers": logger} if logger else {}))
    if logger is not None and "logger" in wanted and not head_counted:
        out.add("logger", logger, second, **related)
    actor = value_key(doc.get("actor"))
    where = {"loggers": logger} if logger else {}
    audit = doc.get("audit")
    action = value_key(audit.get("action")) if isinstance(audit, dict) else None
    if actor is not None and "actor" in wanted:
        out.add("actor", actor, second, **where, **({"actions": action} if action else {}))
    redaction = doc.get("redaction")
    entities = redaction.get("entities") if isinstance(redaction, dict) else None
    if isinstance(entities, dict) and "entity" in wanted:
        for name, count in entities.items():
            if isinstance(count, int) and not isinstance(count, bool) and count > 0:
                out.add("entity", str(name)[:MAX_KEY_CHARS], second, count, **where)
    if action is not None and isinstance(audit, dict):
        outcome = str(audit.get("outcome") or "unknown")[:MAX_KEY_CHARS]
        if "action" in wanted:
            out.add("action", action, second, outcomes=outcome, **({"actors": actor} if actor else {}))
        if actor is not None and "actor_action" in wanted:
            out.add("actor_action", f"{actor}|{action}", second, outcomes=outcome)
