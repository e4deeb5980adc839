"""The file-system calls the tailer makes, behind one object so tests can inject failures (EACCES as root)."""

from __future__ import annotations

import glob
import os

__all__ = ["FileSystem"]


class FileSystem:
    """Thin wrapper over ``os``; every method may raise ``OSError``."""

    def glob(self, pattern: str) -> list[str]:
        return glob.glob(pattern)

    def open(self, path: str) -> int:
        return os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))

    def fstat(self, fd: int) -> os.stat_result:
        return os.fstat(fd)

    def stat(self, path: str) -> os.stat_result:
        return os.stat(path)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        return os.pread(fd, size, offset)

    def close(self, fd: int) -> None:
        os.close(fd)

    def unlink(self, path: str) -> None:
        os.unlink(path)
