"""Durable per-stream progress: what the store has acknowledged, and what is about to be uploaded.

State lives in ``<state dir>/checkpoints.json``::

    {"version": 2, "streams": {"<stream id>": {"head": "<fingerprint of the first fp_len bytes>", "fp_len": 256,
      "offset": 4096, "check": "<check of the 256 bytes before offset>", "service": "app",
      "origin": "/var/log/app.log", "path": "/var/log/app.log.1", "seen": 1700000000.0, "copy_of": null,
      "inode": "2049:1234567",
      "intent": {"start": 4096, "end": 8192, "final": false, "key": "...", "compression": "zstd",
                 "first_event": "2026-11-23T15:00:00+00:00", "check": "<check of the bytes before end>"}}}}

``offset`` only moves after the store acknowledged the object covering ``[old offset, new offset)``. Before an
upload the pipeline records the batch's ``intent``; after a crash the same range is rebuilt byte for byte and put
again under the same key (an identical existing object counts as success), so a batch whose upload succeeded but
whose checkpoint did not is never shipped twice, with different boundaries, under another key.

A stream id is the head's fingerprint for the first stream with that head, and a salted one for any further
stream with the same head (two different files that start alike); it is recorded before anything is shipped
under it. A file resumes a stream only if it has the head *and* the ``check`` (the bytes just before ``offset``)
— a new file that merely starts like an old one starts from byte 0. While fewer than 64 bytes are verified that
way (a short file, e.g. only ``starting``), the file must also be the same inode (``inode``, a hint otherwise).
``copy_of`` marks a stream created for a copy
of another stream's bytes (acknowledged without an upload: its bytes are in the store already).

Version 1 (``<fingerprint>`` keys, no ``head``/``check``/``origin``) is migrated on load: the id and head are the
old fingerprint, the check is unknown (such a stream is recognised by its head, as before, in a file where a line
ends at its offset, and gets its check recorded when next seen) and the origin is derived from the path. Only files
there at the first complete scan after the upgrade (every listed file tried) can hold a version-1 stream's bytes: a
migrated state none of them resumed gets the check ``UNVERIFIABLE``, which no file holds (a later file with the same
head is a new stream, not shipped from the old offset). A state more than one of those files could be (version 1
took files starting alike for one stream) is made unverifiable at once: each ships from its start. An agent of
version 1 cannot read version 2.

Writes are atomic: temp file in the same directory, fsync, ``os.replace``, fsync of the directory. A crash at
any point leaves either the old or the new file; a leftover temp file is removed on load. An unknown future
``version`` is refused with a clear error rather than guessed at.

One agent per state directory: ``open`` takes an exclusive ``flock`` on ``<state dir>/agent.lock`` (held until
``close`` or the process ends) and refuses with ``CheckpointError`` while another process holds it — two agents on
one directory would ship the same bytes twice and delete each other's temp files. The lock is per process: the
same process may open the directory again (tests do).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .._durable import fsync_dir, write_synced

__all__ = ["CHECKPOINT_VERSION", "UNVERIFIABLE", "CheckpointError", "Checkpointer", "Intent", "StreamState"]

CHECKPOINT_VERSION = 2
#: The check of a migrated version-1 state that no file held at the first scan: never matches a file's bytes.
UNVERIFIABLE = "unverifiable"
FILENAME = "checkpoints.json"
LOCK_FILENAME = "agent.lock"

_held_lock = threading.Lock()
_held: dict[Path, list[int]] = {}  # resolved state dir -> [lock fd, open count] (this process)


class CheckpointError(Exception):
    """The checkpoint file cannot be used (unknown version, corrupt); the message says what to do."""


@dataclass(frozen=True)
class Intent:
    """The exact batch about to be uploaded for a stream."""

    start: int
    end: int
    final: bool
    key: str
    compression: str
    first_event: str
    check: str | None = None  # check of the bytes before ``end``; None in intents migrated from version 1


@dataclass(frozen=True)
class StreamState:
    """A stream's durable progress. ``offset`` = bytes acknowledged by the store; ``check`` = the check of the
    bytes before it (None: not recorded, a state migrated from version 1)."""

    fp_len: int
    head: str = ""
    offset: int = 0
    check: str | None = None
    service: str = "app"
    origin: str | None = None
    path: str = ""
    seen: float = 0.0
    copy_of: str | None = None
    inode: str | None = None  # "dev:ino" where last followed: a hint, needed only when few bytes are verified
    intent: Intent | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.intent is None:
            data["intent"] = None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamState:
        intent = data.get("intent")
        return cls(
            fp_len=int(data["fp_len"]),
            head=str(data["head"]),
            offset=int(data["offset"]),
            check=None if data.get("check") is None else str(data["check"]),
            service=str(data.get("service", "app")),
            origin=None if data.get("origin") is None else str(data["origin"]),
            path=str(data.get("path", "")),
            seen=float(data.get("seen", 0.0)),
            copy_of=None if data.get("copy_of") is None else str(data["copy_of"]),
            inode=None if data.get("inode") is None else str(data["inode"]),
            intent=Intent(**intent) if intent else None,
        )

    @classmethod
    def from_version_1(cls, fingerprint: str, data: dict[str, Any]) -> StreamState:
        """A version-1 state: keyed by the head fingerprint, no check (trusted by its head, as version 1 was)."""
        intent = data.get("intent")
        return cls(
            fp_len=int(data["fp_len"]),
            head=fingerprint,
            offset=int(data["offset"]),
            service=str(data.get("service", "app")),
            path=str(data.get("path", "")),
            seen=float(data.get("seen", 0.0)),
            intent=Intent(**intent) if intent else None,
        )


@dataclass
class Checkpointer:
    """Load, update and atomically persist stream states. Not thread-safe: the pipeline thread owns it."""

    state_dir: Path
    streams: dict[str, StreamState] = field(default_factory=dict)
    _closed: bool = field(default=False, repr=False)

    @property
    def path(self) -> Path:
        return self.state_dir / FILENAME

    @classmethod
    def open(cls, state_dir: Path) -> Checkpointer:
        state_dir = Path(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        _lock(state_dir)
        try:
            return cls._load(state_dir)
        except BaseException:
            _unlock(state_dir)
            raise

    def close(self) -> None:
        """Release this handle's share of the state-directory lock (idempotent)."""
        if not self._closed:
            self._closed = True
            _unlock(self.state_dir)

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def _load(cls, state_dir: Path) -> Checkpointer:
        cp = cls(state_dir)
        for leftover in state_dir.glob(f".{FILENAME}.*.tmp"):
            # A crash between writing the temp file and the rename: the real file is still the previous state.
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        try:
            raw = cp.path.read_bytes()
        except FileNotFoundError:
            return cp
        try:
            data = json.loads(raw)
            version = data["version"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{cp.path} is not a logshield checkpoint file ({type(exc).__name__}); "
                                  "move it away to start from scratch (files would be shipped again)") from None
        if not isinstance(version, int) or version > CHECKPOINT_VERSION:
            raise CheckpointError(f"{cp.path} has version {version!r}, newer than this agent understands "
                                  f"({CHECKPOINT_VERSION}); upgrade the agent")
        try:
            if version == 1:
                cp.streams = {fp: StreamState.from_version_1(fp, s) for fp, s in data["streams"].items()}
            else:
                cp.streams = {sid: StreamState.from_json(s) for sid, s in data["streams"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{cp.path} is corrupt ({type(exc).__name__}); move it away to start "
                                  "from scratch (files would be shipped again)") from None
        return cp

    def get(self, fp: str) -> StreamState | None:
        return self.streams.get(fp)

    def with_head(self, head: str, fp_len: int) -> list[tuple[str, StreamState]]:
        """Every stream whose first ``fp_len`` bytes have the fingerprint ``head``."""
        return [(sid, st) for sid, st in self.streams.items() if st.head == head and st.fp_len == fp_len]

    def update(self, fp: str, state: StreamState, *, persist: bool = True) -> None:
        self.streams[fp] = state
        if persist:
            self.save()

    def record_intent(self, fp: str, intent: Intent) -> None:
        """Record the batch about to be uploaded, durably; if the write fails (OSError) nothing is recorded."""
        previous = self.streams[fp]
        try:
            self.update(fp, replace(previous, intent=intent))
        except OSError:
            self.streams[fp] = previous
            raise

    def acknowledge(self, fp: str, end: int) -> None:
        """The store acknowledged everything up to ``end``: advance and drop the intent, durably. The intent's check
        becomes the stream's (it covers the bytes before ``end``). If the write fails (OSError) the state has
        advanced in memory all the same — the store holds the bytes — and the next successful ``save`` records it
        (until then a restart replays the batch, which the store answers as already there)."""
        state = self.streams[fp]
        check = state.intent.check if state.intent is not None and state.intent.end == end else None
        self.update(fp, replace(state, offset=end, check=check, intent=None))

    def forget(self, fps: list[str]) -> None:
        for fp in fps:
            self.streams.pop(fp, None)
        self.save()

    def save(self) -> None:
        body = json.dumps(
            {"version": CHECKPOINT_VERSION, "streams": {fp: s.to_json() for fp, s in sorted(self.streams.items())}},
            separators=(",", ":"),
        ).encode()
        tmp = self.state_dir / f".{FILENAME}.{os.getpid()}.tmp"
        write_synced(tmp, body, flags=os.O_TRUNC, mode=0o600)
        os.replace(tmp, self.path)
        fsync_dir(self.state_dir)


def _lock(state_dir: Path) -> None:
    """Take (or share, within this process) the exclusive lock on ``state_dir``; CheckpointError if another
    process holds it."""
    key = state_dir.resolve()
    with _held_lock:
        held = _held.get(key)
        if held is not None:
            held[1] += 1
            return
        path = state_dir / LOCK_FILENAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise CheckpointError(f"{state_dir} is not writable (cannot create the lock file {path}: "
                                      f"{exc.strerror})") from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            owner = b""
            with contextlib.suppress(OSError):
                owner = os.pread(fd, 32, 0).strip()
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            who = f"pid {owner.decode(errors='replace')}" if owner else "another process"
            raise CheckpointError(
                f"{state_dir} is in use by another logshield-agent ({who}; lock {path}); two agents on one "
                "state directory would ship the same lines twice — give each agent its own LOGSHIELD_STATE_DIR"
            ) from None
        with contextlib.suppress(OSError):  # who holds it, for the message above (the lock is the flock)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held[key] = [fd, 1]


def _unlock(state_dir: Path) -> None:
    key = state_dir.resolve()
    with _held_lock:
        held = _held.get(key)
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            del _held[key]
            os.close(held[0])  # releases the flock
