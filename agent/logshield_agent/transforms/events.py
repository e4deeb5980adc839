"""Find a record's event time: a JSON ``timestamp``/``time``/``@timestamp``/``ts`` field, else a leading ISO-8601
timestamp in text. Pure and cheap; used for the key partition and the first/last event metadata."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

__all__ = ["event_time"]

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


def event_time(record: bytes) -> datetime | None:
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
