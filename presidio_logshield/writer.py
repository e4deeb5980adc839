"""The file step: append whole lines to a file (with optional size rotation) or to a stream.

Only the handler's worker thread writes. A batch of lines goes out in one ``write`` on an ``O_APPEND`` file,
so processes sharing a file never interleave inside a line. ``{pid}`` in the file name gives each process
its own file (gunicorn workers, multiprocessing).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TextIO

__all__ = ["FileWriter", "LineWriter", "StreamWriter"]


class LineWriter:
    def write(self, data: bytes) -> None:
        """Append whole UTF-8 lines."""
        raise NotImplementedError

    def flush(self) -> None:
        """Push buffered bytes to the OS."""

    def close(self) -> None:
        """Release the file."""

    def reopen_after_fork(self) -> None:
        """Called in a forked child before its first write."""


class StreamWriter(LineWriter):
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, data: bytes) -> None:
        self.stream.write(data.decode("utf-8", "replace"))

    def flush(self) -> None:
        flush = getattr(self.stream, "flush", None)
        if flush is not None:
            flush()


class FileWriter(LineWriter):
    """Appends to ``filename``; when ``max_bytes`` > 0 rotates to ``name.1`` … ``name.N`` like the stdlib."""

    def __init__(self, filename: str | os.PathLike[str], *, max_bytes: int = 0, backup_count: int = 5) -> None:
        self.template = os.fspath(filename)
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self._fd: int | None = None
        self._size = 0
        self.path = self._resolve()

    def _resolve(self) -> str:
        return os.path.abspath(self.template.replace("{pid}", str(os.getpid())))

    def _open(self) -> int:
        if self._fd is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            self._size = os.fstat(self._fd).st_size
        return self._fd

    def write(self, data: bytes) -> None:
        fd = self._open()
        if self.max_bytes and self._size and self._size + len(data) > self.max_bytes:
            self._rotate()
            fd = self._open()
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        self._size += len(data)

    def _rotate(self) -> None:
        self.close()
        if self.backup_count > 0:
            for index in range(self.backup_count - 1, 0, -1):
                source = f"{self.path}.{index}"
                if os.path.exists(source):
                    os.replace(source, f"{self.path}.{index + 1}")
            if os.path.exists(self.path):
                os.replace(self.path, f"{self.path}.1")
        else:
            os.truncate(self.path, 0)

    def sync(self) -> None:
        """Make everything written so far durable (``fsync``)."""
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def reopen_after_fork(self) -> None:
        # The child shares the parent's descriptor; give it its own (and its own file with {pid}).
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)
        self.path = self._resolve()
