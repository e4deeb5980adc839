"""Durable file writes shared by the checkpointer and the local sink: whole content written and fsynced
before the caller renames or links it into place, and the directory fsynced after."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir", "write_synced"]


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
