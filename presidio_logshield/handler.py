"""``PIIRedactingHandler``: the drop-in handler. ``emit`` snapshots and enqueues; a worker redacts and writes.

Never raises into the application, never writes raw text when redaction fails, drains on ``flush``, ``close``,
``logging.shutdown`` and interpreter exit, and restarts its worker in a forked child.

Never blocks indefinitely either. ``flush`` and ``close`` wait a bounded time; called while the current thread holds
logging's module lock (``dictConfig``, ``basicConfig(force=True)``, ``fileConfig`` reconfiguring), they do not wait
for the worker at all once it may need that lock (it is loading Presidio, whose imports call
``logging.getLogger``): the worker finishes on its own and releases the files. A record emitted after ``close`` is
written synchronously, redacted, on the caller's thread (and counted, ``stats().after_close``), as a stdlib
``FileHandler`` reopens its file. A fork waits only for a write in progress, never for detection.

Never deadlocks on its own records: a record logged on the handler's own threads (its worker, its detection threads)
is not taken, only counted (``stats().diverted``); Presidio's and spaCy's own loggers are never taken at all. A record
logged re-entrantly on an application thread — by a signal handler, or an object's ``__str__``, while that thread is
inside ``emit``, ``flush``, ``stats`` or ``close`` — is snapshotted without taking any lock and submitted once the
thread leaves the handler (only a record logged while such a record is being snapshotted is diverted). ``handle``
does not take the handler lock (``logging.shutdown`` holds it while it flushes, and the worker must still be able
to finish).
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
from .output import dropped_records_document, failed_closed_document
from .pipeline import Pipeline, in_logshield_thread
from .record import RecordSnapshot, is_audit_snapshot, snapshot
from .redaction import new_redactor, replace_shared, shared_redactor
from .reentry import Reentry, holds_logging_lock, is_ignored_logger, report_own_warning
from .worker import QueueClosed, QueueStats, RecordQueue, Worker
from .writer import FileWriter, LineWriter, StreamWriter

__all__ = ["PIIRedactingHandler"]

#: Seconds ``flush``/``close`` wait for the worker while holding logging's module lock, once the models are loaded
#: (before that: not at all — the worker's imports need that lock).
LOGGING_LOCK_GRACE = 0.25
#: Seconds a fork, ``flush`` or ``close`` wait for a write in progress (sealing and appending lines).
IO_WAIT = 2.0


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
        # by a fresh one, for everyone, if a detection call hangs inside it).
        if redactor is not None:
            self.pipeline = Pipeline(self.config, lambda: redactor)
        else:
            redaction = self.config.redaction
            self.pipeline = Pipeline(self.config, lambda: shared_redactor(redaction),
                                     fresh_redactor_factory=lambda: new_redactor(redaction),
                                     on_replaced=lambda stuck: replace_shared(redaction, stuck))
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
        self._closed = False  # close() was called: nothing more is queued
        self._finalized = False  # the worker has stopped and the files were released
        self._reported_drops = 0
        self._diverted = 0
        self._after_close = 0
        self._new_locks()
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

    def _new_locks(self) -> None:
        # The pipeline, one batch at a time: held through detection (bounded by detection_timeout, and model loading).
        self._render_lock = threading.Lock()
        # Sealing and appending lines: short. The only lock a fork waits for.
        self._io_lock = threading.Lock()
        # Counters and the close handshake. Re-entrant: a signal handler may count while this thread does.
        self._count_lock = threading.RLock()
        self._reentry = Reentry(snapshot, self._submit, self._divert)  # records logged while inside the handler

    def _new_queue(self) -> None:
        cfg = self.config
        self.queue = RecordQueue(cfg.queue_size, cfg.overflow, cfg.block_timeout)
        self._worker: Worker | None = None
        self._start_lock = threading.Lock()

    # -- application side ----------------------------------------------------------------------------------
    def handle(self, record: logging.LogRecord) -> bool | logging.LogRecord:  # type: ignore[override]
        """``logging.Handler.handle`` without the handler lock (``emit`` is thread-safe), refusing the handler's own
        records before anything else."""
        if is_ignored_logger(record.name):
            return False
        if in_logshield_thread():
            self._divert(record)
            return False
        rv = self.filter(record)
        if isinstance(rv, logging.LogRecord):  # Python 3.12+: a filter may return a replacement record
            record = rv
        if rv:
            self.emit(record)
        return rv

    def emit(self, record: logging.LogRecord) -> None:
        reentry = self._reentry
        if reentry.inside:
            reentry.defer(record)
            return
        reentry.enter()
        try:
            self._submit(snapshot(record))
        except Exception:
            self.handleError(record)
        finally:
            reentry.leave()

    def _submit(self, snap: RecordSnapshot) -> None:
        if self.config.asynchronous and not self._closed and (self._worker is not None or self._start_worker()):
            try:
                self.queue.put(snap)
                return
            except QueueClosed:
                pass  # closed meanwhile: written below, like any record after close
        if self._closed:
            with self._count_lock:
                self._after_close += 1
            worker = self._worker
            if worker is not None and worker.thread.is_alive() and not holds_logging_lock():
                worker.thread.join(self._drain_timeout())  # let it drain first: contending would only slow both
        self._write_now([snap])

    def _divert(self, record: logging.LogRecord) -> None:
        with self._count_lock:
            self._diverted += 1
        if record.levelno >= logging.WARNING and in_logshield_thread():
            report_own_warning(record)

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
                worker = Worker(self.queue, self.config.batch_size, self._write, on_exit=self._worker_left)
                try:
                    worker.start()
                except RuntimeError:  # Python 3.12+ refuses new threads during interpreter finalisation
                    return False
                self._worker = worker
            return True

    # -- writing ---------------------------------------------------------------------------------------------
    def _write_now(self, snaps: list[RecordSnapshot]) -> None:
        """Write on the caller's thread (synchronous mode, no worker, or after close)."""
        self._write(snaps)
        if self._finalized:  # closed: the file is opened for the write and released again, and so is the thread
            with contextlib.suppress(Exception):
                self.pipeline.close()
            with self._io_lock, contextlib.suppress(Exception):
                self._release_files()

    def _write(self, snaps: list[RecordSnapshot]) -> None:
        """Redact (under the render lock) then seal and append (under the short I/O lock): chain order is file
        order. A caller that cannot have the render lock in time writes its records fail-closed."""
        audit: list[RecordSnapshot] = []
        if self.audit_writer is not None:
            audit = [snap for snap in snaps if is_audit_snapshot(snap)]
            if audit:
                snaps = [snap for snap in snaps if not is_audit_snapshot(snap)]
        if self._render_lock.acquire(timeout=self._render_wait()):
            try:
                docs = self.pipeline.documents(snaps) if snaps else []
                audit_docs = self.pipeline.documents(audit) if audit else []
            finally:
                self._render_lock.release()
        else:
            docs, audit_docs = self._withheld_documents(snaps, "DetectionBusy"), self._withheld_documents(
                audit, "DetectionBusy")
        with self._io_lock:
            if snaps or self.queue.dropped != self._reported_drops:
                data = self.pipeline.encode(snaps, docs) + self._drop_report()
                written = self._append(self.writer, data)
                if self.chain is not None:
                    self.chain.settle(written)  # a first record's claim on its predecessor, now that it is written
            if audit:
                assert self.audit_writer is not None
                written = self._append(self.audit_writer, self.pipeline.encode(
                    audit, audit_docs, self.audit_chain.seal if self.audit_chain is not None else None))
                if self.audit_chain is not None:
                    self.audit_chain.settle(written)

    def _render_wait(self) -> float:
        # Another caller renders: detection (bounded, retries included) or the models loading (seconds).
        return 2 * self.config.detection_timeout + 30.0

    def _withheld_documents(self, snaps: list[RecordSnapshot], reason: str) -> list[dict[str, Any]]:
        names = self.pipeline.names()
        return [failed_closed_document(snap, self.config.service, self.config.host, reason, names) for snap in snaps]

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
        """Accepted, written and dropped record counts, how many wait in the queue, how many records logged from the
        handler's own threads were not taken (``diverted``), and how many were emitted after ``close``."""
        self._reentry.enter()
        try:
            with self._count_lock:
                diverted, after_close = self._diverted, self._after_close
            stats = self.queue.stats()
            return dataclasses.replace(stats, queued=stats.queued + len(self._reentry), diverted=diverted,
                                       after_close=after_close)
        finally:
            self._reentry.leave()

    def flush(self, timeout: float | None = None) -> None:
        """Block until every record accepted before this call has been written, or ``timeout`` (by default: long
        enough for the queue at the detection deadline) passes."""
        reentry = self._reentry
        if reentry.enter():
            reentry.submit_deferred()  # what a signal handler logged is waited for too
        try:
            worker = self._worker
            if worker is not None and worker.thread.is_alive() and not in_logshield_thread():
                wait = timeout if timeout is not None else self._drain_timeout()
                if holds_logging_lock():
                    wait = min(wait, self._logging_lock_grace())
                self.queue.wait_done(self.queue.accepted, wait)
            if self._io_lock.acquire(timeout=0 if holds_logging_lock() else IO_WAIT):
                try:
                    with contextlib.suppress(Exception):
                        self.writer.flush()
                        if self.audit_writer is not None:
                            self.audit_writer.flush()
                finally:
                    self._io_lock.release()
        finally:
            self._reentry.leave()

    def _logging_lock_grace(self) -> float:
        # Until the models are loaded the worker imports Presidio, which needs logging's module lock: no wait at all.
        return LOGGING_LOCK_GRACE if self.pipeline.loaded else 0.0

    def _drain_timeout(self) -> float:
        batches = max(1, len(self.queue) // self.config.batch_size + 1)
        return batches * (2 * self.config.detection_timeout + 1.0) + 5.0

    def close(self) -> None:
        """Stop taking records into the queue, let the worker drain it, release the files.

        Bounded: when the worker does not finish in time, what is still queued is written fail-closed (metadata
        only); under logging's module lock the worker is not waited for at all once it may need that lock — it
        finishes on its own, writing everything, and releases the files itself. Records emitted afterwards are
        written synchronously (``stats().after_close``)."""
        first = False
        with self._count_lock:
            if not self._closed:
                self._closed = first = True
        self._reentry.enter()
        try:
            if first:
                self.queue.close()
            self._finish()
        finally:
            self._reentry.leave()
            if first:
                super().close()

    def _finish(self) -> None:
        worker = self._worker
        if worker is not None and worker.thread is not threading.current_thread() and worker.thread.is_alive():
            under_lock = holds_logging_lock()
            wait = self._logging_lock_grace() if under_lock else self._drain_timeout()
            if not worker.stop(wait):
                if not under_lock:  # still stuck after the drain timeout: what waits is written fail-closed
                    self._withhold_queued("HandlerClosed")
                return  # the worker releases the files when it leaves (_worker_left)
        self._finalize()

    def _worker_left(self) -> None:
        if self._closed:
            self._finalize()

    def _withhold_queued(self, reason: str) -> None:
        """The worker did not drain the queue in time: what is still queued is written now, fail-closed."""
        snaps = self.queue.take_all()
        if not snaps:
            return
        try:
            docs = self._withheld_documents(snaps, reason)
            if self._io_lock.acquire(timeout=IO_WAIT):
                try:
                    written = self._append(self.writer, self.pipeline.encode(snaps, docs))
                    if self.chain is not None:
                        self.chain.settle(written)
                finally:
                    self._io_lock.release()
        finally:
            self.queue.mark_done(len(snaps))

    def _finalize(self) -> None:
        with self._count_lock:
            if self._finalized:
                return
            self._finalized = True
        with contextlib.suppress(Exception):
            self.pipeline.close()
        if self._io_lock.acquire(timeout=IO_WAIT):
            try:
                for chain in (self.chain, self.audit_chain):
                    if chain is not None:
                        with contextlib.suppress(Exception):
                            chain.close()  # where each stream ended, for the process that follows
                self._release_files()
            finally:
                self._io_lock.release()
        _live_handlers.discard(self)

    def _release_files(self) -> None:
        self.writer.close()
        if self.audit_writer is not None:
            self.audit_writer.close()

    # -- fork ------------------------------------------------------------------------------------------------
    def _before_fork(self) -> None:
        # Only a write in progress is waited for (sealing and appending: short), never detection.
        self._fork_io_locked = self._io_lock.acquire(timeout=IO_WAIT)

    def _after_fork_in_parent(self) -> None:
        if getattr(self, "_fork_io_locked", False):
            self._fork_io_locked = False
            self._io_lock.release()

    def _after_fork_in_child(self) -> None:
        # Records still queued belong to the parent, which writes them; the child starts empty.
        self._fork_io_locked = False
        self._new_locks()
        self._new_queue()
        if self._closed:
            self.queue.close()
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
