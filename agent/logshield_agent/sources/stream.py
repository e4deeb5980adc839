"""What the tailer keeps per followed file: the stream (identity, position, read-ahead) and its pending batch."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .checkpoint import Intent
from .fingerprint import CHECK_BYTES

__all__ = ["PendingBatch", "Stream", "origin_path_for", "service_from_path"]

_ROTATION_SUFFIX = re.compile(r"(\.\d+|\.gz|\.zst|\.bz2|\.xz|[-_.]\d{8,14}|\.old)+$")


def service_from_path(path: str) -> str:
    """``/var/log/api.log.1`` → ``api``; falls back to ``app``."""
    name = _ROTATION_SUFFIX.sub("", os.path.basename(path))
    name = re.sub(r"\.(log|txt|json|ndjson|jsonl|out|err)$", "", name)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip("._-")[:128]
    return name or "app"


def origin_path_for(path: str, inode: tuple[int, int], stat: Callable[[str], os.stat_result]) -> str:
    """Where a file first seen at ``path`` was (or is) the active file: ``app.log`` for ``app.log.1`` or
    ``app.log-20261130`` when ``app.log`` exists and is another file (the file was rotated before the agent saw
    it), else ``path`` itself. A file is *rotated* once its origin path no longer leads to it."""
    directory, name = os.path.split(path)
    active = _ROTATION_SUFFIX.sub("", name)
    if not active or active == name:
        return path
    candidate = os.path.join(directory, active)
    try:
        st = stat(candidate)
    except OSError:
        return path
    return candidate if (st.st_dev, st.st_ino) != inode else path


@dataclass
class PendingBatch:
    """Records read from ``[start, end)`` of a stream, waiting to be shipped: kept as a few runs of whole records
    (``chunks``), not one object per line."""

    start: int
    end: int
    chunks: list[bytes] = field(default_factory=list)
    lines: int = 0
    size: int = 0
    opened: float = 0.0  # monotonic time of the first record
    mtime: float = 0.0  # file mtime when the first record was read (event-time fallback)
    final: bool = False
    full: bool = False  # the next record did not fit: ship now
    replay: Intent | None = None  # set when re-building a batch recorded before a crash
    incomplete: bool = False  # replay could not re-read the whole range

    def add(self, body: bytes, lines: int) -> None:
        if lines:
            self.chunks.append(body)
            self.lines += lines
            self.size += len(body)

    @property
    def body(self) -> bytes:
        """Every record, newline-terminated, in order (joined once; later calls are free)."""
        if len(self.chunks) > 1:
            self.chunks[:] = [b"".join(self.chunks)]
        return self.chunks[0] if self.chunks else b""

    def first_record(self) -> bytes:
        body = self.chunks[0] if self.chunks else b""
        return body[:body.find(b"\n") + 1]

    def last_record(self) -> bytes:
        body = self.chunks[-1] if self.chunks else b""
        return body[body.rfind(b"\n", 0, len(body) - 1) + 1:]


@dataclass
class Stream:
    """One file's content. ``id`` names it in object keys and the checkpoint; ``head`` (the fingerprint of the
    first ``fp_len`` bytes, kept as ``head_bytes`` too) is how it is found again — several streams may share it."""

    id: str
    head: str
    fp_len: int
    head_bytes: bytes
    service: str
    origin_path: str
    path: str
    acked: int
    tail: bytes = b""  # the file's bytes just before buf_offset (at most CHECK_BYTES)
    fd: int | None = None
    dev: int = 0
    ino: int = 0
    size: int = 0
    mtime: float = 0.0
    buf: bytearray = field(default_factory=bytearray)
    buf_offset: int = 0
    pending: PendingBatch | None = None
    last_change: float = 0.0
    rotated: bool = False
    gone: bool = False
    deleted: bool = False
    recheck: bool = False  # a read raced with a truncation: verify the file on the next scan
    detached: bool = False  # truncated in place; waiting for the copy (this scan) or finishing from memory
    parked: bool = False  # closed to save descriptors (fully read and shipped); reopened when it changes
    limit: int | None = None  # --once: the size when first seen; nothing past it is read
    unread_at_truncation: int = 0  # bytes it held past what was read when truncated in place (lost without a copy)
    stalled: str | None = None

    @property
    def read_offset(self) -> int:
        return self.buf_offset + len(self.buf)

    @property
    def readable(self) -> int:
        """Where reading stops: the file's size, or the ``--once`` snapshot of it."""
        return self.size if self.limit is None else min(self.size, self.limit)

    @property
    def unshipped(self) -> int:
        return max(self.size, self.read_offset) - self.acked

    def drained(self) -> bool:
        return self.pending is None and not self.buf and self.read_offset >= self.size

    def window(self) -> bytes:
        """The file's bytes just before ``read_offset`` (at most ``CHECK_BYTES``), from memory."""
        if len(self.buf) >= CHECK_BYTES:
            return bytes(self.buf[-CHECK_BYTES:])
        return (self.tail + bytes(self.buf))[-CHECK_BYTES:]

    def consume(self, count: int) -> None:
        """``count`` bytes at the front of ``buf`` went into the pending batch."""
        if count >= CHECK_BYTES:
            self.tail = bytes(self.buf[count - CHECK_BYTES:count])
        else:
            self.tail = (self.tail + bytes(self.buf[:count]))[-CHECK_BYTES:]
        del self.buf[:count]
        self.buf_offset += count
