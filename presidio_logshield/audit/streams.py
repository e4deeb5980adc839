"""Which streams wrote through one file template, so a new process can name its dead predecessor's stream.

With ``filename="app-{pid}.log"`` every process writes a file of its own, so a restarted worker finds no previous
stream at the end of *its* file, and a dead worker's lost tail could not be detected. One small state file per
template — keyed on the template, not on the expanded name — lists the streams written through it::

    /var/log/app/.app-{pid}.log.streams.json     (hidden: the sidecar's ``*.log*`` globs skip it)

    {"version": 1, "template": "/var/log/app/app-{pid}.log",
     "streams": [{"stream": "web-1:812:1764000000:1a2b3c4d", "path": "/var/log/app/app-812.log", "host": "web-1",
                  "pid": 812, "process_start": 123456, "boot": "…", "tip": null}]}

A stream registers at its first record. Before sealing that record it claims the oldest listed stream whose process is
dead (same host; the pid is gone, or is now another process: another start time or boot) and names it as
``previous``, with where it ended: the tip it recorded when it closed cleanly, else the last sealed record of that
stream in its file (or the file's first backup). The claimed entry leaves the list once the new stream's first record
is written — the lock is held from choosing to committing, so two new processes never claim the same predecessor, and
a crash in between at worst leaves it to be claimed again. Streams of other hosts (a shared volume) are never claimed.

Every change is made under an exclusive ``flock`` on ``<state>.lock`` (waited for at most a few seconds: without the
lock nothing is claimed, the record is still written), written to a temporary file, fsynced and renamed. A state file
of a newer version is left alone. Without ``fcntl`` (Windows) there is no registry.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["STATE_VERSION", "StreamRegistry", "state_path"]

STATE_VERSION = 1
#: Entries kept at most; beyond it the oldest unclaimed dead streams are forgotten.
MAX_STREAMS = 256
LOCK_WAIT = 3.0


def state_path(template: str | os.PathLike[str]) -> Path:
    """The state file of a file template (``{pid}`` kept as it is)."""
    path = Path(os.path.abspath(os.fspath(template)))
    return path.with_name(f".{path.name}.streams.json")


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22), None when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


@dataclass(frozen=True)
class Predecessor:
    """A dead stream claimed by a new one."""

    stream: str
    seq: int
    chain: str


class StreamRegistry:
    """The state of one template. ``claim`` / ``commit`` around a stream's first record; ``closed`` at its end."""

    def __init__(self, template: str | os.PathLike[str], *, tip_reader: Any = None) -> None:
        self.template = os.path.abspath(os.fspath(template))
        self.path = state_path(template)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        #: ``tip_reader(paths, stream) -> (seq, chain) | None``: where a dead stream's records end in its files.
        self._tip_reader = tip_reader
        self._lock_fd: int | None = None
        self._pending: tuple[dict[str, Any], list[dict[str, Any]], str | None] | None = None
        self.host = socket.gethostname()

    @staticmethod
    def available() -> bool:
        return fcntl is not None

    # -- first record ------------------------------------------------------------------------------------------
    def claim(self, stream: str, path: str) -> tuple[bool, Predecessor | None]:
        """Lock the state and choose the dead stream ``stream`` follows. Returns ``(state exists, predecessor)``;
        the lock stays held until :meth:`commit` (or :meth:`abandon`)."""
        if not self._lock():
            return False, None
        try:
            state = self._read()
            if state is None:  # a newer version: leave it alone
                self._unlock()
                return True, None
            existed = state.pop("_existed", False)
            streams: list[dict[str, Any]] = state["streams"]
            predecessor = None
            claimed_id = None
            for entry in streams:
                if entry.get("stream") != stream and not self._alive(entry):
                    predecessor = self._tip_of(entry)
                    claimed_id = entry.get("stream")
                    break
            me = {"stream": stream, "path": os.path.abspath(path), "host": self.host, "pid": os.getpid(),
                  "process_start": _process_start(os.getpid()), "boot": _boot_id(), "tip": None}
            self._pending = (me, streams, claimed_id)
            return existed, predecessor
        except Exception:
            self._unlock()
            raise

    def commit(self) -> None:
        """After the first record is written: drop the claimed entry, list this stream, write the state, unlock."""
        if self._pending is None:
            return
        me, streams, claimed_id = self._pending
        self._pending = None
        try:
            kept = [e for e in streams if e.get("stream") not in (claimed_id, me["stream"])]
            kept.append(me)
            self._write(self._bounded(kept))
        finally:
            self._unlock()

    def abandon(self) -> None:
        self._pending = None
        self._unlock()

    # -- clean end ---------------------------------------------------------------------------------------------
    def closed(self, stream: str, seq: int, chain: str) -> None:
        """Record where ``stream`` ended, for the stream that will follow it."""
        if not self._lock():
            return
        try:
            state = self._read()
            if state is None:
                return
            for entry in state["streams"]:
                if entry.get("stream") == stream:
                    entry["tip"] = {"seq": seq, "chain": chain}
                    state.pop("_existed", None)
                    self._write(state["streams"])
                    return
        finally:
            self._unlock()

    def reset_after_fork(self) -> None:
        # The parent never forks while it holds the lock (the handler forks outside its write lock).
        self._pending = None
        self._lock_fd = None

    # -- helpers -----------------------------------------------------------------------------------------------
    def _alive(self, entry: dict[str, Any]) -> bool:
        if entry.get("tip") is not None:
            return False  # it closed (its process may live on, e.g. a handler replaced by a new one)
        if entry.get("host") != self.host:
            return True  # cannot tell: never claim another host's stream
        pid = entry.get("pid")
        if not isinstance(pid, int):
            return False
        boot = _boot_id()
        if boot is not None and entry.get("boot") not in (None, boot):
            return False  # the machine restarted since
        start = _process_start(pid)
        if start is not None:
            return entry.get("process_start") in (None, start)
        if Path("/proc/self/stat").exists():
            return False  # /proc works and has no such process
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _tip_of(self, entry: dict[str, Any]) -> Predecessor:
        stream = str(entry.get("stream"))
        tip = entry.get("tip")
        if isinstance(tip, dict) and isinstance(tip.get("seq"), int) and isinstance(tip.get("chain"), str):
            return Predecessor(stream, tip["seq"], tip["chain"])
        found = None
        path = entry.get("path")
        if isinstance(path, str) and self._tip_reader is not None:
            found = self._tip_reader((path, f"{path}.1"), stream)
        if found is None:
            from .chain import GENESIS
            return Predecessor(stream, 0, GENESIS)  # nothing of it left to read: named, with nothing to compare
        return Predecessor(stream, found[0], found[1])

    @staticmethod
    def _bounded(streams: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return streams[-MAX_STREAMS:]

    def _read(self) -> dict[str, Any] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {"streams": [], "_existed": False}
        try:
            state = json.loads(raw)
        except ValueError:
            return {"streams": [], "_existed": True}  # unreadable: start over (the next write replaces it)
        if not isinstance(state, dict) or not isinstance(state.get("version"), int):
            return {"streams": [], "_existed": True}
        if state["version"] > STATE_VERSION:
            return None
        streams = [e for e in state.get("streams", []) if isinstance(e, dict)]
        return {"streams": streams, "_existed": True}

    def _write(self, streams: list[dict[str, Any]]) -> None:
        data = json.dumps({"version": STATE_VERSION, "template": self.template, "streams": streams},
                          separators=(",", ":")).encode()
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        with contextlib.suppress(OSError):
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _lock(self) -> bool:
        if fcntl is None:
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError:
            return False
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._lock_fd = fd
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.01)
            except OSError:
                os.close(fd)
                return False

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
