"""Find a record's event time: a JSON ``timestamp``/``time``/``@timestamp``/``ts`` field, else a leading ISO-8601
timestamp in text. Pure and cheap; used for the key partition and the first/last event metadata.

Only times in years 1970–9999 count (``dt=YYYY-MM-DD`` must stay four digits and sortable; a record claiming the
year 99 or 1900 is treated as having no time, so the batch falls back to the file's mtime, see ``file_time``).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

__all__ = ["EARLIEST", "LATEST", "event_time", "file_time"]

EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)

_FIELDS = ("timestamp", "@timestamp", "time", "ts")
_LEADING = re.compile(
    rb"^\s*\[?(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?)"
)


def _parse_iso(text: str) -> datetime | None:
    text = text.strip().replace(",", ".")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python 3.10's fromisoformat wants at most 6 fractional digits and a colon in the offset.
    m = re.match(r"^(.*?\.\d{1,6})\d*(.*)$", text)
    if m:
        text = m.group(1) + m.group(2)
    m = re.match(r"^(.*[+-]\d{2})(\d{2})$", text)
    if m and "T" in text or (m and " " in text):
        text = f"{m.group(1)}:{m.group(2)}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _from_number(value: float) -> datetime | None:
    if value > 1e17:  # ns
        value /= 1e9
    elif value > 1e14:  # us
        value /= 1e6
    elif value > 1e11:  # ms
        value /= 1e3
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _sane(parsed: datetime | None) -> datetime | None:
    return parsed if parsed is not None and EARLIEST <= parsed <= LATEST else None


def file_time(mtime: float) -> datetime:
    """A file's mtime as a partition time, clamped to the range ``event_time`` accepts."""
    try:
        parsed = datetime.fromtimestamp(mtime, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return LATEST if mtime > 0 else EARLIEST
    return min(max(parsed, EARLIEST), LATEST)


def event_time(record: bytes) -> datetime | None:
    """The record's event time (UTC, years 1970–9999), or None."""
    return _sane(_event_time(record))


def _event_time(record: bytes) -> datetime | None:
    stripped = record.lstrip()
    if stripped.startswith(b"{"):
        try:
            obj = json.loads(record)
        except (ValueError, UnicodeDecodeError, RecursionError):
            obj = None
        if isinstance(obj, dict):
            for name in _FIELDS:
                value = obj.get(name)
                if isinstance(value, str):
                    parsed = _parse_iso(value)
                    if parsed:
                        return parsed
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    parsed = _from_number(float(value))
                    if parsed:
                        return parsed
            return None
    m = _LEADING.match(record[:64])
    if m:
        return _parse_iso(m.group(1).decode("ascii"))
    return None
