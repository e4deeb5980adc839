"""How much file content the tailer holds in memory, and how it stays within ``max_pending_bytes``.

What is held is the read-ahead (``buf``) and the pending batches (incl. uploads) of every stream. A batch being
built is counted for what it may still take (its *reservation*) before it is read, so that a new batch is started
only while there is room for a whole one and batches being built can always complete; beyond the bound, idle
read-ahead is dropped (re-read later).
"""

from __future__ import annotations

from collections.abc import Iterable

from .stream import Stream

__all__ = ["held", "held_bytes", "release_idle_buffers", "reservation"]


def held(stream: Stream) -> int:
    return len(stream.buf) + (stream.pending.size if stream.pending is not None else 0)


def held_bytes(streams: Iterable[Stream]) -> int:
    """Bytes of file content in memory: read ahead (``buf``) and in pending batches (incl. uploads)."""
    return sum(held(s) for s in streams)


def reservation(stream: Stream, batch_max_bytes: int) -> int:
    """What a batch being built may still take (counted against the budget before it is read)."""
    batch = stream.pending
    if batch is None or batch.full or batch.replay is not None or stream.fd is None:
        return 0
    return max(0, batch_max_bytes - batch.size - len(stream.buf))


def release_idle_buffers(streams: Iterable[Stream], excess: int) -> None:
    """Over budget, or a file waits for room (lines waiting for their newline in many files, read-ahead left
    after a batch): forget the read-ahead of streams with no batch in progress, biggest first. It is re-read
    from the file when its turn comes (the file stays open), so nothing is lost."""
    idle = sorted((s for s in streams
                   if s.buf and s.pending is None and s.fd is not None and not s.detached),
                  key=lambda s: len(s.buf), reverse=True)
    for stream in idle:
        if excess <= 0:
            break
        excess -= len(stream.buf)
        stream.buf.clear()
