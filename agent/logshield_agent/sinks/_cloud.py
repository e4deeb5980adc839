"""Plumbing shared by the cloud sinks: key prefixes, retention dates, digests, retry and timeout settings."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

__all__ = [
    "PROBE_BODY",
    "PROBE_RETENTION",
    "RemoteOptions",
    "check_sha256",
    "join_key",
    "resolve_retain_until",
    "strip_prefix",
]

MiB = 1024 * 1024
#: What ``check`` writes (and then deletes) to prove the agent may write; retention, when configured, this long.
PROBE_BODY = b"logshield-agent check: a write probe, deleted right after it was written\n"
PROBE_RETENTION = timedelta(hours=1)


@dataclass(frozen=True)
class RemoteOptions:
    """How hard the SDK tries before a sink reports the store unavailable.

    ``max_attempts`` counts the first try; the SDK's own backoff runs between attempts. Keep it small in tests
    and latency-sensitive paths: the pipeline retries a ``SinkUnavailableError`` later anyway.
    """

    max_attempts: int = 5
    connect_timeout: float = 5.0
    read_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("timeouts must be > 0")


def normalize_prefix(prefix: str) -> str:
    """``"logs"`` and ``"logs/"`` both mean the folder ``logs/``; ``""`` means the whole bucket."""
    prefix = prefix.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return prefix


def join_key(prefix: str, key: str) -> str:
    if not key or key.startswith("/"):
        raise ValueError(f"object key must be relative and non-empty: {key!r}")
    return prefix + key


def strip_prefix(prefix: str, full_key: str) -> str:
    return full_key[len(prefix) :] if prefix and full_key.startswith(prefix) else full_key


def check_sha256(body: bytes, sha256: str) -> bytes:
    """Return the raw digest of ``body``; ``ValueError`` when it is not ``sha256`` (a caller bug, not I/O)."""
    digest = hashlib.sha256(body).digest()
    if digest.hex() != sha256.lower():
        raise ValueError("sha256 does not match the body")
    return digest


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def resolve_retain_until(
    retain_until: datetime | None, retention_days: int | None, *, now: datetime | None = None
) -> datetime | None:
    """The retain-until date for a new object: the caller's, else now + ``retention_days``, else None.

    Naive datetimes are taken as UTC. The result is always timezone-aware UTC.
    """
    if retain_until is None:
        if not retention_days:
            return None
        retain_until = (now or datetime.now(timezone.utc)) + timedelta(days=retention_days)
    if retain_until.tzinfo is None:
        retain_until = retain_until.replace(tzinfo=timezone.utc)
    return retain_until.astimezone(timezone.utc)
