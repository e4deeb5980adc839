"""Calls with a deadline, each on a thread of the runner's own, so a call that hangs can be abandoned.

A Python thread cannot be killed: a call that exceeds its timeout leaves its thread behind, and the next call gets a
fresh thread, so one stuck call does not hold up every later one. At most ``max_abandoned`` abandoned threads may
still be running; beyond that calls fail at once with :class:`TooManyAbandoned` (the caller is never blocked) until
one of them returns and exits.

The threads are the runner's, not a ``concurrent.futures`` pool: that pool refuses work once the interpreter starts
shutting down, which is exactly when the handler drains its queue. When no thread can be started at all (during
interpreter finalisation on Python 3.12+, or when the system is out of threads) the call runs inline on the caller's
thread, without a deadline — late rather than withheld.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DeadlineExceeded", "DeadlineRunner", "TooManyAbandoned"]

T = TypeVar("T")

_in_lane = threading.local()


class DeadlineExceeded(Exception):
    """The call did not return within its timeout; its thread was abandoned."""


class TooManyAbandoned(Exception):
    """Too many abandoned calls are still running: the call was not started."""


class _Call:
    __slots__ = ("done", "error", "func", "result")

    def __init__(self, func: Callable[[], Any]) -> None:
        self.func = func
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.func()
        except Exception as exc:
            self.error = exc
        except BaseException as exc:  # noqa: BLE001 - reported to the caller, not raised in a daemon thread
            self.error = RuntimeError(type(exc).__name__)
        finally:
            self.done.set()


class _Lane:
    """One daemon thread running calls one at a time; once abandoned it exits after its current call."""

    def __init__(self, name: str, initializer: Callable[[], None] | None) -> None:
        self._initializer = initializer
        self._pending: list[_Call | None] = []
        self._cond = threading.Condition(threading.Lock())
        self.abandoned = False
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def submit(self, call: _Call | None) -> None:
        with self._cond:
            self._pending.append(call)
            self._cond.notify()

    def _loop(self) -> None:
        _in_lane.active = True
        if self._initializer is not None:
            self._initializer()
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                call = self._pending.pop(0)
            if call is None or self.abandoned:
                return
            call.run()
            if self.abandoned:
                return


class DeadlineRunner:
    """Runs callables with a timeout on its own thread; replaces the thread when a call overruns."""

    def __init__(self, *, name: str = "logshield-detect", max_abandoned: int = 2,
                 initializer: Callable[[], None] | None = None) -> None:
        self.name = name
        self.max_abandoned = max_abandoned
        self._initializer = initializer
        self._lock = threading.Lock()
        self._lane: _Lane | None = None
        self._abandoned: list[_Lane] = []
        self.timeouts = 0

    # -- state -----------------------------------------------------------------------------------------------
    @property
    def abandoned_running(self) -> int:
        """Abandoned threads still inside their call."""
        with self._lock:
            self._prune()
            return len(self._abandoned)

    @property
    def last_abandoned(self) -> threading.Thread | None:
        """The thread of the most recently abandoned call."""
        return self._abandoned[-1].thread if self._abandoned else None

    def _prune(self) -> None:
        self._abandoned = [lane for lane in self._abandoned if lane.thread.is_alive()]

    def _current_lane(self) -> _Lane | None:
        """The live lane, started if needed; None when no thread can be started (run inline)."""
        lane = self._lane
        if lane is not None and lane.thread.is_alive():
            return lane
        self._prune()
        if len(self._abandoned) >= self.max_abandoned:
            raise TooManyAbandoned(f"{len(self._abandoned)} abandoned calls still running")
        lane = _Lane(self.name, self._initializer)
        try:
            lane.start()
        except RuntimeError:  # interpreter shutting down (3.12+), or no more threads
            self._lane = None
            return None
        self._lane = lane
        return lane

    # -- work ------------------------------------------------------------------------------------------------
    def run(self, func: Callable[[], T], timeout: float) -> T:
        """``func()``'s result or exception; :class:`DeadlineExceeded` after ``timeout`` seconds."""
        if getattr(_in_lane, "active", False):
            return func()  # called from inside a call: waiting on ourselves would never end
        with self._lock:
            lane = self._current_lane()
            if lane is None:
                return func()
            call = _Call(func)
            lane.submit(call)
            if not call.done.wait(timeout):
                lane.abandoned = True
                self._abandoned.append(lane)
                self._lane = None
                self.timeouts += 1
                raise DeadlineExceeded(f"call exceeded {timeout:.1f}s")
        if call.error is not None:
            raise call.error
        return call.result  # type: ignore[no-any-return]

    # -- lifecycle -------------------------------------------------------------------------------------------
    def close(self, timeout: float | None = None) -> None:
        """Stop the live thread (after its current call) and join it; abandoned threads are left to finish."""
        with self._lock:
            lane, self._lane = self._lane, None
        if lane is not None:
            lane.submit(None)
            if lane.thread is not threading.current_thread():
                lane.thread.join(timeout)

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's threads do not exist here."""
        self._lock = threading.Lock()
        self._lane = None
        self._abandoned = []
