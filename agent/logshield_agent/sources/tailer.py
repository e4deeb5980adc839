"""Follow log files through rotation and cut their bytes into per-stream batches, bounded in memory.

A *stream* is one file's content (``stream.py``). Which stream a file is, is decided by its bytes
(``fingerprint.py``, ``identity.py``), never by its path, inode or first bytes alone. Each ``scan()``:

1. checks every open file (``open_files.py``): a file whose size dropped below what was read, or whose first
   bytes or bytes just before the read position changed, was truncated in place (copytruncate) — the stream lets
   go of it and waits for the copy;
2. globs the patterns, less ``LOGSHIELD_EXCLUDE`` and files starting with compression magic
   (``exclusions.py``), listing again when renames race the listing (``listing.py``); a path whose inode is already
   followed is the same stream under a (maybe new) name (rename rotation); an unknown inode is opened and identified
   (``identify.py``) in ``Identifier.order`` (a stream's last inode first, then the biggest):

   a. the copy a truncated stream waits for (same head, same bytes before the read position) continues it, so
      copytruncate loses nothing when the copy matches the glob;
   b. a file holding a checkpointed stream's bytes just before its acknowledged offset resumes it there;
   c. a copy of a followed file (its content so far is that file's beginning) is an *alias*: not shipped again,
      looked at again when it changes, and recorded as an acknowledged ``copy_of`` stream once the original's
      bytes are in the store (so a restart after the original is deleted does not ship the copy); a copy still
      being written stays an alias as it grows. Never a copy: the file now at the path where the followed file was
      written (after a rotation, the new active file holding only the banner or first line the old one starts with);
   d. anything else is a new stream from byte 0 — also a file that starts like another (a constant header, the
      same first line): it gets a stream id of its own;
3. reads each stream into its pending batch in chunks (``reader.py``), never more than the batch size plus one
   line; all the read-ahead and pending batches together stay within ``max_pending_bytes`` however many files have
   a backlog (``memory.py``).

At most ``max_open`` files are open at once (``descriptors.py``, ``open_files.py``): fully read and shipped files
are closed when another file needs a descriptor, followed by path and inode, and reopened (verified) when they
change.

A stream is *rotated* once its origin path (where it was the active file; persisted) no longer leads to it,
*gone* once it is deleted or no longer matched. A rotated or gone stream that stopped growing for ``settle``
seconds ships its unterminated last line as is; a gone stream is closed once everything is acknowledged (deleted
files do not stay open).

Inherent race, as in every tailer: with copytruncate, lines written after the copy and before the truncation
exist in neither file and cannot be shipped; lines written before our last read are safe either way.
"""

from __future__ import annotations

import contextlib
import logging
import stat as stat_mod
import time
from collections.abc import Callable
from dataclasses import replace

from . import memory
from .checkpoint import Checkpointer
from .descriptors import DescriptorBudget, default_max_open, is_descriptor_exhaustion
from .exclusions import Exclusions, compressed_format
from .fingerprint import FINGERPRINT_BYTES
from .fs import FileSystem
from .identify import Identifier
from .identity import read_at
from .listing import list_matched
from .open_files import OpenFiles
from .reader import StreamReader
from .stream import PendingBatch, Stream, service_from_path

__all__ = ["PendingBatch", "Stream", "Tailer", "service_from_path"]

log = logging.getLogger("logshield_agent.tailer")


class Tailer:
    """Discovers files and fills per-stream pending batches. Owned by the pipeline thread; not thread-safe."""

    def __init__(
        self,
        patterns: tuple[str, ...],
        checkpointer: Checkpointer,
        *,
        batch_max_bytes: int,
        max_line_bytes: int,
        service: str | None = None,
        settle: float = 2.0,
        fs: FileSystem | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        on_read: Callable[[int, int], None] | None = None,
        max_pending_bytes: int | None = None,
        max_open: int | None = None,
        exclude: tuple[str, ...] = (),
        on_skip: Callable[[str], None] | None = None,
        on_lost: Callable[[int], None] | None = None,
    ) -> None:
        self.patterns = patterns
        self.checkpointer = checkpointer
        self.batch_max_bytes = batch_max_bytes
        self.max_line_bytes = max_line_bytes
        self.service = service
        self.settle = settle
        self.fs = fs or FileSystem()
        self.clock = clock
        self.wall = wall
        self.on_read = on_read or (lambda lines, nbytes: None)
        #: Bound on file content held in memory (read-ahead + pending batches, see ``held_bytes``): a new batch is
        #: started only while there is room for a whole one; beyond it, idle read-ahead is dropped (re-read later).
        self.max_pending_bytes = max_pending_bytes
        self._turn = 0
        self._once = False
        self._scanned = False  # a scan identified every file listed (version-1 states are settled then)
        self._tried_all = False
        self.streams: dict[str, Stream] = {}
        self._by_inode: dict[tuple[int, int], str] = {}
        self.identifier = Identifier(self.fs, checkpointer, self.streams, service=service, settle=settle, wall=wall)
        self.denied: set[str] = set()  # matched paths that cannot be read (permission denied); retried
        self.descriptors = DescriptorBudget(max_open if max_open is not None else default_max_open())
        self.files = OpenFiles(self.fs, self.streams, self._by_inode, self.descriptors)
        self.reader = StreamReader(self.fs, batch_max_bytes=batch_max_bytes, max_line_bytes=max_line_bytes,
                                   settle=settle, on_read=self.on_read)
        #: Matched files not opened on the last scan for want of a descriptor (new, or parked and changed).
        self.waiting = 0
        self._waiting_logged = -1e9
        self._refused = False
        self._moved = False
        #: The last scan stopped identifying new files early (a rename raced it): a copy may be among the rest.
        self.deferred = False
        self.excluded = Exclusions(exclude)
        self.on_skip = on_skip or (lambda reason: None)
        self.on_lost = on_lost or (lambda nbytes: None)
        self._compressed: dict[tuple[int, int], str] = {}  # inode -> format of files skipped for their content
        self._first_size: dict[tuple[int, int], int] = {}  # --once: inode -> size when first seen

    @property
    def open_files(self) -> int:
        return self.files.count

    # -- lifecycle
    def close(self) -> None:
        for stream in self.streams.values():
            self.files.release(stream)
        self.streams.clear()

    # -- scanning
    def scan(self, *, once: bool = False) -> None:
        now = self.clock()
        self._once = once
        self._check_open_files(now)
        seen = self._discover(now)
        if not self._scanned and self._tried_all:
            self._scanned = True
            self.identifier.first_scan_done()
        streams = list(self.streams.values())
        if streams:  # round robin: with a read-ahead budget, every file gets its turn first
            self._turn = (self._turn + 1) % len(streams)
            streams = streams[self._turn:] + streams[:self._turn]
        held = self.held_bytes()
        reserved = sum(memory.reservation(s, self.batch_max_bytes) for s in streams)
        budget = self.max_pending_bytes
        blocked = False
        for stream in streams:
            if stream.parked:
                stream.gone = (stream.dev, stream.ino) not in seen and not self.files.still_at(stream)
            elif stream.fd is None:
                stream.gone = stream.detached
                # No copy found: bytes past what was read went with the truncation (reported if it stays so).
                if stream.size > stream.read_offset:
                    stream.unread_at_truncation = stream.size - stream.read_offset
                    stream.size = stream.read_offset
            else:
                # Re-evaluated every scan: a rename racing with glob+stat may hide a file for one scan, and a
                # failing glob (EMFILE) none: a file still at its path is not gone.
                stream.gone = stream.deleted or ((stream.dev, stream.ino) not in seen
                                                 and not self.files.still_at(stream))
            before_held, before_reserved = memory.held(stream), memory.reservation(stream, self.batch_max_bytes)
            if stream.pending is None:
                # A new batch only with room for a whole one (its own read-ahead goes into it): batches being built
                # can always complete.
                if budget is None or held - len(stream.buf) + reserved + self.batch_max_bytes <= budget:
                    self.reader.fill(stream, now)
                elif stream.buf or (stream.fd is not None and stream.read_offset < stream.readable):
                    blocked = True
            elif stream.pending.replay is None:
                self.reader.fill(stream, now)
            self.reader.maybe_flush_tail(stream, now, copy_may_follow=self.deferred)
            held += memory.held(stream) - before_held
            reserved += memory.reservation(stream, self.batch_max_bytes) - before_reserved
            self._maybe_forget(stream, now)
        if budget is not None and (held > budget or (blocked and held + reserved + self.batch_max_bytes > budget)):
            memory.release_idle_buffers(self.streams.values(), held + reserved + self.batch_max_bytes - budget)

    def held_bytes(self) -> int:
        """Bytes of file content in memory: read ahead (``buf``) and in pending batches (incl. uploads)."""
        return memory.held_bytes(self.streams.values())

    def _check_open_files(self, now: float) -> None:
        """Step 1 of a scan: notice truncations, growth and rotations of the open files (``OpenFiles.check``)."""
        self.files.check(now)

    def _discover(self, now: float) -> set[tuple[int, int]]:
        seen: set[tuple[int, int]] = set()
        matched, files = list_matched(self.fs, self.patterns, self.excluded)
        self.denied &= matched  # a denied file that went away is no longer reported
        unknown: list[tuple[str, tuple[int, int], int]] = []
        changed_parked: list[Stream] = []
        aliases_seen: set[tuple[int, int]] = set()
        compressed_seen: set[tuple[int, int]] = set()
        for path, st in files:
            if not stat_mod.S_ISREG(st.st_mode):
                continue
            inode = (st.st_dev, st.st_ino)
            if inode in self._compressed:
                compressed_seen.add(inode)
                continue
            owner = self._by_inode.get(inode)
            if owner is not None:
                seen.add(inode)
                stream = self.streams[owner]
                stream.path = path
                if stream.parked:
                    self.files.update_rotated(stream)
                    if ((st.st_size, st.st_mtime) != (stream.size, stream.mtime)
                            and (stream.limit is None or stream.read_offset < stream.limit)):
                        changed_parked.append(stream)
                continue
            alias = self.identifier.aliases.get(inode)
            if alias is not None and self.identifier.alias_holds(alias, path, st):
                aliases_seen.add(inode)
                continue
            if self._once:
                self._first_size.setdefault(inode, st.st_size)  # --once: its size when first seen, opened or not
            unknown.append((path, inode, st.st_size))
        for inode in set(self.identifier.aliases) - aliases_seen:
            del self.identifier.aliases[inode]
        for inode in set(self._compressed) - compressed_seen:
            del self._compressed[inode]
        while self.open_files > self.descriptors.limit and self.files.park_one():
            pass  # the limit was lowered (EMFILE): get under it
        waiting = 0
        for stream in changed_parked:
            if waiting or not self.files.free_descriptor():
                waiting += 1
                continue
            reopened = self.files.reopen(stream, now)
            if reopened is None:
                waiting += 1
            elif not reopened:
                seen.discard((stream.dev, stream.ino))
        if not self._scanned:
            self.identifier.settle_version_1([path for path, _, _ in unknown])
        self._tried_all = True  # every unknown file was opened and identified (none waits, no rename raced)
        self.deferred = False
        for path, inode, _ in sorted(unknown, key=self.identifier.order()):
            if inode in self._by_inode:
                continue
            if waiting or not self.files.free_descriptor():
                waiting += 1
                continue
            self._refused = False
            if self._adopt(path, inode, now):
                seen.add(inode)
            elif self._refused:
                waiting += 1
            elif self._moved:
                # The name led to another file than listed: files are being renamed (rotation). Identify the rest
                # on the next scan, from a fresh listing, so that no copy is taken for a file missed meanwhile.
                self._tried_all = False
                self.deferred = True
                break
        self.waiting = waiting
        self._tried_all = self._tried_all and not waiting
        if waiting and now - self._waiting_logged >= 60:
            self._waiting_logged = now
            log.info("files wait for a free descriptor (all open files have data to read or ship)",
                     extra={"waiting": waiting, "open_files": self.open_files, "limit": self.descriptors.limit})
        return seen

    def _adopt(self, path: str, listed: tuple[int, int], now: float) -> bool:
        """Open an unknown file (``listed`` = the inode the listing found at ``path``) and decide which stream it is.
        True when a stream now owns it; sets ``_moved`` when the path leads to another file now."""
        self._moved = False
        try:
            fd = self.fs.open(path)
        except PermissionError:
            if path not in self.denied:
                self.denied.add(path)
                log.error("permission denied reading log file; skipping it (other files continue)",
                          extra={"path": path})
            return False
        except OSError as exc:
            if is_descriptor_exhaustion(exc):
                self.files.refused(exc)
                self._refused = True
            return False
        self.denied.discard(path)
        keep = False
        try:
            st = self.fs.fstat(fd)
            if (st.st_dev, st.st_ino) != listed:
                self._moved = True
                return False
            if not stat_mod.S_ISREG(st.st_mode):
                return False
            head = read_at(self.fs, fd, FINGERPRINT_BYTES, 0)
            kind = compressed_format(head)
            if kind is not None:
                self._compressed[(st.st_dev, st.st_ino)] = kind
                self.on_skip("compressed")
                log.warning("compressed file matched by the patterns; not shipped (exclude it with "
                            "LOGSHIELD_EXCLUDE)", extra={"path": path, "format": kind})
                return False
            stream = self.identifier.identify(fd, st, head, path, once=self._once)
            if stream is None:
                return False
            stream.fd, stream.dev, stream.ino, stream.path = fd, st.st_dev, st.st_ino, path
            if stream.detached:
                log.info("following the copy of a truncated file", extra={"path": path})
                stream.detached = False
                stream.unread_at_truncation = 0
            # Unchanged since its mtime: a rotated file found after a restart has settled already.
            stream.size, stream.mtime = st.st_size, st.st_mtime
            stream.last_change = now - max(0.0, min(self.wall() - st.st_mtime, self.settle))
            if self._once and stream.limit is None:
                # --once ships what the file held when first seen, not what a writer adds meanwhile.
                stream.limit = self._first_size.get((st.st_dev, st.st_ino), st.st_size)
            self._by_inode[(st.st_dev, st.st_ino)] = stream.id
            state = self.checkpointer.get(stream.id)
            if state is not None and state.inode != f"{st.st_dev}:{st.st_ino}":
                self.checkpointer.update(stream.id, replace(state, inode=f"{st.st_dev}:{st.st_ino}"), persist=False)
            keep = True
            return True
        except OSError as exc:
            log.warning("cannot read log file", extra={"path": path, "error": type(exc).__name__})
            return False
        finally:
            if not keep:
                with contextlib.suppress(OSError):
                    self.fs.close(fd)

    # -- reading
    def load_replay(self, stream: Stream) -> None:
        """Re-read exactly the range of a batch recorded before a crash (needs the stream's fd)."""
        self.reader.load_replay(stream)

    def _maybe_forget(self, stream: Stream, now: float) -> None:
        """Close a deleted/unmatched file once everything read from it is acknowledged."""
        if not stream.gone or not stream.drained() or stream.acked < stream.read_offset:
            return
        if stream.fd is not None and now - stream.last_change < self.settle:
            return
        if stream.detached and stream.unread_at_truncation:
            log.warning("file truncated in place (copytruncate) and its copy is not among the matched files: bytes "
                        "written after the last read are lost (match the copy with LOGSHIELD_PATHS, do not compress "
                        "it at once, or rotate by renaming)",
                        extra={"path": stream.path, "lost_bytes": stream.unread_at_truncation})
            self.on_lost(stream.unread_at_truncation)
        self.files.release(stream)
        del self.streams[stream.id]

    # -- after a batch was acknowledged
    def acknowledged(self, stream: Stream) -> None:
        batch = stream.pending
        assert batch is not None
        stream.acked = batch.end
        stream.pending = None
        if stream.buf_offset < batch.end:  # replayed batch (not re-read): continue after it
            self.reader.reposition(stream, batch.end)
        self.identifier.copies_shipped(stream)

    def abandon_replay(self, stream: Stream) -> None:
        """A recorded batch can no longer be rebuilt and is not in the store: read on from the acked offset."""
        stream.pending = None
        self.reader.reposition(stream, stream.acked)
