"""What the handler must not take, or wait for, to never deadlock on its own records.

- Presidio's and spaCy's loggers are never taken (:func:`is_ignored_logger`): they carry raw text and log while the
  models load on the handler's own threads.
- A record logged re-entrantly on an application thread — by a signal handler, or an object's ``__str__``, while
  that thread is inside the handler — is snapshotted without taking any lock and submitted once the thread leaves
  the handler (:class:`Reentry`).
- A warning of this library raised on the handler's own threads cannot go through the handler: it is written once
  to the process's stderr (:func:`report_own_warning`).
- ``flush`` and ``close`` called under logging's module lock (:func:`holds_logging_lock`) must not wait for a worker
  that may need that lock.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["IGNORED_LOGGERS", "MAX_DEFERRED", "Reentry", "holds_logging_lock", "is_ignored_logger",
           "report_own_warning"]

#: Loggers (and their children) whose records are never taken: Presidio's and spaCy's.
IGNORED_LOGGERS = ("presidio-analyzer", "presidio-anonymizer", "presidio_analyzer", "presidio_anonymizer",
                   "decision_process", "spacy", "thinc")
#: Re-entrant records kept for submission; beyond this they are diverted.
MAX_DEFERRED = 10_000
_ignored_names: dict[str, bool] = {}
_reported_warnings: set[str] = set()


def is_ignored_logger(name: str) -> bool:
    ignored = _ignored_names.get(name)
    if ignored is None:
        ignored = any(name == prefix or name.startswith(prefix + ".") for prefix in IGNORED_LOGGERS)
        if len(_ignored_names) >= 4096:
            _ignored_names.clear()
        _ignored_names[name] = ignored
    return ignored


def holds_logging_lock() -> bool:
    """True when this thread holds logging's module lock (it is reconfiguring logging)."""
    is_owned = getattr(getattr(logging, "_lock", None), "_is_owned", None)
    try:
        return bool(is_owned()) if is_owned is not None else False
    except Exception:  # noqa: BLE001 - cannot tell
        return False


def report_own_warning(record: logging.LogRecord) -> None:
    """Write a warning of this library (the missing spaCy pipeline, a timed-out batch) once to stderr. Only this
    library's own texts: a diverted record of any other logger may carry application text."""
    try:
        if record.name == "py.warnings":
            text = str(record.args[0]) if isinstance(record.args, tuple) and record.args else str(record.msg)
            if "presidio-logshield:" not in text:
                return
            key = text
        elif record.name == "presidio_logshield" or record.name.startswith("presidio_logshield."):
            key, text = str(record.msg), record.getMessage()
        else:
            return
        if key in _reported_warnings or len(_reported_warnings) >= 256:
            return
        _reported_warnings.add(key)
        stream = sys.__stderr__
        if stream is not None:
            stream.write(f"{text.rstrip()}\n")
            stream.flush()
    except Exception:  # noqa: BLE001, S110 - a note to stderr must never break the worker
        pass


class Reentry:
    """Per thread: whether it is inside the handler; records logged meanwhile are kept and submitted on leaving.

    ``snapshot`` captures a record, ``submit`` hands a snapshot on, ``divert`` counts a record not taken (logged
    while a kept record was being captured, or beyond :data:`MAX_DEFERRED`)."""

    def __init__(self, snapshot: Callable[[logging.LogRecord], Any], submit: Callable[[Any], None],
                 divert: Callable[[logging.LogRecord], None]) -> None:
        self._snapshot = snapshot
        self._submit = submit
        self._divert = divert
        self._local = threading.local()
        self._deferred: collections.deque[Any] = collections.deque()

    def __len__(self) -> int:
        return len(self._deferred)

    @property
    def inside(self) -> bool:
        return bool(getattr(self._local, "depth", 0))

    def defer(self, record: logging.LogRecord) -> None:
        """Keep ``record`` (logged while this thread is inside the handler), taking no lock."""
        local = self._local
        if getattr(local, "deferring", False) or len(self._deferred) >= MAX_DEFERRED:
            self._divert(record)  # logged while capturing a kept record: the recursion ends here
            return
        local.deferring = True
        try:
            self._deferred.append(self._snapshot(record))
        finally:
            local.deferring = False

    def enter(self) -> bool:
        """Mark this thread inside the handler; True on the outermost level."""
        local = self._local
        depth = getattr(local, "depth", 0)
        local.depth = depth + 1
        return depth == 0

    def leave(self) -> None:
        """Leave the handler; on the outermost level, submit what was kept (still marked inside meanwhile)."""
        local = self._local
        if local.depth == 1:
            self.submit_deferred()
        local.depth -= 1

    def submit_deferred(self) -> None:
        """Submit what was kept; call inside (:meth:`enter`), on the outermost level."""
        while True:
            try:
                snap = self._deferred.popleft()
            except IndexError:
                return
            with contextlib.suppress(Exception):
                self._submit(snap)
