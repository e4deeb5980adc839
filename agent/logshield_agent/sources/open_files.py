"""The files the tailer holds open: step 1 of its scan (see ``tailer.py``) and the descriptor budget in practice.

Every scan first checks each open file (``check``): a file whose size dropped below what was read, or whose first
bytes or bytes just before the read position changed, was truncated in place (copytruncate) — the stream lets go of
it and waits for the copy. At most ``descriptors.limit`` files are open at once (``descriptors.py``): fully read
and shipped files are *parked* (closed, followed by path and inode) when another file needs a descriptor, and
reopened (verified) when they change.
"""

from __future__ import annotations

import contextlib
import logging

from .descriptors import DescriptorBudget, is_descriptor_exhaustion
from .fs import FileSystem
from .identity import intact
from .stream import Stream

__all__ = ["OpenFiles"]

log = logging.getLogger("logshield_agent.tailer")


class OpenFiles:
    """Checks, parks, reopens and releases the streams' files. ``streams`` and ``by_inode`` are the tailer's dicts
    (shared); owned by the tailer."""

    def __init__(self, fs: FileSystem, streams: dict[str, Stream], by_inode: dict[tuple[int, int], str],
                 descriptors: DescriptorBudget) -> None:
        self.fs = fs
        self.streams = streams
        self.by_inode = by_inode
        self.descriptors = descriptors

    @property
    def count(self) -> int:
        return sum(1 for s in self.streams.values() if s.fd is not None)

    # -- checking (step 1 of a scan)
    def check(self, now: float) -> None:
        for stream in self.streams.values():
            if stream.fd is None:
                continue
            try:
                st = self.fs.fstat(stream.fd)
            except OSError as exc:
                log.warning("fstat failed; releasing file", extra={"path": stream.path, "error": type(exc).__name__})
                self.release(stream)
                stream.detached = True
                continue
            stream.deleted = st.st_nlink == 0
            changed = st.st_size != stream.size or st.st_mtime != stream.mtime
            truncated = st.st_size < stream.read_offset or st.st_size < stream.fp_len
            if (changed or stream.recheck) and not truncated:
                truncated = not intact(self.fs, stream, stream.fd)
            stream.recheck = False
            if truncated:
                log.info("file truncated in place (copytruncate); following the copy if there is one",
                         extra={"path": stream.path})
                self.release(stream)
                stream.detached = True
                continue
            if changed:
                stream.last_change = now
                stream.size = st.st_size
                stream.mtime = st.st_mtime
            self.update_rotated(stream)

    def update_rotated(self, stream: Stream) -> None:
        try:
            origin = self.fs.stat(stream.origin_path)
            stream.rotated = (origin.st_dev, origin.st_ino) != (stream.dev, stream.ino)
        except OSError:
            stream.rotated = True

    def still_at(self, stream: Stream) -> bool:
        try:
            st = self.fs.stat(stream.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == (stream.dev, stream.ino)

    # -- the descriptor budget
    def release(self, stream: Stream) -> None:
        """Let go of the file for good (the stream is detached or forgotten)."""
        if stream.fd is not None:
            with contextlib.suppress(OSError):
                self.fs.close(stream.fd)
            stream.fd = None
        if self.by_inode.get((stream.dev, stream.ino)) == stream.id:
            del self.by_inode[(stream.dev, stream.ino)]
        stream.parked = False

    def park(self, stream: Stream) -> None:
        """Close a fully read and shipped file; it stays followed by path and inode."""
        assert stream.fd is not None
        with contextlib.suppress(OSError):
            self.fs.close(stream.fd)
        stream.fd = None
        stream.parked = True

    def free_descriptor(self) -> bool:
        """True when one more file may be opened (after parking one if needed)."""
        while self.count >= self.descriptors.limit:
            if not self.park_one():
                return False
        return True

    def park_one(self) -> bool:
        victim = self.descriptors.park_candidate(self.streams.values())
        if victim is not None:
            self.park(victim)
        return victim is not None

    def refused(self, exc: OSError) -> None:
        self.descriptors.exhausted(self.count, exc)

    def reopen(self, stream: Stream, now: float) -> bool | None:
        """Reopen a parked file that changed: True; None when no descriptor was granted (retried next scan);
        False (and the stream forgotten) when the path no longer leads to the same content, so that the file is
        identified afresh."""
        try:
            fd = self.fs.open(stream.path)
        except OSError as exc:
            if is_descriptor_exhaustion(exc):
                self.refused(exc)
                return None
            return True  # vanished or unreadable for now: stays parked; the next scan decides
        try:
            st = self.fs.fstat(fd)
            same = ((st.st_dev, st.st_ino) == (stream.dev, stream.ino) and st.st_size >= stream.read_offset
                    and intact(self.fs, stream, fd))
        except OSError:
            same = False
        if not same:
            with contextlib.suppress(OSError):
                self.fs.close(fd)
            log.info("a closed file changed identity (recycled inode or rewritten); identifying it again",
                     extra={"path": stream.path})
            self.release(stream)
            del self.streams[stream.id]
            return False
        stream.fd, stream.parked = fd, False
        stream.size, stream.mtime, stream.last_change = st.st_size, st.st_mtime, now
        return True
