"""How the demo runs its processes and cleans up after itself, on every way out.

- ``workspace()``: a temporary directory (SeaweedFS data, the agent's state and its generated signing key), removed
  when the block ends, however it ends.
- ``signals_raise()``: SIGTERM and SIGHUP raise ``Stopped`` and SIGINT ``KeyboardInterrupt`` in the main thread, once:
  later signals are ignored, so a second Ctrl-C cannot cut the clean-up short.
- ``Child``: a process in its own session (a Ctrl-C at the terminal reaches the demo only, which stops it in order),
  stopped with SIGTERM then SIGKILL for its whole process group, and on Linux killed by the kernel if the demo itself
  dies without cleaning up (``PR_SET_PDEATHSIG``, e.g. on SIGKILL).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["Child", "Stopped", "signals_raise", "workspace"]

SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Stopped(Exception):
    """The demo received SIGTERM or SIGHUP."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, _frame: Any) -> None:
    for sig in SIGNALS:  # once: the clean-up that follows must not be interrupted in turn
        signal.signal(sig, signal.SIG_IGN)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Stopped(signum)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    previous = {sig: signal.signal(sig, _raise) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def workspace(prefix: str = "logshield-demo-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Child:
    """``with Child(argv, env=..., log=path) as child: ... child.stop()`` — stopped on leaving the block in any case."""

    def __init__(self, argv: Sequence[str], *, env: dict[str, str] | None = None, log: Path | None = None) -> None:
        self.argv = list(argv)
        self.env = env
        self.log = log
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    def start(self) -> Child:
        self._log_file = open(self.log, "wb") if self.log is not None else None  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            self.argv, env=self.env, stdout=subprocess.DEVNULL,
            stderr=self._log_file if self._log_file is not None else subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_die_with_parent if os.uname().sysname == "Linux" else None)
        return self

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (the agent flushes and checkpoints), then SIGKILL after ``timeout``; the exit status."""
        proc = self._proc
        if proc is None:
            return None
        try:
            if proc.poll() is None:
                self._signal_group(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._signal_group(signal.SIGKILL)
                    proc.wait(10)
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
        return proc.returncode

    def _signal_group(self, sig: int) -> None:
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)

    def __enter__(self) -> Child:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(timeout=10.0)
