"""Retention: local clean-up of rotated files already shipped, and the expiry sweep of the local sink.

Remote per-object retention needs no code here: ``LOGSHIELD_RETENTION_DAYS`` is handed to every sink, which
sets each object's retain-until (S3 Object Lock, Azure immutability, the local sink's metadata) on ``put``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from .sinks.base import ObjectLockedError
from .sinks.local import LocalDirSink
from .sources.fs import FileSystem

__all__ = ["LocalSweeper", "RotatedFile", "delete_rotated", "plan_rotated_deletions", "sweep_expired"]

log = logging.getLogger("logshield_agent.retention")


@dataclass(frozen=True)
class RotatedFile:
    """A rotated (not active) file whose bytes are all acknowledged by the store."""

    path: str
    size: int
    mtime: float
    dev: int = 0
    ino: int = 0


def plan_rotated_deletions(
    files: Iterable[RotatedFile], *, mode: str, grace: float, keep_days: float | None, keep_bytes: int | None,
    now: float,
) -> list[str]:
    """Which fully shipped rotated files to delete. Only files unchanged for ``grace`` seconds are eligible.

    ``delete``: all eligible files. ``keep``: eligible files older than ``keep_days``, then the oldest eligible
    ones while the total size of rotated files exceeds ``keep_bytes``.
    """
    files = sorted(files, key=lambda f: f.mtime)
    eligible = [f for f in files if now - f.mtime >= grace]
    if mode == "delete":
        return [f.path for f in eligible]
    doomed: list[str] = []
    if keep_days is not None:
        doomed = [f.path for f in eligible if now - f.mtime >= keep_days * 86400]
    if keep_bytes is not None:
        total = sum(f.size for f in files if f.path not in doomed)
        for f in eligible:
            if total <= keep_bytes:
                break
            if f.path not in doomed:
                doomed.append(f.path)
                total -= f.size
    return doomed


def delete_rotated(fs: FileSystem, file: RotatedFile) -> bool:
    """Unlink ``file.path`` only if the path still leads to that file (device, inode) at that size, checked right
    before the unlink: a rotation between the scan and now may have moved another file — one with bytes not yet
    shipped — to this name. True when deleted."""
    try:
        st = fs.stat(file.path)
    except FileNotFoundError:
        return False
    if (st.st_dev, st.st_ino, st.st_size) != (file.dev, file.ino, file.size):
        log.info("rotated file changed or moved since it was checked; not deleted", extra={"path": file.path})
        return False
    fs.unlink(file.path)
    return True


def _delete_if_expired(sink: LocalDirSink, info: object, now: datetime) -> bool:
    until = getattr(info, "retain_until", None)
    if until is None or until > now:
        return False
    try:
        sink.delete(info.key, now=now)  # type: ignore[attr-defined]
    except ObjectLockedError:
        return False
    return True


def sweep_expired(sink: LocalDirSink, *, now: datetime | None = None) -> int:
    """Delete objects whose retain-until has passed (local sink), in one pass. Returns how many were deleted."""
    now = now or datetime.now(timezone.utc)
    deleted = sum(_delete_if_expired(sink, info, now) for info in sink.list())
    if deleted:
        log.info("retention sweep deleted expired objects", extra={"count": deleted})
    return deleted


class LocalSweeper:
    """The running agent's expiry sweep of a local store, a slice at a time: each ``step`` (from housekeeping, on
    the pipeline thread) looks at no more than ``per_step`` objects of a walk that resumes where the last step
    stopped, and a new walk begins at most every ``every`` seconds. Listing 20k objects at once took 0.6 s of the
    pipeline thread every minute; retention is counted in days, so an hour's delay is immaterial."""

    def __init__(self, sink: LocalDirSink, *, per_step: int = 2000, every: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sink = sink
        self.per_step = per_step
        self.every = every
        self.clock = clock
        self._walk: Iterator[object] | None = None
        self._began: float | None = None
        self._deleted = 0

    def step(self, *, now: datetime | None = None) -> int:
        """Continue (or begin) the walk; returns how many objects this step deleted."""
        if self._walk is None:
            if self._began is not None and self.clock() - self._began < self.every:
                return 0
            self._walk, self._began, self._deleted = iter(self.sink.list()), self.clock(), 0
        now = now or datetime.now(timezone.utc)
        deleted = 0
        for _ in range(self.per_step):
            info = next(self._walk, None)
            if info is None:
                self._walk = None
                break
            deleted += _delete_if_expired(self.sink, info, now)
        self._deleted += deleted
        if self._walk is None and self._deleted:
            log.info("retention sweep deleted expired objects", extra={"count": self._deleted})
        return deleted
