"""Content comparisons that decide which stream a newly seen file is (the tailer's ``_identify`` uses them).

A file whose head matches a known stream is one of three things:

- the same stream (a rotated name, a copytruncate copy, or the file again after a restart): it holds that stream's
  bytes at the stream's position — verified with the check of the bytes just before it (``holds``);
- a copy of a followed file (``cp app.log app.log.bak``): its content so far is the beginning of that file, as far
  as compared — the first ``COMPARE_BYTES`` and the ``CHECK_BYTES`` before its end (``is_copy``); not shipped again;
- another stream that merely starts alike (a constant header): anything else.

Every function reads through the injected ``FileSystem`` and returns None when a read failed (decide later).
"""

from __future__ import annotations

from .checkpoint import StreamState
from .fingerprint import CHECK_BYTES, MIN_FINGERPRINT_BYTES, check_of
from .fs import FileSystem
from .stream import Stream

__all__ = ["COMPARE_BYTES", "holds", "holds_line_end", "intact", "is_copy", "read_at", "state_matches"]

#: How much of two files' beginnings is compared to call one a copy of the other.
COMPARE_BYTES = 64 * 1024
_STEP = 16 * 1024


def read_at(fs: FileSystem, fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset`` (fewer only at the end of the file). Raises OSError."""
    parts: list[bytes] = []
    got = 0
    while got < size:
        chunk = fs.pread(fd, size - got, offset + got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def holds(fs: FileSystem, fd: int, size: int, offset: int, check: str | None) -> bool | None:
    """Whether the file (``size`` bytes) has, just before ``offset``, the bytes whose check is ``check``.

    A missing check (state migrated from version 1, which trusted the head alone) holds if the file is long enough
    and a line ends at ``offset`` (version 1 acknowledged whole lines, or everything the file held): the new file of
    a rotation that starts with the same banner and is already longer rarely has a line end just there, and taking
    it for the old stream would skip its first lines and ship the old file again."""
    if size < offset:
        return False
    if check is None:
        return offset == 0 or holds_line_end(fs, fd, size, offset)
    start = max(0, offset - CHECK_BYTES)
    try:
        window = read_at(fs, fd, offset - start, start)
    except OSError:
        return None
    return len(window) == offset - start and check_of(window) == check


def holds_line_end(fs: FileSystem, fd: int, size: int, offset: int) -> bool | None:
    """Whether a line ends at ``offset`` (or the file does)."""
    if offset == size:
        return True
    try:
        return read_at(fs, fd, 1, offset - 1) == b"\n"
    except OSError:
        return None


def state_matches(fs: FileSystem, fd: int, size: int, state: StreamState, inode: str) -> bool | None:
    """Whether a file (``inode`` = "dev:ino") whose head matched ``state`` is that stream: it holds the bytes before
    the acknowledged offset; with nothing acknowledged yet but a batch recorded, the bytes before the batch's end.
    When that is fewer than ``MIN_FINGERPRINT_BYTES`` (a new file beginning with all of a short old file's bytes
    would pass), it must also be the inode the stream was last followed in."""
    found = holds(fs, fd, size, state.offset, state.check)
    verified = state.offset
    if found and state.offset == 0 and state.intent is not None and state.intent.check is not None:
        found = holds(fs, fd, size, state.intent.end, state.intent.check)
        verified = state.intent.end
    if found and verified < MIN_FINGERPRINT_BYTES and state.inode is not None and state.inode != inode:
        return False
    return found


def is_copy(fs: FileSystem, fd: int, size: int, other_fd: int, other_size: int) -> bool | None:
    """Whether the file ``fd`` (``size`` bytes) is so far a copy of the beginning of ``other_fd``: not longer, the
    same first ``COMPARE_BYTES`` and the same ``CHECK_BYTES`` before its end."""
    if size > other_size or size == 0:
        return False
    try:
        compared = 0
        limit = min(size, COMPARE_BYTES)
        while compared < limit:
            step = min(_STEP, limit - compared)
            if read_at(fs, fd, step, compared) != read_at(fs, other_fd, step, compared):
                return False
            compared += step
        if size > limit:
            start = max(limit, size - CHECK_BYTES)
            if read_at(fs, fd, size - start, start) != read_at(fs, other_fd, size - start, start):
                return False
    except OSError:
        return None
    return True


def intact(fs: FileSystem, stream: Stream, fd: int) -> bool:
    """The file still starts with the stream's head and holds, just before the read position, the bytes read
    there (a file truncated and rewritten past that point with the same header fails the second test)."""
    window = stream.window()
    try:
        return (read_at(fs, fd, stream.fp_len, 0) == stream.head_bytes
                and read_at(fs, fd, len(window), stream.read_offset - len(window)) == window)
    except OSError:
        return False
