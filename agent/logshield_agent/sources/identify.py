"""Which stream a newly seen file is (step 2 of the tailer's scan, see ``tailer.py``), decided by content.

``Identifier.identify`` tries, in order: the copy a truncated stream waits for; a checkpointed stream the file
holds (``identity.state_matches``); a copy of a followed file (an *alias*, ``identity.is_copy``; never the file
now at the path where that file was written, and also while the copy grows); a recorded copy (``copy_of``) whose
original is gone; else a new stream, with a salted id when its head is taken by another stream. ``Identifier.order``
is the order the tailer offers unknown files in; ``settle_version_1`` and ``first_scan_done`` decide, once, which
migrated version-1 states can still be resumed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from .checkpoint import UNVERIFIABLE, Checkpointer, StreamState
from .fingerprint import CHECK_BYTES, FINGERPRINT_BYTES, check_of, fingerprint_of, take_fingerprint
from .fs import FileSystem
from .identity import holds, intact, is_copy, read_at, state_matches
from .stream import PendingBatch, Stream, origin_path_for, service_from_path

__all__ = ["Identifier"]

log = logging.getLogger("logshield_agent.tailer")


@dataclass
class _Alias:
    """A file found to be a copy of a followed stream's beginning (not shipped); valid while it is unchanged."""

    target: str
    path: str
    size: int
    mtime_ns: int
    head: str
    fp_len: int
    check: str  # of the copy's bytes before ``size``
    of_detached: bool
    record: str | None = None  # the ``copy_of`` stream it is (or is to be) recorded as: one per file, reused
    recorded: bool = False  # recorded at ``size``: nothing of it is shipped, even once its original is gone


class Identifier:
    """Decides which stream a file is and creates new streams in ``streams`` (the tailer's dict, shared); keeps
    the known aliases. Owned by the tailer."""

    def __init__(self, fs: FileSystem, checkpointer: Checkpointer, streams: dict[str, Stream], *,
                 service: str | None, settle: float, wall: Callable[[], float]) -> None:
        self.fs = fs
        self.checkpointer = checkpointer
        self.streams = streams
        self.service = service
        self.settle = settle
        self.wall = wall
        self.aliases: dict[tuple[int, int], _Alias] = {}

    def copies_shipped(self, stream: Stream) -> None:
        """``stream`` was acknowledged up to ``acked``: record the aliases it now covers as shipped copies."""
        for alias in self.aliases.values():
            if alias.target == stream.id and not alias.recorded and alias.size <= stream.acked:
                self._record_copy(alias)

    def settle_version_1(self, paths: list[str]) -> None:
        """Before the first complete scan identifies anything: a migrated version-1 state (no check) that more than
        one of the listed files could be (its head, a line end at its offset) is ambiguous — version 1 itself took
        files starting alike for one stream — and none of them resumes it: they ship from byte 0 (what version 1
        shipped of the right one twice, rather than the first lines of a wrong one never)."""
        waiting = {sid: state for sid, state in self.checkpointer.streams.items()
                   if state.check is None and sid not in self.streams}
        if not waiting:
            return
        holders: dict[str, int] = {}
        for path in paths:
            try:
                fd = self.fs.open(path)
            except OSError:
                continue
            try:
                size = self.fs.fstat(fd).st_size
                head = read_at(self.fs, fd, FINGERPRINT_BYTES, 0)
                for sid, state in waiting.items():
                    if (len(head) >= state.fp_len and fingerprint_of(head[:state.fp_len]) == state.head
                            and holds(self.fs, fd, size, state.offset, None)):
                        holders[sid] = holders.get(sid, 0) + 1
            except OSError:
                continue
            finally:
                with contextlib.suppress(OSError):
                    self.fs.close(fd)
        for sid, count in holders.items():
            if count > 1:
                self.checkpointer.streams[sid] = replace(waiting[sid], check=UNVERIFIABLE)
                log.warning("several files could continue a stream recorded by version 1 of the agent (they start "
                            "alike); shipping each from its start", extra={"stream": sid, "files": count})

    def first_scan_done(self) -> None:
        """Migrated version-1 states (no check) that no file resumed on the first complete scan (every listed file
        tried) cannot be any later file's: files created since do not hold their bytes, and their head alone would
        take a new file with the same banner for the old stream (recorded at the next save)."""
        for sid, state in list(self.checkpointer.streams.items()):
            if state.check is None and sid not in self.streams:
                self.checkpointer.streams[sid] = replace(state, check=UNVERIFIABLE)

    def recorded_copies(self) -> dict[str, str]:
        """Stream id -> path of every copy seen on the last scan and recorded as shipped (kept in the checkpoint
        while the copy is there, like a followed stream)."""
        return {alias.record: alias.path for alias in self.aliases.values() if alias.recorded and alias.record}

    def alias_holds(self, alias: _Alias, path: str, st: object) -> bool:
        """True while a known copy stays a copy: unchanged, and its original still followed as it was (a copy whose
        original was truncated in place may be the copy to follow) or the copy recorded as shipped."""
        alias.path = path
        if (getattr(st, "st_size", -1), getattr(st, "st_mtime_ns", -1)) != (alias.size, alias.mtime_ns):
            return False  # it changed (a copy still being written, or not a copy at all): decide again
        live = self.streams.get(alias.target)
        if live is not None and live.detached != alias.of_detached:
            return False
        if not alias.recorded:
            target = self.checkpointer.get(alias.target)
            if target is not None and target.offset >= alias.size:
                self._record_copy(alias)
        return alias.recorded or live is not None

    def _record_copy(self, alias: _Alias) -> None:
        """The original's bytes the copy holds are in the store: record the copy as a stream acknowledged up to its
        end (``copy_of``), durably, so that it is recognised after a restart even once the original is gone."""
        sid = alias.record or self._new_id(alias.head, (0, 0))
        state = StreamState(fp_len=alias.fp_len, head=alias.head, offset=alias.size, check=alias.check,
                            service=self.service or service_from_path(alias.path), origin=alias.path,
                            path=alias.path, seen=self.wall(), copy_of=alias.target)
        previous = self.checkpointer.get(sid)
        if previous is not None and (previous.offset, previous.check) == (state.offset, state.check):
            alias.record, alias.recorded = sid, True  # recorded before (a restart): nothing to write
            return
        try:
            self.checkpointer.update(sid, state)
        except OSError as exc:
            if previous is None:
                self.checkpointer.streams.pop(sid, None)
            else:
                self.checkpointer.streams[sid] = previous
            log.warning("cannot record a copy in the checkpoint; will retry",
                        extra={"path": alias.path, "error": type(exc).__name__})
            return
        alias.record, alias.recorded = sid, True
        log.info("copy of a followed file recorded as shipped (its bytes are in the store)",
                 extra={"path": alias.path, "copy_of": alias.target})

    def order(self) -> Callable[[tuple[str, tuple[int, int], int]], tuple[bool, int, int]]:
        """Sort key for unknown files: the file a checkpointed stream was last followed in first (its copies must
        not take its stream), then the biggest (of a file and its older, shorter copy, the file is followed and
        the copy is the alias), then a file at a stream's last path before other files, and recorded copies last
        (a copy taken while the agent was down is as big as its original)."""
        hinted: set[str] = set()
        paths: dict[str, int] = {}
        for sid, state in self.checkpointer.streams.items():
            if state.copy_of is not None:
                paths.setdefault(state.path, 2)
            elif sid not in self.streams:
                paths[state.path] = 0
                if state.inode is not None:
                    hinted.add(state.inode)

        def key(item: tuple[str, tuple[int, int], int]) -> tuple[bool, int, int]:
            path, inode, size = item
            return f"{inode[0]}:{inode[1]}" not in hinted, -size, paths.get(path, 1)

        return key

    def identify(self, fd: int, st: object, head: bytes, path: str, *, once: bool) -> Stream | None:
        """The stream an unknown file belongs to (created when new), or None: an alias, or undecided yet."""
        inode = (st.st_dev, st.st_ino)  # type: ignore[attr-defined]
        size: int = st.st_size  # type: ignore[attr-defined]
        # a. the copy a truncated stream waits for
        for stream in self.streams.values():
            if (not stream.detached or stream.fd is not None or (stream.dev, stream.ino) == inode
                    or head[:stream.fp_len] != stream.head_bytes):
                continue
            verdict = self._continues(fd, size, stream)
            if verdict is None:
                return None
            if verdict == "continues":
                return stream
            if verdict == "contained":
                self._alias(stream, fd, st, head, path, of_detached=True)
                return None
        # b. a checkpointed stream not followed now, verified at its acknowledged offset
        lengths = {s.fp_len for s in self.streams.values()} | {s.fp_len for s in self.checkpointer.streams.values()}
        found: list[tuple[bool, int, str, StreamState]] = []
        for length in lengths:
            if len(head) < length:
                continue
            for sid, state in self.checkpointer.with_head(fingerprint_of(head[:length]), length):
                if sid in self.streams:
                    continue
                matches = state_matches(self.fs, fd, size, state, f"{inode[0]}:{inode[1]}")
                if matches is None:
                    return None  # unreadable for now: decide on a later scan
                if matches:
                    found.append((state.path == path, state.offset, sid, state))
        held = [item for item in found if item[3].copy_of is None]
        if held:
            _, _, sid, state = max(held, key=lambda item: item[:2])
            return self._resume(sid, state, fd, head, path, inode)
        # A recorded copy (``copy_of``) that its original, still followed, covers again is that copy (maybe still
        # being written): an alias, never resumed at the size it was recorded at.
        record = max(found, key=lambda item: item[1]) if found else None
        # c. a copy of a followed file
        for stream in list(self.streams.values()):
            common = min(len(head), len(stream.head_bytes))
            if (stream.detached or (stream.fd is None and not stream.parked) or not common
                    or head[:common] != stream.head_bytes[:common]):
                continue
            if path == stream.origin_path:
                continue  # the file that replaced the stream where it was written (its banner so far): not a copy
            with self._opened(stream) as other_fd:
                if other_fd is None:
                    return None  # a closed (parked) file cannot be compared now: decide on a later scan
                copy = self._copy_of(fd, size, stream, other_fd)
            if copy is None:
                return None
            if copy:
                self._alias(stream, fd, st, head, path, of_detached=False, record=record and record[2])
                return None
        if record is not None:  # a recorded copy, its original gone: what was appended to the copy ships
            return self._resume(record[2], record[3], fd, head, path, inode)
        # d. a new stream
        settled = once or self.wall() - st.st_mtime >= self.settle  # type: ignore[attr-defined]
        taken = take_fingerprint(head, settled=settled)
        if taken is None:
            return None
        fp, length = taken
        sid = fp if fp not in self.checkpointer.streams and fp not in self.streams else self._new_id(fp, inode)
        state = StreamState(fp_len=length, head=fp, offset=0, check=check_of(b""),
                            service=self.service or service_from_path(path),
                            origin=origin_path_for(path, inode, self.fs.stat), path=path, seen=self.wall())
        self.checkpointer.update(sid, state, persist=False)
        if sid != fp:
            log.info("file starts like another one but is not a copy; following it as a stream of its own",
                     extra={"path": path, "stream": sid})
        return self._open_stream(sid, state, path, head[:length])

    def _copy_of(self, fd: int, size: int, stream: Stream, other_fd: int) -> bool | None:
        try:
            other_size = self.fs.fstat(other_fd).st_size
        except OSError:
            return None
        if other_size < stream.read_offset or not intact(self.fs, stream, other_fd):
            # Truncated since this scan checked it (copytruncate in progress): this may be its copy. Decide on the
            # next scan, once the truncation is noticed and the stream waits for its copy.
            stream.recheck = stream.fd is not None
            return None
        return is_copy(self.fs, fd, size, other_fd, other_size)

    @contextlib.contextmanager
    def _opened(self, stream: Stream) -> Iterator[int | None]:
        """The stream's descriptor; for a parked stream one opened for the comparison (None if that fails)."""
        if stream.fd is not None:
            yield stream.fd
            return
        try:
            fd = self.fs.open(stream.path)
        except OSError:
            yield None
            return
        try:
            st = self.fs.fstat(fd)
            yield fd if (st.st_dev, st.st_ino) == (stream.dev, stream.ino) else None
        finally:
            with contextlib.suppress(OSError):
                self.fs.close(fd)

    def _continues(self, fd: int, size: int, stream: Stream) -> str | None:
        """Whether a file is the copy of a truncated stream: ``continues`` (holds the bytes before the read
        position), ``contained`` (a shorter copy: everything in it was read already) or ``other``."""
        window = stream.window()
        start = stream.read_offset - len(window)
        try:
            if size >= stream.read_offset:
                return "continues" if read_at(self.fs, fd, len(window), start) == window else "other"
            if size > start:
                return "contained" if read_at(self.fs, fd, size - start, start) == window[:size - start] else "other"
        except OSError:
            return None
        return "other"

    def _alias(self, target: Stream, fd: int, st: object, head: bytes, path: str, *, of_detached: bool,
               record: str | None = None) -> None:
        size: int = st.st_size  # type: ignore[attr-defined]
        inode = (st.st_dev, st.st_ino)  # type: ignore[attr-defined]
        length = min(len(head), FINGERPRINT_BYTES)
        start = max(0, size - CHECK_BYTES)
        try:
            window = read_at(self.fs, fd, size - start, start)
        except OSError:
            return
        previous = self.aliases.get(inode)
        if previous is None:
            log.info("file is a copy of a followed file; not shipping it again", extra={"path": path,
                                                                                         "copy_of": target.path})
        self.aliases[inode] = _Alias(target=target.id, path=path, size=size,
                                      mtime_ns=st.st_mtime_ns,  # type: ignore[attr-defined]
                                      head=fingerprint_of(head[:length]), fp_len=length, check=check_of(window),
                                      of_detached=of_detached, record=record or (previous and previous.record))

    def _new_id(self, fp: str, inode: tuple[int, int]) -> str:
        """A stream id for a stream whose head fingerprint is taken: salted, so unique; recorded in the checkpoint
        before anything is shipped under it, which keeps it stable across restarts."""
        salt = 0
        while True:
            sid = fingerprint_of(f"{fp}:{inode[0]}:{inode[1]}:{time.time_ns()}:{salt}".encode())
            if sid not in self.checkpointer.streams and sid not in self.streams:
                return sid
            salt += 1

    def _resume(self, sid: str, state: StreamState, fd: int, head: bytes, path: str,
                inode: tuple[int, int]) -> Stream:
        origin = state.origin or origin_path_for(path, inode, self.fs.stat)
        stream = self._open_stream(sid, state, path, head[:state.fp_len], origin)
        start = max(0, state.offset - CHECK_BYTES)
        with contextlib.suppress(OSError):
            stream.tail = read_at(self.fs, fd, state.offset - start, start)
        if state.check is None or state.origin is None:  # migrated from version 1: record what was missing
            self.checkpointer.update(sid, replace(state, origin=origin, check=state.check or check_of(stream.tail)),
                                     persist=False)
        return stream

    def _open_stream(self, sid: str, state: StreamState, path: str, head_bytes: bytes,
                     origin: str | None = None) -> Stream:
        stream = Stream(id=sid, head=state.head, fp_len=state.fp_len, head_bytes=head_bytes, service=state.service,
                        origin_path=origin or state.origin or path, path=path, acked=state.offset,
                        buf_offset=state.offset)
        if state.intent is not None:
            stream.pending = PendingBatch(start=state.intent.start, end=state.intent.end, final=state.intent.final,
                                          replay=state.intent)
        self.streams[sid] = stream
        return stream
