"""The agent's data path: tail → batch → (redact) → compress → conditional put → checkpoint.

One thread runs the loop and owns every piece of state (tailer, checkpoints, observers); a small pool of upload
threads (``LOGSHIELD_UPLOAD_CONCURRENCY``) only redacts, compresses and puts, so several files ship at once while the
loop reads ahead. Per stream at most one batch is in flight (back-pressure: nothing more is read from that file until
the store answered), a batch is never bigger than ``LOGSHIELD_BATCH_MAX_BYTES`` plus one line, and the tailer reads
ahead at most one batch more than the uploads in flight — memory is bounded however large the backlog.

Exactly once, per stream (its id: see ``sources/tailer.py``) and byte range:

1. the batch ``[start, end)`` gets a key derived from the stream id and range, and deterministic bytes;
2. the *intent* (range, key, compression, chosen event time) is persisted in the checkpoint **before** the upload;
3. the put is conditional: an identical existing object is success, different content is never overwritten;
4. only after the store acknowledged, the checkpoint offset moves to ``end`` and the intent is cleared.

After a crash between 2 and 4, the restart re-reads exactly ``[start, end)`` and puts the same bytes under the
same key: the store either already has them (success) or gets them now. No second object with other boundaries
can cover the same lines, and nothing is acknowledged that the store does not hold.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ._log import sanitize
from ._pool import UploadPool
from .config import AgentConfig
from .health import AgentMetrics, Readiness
from .retention import LocalSweeper, RotatedFile, delete_rotated, plan_rotated_deletions
from .sinks import base as sink_base
from .sinks.base import ObjectConflictError, Sink, SinkError, SinkUnavailableError
from .sinks.keys import object_key
from .sinks.local import LocalDirSink
from .sources.checkpoint import Checkpointer, Intent
from .sources.descriptors import default_max_open, is_descriptor_exhaustion
from .sources.fingerprint import check_of
from .sources.fs import FileSystem
from .sources.lines import split_lines
from .sources.tailer import PendingBatch, Stream, Tailer
from .transforms.compress import CONTENT_ENCODING, compress
from .transforms.events import event_time, file_time

__all__ = ["Pipeline", "PipelineObserver", "ShipError", "ShippedBatch"]

log = logging.getLogger("logshield_agent.pipeline")

HOUSEKEEPING_EVERY = 60.0
FORGET_AFTER = 30 * 86400.0


class ShipError(Exception):
    """``--once`` could not ship everything; the message says why (no secrets)."""


@dataclass(frozen=True)
class ShippedBatch:
    """An object the store has just acknowledged, as observers see it (before the checkpoint advances)."""

    key: str
    sha256: str
    size: int  # stored (compressed) bytes
    lines: int
    source: str  # stream id
    byte_start: int
    byte_end: int
    first_event: str
    last_event: str
    service: str
    body: bytes  # the object's uncompressed content: the lines as stored (after the optional redaction pass)
    already_existed: bool

    @functools.cached_property
    def records(self) -> Sequence[bytes]:
        """The stored lines, newline-terminated (split on first use only)."""
        return split_lines(self.body)


class PipelineObserver:
    """Hooks for work that follows the data path (archive digests, anomaly alerts). Defaults do nothing.

    ``batch_shipped`` runs after the store acknowledged a batch and before the checkpoint advances, so an observer
    that persists something there sees every batch at least once (again after a crash replay: de-duplicate by key).
    An exception from an observer is logged and never stops shipping — unless the observer is ``critical`` (its
    record is part of the evidence, e.g. the digest ledger): then the checkpoint does not advance and the batch is
    offered again later (its put is idempotent), and ``--once`` fails with the reason.
    """

    critical = False

    def open(self, wall: float) -> None:
        """The pipeline starts (on its own thread, signals handled): the first moment an observer may use the store."""

    def batch_shipped(self, batch: ShippedBatch) -> None:
        """A batch is in the store."""

    def tick(self, wall: float) -> None:
        """Called on every loop iteration of ``run`` (and once per ``run_once``) with the wall-clock time."""

    def close(self, wall: float) -> None:
        """The pipeline stops (after the final flush): write what must be written at shutdown."""


@dataclass
class _Upload:
    """One batch on its way to the store; filled in by the upload thread, read by the pipeline thread."""

    stream: Stream
    batch: PendingBatch
    intent: Intent
    content: bytes = b""
    size: int = 0
    sha: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    existed: bool = False
    stored: bool = False  # the store acknowledged
    error: ShipError | None = None  # --once: why it cannot be shipped
    once: bool = False
    flushing: bool = False  # started by the shutdown flush (with its deadline)


class Pipeline:
    def __init__(
        self,
        config: AgentConfig,
        sink: Sink,
        checkpointer: Checkpointer,
        *,
        fs: FileSystem | None = None,
        metrics: AgentMetrics | None = None,
        readiness: Readiness | None = None,
        redactor: Callable[[list[bytes]], list[bytes]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        backoff_base: float = 0.5,
        backoff_cap: float = 60.0,
        once_attempts: int = 6,
        settle: float | None = None,
        observers: Sequence[PipelineObserver] = (),
        max_open_files: int | None = None,
    ) -> None:
        self.config = config
        self.sink = sink
        self.checkpointer = checkpointer
        self.metrics = metrics or AgentMetrics()
        self.readiness = readiness or Readiness(stale_after=max(3 * config.batch_max_age, 60.0))
        self.redactor = redactor
        self.clock = clock
        self.wall = wall
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.once_attempts = once_attempts
        self.wake = threading.Event()
        self.observers = tuple(observers)
        self.tailer = Tailer(
            config.paths, checkpointer,
            batch_max_bytes=config.batch_max_bytes, max_line_bytes=config.max_line_bytes, service=config.service,
            settle=settle if settle is not None else config.rotated_settle,
            fs=fs, clock=clock, wall=wall, on_read=self._on_read, exclude=config.exclude,
            on_skip=lambda reason: self.metrics.files_skipped.labels(reason).inc(),
            on_lost=self.metrics.truncation_lost.inc,
            # Memory bound, whatever the number of files in the backlog: the batches in flight and one more, each
            # with its slack (a batch may exceed the size by a line; what was read past it waits: another line).
            max_pending_bytes=(config.upload_concurrency + 1) * (config.batch_max_bytes + 2 * config.max_line_bytes),
            max_open=max_open_files if max_open_files is not None else default_max_open(config.upload_concurrency),
        )
        self._last_housekeeping = clock()
        self._pool: UploadPool | None = None
        self._gave_up: set[str] = set()  # streams whose upload gave up during flush (not retried in it)
        self._inflight: dict[str, concurrent.futures.Future[_Upload]] = {}
        self.shipped_batches = 0
        self._is_local = isinstance(sink, LocalDirSink)
        self._sweeper = (LocalSweeper(sink, clock=clock) if isinstance(sink, LocalDirSink) and config.retention_days
                         else None)
        self._unsaved = False  # an acknowledgement is in memory only (the checkpoint write failed)
        self._save_error: str | None = None  # why the last checkpoint write failed (None: it worked)
        self._save_error_logged = -1e9

    def _on_read(self, lines: int, nbytes: int) -> None:
        self.metrics.lines_read.inc(lines)
        self.metrics.bytes_read.inc(nbytes)

    # -- entry points
    def run(self, stop: threading.Event) -> None:
        """Ship until ``stop`` is set, then ship the open batches within ``LOGSHIELD_SHUTDOWN_GRACE`` and return
        (uploads still in flight then are abandoned: nothing was acknowledged for them, they ship after a restart)."""
        self._clean_up_after_crash()
        deadline: float | None = None
        try:
            self._notify("open", self.wall())
            while not stop.is_set():
                self.wake.clear()
                busy = self.step(stop)
                self._housekeeping()
                self._notify("tick", self.wall())
                if not busy:
                    self.wake.wait(self.config.poll_interval)  # a file change or a finished upload wakes it
                    if stop.is_set():
                        break
            deadline = self.clock() + self.config.shutdown_grace
            self.flush(deadline=deadline)
            self._notify("close", self.wall())
        finally:
            # Never past the grace for an upload stuck in the store's client: it cannot advance anything.
            left = max(0.0, deadline - self.clock()) if deadline is not None else self.config.shutdown_grace
            self._stop_uploads(timeout=left)
            self.tailer.close()

    def run_once(self) -> None:
        """Ship everything readable now — each file up to the size it had when first seen, so that a busy writer
        cannot keep it going — and wait for the store's acknowledgement; ``ShipError`` otherwise."""
        self._clean_up_after_crash()
        try:
            self._notify("open", self.wall())
            stuck = 0
            while True:
                self._retry_save()
                self.tailer.scan(once=True)
                for stream in list(self.tailer.streams.values()):
                    if stream.stalled:
                        raise ShipError(f"cannot ship {stream.path}: {stream.stalled}")
                    if (stream.pending is not None and stream.id not in self._inflight
                            and len(self._inflight) < self.config.upload_concurrency):
                        self._start(stream, attempts=self.once_attempts)
                if self._inflight:
                    stuck = 0
                    self._harvest(block=True)
                    continue
                if not self.tailer.waiting and not (self.tailer.deferred and stuck < 12) and not any(
                        s.pending is not None or (s.fd is not None and s.read_offset < s.readable)
                        for s in self.tailer.streams.values()):
                    break
                # Nothing could start (the checkpoint cannot be written, no descriptor free, a replay waits for a
                # re-check of its file): back off instead of spinning, give up on a checkpoint that stays broken.
                stuck += 1
                if self._save_error is not None and stuck > 12:
                    raise ShipError(f"cannot write the checkpoint in {self.checkpointer.state_dir}: "
                                    f"{self._save_error}")
                time.sleep(min(1.0, self.backoff_cap, self.backoff_base * 0.04 * 2 ** stuck))
            self._retry_save()
            if self._unsaved:
                raise ShipError(f"everything was shipped but the checkpoint in {self.checkpointer.state_dir} "
                                f"could not be written ({self._save_error}); the next run re-sends the last "
                                "batches (the store keeps one copy)")
            self._update_gauges()
            self._notify("tick", self.wall())
            self._notify("close", self.wall())
            if self.tailer.denied:  # the daemon retries them (and counts them in /metrics); --once must not pass
                first = sorted(self.tailer.denied)[0]
                others = len(self.tailer.denied) - 1
                raise ShipError(f"cannot read {first}: permission denied"
                                + (f" (and {others} more unreadable file{'s' if others > 1 else ''})" if others else "")
                                + "; everything else was shipped")
        finally:
            self._stop_uploads(timeout=None)
            self.tailer.close()

    def step(self, stop: threading.Event | None = None) -> bool:
        """One scan, the uploads that finished, and the uploads that are due (at most
        ``LOGSHIELD_UPLOAD_CONCURRENCY`` in flight). True when a finished upload left more to do at once."""
        self._retry_save()
        self.tailer.scan()
        finished = self._harvest(block=False)
        now = self.clock()
        for stream in list(self.tailer.streams.values()):
            if stop is not None and stop.is_set():
                return False
            if len(self._inflight) >= self.config.upload_concurrency:
                break  # the next finished upload wakes the loop
            batch = stream.pending
            if batch is None or stream.stalled or stream.id in self._inflight:
                continue
            due = (batch.replay is not None or batch.final or batch.full
                   or now - batch.opened >= self.config.batch_max_age)
            if due and not self._start(stream, stop=stop):
                return False
        self._update_gauges()
        return finished > 0 and len(self._inflight) < self.config.upload_concurrency

    def flush(self, *, deadline: float) -> None:
        """Ship every open batch (complete lines only), giving up at ``deadline``; unshipped data stays in files.

        A batch whose upload gave up (its next retry would end after ``deadline``) is not started again: retrying
        with a fresh attempt count in the last moments was a busy loop of puts against a failing store."""
        self._gave_up.clear()
        while self.clock() < deadline:
            for stream in list(self.tailer.streams.values()):
                if (stream.pending is not None and not stream.stalled and stream.id not in self._inflight
                        and stream.id not in self._gave_up
                        and len(self._inflight) < self.config.upload_concurrency):
                    self._start(stream, deadline=deadline)
            if not self._inflight:
                break
            left = deadline - self.clock()
            self._harvest(block=True, timeout=max(0.0, left) if math.isfinite(left) else None)
        self._report_leftovers()
        self._update_gauges()

    def _report_leftovers(self) -> None:
        """One log line saying what was not acknowledged at shutdown (it stays in the files)."""
        streams = [s for s in self.tailer.streams.values() if s.unshipped > 0 or s.pending is not None]
        if not streams:
            return
        pending = [s for s in streams if s.pending is not None]
        log.warning("stopping with data not acknowledged by the store; it stays in the files and ships after the "
                    "restart", extra={"files": len(streams), "unshipped_bytes": sum(s.unshipped for s in streams),
                                      "batches": len(pending), "batches_in_flight": len(self._inflight),
                                      "lines_in_batches": sum(s.pending.lines for s in pending if s.pending)})

    def close(self) -> None:
        """Stop the upload threads (after the uploads in flight finish) and release the files."""
        self._stop_uploads(timeout=None)
        self.tailer.close()

    def _clean_up_after_crash(self) -> None:
        """Remove what a killed predecessor may have left in a local store (temp files of interrupted puts)."""
        if not self._is_local:
            return
        try:
            removed = self.sink.remove_stale_temporaries()  # type: ignore[attr-defined]
        except OSError as exc:
            log.warning("cannot clean up temp files in the local store", extra={"error": type(exc).__name__})
            return
        if removed:
            log.info("removed temp files of interrupted uploads", extra={"count": removed})

    # -- shipping: the pipeline thread starts and finishes uploads; a small pool compresses and puts
    def _uploads(self) -> UploadPool:
        if self._pool is None:
            self._pool = UploadPool(self.config.upload_concurrency, name="logshield-upload")
        return self._pool

    def _stop_uploads(self, *, timeout: float | None) -> None:
        pool, self._pool = self._pool, None
        if pool is not None and pool.shutdown(timeout=timeout):
            log.warning("upload still waiting for the store at shutdown; abandoned (its batch is not acknowledged "
                        "and ships after the restart)", extra={"uploads": len(self._inflight)})
        self._inflight.clear()

    def _start(self, stream: Stream, *, stop: threading.Event | None = None, deadline: float | None = None,
               attempts: int | None = None) -> bool:
        """Record the batch's intent durably, then hand it to an upload thread. False when stopped/out of time."""
        batch = stream.pending
        assert batch is not None
        if batch.replay is not None:
            self.tailer.load_replay(stream)
            intent = batch.replay
            if not batch.lines and not batch.incomplete:
                return True  # the file changed under the re-read; retried after the next scan
            if batch.incomplete:
                return self._resolve_incomplete_replay(stream, intent, stop=stop, deadline=deadline,
                                                       attempts=attempts)
        else:
            first = event_time(batch.first_record()) or file_time(batch.mtime or self.wall())
            key = object_key(service=stream.service, host=self.config.host, event_time=first, fingerprint=stream.id,
                             start=batch.start, end=batch.end, compression=self.config.compression)
            intent = Intent(start=batch.start, end=batch.end, final=batch.final, key=key,
                            compression=self.config.compression, first_event=first.isoformat(),
                            check=check_of(stream.tail))  # the bytes before `end` (what a restart verifies)
            # Durable before the upload: a restart must re-use exactly this range and key.
            try:
                self.checkpointer.record_intent(stream.id, intent)
            except OSError as exc:
                self._save_failed(exc)
                return True  # not uploaded; planned again on the next step
            self._save_error = None
            batch.replay = intent
        upload = _Upload(stream, batch, intent, once=attempts is not None, flushing=deadline is not None)
        future = self._uploads().submit(self._transfer, upload, stop, deadline, attempts)
        future.add_done_callback(lambda _: self.wake.set())
        self._inflight[stream.id] = future
        return True

    def _transfer(self, up: _Upload, stop: threading.Event | None, deadline: float | None,
                  attempts: int | None) -> _Upload:
        """On an upload thread: redact (optional), compress, hash and put with retries. Never touches state."""
        content = up.batch.body
        if self.redactor is not None:
            content = b"".join(self.redactor(split_lines(content)))
        body = compress(content, up.intent.compression)
        up.content, up.size, up.sha = content, len(body), hashlib.sha256(body).hexdigest()
        last = event_time(up.batch.last_record())
        up.metadata = {
            sink_base.META_SHA256: up.sha,
            sink_base.META_LINES: str(up.batch.lines),
            sink_base.META_SOURCE: up.stream.id,
            sink_base.META_BYTE_START: str(up.intent.start),
            sink_base.META_BYTE_END: str(up.intent.end),
            sink_base.META_FIRST_EVENT: up.intent.first_event,
            sink_base.META_LAST_EVENT: last.isoformat() if last else up.intent.first_event,
        }

        def put() -> None:
            result = self.sink.put(up.intent.key, body, sha256=up.sha, metadata=up.metadata,
                                   content_encoding=CONTENT_ENCODING[up.intent.compression])
            up.existed = result.already_existed
            if result.already_existed:
                self.metrics.batches_existing.inc()

        try:
            up.stored = self._with_retries(put, up.stream, stop=stop, deadline=deadline, attempts=attempts)
        except ShipError as exc:
            up.error = exc
        return up

    def _harvest(self, *, block: bool, timeout: float | None = None) -> int:
        """Finish the uploads that are done (waiting for the first one when ``block``), in the pipeline thread."""
        if block and self._inflight:
            concurrent.futures.wait(list(self._inflight.values()), timeout=timeout,
                                    return_when=concurrent.futures.FIRST_COMPLETED)
        finished = 0
        for fp, future in list(self._inflight.items()):
            if future.done():
                del self._inflight[fp]
                finished += 1
                self._finish(future.result())
        return finished

    def _finish(self, up: _Upload) -> None:
        """Observers, then the checkpoint — only for what the store acknowledged."""
        if up.error is not None:
            raise up.error
        if not up.stored or up.stream.stalled:
            if up.flushing:
                self._gave_up.add(up.stream.id)
            return  # stopped, out of time, or held on a conflict: the data stays in the file
        if self.observers:
            failed = self._notify("batch_shipped", ShippedBatch(
                key=up.intent.key, sha256=up.sha, size=up.size, lines=up.batch.lines, source=up.stream.id,
                byte_start=up.intent.start, byte_end=up.intent.end,
                first_event=up.metadata[sink_base.META_FIRST_EVENT], last_event=up.metadata[sink_base.META_LAST_EVENT],
                service=up.stream.service, body=up.content, already_existed=up.existed))
            if failed is not None:
                self.metrics.failures.labels("observer").inc()
                if up.once:
                    raise ShipError(f"cannot record {up.intent.key} after upload: {failed}")
                return  # not acknowledged: offered again on the next step
        self._acknowledge(up.stream, lines=up.batch.lines)

    def _notify(self, hook: str, *args: object) -> str | None:
        """Call ``hook`` on every observer; the error of the first critical observer that failed, else None."""
        critical_error = None
        for observer in self.observers:
            try:
                getattr(observer, hook)(*args)
            except Exception as exc:
                error = f"{type(exc).__name__}: {sanitize(str(exc))}"
                log.error("observer failed", extra={"observer": type(observer).__name__, "hook": hook,
                                                    "error": error})
                if getattr(observer, "critical", False) and critical_error is None:
                    critical_error = error
        return critical_error

    def _resolve_incomplete_replay(self, stream: Stream, intent: Intent, **retry: object) -> bool:
        """The recorded range cannot be re-read (file truncated since): trust the store, else read on."""
        found: list[bool] = []

        def head() -> None:
            found.append(self.sink.head(intent.key) is not None)

        if not self._with_retries(head, stream, **retry):  # type: ignore[arg-type]
            return False
        if found and found[0]:
            self._acknowledge(stream, lines=0)
        else:
            log.warning("batch recorded before a restart can no longer be re-read and is not in the store; "
                        "continuing from the last acknowledged offset", extra={"path": stream.path})
            try:
                self.checkpointer.update(stream.id, replace(self.checkpointer.streams[stream.id], intent=None))
            except OSError as exc:
                self._save_failed(exc)
                return True  # decided again on the next step
            self.tailer.abandon_replay(stream)
        return True

    def _acknowledge(self, stream: Stream, *, lines: int) -> None:
        batch = stream.pending
        assert batch is not None
        try:
            self.checkpointer.acknowledge(stream.id, batch.end)
        except OSError as exc:  # in memory it advanced; written by the next successful save
            self._save_failed(exc)
            self._unsaved = True
        self.shipped_batches += 1
        self.metrics.lines_shipped.inc(lines)
        self.metrics.bytes_shipped.inc(batch.end - batch.start)
        self.metrics.batches.inc()
        self.tailer.acknowledged(stream)
        self.readiness.update(store_ok=True, uploaded=True)

    def _with_retries(self, op: Callable[[], None], stream: Stream, *, stop: threading.Event | None,
                      deadline: float | None, attempts: int | None) -> bool:
        attempt = 0
        while True:
            try:
                op()
                return True
            except ObjectConflictError as exc:
                # Same key, other bytes: the configuration changed since the batch was recorded (compression,
                # redaction). Never overwrite; hold this stream (data stays in the file) and say so.
                self.metrics.failures.labels("conflict").inc()
                stream.stalled = sanitize(str(exc))
                log.error("object exists with different content; this file is held until resolved",
                          extra={"path": stream.path, "key": stream.pending.replay.key if stream.pending and
                                 stream.pending.replay else ""})
                if attempts is not None:
                    raise ShipError(f"cannot ship {stream.path}: {stream.stalled}") from None
                return False
            except (SinkUnavailableError, SinkError, OSError) as exc:
                reason = "unavailable" if isinstance(exc, (SinkUnavailableError, OSError)) else "error"
                self.metrics.failures.labels(reason).inc()
                self.readiness.update(store_ok=False, pending=True)
                attempt += 1
                if attempts is not None and reason == "error":
                    raise ShipError(f"store {self.sink.display_url} refused the upload: "
                                    f"{type(exc).__name__}: {sanitize(str(exc))}") from None
                if attempts is not None and attempt >= attempts:
                    raise ShipError(f"store {self.sink.display_url} did not accept the upload after {attempt} "
                                    f"attempts: {type(exc).__name__}: {sanitize(str(exc))}") from None
                delay = min(self.backoff_cap, self.backoff_base * 2 ** min(attempt - 1, 16)) * random.uniform(0.5, 1)
                log.warning("upload failed; retrying", extra={"error": f"{type(exc).__name__}: {sanitize(str(exc))}",
                                                              "attempt": attempt, "retry_in": round(delay, 2)})
                if deadline is not None:
                    if self.clock() + delay > deadline:
                        return False
                    time.sleep(delay)
                elif stop is not None:
                    if stop.wait(delay):
                        return False
                else:
                    time.sleep(delay)
                self.metrics.retries.inc()

    # -- the checkpoint file failing (full disk, EMFILE): log, back off, retry; never crash, never lose data
    def _save_failed(self, exc: OSError) -> None:
        self.metrics.failures.labels("checkpoint").inc()
        if is_descriptor_exhaustion(exc):
            self.tailer.descriptors.exhausted(self.tailer.open_files, exc)
        self._save_error = f"{type(exc).__name__}: {exc.strerror or exc}"
        now = self.clock()
        if now - self._save_error_logged >= 60:
            self._save_error_logged = now
            log.error("cannot write the checkpoint; retrying (the data stays in the files)",
                      extra={"state_dir": str(self.checkpointer.state_dir), "error": self._save_error})

    def _retry_save(self) -> None:
        if not self._unsaved:
            return
        try:
            self.checkpointer.save()
        except OSError as exc:
            self._save_failed(exc)
            return
        self._unsaved = False
        self._save_error = None

    # -- observability and housekeeping
    def _update_gauges(self) -> None:
        streams = self.tailer.streams.values()
        now = self.clock()
        self.metrics.streams.set(len(self.tailer.streams))
        self.metrics.unshipped.set(sum(s.unshipped for s in streams))
        self.metrics.stalled.set(sum(1 for s in streams if s.stalled))
        self.metrics.unreadable_files.set(len(self.tailer.denied))
        self.metrics.open_files.set(self.tailer.open_files)
        self.metrics.waiting_files.set(self.tailer.waiting)
        ages = [now - s.pending.opened for s in streams if s.pending is not None and s.pending.opened]
        self.metrics.oldest.set(max(ages, default=0.0))
        # "Pending" = something the agent could ship; an unterminated line waiting for its newline is not.
        self.readiness.update(pending=any(
            s.pending is not None or (s.fd is not None and s.read_offset < s.size) for s in streams))

    def _housekeeping(self) -> None:
        now = self.clock()
        if now - self._last_housekeeping < HOUSEKEEPING_EVERY:
            return
        self._last_housekeeping = now
        self.housekeeping()

    def housekeeping(self) -> None:
        """Delete shipped rotated files per policy, sweep expired local objects, forget long-gone streams."""
        wall = self.wall()
        cfg = self.config
        candidates = {
            s.path: RotatedFile(s.path, s.size, s.mtime, s.dev, s.ino)
            for s in self.tailer.streams.values()
            if s.rotated and not s.gone and (s.fd is not None or s.parked) and s.drained() and s.acked >= s.size
            and s.pending is None
        }
        for path in plan_rotated_deletions(candidates.values(), mode=cfg.rotated_retention, grace=cfg.rotated_grace,
                                           keep_days=cfg.rotated_keep_days, keep_bytes=cfg.rotated_keep_bytes,
                                           now=wall):
            try:
                if delete_rotated(self.tailer.fs, candidates[path]):
                    log.info("deleted fully shipped rotated file", extra={"path": path})
            except OSError as exc:
                log.warning("cannot delete rotated file", extra={"path": path, "error": type(exc).__name__})
        if self._sweeper is not None:
            try:
                self._sweeper.step()
            except (SinkError, OSError) as exc:
                self._sweeper = LocalSweeper(self.sink, clock=self.clock)  # type: ignore[arg-type]
                log.warning("retention sweep failed", extra={"error": type(exc).__name__})
        for fp, stream in self.tailer.streams.items():
            state = self.checkpointer.streams.get(fp)
            if state is not None:
                self.checkpointer.streams[fp] = replace(state, seen=wall, path=stream.path)
        copies = self.tailer.identifier.recorded_copies()
        for fp, path in copies.items():
            state = self.checkpointer.streams.get(fp)
            if state is not None:
                self.checkpointer.streams[fp] = replace(state, seen=wall, path=path)
        old = [fp for fp, st in self.checkpointer.streams.items()
               if fp not in self.tailer.streams and fp not in copies and st.intent is None
               and wall - st.seen > FORGET_AFTER]
        try:
            self.checkpointer.forget(old)
        except OSError as exc:
            self._save_failed(exc)
            self._unsaved = True
