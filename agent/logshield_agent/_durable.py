"""Durable file writes shared by the checkpointer and the local sink: whole content written and fsynced
before the caller renames or links it into place, and the directory fsynced after; directories created so
that they survive a crash too."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir", "make_dirs", "write_synced"]


def write_synced(path: Path, data: bytes, *, flags: int = os.O_EXCL, mode: int = 0o644) -> None:
    """Create ``path`` (``flags`` adds O_EXCL or O_TRUNC), write all of ``data`` and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | flags, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or link inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path) -> None:
    """``mkdir -p`` whose result survives a crash: each directory created here is fsynced, and so is its parent
    (which holds the new entry). Without that, an object linked into a new ``dt=``/``hour=`` directory could vanish
    with its directory after a power loss although the checkpoint had already advanced past it."""
    missing: list[Path] = []
    level = Path(path)
    while not level.is_dir():
        missing.append(level)
        if level.parent == level:
            break
        level = level.parent
    synced: set[Path] = set()
    for directory in reversed(missing):
        try:
            os.mkdir(directory)
        except FileExistsError:
            if not directory.is_dir():
                raise
            # Created concurrently: its creator may not have fsynced it yet, so do it here as well.
        for target in (directory, directory.parent):
            if target not in synced:
                fsync_dir(target)
                synced.add(target)
