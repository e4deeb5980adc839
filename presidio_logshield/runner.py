"""Calls with a deadline, each on a thread of the runner's own, so a call that hangs can be abandoned.

A Python thread cannot be killed: a call that exceeds its timeout leaves its thread behind, and the next call gets a
fresh thread, so one stuck call does not hold up every later one. Abandoned threads are bounded: at most
``max_abandoned`` of them still *computing* (using CPU: a runaway pattern, a model gone astray) and at most
``max_stuck`` in all (most stuck calls wait — on an object's lock, a socket — and cost a thread's memory, not CPU).
Beyond either bound calls fail at once with :class:`TooManyAbandoned` (the caller is never blocked) until enough of
them return; a thread that returns exits and no longer counts. Where a thread's CPU time cannot be read, every
abandoned thread counts as computing.

The threads are the runner's, not a ``concurrent.futures`` pool: that pool refuses work once the interpreter starts
shutting down, which is exactly when the handler drains its queue. When no thread can be started at all (during
interpreter finalisation on Python 3.12+, or when the system is out of threads) the call runs inline on the caller's
thread, without a deadline — late rather than withheld. An idle thread exits after ``idle_exit`` seconds (the next
call starts another), so a runner that is no longer used leaves no thread behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DeadlineExceeded", "DeadlineRunner", "TooManyAbandoned"]

T = TypeVar("T")

_in_lane = threading.local()
#: An abandoned thread using at least this share of one CPU (since it was last looked at) is computing.
BUSY_SHARE = 0.2
#: Seconds between two looks at an abandoned thread's CPU time (closer looks keep the last judgement).
RESAMPLE = 0.05
#: Seconds an idle lane waits for its next call before its thread exits.
IDLE_EXIT = 30.0


class DeadlineExceeded(Exception):
    """The call did not return within its timeout; its thread was abandoned."""


class TooManyAbandoned(Exception):
    """Too many abandoned calls are still running: the call was not started."""


def _cpu_clock(thread: threading.Thread) -> int | None:
    getter = getattr(time, "pthread_getcpuclockid", None)
    if getter is None or thread.ident is None:
        return None
    try:
        return getter(thread.ident)  # type: ignore[no-any-return]
    except (OSError, OverflowError, ValueError):
        return None


def _cpu_time(clock: int | None) -> float | None:
    if clock is None:
        return None
    try:
        return time.clock_gettime(clock)
    except OSError:
        return None


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

    def __init__(self, name: str, initializer: Callable[[], None] | None, idle_exit: float) -> None:
        self._initializer = initializer
        self._idle_exit = idle_exit
        self._pending: list[_Call | None] = []
        self._cond = threading.Condition(threading.Lock())
        self.abandoned = False
        self.exited = False  # left after idling: takes no more calls
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._clock: int | None = None
        #: (monotonic time, CPU seconds) when last looked at, and whether it was computing then.
        self._sample: tuple[float, float] | None = None
        self.busy = True

    def start(self) -> None:
        self.thread.start()
        self._clock = _cpu_clock(self.thread)

    def submit(self, call: _Call | None) -> bool:
        """False when the thread has left after idling (use another lane)."""
        with self._cond:
            if self.exited:
                return False
            self._pending.append(call)
            self._cond.notify()
            return True

    def mark_start(self) -> None:
        """Remember the CPU time at the start of a call, to judge the call if it is abandoned."""
        cpu = _cpu_time(self._clock)
        self._sample = None if cpu is None else (time.monotonic(), cpu)

    def computing(self, now: float) -> bool:
        """Whether this (abandoned) thread used at least ``BUSY_SHARE`` of a CPU since it was last looked at."""
        sample = self._sample
        if sample is None:
            return True
        if now - sample[0] < RESAMPLE:
            return self.busy
        cpu = _cpu_time(self._clock)
        if cpu is None:
            return self.thread.is_alive()
        self.busy = (cpu - sample[1]) >= BUSY_SHARE * (now - sample[0])
        self._sample = (now, cpu)
        return self.busy

    def _loop(self) -> None:
        _in_lane.active = True
        if self._initializer is not None:
            self._initializer()
        while True:
            with self._cond:
                while not self._pending:
                    if not self._cond.wait(self._idle_exit) and not self._pending:
                        self.exited = True
                        return
                call = self._pending.pop(0)
            if call is None or self.abandoned:
                return
            call.run()
            if self.abandoned:
                return


class DeadlineRunner:
    """Runs callables with a timeout on its own thread; replaces the thread when a call overruns."""

    def __init__(self, *, name: str = "logshield-detect", max_abandoned: int = 2, max_stuck: int = 64,
                 initializer: Callable[[], None] | None = None, idle_exit: float = IDLE_EXIT) -> None:
        self.name = name
        self.max_abandoned = max_abandoned
        self.max_stuck = max(max_stuck, max_abandoned)
        self._initializer = initializer
        self._idle_exit = idle_exit
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
        abandoned = self._abandoned
        return abandoned[-1].thread if abandoned else None

    def _prune(self) -> None:
        self._abandoned = [lane for lane in self._abandoned if lane.thread.is_alive()]

    def _refuse(self) -> str | None:
        """Why no new thread may start now, or None."""
        self._prune()
        if len(self._abandoned) >= self.max_stuck:
            return f"{len(self._abandoned)} abandoned calls still running"
        now = time.monotonic()
        computing = sum(lane.computing(now) for lane in self._abandoned)
        if computing >= self.max_abandoned:
            return f"{computing} abandoned calls still computing"
        return None

    def _current_lane(self) -> _Lane | None:
        """The live lane, started if needed; None when no thread can be started (run inline)."""
        lane = self._lane
        if lane is not None and lane.thread.is_alive() and not lane.exited:
            return lane
        reason = self._refuse()
        if reason is not None:
            raise TooManyAbandoned(reason)
        lane = _Lane(self.name, self._initializer, self._idle_exit)
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
            call = _Call(func)
            while True:
                lane = self._current_lane()
                if lane is None:
                    return func()
                lane.mark_start()
                if lane.submit(call):
                    break
                self._lane = None  # it left after idling just now: start another
            if not call.done.wait(timeout):
                lane.abandoned = True
                self._abandoned.append(lane)
                self._lane = None
                self.timeouts += 1
                raise DeadlineExceeded(f"call exceeded {timeout:.2f}s")
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
