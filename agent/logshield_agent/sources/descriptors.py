"""How many log files the tailer keeps open, and which ones it closes (*parks*) to stay under that.

One descriptor per matched file does not scale: with ``ulimit -n 64`` and 120 files the checkpoint write itself
failed with EMFILE. The tailer keeps at most ``limit`` files open (by default half the process's soft
``RLIMIT_NOFILE``, less a reserve for uploads, the checkpoint and the store). When a file waits for a descriptor,
a fully read and acknowledged file is parked: closed, but still followed by path and inode — when ``stat`` shows
it changed it is reopened and verified (same inode, same head, same bytes before the read position). Files with
anything unread or unshipped, and deleted ones (their data is only reachable through the descriptor), are never
parked. An ``EMFILE``/``ENFILE`` lowers the limit to three quarters of what is open, and logs it.
"""

from __future__ import annotations

import errno
import logging
import resource
from collections.abc import Iterable

from .stream import Stream

__all__ = ["DescriptorBudget", "default_max_open", "is_descriptor_exhaustion"]

log = logging.getLogger("logshield_agent.tailer")


def default_max_open(upload_concurrency: int = 2) -> int:
    """Half of the soft open-file limit left after a reserve for uploads and the agent's own files."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):  # pragma: no cover - every POSIX system has it
        return 256
    if soft == resource.RLIM_INFINITY or soft <= 0:
        soft = 65536
    return max(4, min(4096, (soft - 16 - 4 * upload_concurrency) // 2))


def is_descriptor_exhaustion(exc: OSError) -> bool:
    return exc.errno in (errno.EMFILE, errno.ENFILE)


def parkable(stream: Stream) -> bool:
    """Closing this file loses nothing: everything in it was read (up to the ``--once`` snapshot) and acknowledged,
    it is not deleted, and it is not waiting for its copytruncate copy."""
    return (stream.fd is not None and not stream.deleted and not stream.detached and not stream.recheck
            and stream.pending is None and not stream.buf and stream.read_offset >= stream.readable
            and stream.acked >= stream.read_offset and not stream.stalled)


class DescriptorBudget:
    """The limit on open log files and the choice of which to park."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)

    def park_candidate(self, streams: Iterable[Stream]) -> Stream | None:
        """The file to close first: rotated before active ones, then the one unchanged for longest."""
        candidates = [s for s in streams if parkable(s)]
        if not candidates:
            return None
        return min(candidates, key=lambda s: (not s.rotated, s.last_change))

    def exhausted(self, open_now: int, exc: OSError) -> None:
        """The system refused a descriptor: follow fewer files at once from now on."""
        lowered = max(1, min(self.limit, open_now) * 3 // 4)
        if lowered < self.limit:
            log.warning("too many open files; following fewer log files at a time (closed ones are reopened when "
                        "they change)", extra={"error": errno.errorcode.get(exc.errno or 0, type(exc).__name__),
                                               "open_files": open_now, "limit": lowered})
            self.limit = lowered
