"""Object keys: a pure function of where the bytes came from, so a retried batch lands on the same key.

    service=<svc>/host=<host>/dt=YYYY-MM-DD/hour=HH/<fingerprint12>-<start:016x>-<end:016x>.ndjson[.zst|.gz]

The sink adds its own prefix. ``dt``/``hour`` come from the event time of the batch's first record (UTC), which
the pipeline records in the checkpoint intent so a replay after a crash chooses the same partition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

__all__ = ["SUFFIXES", "KeyParts", "object_key", "parse_key"]

SUFFIXES = {"zstd": ".ndjson.zst", "gzip": ".ndjson.gz", "none": ".ndjson"}

_KEY = re.compile(
    r"(?:^|/)service=(?P<service>[^/]+)/host=(?P<host>[^/]+)/dt=(?P<dt>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})/"
    r"(?P<fp>[0-9a-f]{12})-(?P<start>[0-9a-f]{16})-(?P<end>[0-9a-f]{16})(?P<suffix>\.ndjson(?:\.zst|\.gz)?)$"
)


@dataclass(frozen=True)
class KeyParts:
    service: str
    host: str
    dt: str
    hour: str
    fingerprint12: str
    start: int
    end: int
    compression: str


def object_key(
    *, service: str, host: str, event_time: datetime, fingerprint: str, start: int, end: int, compression: str
) -> str:
    if event_time.tzinfo is None:
        event_time = event_time.replace(tzinfo=timezone.utc)
    t = event_time.astimezone(timezone.utc)
    # Explicit zero padding: strftime's %Y gives "99" for the year 99 on glibc, which parse_key would not read.
    return (
        f"service={service}/host={host}/dt={t.year:04d}-{t.month:02d}-{t.day:02d}/hour={t.hour:02d}/"
        f"{fingerprint[:12]}-{start:016x}-{end:016x}{SUFFIXES[compression]}"
    )


def parse_key(key: str) -> KeyParts | None:
    """Split a key made by ``object_key`` (with or without a sink prefix); None for anything else."""
    m = _KEY.search(key)
    if not m:
        return None
    compression = {v: k for k, v in SUFFIXES.items()}[m["suffix"]]
    return KeyParts(m["service"], m["host"], m["dt"], m["hour"], m["fp"], int(m["start"], 16), int(m["end"], 16),
                    compression)
