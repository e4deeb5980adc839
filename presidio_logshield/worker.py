"""The asynchronous part of the handler: a bounded queue and one background thread that drains it in batches.

``put`` is all the application thread ever does. The overflow policy decides what happens when the queue is
full (wait up to a timeout, drop the newest, or drop the oldest); every drop is counted and reported in the
output. ``wait_done`` waits (bounded) until everything accepted before the call has been written. A closed queue
refuses new items (:class:`QueueClosed`) and the worker leaves once it has drained it.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .pipeline import mark_logshield_thread

__all__ = ["QueueClosed", "QueueStats", "RecordQueue", "Worker"]


class QueueClosed(Exception):
    """The queue was closed: the item was not taken (the handler writes it itself)."""


@dataclass(frozen=True)
class QueueStats:
    accepted: int
    written: int
    dropped: int
    queued: int
    #: Records logged from the handler's own threads (or nested inside a re-entrant record), not taken.
    diverted: int = 0
    #: Records emitted after ``close()``: written synchronously on the caller's thread, not queued.
    after_close: int = 0


class RecordQueue:
    """A bounded FIFO with the three overflow policies, counting what it accepts, hands out and drops."""

    def __init__(self, maxsize: int, overflow: str, block_timeout: float) -> None:
        self.maxsize = maxsize
        self.overflow = overflow
        self.block_timeout = block_timeout
        self._items: collections.deque[Any] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self._takers = 0  # threads waiting in take(): put() wakes the condition only for them
        self.accepted = 0
        self.done = 0  # written or dropped after being accepted
        self.dropped = 0

    def put(self, item: Any) -> bool:
        """True when queued, False when dropped by the overflow policy; raises :class:`QueueClosed` once closed."""
        with self._cond:
            if self._closed:
                raise QueueClosed
            wake = self._takers > 0  # Condition.notify_all costs a microsecond of Python even with nobody waiting
            if len(self._items) >= self.maxsize:
                if self.overflow == "drop_oldest":
                    self._items.popleft()
                    self.dropped += 1
                    self.done += 1
                    wake = True  # ``done`` moved: flush() may be waiting for it
                elif self.overflow == "block":
                    deadline = time.monotonic() + self.block_timeout
                    while len(self._items) >= self.maxsize and not self._closed:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0 or not self._cond.wait(remaining):
                            break
                    if self._closed:
                        raise QueueClosed
                    if len(self._items) >= self.maxsize:
                        self.dropped += 1
                        return False
                else:  # drop_newest
                    self.dropped += 1
                    return False
            self._items.append(item)
            self.accepted += 1
            if wake or self._takers:
                self._cond.notify_all()
            return True

    def take(self, max_items: int, timeout: float) -> list[Any]:
        """Up to ``max_items``, waiting up to ``timeout`` for the first one; [] when closed and empty."""
        with self._cond:
            if not self._items and not self._closed:
                self._takers += 1
                try:
                    self._cond.wait(timeout)
                finally:
                    self._takers -= 1
            batch = []
            while self._items and len(batch) < max_items:
                batch.append(self._items.popleft())
            if batch:
                self._cond.notify_all()  # room for blocked producers
            return batch

    def mark_done(self, count: int) -> None:
        with self._cond:
            self.done += count
            self._cond.notify_all()

    def wait_done(self, target: int, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self.done < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def take_all(self) -> list[Any]:
        """Everything still queued (the caller must :meth:`mark_done` it)."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._cond.notify_all()
            return items

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

    def stats(self) -> QueueStats:
        with self._cond:
            return QueueStats(self.accepted, self.done - self.dropped_accepted, self.dropped, len(self._items))

    @property
    def dropped_accepted(self) -> int:
        # drop_oldest drops items that had been accepted; they count in both ``done`` and ``dropped``.
        return self.dropped if self.overflow == "drop_oldest" else 0


class Worker:
    """One daemon thread: take a batch, hand it to ``process`` (which writes it), mark it done; once the queue is
    closed and drained, call ``on_exit`` and leave."""

    def __init__(self, queue: RecordQueue, batch_size: int, process: Callable[[list[Any]], None], *,
                 on_exit: Callable[[], None] | None = None) -> None:
        self.queue = queue
        self.batch_size = batch_size
        self.process = process
        self.on_exit = on_exit
        self.thread = threading.Thread(target=self._run, name="logshield-worker", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        mark_logshield_thread()
        while True:
            batch = self.queue.take(self.batch_size, timeout=0.5)
            if batch:
                try:
                    self.process(batch)
                finally:
                    self.queue.mark_done(len(batch))
            elif self.queue.closed:
                if self.on_exit is not None:
                    self.on_exit()
                return

    def stop(self, timeout: float | None) -> bool:
        """Close the queue and wait up to ``timeout`` for the thread to drain it; True once it has left."""
        self.queue.close()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)
        return not self.thread.is_alive()
