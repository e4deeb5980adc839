"""Read a stream's file into its pending batch (step 3 of the tailer's scan, see ``tailer.py``).

A stream is read in chunks, never more than the batch size plus one line ahead (what is read ahead stays in
memory); records are cut by ``lines.py``. A rotated, gone or truncated file that stopped growing ships its
unterminated last line as is. A batch recorded before a crash is re-read exactly (``load_replay``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from .fingerprint import CHECK_BYTES, check_of
from .fs import FileSystem
from .identity import intact, read_at
from .lines import split_records, take_records
from .stream import PendingBatch, Stream

__all__ = ["READ_CHUNK", "StreamReader"]

log = logging.getLogger("logshield_agent.tailer")

READ_CHUNK = 1024 * 1024


class StreamReader:
    """Fills, flushes and replays the streams' pending batches. Owned by the tailer."""

    def __init__(self, fs: FileSystem, *, batch_max_bytes: int, max_line_bytes: int, settle: float,
                 on_read: Callable[[int, int], None]) -> None:
        self.fs = fs
        self.batch_max_bytes = batch_max_bytes
        self.max_line_bytes = max_line_bytes
        self.settle = settle
        self.on_read = on_read

    def load_replay(self, stream: Stream) -> None:
        """Re-read exactly the range of a batch recorded before a crash (needs the stream's fd)."""
        batch = stream.pending
        assert batch is not None and batch.replay is not None
        if batch.lines:
            return
        if stream.fd is None:
            batch.incomplete = True
            return
        window_start = max(0, batch.end - CHECK_BYTES)
        try:
            data = read_at(self.fs, stream.fd, batch.end - batch.start, batch.start)
            window = read_at(self.fs, stream.fd, batch.end - window_start, window_start)
            head_ok = read_at(self.fs, stream.fd, stream.fp_len, 0) == stream.head_bytes
        except OSError:
            batch.incomplete = True
            return
        if not head_ok:
            stream.recheck = True  # truncated under us: retry after the next scan re-identified the file
            return
        if batch.replay.check is not None and check_of(window) != batch.replay.check:
            batch.incomplete = True  # the file no longer holds the bytes the batch was recorded from
            return
        records, ends = split_records(data, self.max_line_bytes, final=batch.final)
        if len(data) < batch.end - batch.start or not ends or ends[-1] != len(data):
            batch.incomplete = True
            return
        batch.chunks, batch.lines, batch.size = [], 0, 0
        batch.add(b"".join(records), len(records))
        stream.buf_offset = batch.end
        stream.buf.clear()
        stream.tail = window

    def fill(self, stream: Stream, now: float) -> None:
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
                    stream.consume(consumed)
                    batch.end = stream.buf_offset
                    self.on_read(lines, consumed)
                if batch is not None and (b"\n" in stream.buf or len(stream.buf) >= self.max_line_bytes):
                    batch.full = True  # a whole record is waiting that did not fit
                    return
            if stream.read_offset >= stream.readable:
                return
            # Read no more than the batch can take plus one line: what is read ahead stays in memory.
            room = max_bytes - (batch.size if batch else 0) + self.max_line_bytes - len(stream.buf)
            want = min(READ_CHUNK, stream.readable - stream.read_offset, room)
            if want <= 0:
                return
            try:
                chunk = self.fs.pread(stream.fd, want, stream.read_offset)
            except OSError as exc:
                log.warning("read failed", extra={"path": stream.path, "error": type(exc).__name__})
                return
            if not chunk:
                return
            if not intact(self.fs, stream, stream.fd):
                # Truncated (and maybe rewritten) between fstat and pread: these bytes may be the new content.
                # Drop them; the next scan detects the truncation and follows the copy from read_offset.
                stream.recheck = True
                return
            stream.buf += chunk

    def maybe_flush_tail(self, stream: Stream, now: float, *, copy_may_follow: bool = False) -> None:
        """A rotated/gone/truncated file that stopped growing: ship its unterminated last line as is. Not a truncated
        one's while ``copy_may_follow`` (this scan left files unidentified): its copy may hold the rest of that line."""
        if stream.stalled or stream.recheck or (stream.pending is not None and stream.pending.replay is not None):
            return
        if stream.detached and copy_may_follow and stream.buf:
            return
        if stream.read_offset < stream.size and stream.fd is not None:
            return
        # Also with --once: a rotated file written to less than `settle` ago may still get the rest of its last
        # line through the application's old handle; that line waits for the next run.
        idle = now - stream.last_change >= self.settle
        if not (stream.detached or ((stream.rotated or stream.gone) and idle)):
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
        stream.consume(ends[-1])
        batch.end = stream.buf_offset
        batch.final = True
        self.on_read(len(records), ends[-1])

    def reposition(self, stream: Stream, offset: int) -> None:
        stream.buf_offset = offset
        stream.buf.clear()
        stream.tail = b""
        if stream.fd is not None:
            start = max(0, offset - CHECK_BYTES)
            with contextlib.suppress(OSError):
                stream.tail = read_at(self.fs, stream.fd, offset - start, start)
