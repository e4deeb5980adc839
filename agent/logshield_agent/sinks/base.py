"""The contract every store implements: idempotent conditional puts, reads for verify, deletes for retention.

A batch is identified by where its bytes came from (stream fingerprint + byte range), so the same batch always
gets the same key and the same bytes. ``put`` is conditional: if an object already exists under the key with
the same SHA-256 it counts as success (``PutResult.already_existed``); with different content it raises
``ObjectConflictError`` and nothing is overwritten.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "ObjectConflictError",
    "ObjectInfo",
    "ObjectLockedError",
    "PutResult",
    "Sink",
    "SinkError",
    "SinkUnavailableError",
]

# Object metadata keys (lower-case, ASCII; S3 x-amz-meta-*, Azure blob metadata).
META_SHA256 = "logshield-sha256"
META_LINES = "logshield-lines"
META_SOURCE = "logshield-source"
META_BYTE_START = "logshield-byte-start"
META_BYTE_END = "logshield-byte-end"
META_FIRST_EVENT = "logshield-first-event"
META_LAST_EVENT = "logshield-last-event"


class SinkError(Exception):
    """A store operation failed in a way retrying will not fix (bad credentials, missing bucket, bad config).

    Messages name the thing to fix and never contain credentials or log content.
    """


class SinkUnavailableError(SinkError):
    """The store is down, throttling or unreachable: retry later, do not advance checkpoints."""


class ObjectConflictError(SinkError):
    """An object exists under the key with different content: never overwritten."""


class ObjectLockedError(SinkError):
    """Deletion refused because the object is under retention (Object Lock / immutability)."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    retain_until: datetime | None = None


@dataclass(frozen=True)
class PutResult:
    key: str
    size: int
    sha256: str
    already_existed: bool = False


class Sink(abc.ABC):
    """A store of immutable objects under a key prefix. Thread-compatible; one instance per pipeline."""

    #: URL the sink was built from, with any secret removed (safe to log).
    display_url: str = ""

    @abc.abstractmethod
    def put(
        self,
        key: str,
        body: bytes,
        *,
        sha256: str,
        metadata: dict[str, str],
        content_type: str = "application/x-ndjson",
        content_encoding: str | None = None,
        retain_until: datetime | None = None,
    ) -> PutResult:
        """Store ``body`` under ``key`` unless it exists; existing identical content is success."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """Return the object's bytes; raises ``KeyError`` when missing."""

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Return the object's info, or None when missing."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield every object whose key starts with ``prefix`` (relative to the sink's own prefix)."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete an object; raises ``ObjectLockedError`` when retention forbids it."""

    @abc.abstractmethod
    def check(self) -> None:
        """Reach the store and verify the target exists and credentials work; raise ``SinkError`` if not."""

    def resolve_existing(self, key: str, location: str, size: int, sha256: str) -> PutResult:
        """After a conditional put was refused: identical stored content is success, different is a conflict.

        ``location`` names the object for messages (e.g. ``s3://bucket/key``) and must hold no secret.
        """
        info = self.head(key)
        if info is None:  # a concurrent upload of the same key was in flight and did not (yet) land
            raise SinkUnavailableError(f"concurrent write to {location} in progress; retry")
        stored = info.metadata.get(META_SHA256) or hashlib.sha256(self.get(key)).hexdigest()
        if stored.lower() != sha256:
            raise ObjectConflictError(
                f"{location} already exists with different content (sha256 {stored[:12]}… ≠ {sha256[:12]}…); "
                "it was not overwritten"
            )
        return PutResult(key=key, size=size, sha256=sha256, already_existed=True)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and connections."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
