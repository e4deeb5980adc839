"""Snapshots in, JSON lines out: detect and operate in one batched call, fail closed on error or timeout.

Detection runs on a dedicated thread so a batch that hangs (a pathological regex, a stuck model) can be
abandoned after ``detection_timeout``: its records are written without any application text, and the
application never waits on it. Records from that thread never re-enter the handler.
"""

from __future__ import annotations

import concurrent.futures
import gc
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .config import HandlerConfig
from .output import encode_lines, failed_closed_document, redact_documents, redaction_inputs
from .record import RecordSnapshot

__all__ = ["Pipeline", "freeze_long_lived_objects", "in_logshield_thread"]

_internal = threading.local()
_log = logging.getLogger("presidio_logshield")


def in_logshield_thread() -> bool:
    """True on the handler's own worker and detection threads (their records are not logged again)."""
    return getattr(_internal, "active", False)


def mark_logshield_thread() -> None:
    _internal.active = True


def freeze_long_lived_objects() -> None:
    """Collect garbage once, then exempt everything alive (models, recognizers, the application's own start-up
    objects) from future collections: full collections otherwise rescan them all, tens of milliseconds each."""
    gc.collect()
    gc.freeze()


class Pipeline:
    """Turns a batch of snapshots into text to append; never raises."""

    def __init__(self, config: HandlerConfig, redactor_factory: Callable[[], Any]) -> None:
        self.config = config
        self._redactor_factory = redactor_factory
        self._redactor: Any = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        #: Optional callable turning each document into its sealed line (record chain); set by the handler.
        self.sealer: Callable[[dict[str, Any]], bytes] | None = None
        self.failed_closed = 0

    # -- lifecycle -----------------------------------------------------------------------------------------
    def _detector(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="logshield-detect", initializer=mark_logshield_thread)
        return self._executor

    def reset_after_fork(self) -> None:
        # The parent's detection thread does not exist in the child; its executor must not be used.
        self._executor = None

    def close(self) -> None:
        if self._executor is not None:
            executor, self._executor = self._executor, None
            executor.shutdown(wait=True, cancel_futures=True)

    @property
    def redactor(self) -> Any:
        if self._redactor is None:
            self._redactor = self._redactor_factory()
            if self.config.gc_freeze:
                freeze_long_lived_objects()
        return self._redactor

    # -- work ----------------------------------------------------------------------------------------------
    def _redact(self, snaps: Sequence[RecordSnapshot]) -> list[dict[str, Any]]:
        fields = frozenset(self.config.pseudonym_fields)
        redacted = self.redactor.redact_batch(redaction_inputs(snaps, fields))
        docs = redact_documents(snaps, redacted, self.config.service, self.config.host)
        for name in self.config.pseudonym_fields:
            for snap, doc in zip(snaps, docs, strict=True):
                value = snap.context.get(name, snap.extra.get(name))
                if value is not None:
                    doc[name] = self.redactor.pseudonym(name.upper(), str(value))
        return docs

    def _redact_each(self, snaps: Sequence[RecordSnapshot]) -> list[dict[str, Any]]:
        """After a batch failed: one record at a time, so one bad record does not withhold its neighbours."""
        docs = []
        for snap in snaps:
            try:
                docs.extend(self._redact([snap]))
            except Exception as exc:
                docs.append(self._fail_closed(snap, exc))
        return docs

    def _fail_closed(self, snap: RecordSnapshot, error: BaseException | str) -> dict[str, Any]:
        self.failed_closed += 1
        return failed_closed_document(snap, self.config.service, self.config.host, error)

    def documents(self, snaps: Sequence[RecordSnapshot]) -> list[dict[str, Any]]:
        future = None
        try:
            _ = self.redactor  # loading Presidio and spaCy takes seconds: not part of the detection timeout
            future = self._detector().submit(self._redact, snaps)
            return future.result(timeout=self.config.detection_timeout)
        except concurrent.futures.TimeoutError:
            if future is not None:
                future.cancel()
            _log.warning("logshield: redaction of %d records exceeded %.1fs; written without content",
                         len(snaps), self.config.detection_timeout)
            return [self._fail_closed(snap, "DetectionTimeout") for snap in snaps]
        except Exception as exc:
            if len(snaps) == 1:
                return [self._fail_closed(snaps[0], exc)]
            try:
                future = self._detector().submit(self._redact_each, snaps)
                return future.result(timeout=self.config.detection_timeout)
            except Exception as exc2:
                return [self._fail_closed(snap, exc2 if not isinstance(
                    exc2, concurrent.futures.TimeoutError) else "DetectionTimeout") for snap in snaps]

    def lines(self, docs: Sequence[dict[str, Any]], sealer: Callable[[dict[str, Any]], bytes] | None = None
              ) -> bytes:
        """Encoded (and, with a chain, sealed) newline-terminated lines."""
        seal = sealer or self.sealer
        if seal is None:
            return encode_lines(docs)
        return b"\n".join(map(seal, docs)) + b"\n" if docs else b""

    def render(self, snaps: Sequence[RecordSnapshot], sealer: Callable[[dict[str, Any]], bytes] | None = None
               ) -> bytes:
        """Redacted, sealed, encoded lines for ``snaps`` — or fail-closed lines; never raises."""
        try:
            return self.lines(self.documents(snaps), sealer)
        except Exception as exc:  # encoding or sealing failed: still never emit raw text
            docs = [self._fail_closed(snap, exc) for snap in snaps]
            try:
                return self.lines(docs, sealer)
            except Exception:
                _log.debug("logshield: sealing a fail-closed record failed", exc_info=False)
                return encode_lines(docs)
