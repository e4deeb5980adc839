"""``PIIRedactingHandler``: the drop-in handler. ``emit`` snapshots and enqueues; a worker redacts and writes.

Never raises into the application, never writes raw text when redaction fails, drains on ``flush``,
``close``, ``logging.shutdown`` and interpreter exit, and restarts its worker in a forked child.

Never deadlocks on its own records either: a record logged from inside the handler's work — on its worker or
detection threads, or on the application thread while the handler is in ``emit`` (a synchronous write, a warning
raised while the models load, an object's ``__str__`` that logs) — is not taken, only counted (``stats().diverted``),
and Presidio's and spaCy's own loggers are never taken at all. ``handle`` does not take the handler lock
(``logging.shutdown`` holds it while it flushes, and the worker must still be able to finish).
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import dataclasses
import logging
import os
import sys
import threading
import weakref
from typing import Any, TextIO

from .audit.chain import RecordChain, last_chain_tip, registry_for, stream_paths
from .config import HandlerConfig, load_handler_config
from .output import dropped_records_document
from .pipeline import Pipeline, in_logshield_thread
from .record import RecordSnapshot, is_audit_snapshot, snapshot
from .redaction import new_redactor, shared_redactor
from .worker import QueueStats, RecordQueue, Worker
from .writer import FileWriter, LineWriter, StreamWriter

__all__ = ["PIIRedactingHandler"]

#: Loggers (and their children) whose records are never taken: Presidio's and spaCy's (they can carry raw text, and
#: they log while the models load on the handler's own threads).
IGNORED_LOGGERS = ("presidio-analyzer", "presidio-anonymizer", "presidio_analyzer", "presidio_anonymizer",
                   "decision_process", "spacy", "thinc")
_ignored_names: dict[str, bool] = {}


def _is_ignored_logger(name: str) -> bool:
    ignored = _ignored_names.get(name)
    if ignored is None:
        ignored = any(name == prefix or name.startswith(prefix + ".") for prefix in IGNORED_LOGGERS)
        if len(_ignored_names) >= 4096:
            _ignored_names.clear()
        _ignored_names[name] = ignored
    return ignored

_live_handlers: weakref.WeakSet[PIIRedactingHandler] = weakref.WeakSet()


class PIIRedactingHandler(logging.Handler):
    """Write every record as one redacted JSON object per line to ``filename`` or ``stream``.

    Options (keywords, or ``LOGSHIELD_*`` variables; see ``presidio_logshield.config``) include
    ``asynchronous``, ``queue_size``, ``overflow``, ``block_timeout``, ``batch_size``, ``detection_timeout``,
    ``max_bytes``/``backup_count`` and every redaction option (``detection``, ``entities``, ``operators``, …).
    """

    def __init__(self, filename: str | os.PathLike[str] | None = None, stream: TextIO | None = None, *,
                 level: int | str = logging.NOTSET, encoding: str = "utf-8",
                 config: HandlerConfig | None = None, redactor: Any = None, **options: Any) -> None:
        # Everything that can refuse a bad option comes before Handler.__init__, which registers the handler for
        # logging.shutdown(): a handler that failed to build must not be flushed at exit.
        self.config = config if config is not None else load_handler_config(**options)
        if filename is not None and stream is not None:
            raise ValueError("give PIIRedactingHandler a filename or a stream, not both")
        if codecs.lookup(encoding).name != "utf-8":
            raise ValueError(f"PIIRedactingHandler writes JSON lines in UTF-8; encoding={encoding!r} is not supported")
        self.writer: LineWriter
        if filename is not None:
            self.writer = FileWriter(filename, max_bytes=self.config.max_bytes,
                                     backup_count=self.config.backup_count)
        else:
            self.writer = StreamWriter(stream if stream is not None else sys.stderr)
        # ``redactor`` is for tests and embedders; normally one Redactor per configuration is shared (and replaced
        # by one of the handler's own if a detection call hangs inside it).
        if redactor is not None:
            self.pipeline = Pipeline(self.config, lambda: redactor)
        else:
            self.pipeline = Pipeline(self.config, lambda: shared_redactor(self.config.redaction),
                                     fresh_redactor_factory=lambda: new_redactor(self.config.redaction))
        # Audit records (audit_event, @audited) to a file and a chain of their own, when configured.
        self.audit_writer: FileWriter | None = None
        if self.config.audit_file:
            self.audit_writer = FileWriter(self.config.audit_file, max_bytes=self.config.max_bytes,
                                           backup_count=self.config.backup_count)
        self.chain: RecordChain | None = self._new_chain(self.writer)
        self.audit_chain: RecordChain | None = self._new_chain(self.audit_writer) if self.audit_writer else None
        if self.chain is not None:
            self.pipeline.sealer = self.chain.seal
        super().__init__(level)
        self._write_lock = threading.RLock()
        self._closed = False
        self._reported_drops = 0
        self._in_emit = threading.local()  # set while this thread is inside emit: its records are diverted
        self._diverted = 0
        self._diverted_lock = threading.Lock()
        self._new_queue()
        _live_handlers.add(self)

    def _new_chain(self, writer: LineWriter | None) -> RecordChain | None:
        if not self.config.chain:
            return None
        key = self.config.chain_key.get_secret_value() if self.config.chain_key else None
        if not isinstance(writer, FileWriter):
            return RecordChain(key)
        # A restart names the dead stream of the same file template it claims (app-{pid}.log: another process's
        # file), and where it ended; before the template has any state, the stream at the end of this file.
        return RecordChain(key, registry=registry_for(writer.template), path=writer.path,
                           guess_previous=last_chain_tip(*stream_paths(writer.path)))

    def _new_queue(self) -> None:
        cfg = self.config
        self.queue = RecordQueue(cfg.queue_size, cfg.overflow, cfg.block_timeout)
        self._worker: Worker | None = None
        self._start_lock = threading.Lock()

    # -- application side ----------------------------------------------------------------------------------
    def handle(self, record: logging.LogRecord) -> bool | logging.LogRecord:  # type: ignore[override]
        """``logging.Handler.handle`` without the handler lock (``emit`` is thread-safe), refusing the handler's own
        records before anything else."""
        if _is_ignored_logger(record.name):
            return False
        if in_logshield_thread() or getattr(self._in_emit, "active", False):
            with self._diverted_lock:
                self._diverted += 1
            return False
        rv = self.filter(record)
        if isinstance(rv, logging.LogRecord):  # Python 3.12+: a filter may return a replacement record
            record = rv
        if rv:
            self.emit(record)
        return rv

    def emit(self, record: logging.LogRecord) -> None:
        if self._closed:
            return
        in_emit = self._in_emit
        in_emit.active = True
        try:
            snap = snapshot(record)
            if not self.config.asynchronous:
                self._write([snap])
                return
            if self._worker is None and not self._start_worker():
                self._write([snap])  # no thread can be started (interpreter shutting down): write it now
                return
            self.queue.put(snap)
        except Exception:
            self.handleError(record)
        finally:
            in_emit.active = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging API
        # The stdlib version prints the record's message and args: raw text. Print only where it came from.
        if logging.raiseExceptions and sys.stderr:
            exc_type = sys.exc_info()[0]
            name = exc_type.__name__ if exc_type else "error"
            sys.stderr.write(f"presidio_logshield: could not handle a record from logger {record.name!r} "
                             f"({record.pathname}:{record.lineno}): {name}\n")

    def _start_worker(self) -> bool:
        with self._start_lock:
            if self._worker is None:
                worker = Worker(self.queue, self.config.batch_size, self._write)
                try:
                    worker.start()
                except RuntimeError:  # Python 3.12+ refuses new threads during interpreter finalisation
                    return False
                self._worker = worker
            return True

    # -- worker side -----------------------------------------------------------------------------------------
    def _write(self, snaps: list[RecordSnapshot]) -> None:
        # Render (which seals into the chain) and write under one lock: chain order is file order.
        with self._write_lock:
            audit: list[RecordSnapshot] = []
            if self.audit_writer is not None:
                audit = [snap for snap in snaps if is_audit_snapshot(snap)]
                if audit:
                    snaps = [snap for snap in snaps if not is_audit_snapshot(snap)]
            if snaps or self.queue.dropped != self._reported_drops:
                written = self._append(self.writer, self.pipeline.render(snaps) + self._drop_report())
                if self.chain is not None:
                    self.chain.settle(written)  # a first record's claim on its predecessor, now that it is written
            if audit:
                assert self.audit_writer is not None
                written = self._append(self.audit_writer, self.pipeline.render(
                    audit, self.audit_chain.seal if self.audit_chain is not None else None))
                if self.audit_chain is not None:
                    self.audit_chain.settle(written)

    @staticmethod
    def _append(writer: LineWriter, data: bytes) -> bool:
        try:
            writer.write(data)
            writer.flush()
        except Exception as exc:
            sys.stderr.write(f"presidio_logshield: cannot write log output: {type(exc).__name__}: "
                             f"{getattr(exc, 'strerror', '') or ''}\n")
            return False
        return True

    def _drop_report(self) -> bytes:
        dropped = self.queue.dropped
        if dropped == self._reported_drops:
            return b""
        newly, self._reported_drops = dropped - self._reported_drops, dropped
        doc = dropped_records_document(newly, dropped, self.config.overflow, self.config.service, self.config.host)
        return self.pipeline.lines([doc])

    # -- lifecycle -------------------------------------------------------------------------------------------
    def stats(self) -> QueueStats:
        """Accepted, written and dropped record counts, how many wait in the queue, and how many records logged from
        inside the handler's own work were not taken (``diverted``)."""
        return dataclasses.replace(self.queue.stats(), diverted=self._diverted)

    def flush(self, timeout: float | None = None) -> None:
        """Block until every record accepted before this call has been written (or ``timeout`` passes)."""
        if self._worker is not None and self._worker.thread.is_alive() and not in_logshield_thread():
            self.queue.wait_done(self.queue.accepted, timeout if timeout is not None else self._drain_timeout())
        with self._write_lock, contextlib.suppress(Exception):
            self.writer.flush()
            if self.audit_writer is not None:
                self.audit_writer.flush()

    def _drain_timeout(self) -> float:
        batches = max(1, len(self.queue) // self.config.batch_size + 1)
        return batches * (self.config.detection_timeout + 1.0) + 5.0

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
            self._closed = True
            if self._worker is not None:
                self._worker.stop(timeout=self._drain_timeout())
            self.pipeline.close()
            with self._write_lock:
                for chain in (self.chain, self.audit_chain):
                    if chain is not None:
                        chain.close()  # where each stream ended, for the process that follows
                self.writer.close()
                if self.audit_writer is not None:
                    self.audit_writer.close()
        finally:
            _live_handlers.discard(self)
            super().close()

    # -- fork ------------------------------------------------------------------------------------------------
    def _before_fork(self) -> None:
        self._write_lock.acquire()

    def _after_fork_in_parent(self) -> None:
        self._write_lock.release()

    def _after_fork_in_child(self) -> None:
        # Records still queued belong to the parent, which writes them; the child starts empty.
        self._write_lock = threading.RLock()
        self._diverted_lock = threading.Lock()
        self._new_queue()
        self._reported_drops = 0
        self.pipeline.reset_after_fork()
        self.writer.reopen_after_fork()
        if self.audit_writer is not None:
            self.audit_writer.reopen_after_fork()
        for chain, writer in ((self.chain, self.writer), (self.audit_chain, self.audit_writer)):
            if chain is not None:
                chain.restart_after_fork()
                chain.path = getattr(writer, "path", None)
        self.createLock()


def _for_each_handler(method: str) -> None:
    for handler in list(_live_handlers):
        with contextlib.suppress(Exception):  # never break fork or exit for a log handler
            getattr(handler, method)()


@atexit.register
def _close_all_at_exit() -> None:
    _for_each_handler("close")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=lambda: _for_each_handler("_before_fork"),
                        after_in_parent=lambda: _for_each_handler("_after_fork_in_parent"),
                        after_in_child=lambda: _for_each_handler("_after_fork_in_child"))
