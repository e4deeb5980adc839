"""Deliver alerts to a destination from a thread of its own: bounded queue, retries with backoff, never blocking.

``submit`` only appends to a bounded queue (when it is full, the oldest alert waiting is dropped and counted) and
returns. The thread sends alerts in order; a retryable failure is tried again after an exponential backoff with
jitter (``base`` · 2^(attempt-1), at most ``cap`` seconds, times a random 0.5–1), up to ``attempts`` tries. Delivery
is at least once: a POST that timed out after the receiver took it is sent again, with the same ``id``.

``stop(timeout)`` ends the backoff at once, tries each alert still waiting one more time while the timeout lasts,
counts the rest as dropped, and joins the thread. Every outcome is reported to ``on_result(result)`` with result
``delivered``, ``retried``, ``failed`` (given up) or ``dropped`` — the agent turns those into /metrics counters.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from .destinations import DeliveryError, Destination

__all__ = ["BackgroundDelivery"]

log = logging.getLogger("logshield_agent.alerts")


class BackgroundDelivery:
    def __init__(self, destination: Destination, *, on_result: Callable[[str], None] = lambda result: None,
                 queue_size: int = 1000, base: float = 1.0, cap: float = 60.0, attempts: int = 8,
                 rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.destination = destination
        self.name = destination.name
        self._on_result = on_result
        self._queue: collections.deque[tuple[dict[str, Any], bytes]] = collections.deque()
        self._queue_size = queue_size
        self._base, self._cap, self._attempts = base, cap, attempts
        self._rng = rng or random.Random()
        self._clock = clock
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._deadline: float | None = None  # set by stop(): the drain gives up then
        self._thread: threading.Thread | None = None

    def submit(self, document: dict[str, Any], body: bytes) -> None:
        """Queue an alert for delivery; returns at once."""
        with self._lock:
            if self._stop.is_set():
                self._on_result("dropped")
                return
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self._on_result("dropped")
                log.warning("alert queue full; oldest alert dropped", extra={"destination": self.name})
            self._queue.append((document, body))
            self._lock.notify()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"logshield-alerts-{self.name}", daemon=True)
                self._thread.start()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop retrying, try what is queued once more within ``timeout``, drop the rest, join the thread."""
        with self._lock:
            self._deadline = self._clock() + timeout
            self._stop.set()
            self._lock.notify()
            thread = self._thread
        if thread is not None:
            thread.join()  # bounded: each send has its own timeout, and no backoff once stopping
        with self._lock:
            left, self._queue = len(self._queue), collections.deque()
        for _ in range(left):
            self._on_result("dropped")
        if left:
            log.error("alerts not delivered at shutdown", extra={"destination": self.name, "alerts": left})

    # -- the delivery thread
    def _next(self) -> tuple[dict[str, Any], bytes] | None:
        with self._lock:
            while not self._queue:
                if self._stop.is_set():
                    return None
                self._lock.wait()
            if self._stop.is_set() and self._deadline is not None and self._clock() >= self._deadline:
                return None
            return self._queue.popleft()

    def _run(self) -> None:
        while (item := self._next()) is not None:
            self._deliver(*item)

    def _deliver(self, document: dict[str, Any], body: bytes) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                self.destination.send(document, body)
            except DeliveryError as exc:
                retry = exc.retry and attempt < self._attempts and not self._stop.is_set()
                if not retry:
                    self._on_result("failed")
                    log.error("alert not delivered", extra={"destination": self.name, "error": str(exc),
                                                            "alert": document.get("id"), "attempts": attempt})
                    return
                self._on_result("retried")
                delay = min(self._cap, self._base * 2 ** (attempt - 1)) * self._rng.uniform(0.5, 1.0)
                log.warning("alert delivery failed; retrying", extra={"destination": self.name, "error": str(exc),
                                                                      "retry_in": round(delay, 2)})
                if self._stop.wait(delay):
                    continue  # stopping: one last try, no more backoff
            except Exception as exc:  # noqa: BLE001 - a destination bug must not kill the thread
                self._on_result("failed")
                log.error("alert destination failed", extra={"destination": self.name,
                                                             "error": type(exc).__name__})
                return
            else:
                self._on_result("delivered")
                return
