"""The pipeline's upload threads: a minimal pool whose ``shutdown`` can give up waiting.

``concurrent.futures.ThreadPoolExecutor`` joins its workers at interpreter exit, so one upload stuck in a store
client (read timeout × SDK attempts: minutes) held the agent long after ``LOGSHIELD_SHUTDOWN_GRACE``. These workers
are daemon threads: ``shutdown(timeout)`` waits at most that long and reports how many are still busy; an upload
left behind cannot advance any state (only the pipeline thread does, after the store acknowledged), so its batch
is simply sent again after the restart.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["UploadPool"]

T = TypeVar("T")

_Job = tuple[Future, Callable[..., Any], tuple[Any, ...]]


class UploadPool:
    """``submit`` like an executor; workers start on demand, up to ``workers``."""

    def __init__(self, workers: int, *, name: str) -> None:
        self.workers = workers
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("upload pool is shut down")
            self._jobs.put((future, fn, args))
            if len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            self._run(*job)
            del job  # an upload holds its batch: do not keep it alive while waiting for the next one

    @staticmethod
    def _run(future: Future, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the pipeline thread, like an executor does
            future.set_exception(exc)
        else:
            future.set_result(result)

    def shutdown(self, timeout: float | None = None) -> int:
        """Cancel what has not started, stop the workers after their current upload and wait for them at most
        ``timeout`` seconds (None: as long as it takes). Returns how many are still busy."""
        with self._lock:
            self._closed = True
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[0].cancel()
        for _ in self._threads:
            self._jobs.put(None)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return sum(1 for thread in self._threads if thread.is_alive())
