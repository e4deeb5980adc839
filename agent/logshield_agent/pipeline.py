"""The agent's data path: tail → batch → (redact) → compress → conditional put → checkpoint.

One thread runs the loop. Per stream at most one batch is in flight (back-pressure: nothing more is read from
that file until the store answered), and a batch is never bigger than ``LOGSHIELD_BATCH_MAX_BYTES`` plus one line,
so memory is bounded however large the backlog.

Exactly once, per stream (fingerprint) and byte range:

1. the batch ``[start, end)`` gets a key derived from the fingerprint and range, and deterministic bytes;
2. the *intent* (range, key, compression, chosen event time) is persisted in the checkpoint **before** the upload;
3. the put is conditional: an identical existing object is success, different content is never overwritten;
4. only after the store acknowledged, the checkpoint offset moves to ``end`` and the intent is cleared.

After a crash between 2 and 4, the restart re-reads exactly ``[start, end)`` and puts the same bytes under the
same key: the store either already has them (success) or gets them now. No second object with other boundaries
can cover the same lines, and nothing is acknowledged that the store does not hold.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from ._log import sanitize
from .config import AgentConfig
from .health import AgentMetrics, Readiness
from .retention import RotatedFile, plan_rotated_deletions, sweep_expired
from .sinks import base as sink_base
from .sinks.base import ObjectConflictError, Sink, SinkError, SinkUnavailableError
from .sinks.keys import object_key
from .sinks.local import LocalDirSink
from .sources.checkpoint import Checkpointer, Intent
from .sources.fs import FileSystem
from .sources.tailer import Stream, Tailer
from .transforms.compress import CONTENT_ENCODING, compress
from .transforms.events import event_time

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
    source: str  # stream fingerprint
    byte_start: int
    byte_end: int
    first_event: str
    last_event: str
    service: str
    records: Sequence[bytes]  # the lines as stored (after the optional redaction pass), newline-terminated
    already_existed: bool


class PipelineObserver:
    """Hooks for work that follows the data path (archive digests, anomaly alerts). Defaults do nothing.

    ``batch_shipped`` runs after the store acknowledged a batch and before the checkpoint advances, so an observer
    that persists something there sees every batch at least once (again after a crash replay: de-duplicate by key).
    An exception from an observer is logged and never stops shipping — unless the observer is ``critical`` (its
    record is part of the evidence, e.g. the digest ledger): then the checkpoint does not advance and the batch is
    offered again later (its put is idempotent), and ``--once`` fails with the reason.
    """

    critical = False

    def batch_shipped(self, batch: ShippedBatch) -> None:
        """A batch is in the store."""

    def tick(self, wall: float) -> None:
        """Called on every loop iteration of ``run`` (and once per ``run_once``) with the wall-clock time."""

    def close(self, wall: float) -> None:
        """The pipeline stops (after the final flush): write what must be written at shutdown."""


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
            settle=settle if settle is not None else max(2 * config.poll_interval, 1.0),
            fs=fs, clock=clock, wall=wall, on_read=self._on_read,
        )
        self._last_housekeeping = clock()
        self.shipped_batches = 0
        self._is_local = isinstance(sink, LocalDirSink)

    def _on_read(self, lines: int, nbytes: int) -> None:
        self.metrics.lines_read.inc(lines)
        self.metrics.bytes_read.inc(nbytes)

    # -- entry points
    def run(self, stop: threading.Event) -> None:
        """Ship until ``stop`` is set, then ship the open batches within ``LOGSHIELD_SHUTDOWN_GRACE``."""
        try:
            while not stop.is_set():
                self.wake.clear()
                busy = self.step(stop)
                self._housekeeping()
                self._notify("tick", self.wall())
                if not busy:
                    self.wake.wait(self.config.poll_interval)
                    if stop.is_set():
                        break
            self.flush(deadline=self.clock() + self.config.shutdown_grace)
            self._notify("close", self.wall())
        finally:
            self.tailer.close()

    def run_once(self) -> None:
        """Ship everything readable now and wait for the store's acknowledgement; ``ShipError`` otherwise."""
        try:
            while True:
                self.tailer.scan(once=True)
                shipped = False
                for stream in list(self.tailer.streams.values()):
                    if stream.stalled:
                        raise ShipError(f"cannot ship {stream.path}: {stream.stalled}")
                    if stream.pending is not None:
                        self._ship(stream, attempts=self.once_attempts)
                        shipped = True
                if not shipped and not any(
                    s.fd is not None and s.read_offset < s.size for s in self.tailer.streams.values()
                ):
                    break
            self._update_gauges()
            self._notify("tick", self.wall())
            self._notify("close", self.wall())
        finally:
            self.tailer.close()

    def step(self, stop: threading.Event | None = None) -> bool:
        """One scan and the uploads that are due. True when more data is waiting (don't sleep)."""
        self.tailer.scan()
        now = self.clock()
        more = False
        for stream in list(self.tailer.streams.values()):
            if stop is not None and stop.is_set():
                return False
            batch = stream.pending
            if batch is None or stream.stalled:
                continue
            due = (batch.replay is not None or batch.final or batch.full
                   or now - batch.opened >= self.config.batch_max_age)
            if due:
                if not self._ship(stream, stop=stop):
                    return False
                # A full batch means a backlog: go again without sleeping (never spins on a failing read).
                more = more or (batch.full and stream.fd is not None and stream.read_offset < stream.size)
        self._update_gauges()
        return more

    def flush(self, *, deadline: float) -> None:
        """Ship every open batch (complete lines only), giving up at ``deadline``; unshipped data stays in files."""
        for stream in list(self.tailer.streams.values()):
            if stream.pending is not None and not stream.stalled and not self._ship(stream, deadline=deadline):
                log.warning("shutdown grace period over; remaining data stays in the files and ships on restart")
                break
        self._update_gauges()

    # -- shipping
    def _ship(self, stream: Stream, *, stop: threading.Event | None = None, deadline: float | None = None,
              attempts: int | None = None) -> bool:
        """Upload the stream's pending batch and advance its checkpoint. False when stopped or out of time."""
        batch = stream.pending
        assert batch is not None
        if batch.replay is not None:
            self.tailer.load_replay(stream)
            intent = batch.replay
            if not batch.records and not batch.incomplete:
                return True  # the file changed under the re-read; retried after the next scan
            if batch.incomplete:
                return self._resolve_incomplete_replay(stream, intent, stop=stop, deadline=deadline,
                                                       attempts=attempts)
        else:
            first = event_time(batch.records[0]) or datetime.fromtimestamp(batch.mtime or self.wall(), tz=timezone.utc)
            key = object_key(service=stream.service, host=self.config.host, event_time=first, fingerprint=stream.fp,
                             start=batch.start, end=batch.end, compression=self.config.compression)
            intent = Intent(start=batch.start, end=batch.end, final=batch.final, key=key,
                            compression=self.config.compression, first_event=first.isoformat())
        records = self.redactor(batch.records) if self.redactor is not None else batch.records
        body = compress(b"".join(records), intent.compression)
        sha = hashlib.sha256(body).hexdigest()
        last = event_time(batch.records[-1])
        metadata = {
            sink_base.META_SHA256: sha,
            sink_base.META_LINES: str(len(batch.records)),
            sink_base.META_SOURCE: stream.fp,
            sink_base.META_BYTE_START: str(intent.start),
            sink_base.META_BYTE_END: str(intent.end),
            sink_base.META_FIRST_EVENT: intent.first_event,
            sink_base.META_LAST_EVENT: last.isoformat() if last else intent.first_event,
        }
        if batch.replay is None:
            # Durable before the upload: a restart must re-use exactly this range and key.
            self.checkpointer.record_intent(stream.fp, intent)
            batch.replay = intent

        existed: list[bool] = []

        def put() -> None:
            result = self.sink.put(intent.key, body, sha256=sha, metadata=metadata,
                                   content_encoding=CONTENT_ENCODING[intent.compression])
            existed.append(result.already_existed)
            if result.already_existed:
                self.metrics.batches_existing.inc()

        if not self._with_retries(put, stream, stop=stop, deadline=deadline, attempts=attempts):
            return False
        if self.observers:
            failed = self._notify("batch_shipped", ShippedBatch(
                key=intent.key, sha256=sha, size=len(body), lines=len(records), source=stream.fp,
                byte_start=intent.start, byte_end=intent.end, first_event=metadata[sink_base.META_FIRST_EVENT],
                last_event=metadata[sink_base.META_LAST_EVENT], service=stream.service, records=records,
                already_existed=bool(existed and existed[-1])))
            if failed is not None:
                self.metrics.failures.labels("observer").inc()
                if attempts is not None:
                    raise ShipError(f"cannot record {intent.key} after upload: {failed}")
                return False  # not acknowledged: offered again after the poll interval
        self._acknowledge(stream, lines=len(batch.records))
        return True

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
            self.checkpointer.update(stream.fp, replace(self.checkpointer.streams[stream.fp], intent=None))
            self.tailer.abandon_replay(stream)
        return True

    def _acknowledge(self, stream: Stream, *, lines: int) -> None:
        batch = stream.pending
        assert batch is not None
        self.checkpointer.acknowledge(stream.fp, batch.end)
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
                return True
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

    # -- observability and housekeeping
    def _update_gauges(self) -> None:
        streams = self.tailer.streams.values()
        now = self.clock()
        self.metrics.streams.set(len(self.tailer.streams))
        self.metrics.unshipped.set(sum(s.unshipped for s in streams))
        self.metrics.stalled.set(sum(1 for s in streams if s.stalled))
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
        candidates = [
            RotatedFile(s.path, s.size, s.mtime)
            for s in self.tailer.streams.values()
            if s.rotated and not s.gone and s.fd is not None and s.drained() and s.acked >= s.size
            and s.pending is None
        ]
        for path in plan_rotated_deletions(candidates, mode=cfg.rotated_retention, grace=cfg.rotated_grace,
                                           keep_days=cfg.rotated_keep_days, keep_bytes=cfg.rotated_keep_bytes,
                                           now=wall):
            try:
                self.tailer.fs.unlink(path)
                log.info("deleted fully shipped rotated file", extra={"path": path})
            except OSError as exc:
                log.warning("cannot delete rotated file", extra={"path": path, "error": type(exc).__name__})
        if self._is_local and cfg.retention_days:
            try:
                sweep_expired(self.sink)  # type: ignore[arg-type]
            except (SinkError, OSError) as exc:
                log.warning("retention sweep failed", extra={"error": type(exc).__name__})
        for fp, stream in self.tailer.streams.items():
            state = self.checkpointer.streams.get(fp)
            if state is not None:
                self.checkpointer.streams[fp] = replace(state, seen=wall, path=stream.path)
        old = [fp for fp, st in self.checkpointer.streams.items()
               if fp not in self.tailer.streams and st.intent is None and wall - st.seen > FORGET_AFTER]
        self.checkpointer.forget(old)
