"""Follow log files through rotation and cut their bytes into per-stream batches, bounded in memory.

A *stream* is one file's content, identified by its fingerprint (``fingerprint.py``), independent of path and
inode. Each ``scan()``:

1. checks every open file descriptor: a file whose size dropped below what was read, or whose first bytes
   changed, was truncated in place (copytruncate) — the stream lets go of it and waits for the copy;
2. globs the patterns; a path whose inode is already open is the same stream under a (maybe new) name
   (rename rotation); an unknown inode is opened and fingerprinted: a live stream waiting for its copy is bound to
   it and continues where it was (so copytruncate loses nothing if the copy matches the glob), a second file with a
   live stream's fingerprint is an alias and ignored (no duplicates), a checkpointed fingerprint resumes at its
   acknowledged offset, anything else is a new stream from byte 0;
3. reads each stream into its pending batch in chunks, never more than the batch size plus one line.

A stream is *rotated* once the path where it was first seen no longer leads to it, *gone* once it is deleted or
no longer matched. A rotated or gone stream that stopped growing for ``settle`` seconds ships its unterminated
last line as is; a gone stream is closed once everything is acknowledged (deleted files do not stay open).

Inherent race, as in every tailer: with copytruncate, lines written after the copy and before the truncation
exist in neither file and cannot be shipped; lines written before our last read are safe either way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat as stat_mod
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .checkpoint import Checkpointer, Intent, StreamState
from .fingerprint import FINGERPRINT_BYTES, fingerprint_of, take_fingerprint
from .fs import FileSystem
from .lines import split_records, take_records

__all__ = ["PendingBatch", "Stream", "Tailer", "service_from_path"]

log = logging.getLogger("logshield_agent.tailer")

READ_CHUNK = 1024 * 1024
_ROTATION_SUFFIX = re.compile(r"(\.\d+|\.gz|\.zst|\.bz2|\.xz|[-_.]\d{8,14}|\.old)+$")


def service_from_path(path: str) -> str:
    """``/var/log/api.log.1`` → ``api``; falls back to ``app``."""
    name = _ROTATION_SUFFIX.sub("", os.path.basename(path))
    name = re.sub(r"\.(log|txt|json|ndjson|jsonl|out|err)$", "", name)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip("._-")[:128]
    return name or "app"


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
    fp: str
    fp_len: int
    service: str
    origin_path: str
    path: str
    acked: int
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
    recheck: bool = False  # a read raced with a truncation: verify the head on the next scan
    detached: bool = False  # truncated in place; waiting for the copy (this scan) or finishing from memory
    stalled: str | None = None

    @property
    def read_offset(self) -> int:
        return self.buf_offset + len(self.buf)

    @property
    def unshipped(self) -> int:
        return max(self.size, self.read_offset) - self.acked

    def drained(self) -> bool:
        return self.pending is None and not self.buf and self.read_offset >= self.size


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
        #: Read ahead into new batches only while all pending batches together are smaller than this.
        self.max_pending_bytes = max_pending_bytes
        self._turn = 0
        self.streams: dict[str, Stream] = {}
        self._by_inode: dict[tuple[int, int], str] = {}
        self._denied: set[str] = set()

    # -- lifecycle
    def close(self) -> None:
        for stream in self.streams.values():
            self._release(stream)
        self.streams.clear()

    def _release(self, stream: Stream) -> None:
        if stream.fd is not None:
            self._by_inode.pop((stream.dev, stream.ino), None)
            with contextlib.suppress(OSError):
                self.fs.close(stream.fd)
            stream.fd = None

    # -- scanning
    def scan(self, *, once: bool = False) -> None:
        now = self.clock()
        self._check_open_files(now)
        seen = self._discover(now)
        streams = list(self.streams.values())
        if streams:  # round robin: with a read-ahead budget, every file gets its turn first
            self._turn = (self._turn + 1) % len(streams)
            streams = streams[self._turn:] + streams[:self._turn]
        pending = sum(s.pending.size for s in streams if s.pending is not None)
        for stream in streams:
            if stream.fd is None:
                stream.gone = stream.detached
                # No copy found: bytes past what was read went with the truncation (the documented race).
                stream.size = min(stream.size, stream.read_offset)
            else:
                # Re-evaluated every scan: a rename racing with glob+stat may hide a file for one scan.
                stream.gone = stream.deleted or (stream.dev, stream.ino) not in seen
            over_budget = (self.max_pending_bytes is not None
                           and pending + self.batch_max_bytes > self.max_pending_bytes)
            if stream.pending is None and over_budget:
                pass  # enough read ahead; this file waits for a batch to be acknowledged
            elif stream.pending is None or stream.pending.replay is None:
                before = stream.pending.size if stream.pending is not None else 0
                self._fill(stream, now)
                pending += (stream.pending.size if stream.pending is not None else 0) - before
            self._maybe_flush_tail(stream, now, once=once)
            self._maybe_forget(stream, now)

    def _check_open_files(self, now: float) -> None:
        for stream in self.streams.values():
            if stream.fd is None:
                continue
            try:
                st = self.fs.fstat(stream.fd)
            except OSError as exc:
                log.warning("fstat failed; releasing file", extra={"path": stream.path, "error": type(exc).__name__})
                self._release(stream)
                stream.detached = True
                continue
            stream.deleted = st.st_nlink == 0
            changed = st.st_size != stream.size or st.st_mtime != stream.mtime
            truncated = st.st_size < stream.read_offset or st.st_size < stream.fp_len
            if (changed or stream.recheck) and not truncated:
                truncated = not self._head_matches(stream.fd, stream.fp, stream.fp_len)
            stream.recheck = False
            if truncated:
                log.info("file truncated in place (copytruncate); following the copy if there is one",
                         extra={"path": stream.path})
                self._release(stream)
                stream.detached = True
                continue
            if changed:
                stream.last_change = now
                stream.size = st.st_size
                stream.mtime = st.st_mtime
            try:
                origin = self.fs.stat(stream.origin_path)
                stream.rotated = (origin.st_dev, origin.st_ino) != (stream.dev, stream.ino)
            except OSError:
                stream.rotated = True

    def _head_matches(self, fd: int, fp: str, fp_len: int) -> bool:
        try:
            head = self.fs.pread(fd, fp_len, 0)
        except OSError:
            return False
        return len(head) == fp_len and fingerprint_of(head) == fp

    def _discover(self, now: float) -> set[tuple[int, int]]:
        seen: set[tuple[int, int]] = set()
        paths: list[str] = []
        for pattern in self.patterns:
            try:
                paths.extend(sorted(self.fs.glob(pattern)))
            except OSError as exc:
                log.warning("glob failed", extra={"pattern": pattern, "error": type(exc).__name__})
        for path in dict.fromkeys(paths):
            try:
                st = self.fs.stat(path)
            except OSError:
                continue
            if not stat_mod.S_ISREG(st.st_mode):
                continue
            inode = (st.st_dev, st.st_ino)
            owner = self._by_inode.get(inode)
            if owner is not None:
                seen.add(inode)
                self.streams[owner].path = path
                continue
            if self._adopt(path, now):
                seen.add(inode)
        return seen

    def _adopt(self, path: str, now: float) -> bool:
        """Open an unknown file and decide which stream it is. True when a stream now owns it."""
        try:
            fd = self.fs.open(path)
        except PermissionError:
            if path not in self._denied:
                self._denied.add(path)
                log.error("permission denied reading log file; skipping it (other files continue)",
                          extra={"path": path})
            return False
        except OSError:
            return False
        self._denied.discard(path)
        keep = False
        try:
            st = self.fs.fstat(fd)
            if not stat_mod.S_ISREG(st.st_mode):
                return False
            head = self.fs.pread(fd, FINGERPRINT_BYTES, 0)
            stream = self._identify(head, path)
            if stream is None:
                return False
            if stream.fd is not None:
                return False  # alias: same content as a file already followed (copy); shipping it would duplicate
            stream.fd, stream.dev, stream.ino, stream.path = fd, st.st_dev, st.st_ino, path
            if stream.detached:
                log.info("following the copy of a truncated file", extra={"path": path})
                stream.detached = False
                stream.origin_path = path
            stream.size, stream.mtime, stream.last_change = st.st_size, st.st_mtime, now
            self._by_inode[(st.st_dev, st.st_ino)] = stream.fp
            keep = True
            return True
        except OSError as exc:
            log.warning("cannot read log file", extra={"path": path, "error": type(exc).__name__})
            return False
        finally:
            if not keep:
                with contextlib.suppress(OSError):
                    self.fs.close(fd)

    def _identify(self, head: bytes, path: str) -> Stream | None:
        lengths = {s.fp_len for s in self.streams.values()} | {s.fp_len for s in self.checkpointer.streams.values()}
        for length in sorted(lengths, reverse=True):
            if len(head) < length:
                continue
            fp = fingerprint_of(head[:length])
            live = self.streams.get(fp)
            if live is not None and live.fp_len == length:
                return live
            state = self.checkpointer.get(fp)
            if state is not None and state.fp_len == length:
                return self._open_stream(fp, state, path)
        taken = take_fingerprint(head)
        if taken is None:
            return None
        fp, length = taken
        state = StreamState(fp_len=length, offset=0, service=self.service or service_from_path(path), path=path,
                            seen=self.wall())
        self.checkpointer.update(fp, state, persist=False)
        return self._open_stream(fp, state, path)

    def _open_stream(self, fp: str, state: StreamState, path: str) -> Stream:
        stream = Stream(fp=fp, fp_len=state.fp_len, service=state.service, origin_path=path, path=path,
                        acked=state.offset, buf_offset=state.offset)
        if state.intent is not None:
            stream.pending = PendingBatch(start=state.intent.start, end=state.intent.end, final=state.intent.final,
                                          replay=state.intent)
        self.streams[fp] = stream
        return stream

    # -- reading
    def load_replay(self, stream: Stream) -> None:
        """Re-read exactly the range of a batch recorded before a crash (needs the stream's fd)."""
        batch = stream.pending
        assert batch is not None and batch.replay is not None
        if batch.lines:
            return
        if stream.fd is None:
            batch.incomplete = True
            return
        data = bytearray()
        while len(data) < batch.end - batch.start:
            chunk = self.fs.pread(stream.fd, batch.end - batch.start - len(data), batch.start + len(data))
            if not chunk:
                break
            data += chunk
        if not self._head_matches(stream.fd, stream.fp, stream.fp_len):
            stream.recheck = True  # truncated under us: retry after the next scan re-identified the file
            return
        records, ends = split_records(data, self.max_line_bytes, final=batch.final)
        if len(data) < batch.end - batch.start or not ends or ends[-1] != len(data):
            batch.incomplete = True
            return
        batch.chunks, batch.lines, batch.size = [], 0, 0
        batch.add(b"".join(records), len(records))
        stream.buf_offset = batch.end
        stream.buf.clear()

    def _fill(self, stream: Stream, now: float) -> None:
        if stream.stalled or stream.fd is None:
            return
        max_bytes = self.batch_max_bytes
        while True:
            batch = stream.pending
            if batch is not None and (batch.full or batch.size >= max_bytes):
                batch.full = True
                return
            if stream.buf:
                body, lines, consumed = take_records(stream.buf, self.max_line_bytes,
                                                     max_bytes - (batch.size if batch else 0),
                                                     first_always=batch is None or not batch.lines)
                if lines:
                    if batch is None:
                        batch = stream.pending = PendingBatch(start=stream.buf_offset, end=stream.buf_offset,
                                                              opened=now, mtime=stream.mtime)
                    batch.add(body, lines)
                    del stream.buf[:consumed]
                    stream.buf_offset += consumed
                    batch.end = stream.buf_offset
                    self.on_read(lines, consumed)
                if batch is not None and (b"\n" in stream.buf or len(stream.buf) >= self.max_line_bytes):
                    batch.full = True  # a whole record is waiting that did not fit
                    return
            if stream.read_offset >= stream.size:
                return
            want = min(READ_CHUNK, stream.size - stream.read_offset)
            try:
                chunk = self.fs.pread(stream.fd, want, stream.read_offset)
            except OSError as exc:
                log.warning("read failed", extra={"path": stream.path, "error": type(exc).__name__})
                return
            if not chunk:
                return
            if not self._head_matches(stream.fd, stream.fp, stream.fp_len):
                # Truncated (and maybe rewritten) between fstat and pread: these bytes may be the new content.
                # Drop them; the next scan detects the truncation and follows the copy from read_offset.
                stream.recheck = True
                return
            stream.buf += chunk

    def _maybe_flush_tail(self, stream: Stream, now: float, *, once: bool) -> None:
        """A rotated/gone/truncated file that stopped growing: ship its unterminated last line as is."""
        if stream.stalled or stream.recheck or (stream.pending is not None and stream.pending.replay is not None):
            return
        if stream.read_offset < stream.size and stream.fd is not None:
            return
        idle = now - stream.last_change >= self.settle
        if not (stream.detached or ((stream.rotated or stream.gone) and (idle or once))):
            return
        batch = stream.pending
        if not stream.buf:
            if batch is not None:
                batch.final = True  # nothing more will come: ship without waiting for the batch age
            return
        if batch is not None and batch.size + len(stream.buf) > self.batch_max_bytes + self.max_line_bytes:
            return  # ship the current batch first
        records, ends = split_records(stream.buf, self.max_line_bytes, final=True)
        if batch is None:
            batch = stream.pending = PendingBatch(start=stream.buf_offset, end=stream.buf_offset, opened=now,
                                                  mtime=stream.mtime)
        batch.add(b"".join(records), len(records))
        stream.buf_offset += ends[-1]
        stream.buf.clear()
        batch.end = stream.buf_offset
        batch.final = True
        self.on_read(len(records), ends[-1])

    def _maybe_forget(self, stream: Stream, now: float) -> None:
        """Close a deleted/unmatched file once everything read from it is acknowledged."""
        if not stream.gone or not stream.drained() or stream.acked < stream.read_offset:
            return
        if stream.fd is not None and now - stream.last_change < self.settle:
            return
        self._release(stream)
        del self.streams[stream.fp]

    # -- after a batch was acknowledged
    def acknowledged(self, stream: Stream) -> None:
        batch = stream.pending
        assert batch is not None
        stream.acked = batch.end
        stream.pending = None
        if stream.buf_offset < batch.end:  # replayed batch: continue after it
            stream.buf_offset = batch.end
            stream.buf.clear()

    def abandon_replay(self, stream: Stream) -> None:
        """A recorded batch can no longer be rebuilt and is not in the store: read on from the acked offset."""
        stream.pending = None
        stream.buf_offset = stream.acked
        stream.buf.clear()
