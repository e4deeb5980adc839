"""Snapshots in, documents out: detect and operate in one batched call, fail closed on error or timeout.

Detection runs on a thread of its own (:class:`~presidio_logshield.runner.DeadlineRunner`) so a batch that hangs (an
object whose ``__str__`` blocks, a stuck model, a recognizer waiting on something) can be abandoned after
``detection_timeout``. Its records are then tried again without it, so only the one that hangs is written without
application text: when the batch was stuck turning one record's objects into text, that record is the culprit and the
others are tried again as a batch; when it was stuck in detection itself, each record is tried alone, with a share
of the deadline. The next batch gets a fresh thread — and, when the stuck call still holds the shared redactor, a
redactor of its own (the shared one is replaced for everyone) — so later records are redacted normally. Records
logged from these threads never re-enter the handler.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .config import HandlerConfig
from .output import (
    encode_lines,
    failed_closed_document,
    name_inputs,
    redact_documents,
    redaction_inputs,
    secret_key_test,
)
from .record import KeyedMessage, RecordSnapshot
from .runner import DeadlineExceeded, DeadlineRunner, TooManyAbandoned

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


#: Abandoned detection threads still computing (using CPU) before batches are withheld without waiting.
MAX_ABANDONED = 2
#: Abandoned detection threads in all (most wait on something and cost only memory) before batches are withheld.
MAX_STUCK = 64
#: Logger and thread names remembered redacted (a flood of unique thread names just starts the cache over).
NAME_CACHE_SIZE = 4096
#: After a batch timed out, each record tried alone gets this share of ``detection_timeout``.
RETRY_SHARE = 0.25


class Pipeline:
    """Turns a batch of snapshots into documents, and documents into lines; never raises.

    ``fresh_redactor_factory`` builds a redactor used by nobody else; it replaces the shared one when a batch overran
    its deadline and its thread still runs inside the shared redactor (which serialises its callers). Not
    thread-safe: the handler calls :meth:`documents` under its render lock.
    """

    def __init__(self, config: HandlerConfig, redactor_factory: Callable[[], Any], *,
                 fresh_redactor_factory: Callable[[], Any] | None = None,
                 on_replaced: Callable[[Any], None] | None = None,
                 max_abandoned: int = MAX_ABANDONED, max_stuck: int = MAX_STUCK) -> None:
        self.config = config
        self._redactor_factory = redactor_factory
        self._fresh_redactor_factory = fresh_redactor_factory
        self._on_replaced = on_replaced
        self._redactor: Any = None
        self._runner = DeadlineRunner(name="logshield-detect", max_abandoned=max_abandoned, max_stuck=max_stuck,
                                      initializer=mark_logshield_thread)
        #: The redactor a timed-out batch was left running in (and the thread still running it).
        self._stuck: tuple[Any, threading.Thread] | None = None
        #: Optional callable turning each document into its sealed line (record chain); set by the handler.
        self.sealer: Callable[[dict[str, Any]], bytes] | None = None
        self.failed_closed = 0
        self.redactors_replaced = 0
        #: Records tried alone (or again without a culprit) after their batch timed out.
        self.retried = 0
        #: Logger and thread names, redacted once each: ``raw -> (redacted, summary)``.
        self._names: dict[str, tuple[str, Any]] = {}
        self._is_secret: Callable[[str], bool] | None = None
        self._is_secret_ready = False

    # -- lifecycle -----------------------------------------------------------------------------------------
    def reset_after_fork(self) -> None:
        # The parent's detection threads do not exist in the child.
        self._runner.reset_after_fork()
        self._stuck = None

    def close(self) -> None:
        self._runner.close(timeout=self.config.detection_timeout + 1.0)

    @property
    def abandoned_running(self) -> int:
        """Detection threads abandoned after a timeout that are still running."""
        return self._runner.abandoned_running

    @property
    def loaded(self) -> bool:
        """Whether the redactor (Presidio, spaCy) has been built: until then the next batch loads it."""
        return self._redactor is not None

    @property
    def redactor(self) -> Any:
        if self._redactor is None:
            self._redactor = self._redactor_factory()
            if self.config.gc_freeze:
                freeze_long_lived_objects()
        return self._redactor

    def _usable_redactor(self) -> Any:
        """The redactor for the next batch: not one a timed-out call is still holding, when another can be made."""
        redactor = self.redactor
        stuck = self._stuck
        if stuck is not None:
            stuck_redactor, thread = stuck
            if not thread.is_alive():
                self._stuck = None
            elif stuck_redactor is redactor and self._fresh_redactor_factory is not None and _held(redactor):
                self._redactor = self._fresh_redactor_factory()
                self.redactors_replaced += 1
                self._stuck = None
                if self._on_replaced is not None:
                    self._on_replaced(redactor)
                redactor = self._redactor
        return redactor

    def names(self) -> dict[str, tuple[str, Any]]:
        """The redacted logger and thread names seen so far (for fail-closed lines written without the pipeline)."""
        return self._names

    # -- work ----------------------------------------------------------------------------------------------
    def _redact(self, snaps: Sequence[RecordSnapshot], redactor: Any, progress: list[int]) -> list[dict[str, Any]]:
        fields = frozenset(self.config.pseudonym_fields)
        if not self._is_secret_ready and any(type(snap.message) is KeyedMessage for snap in snaps):
            self._is_secret = secret_key_test(self.config.redaction)  # imports detection: only once it is needed
            self._is_secret_ready = True
        values = redaction_inputs(snaps, fields, self._is_secret, progress)
        count = len(values)
        names = self._names
        if len(names) >= NAME_CACHE_SIZE:
            names.clear()
        new_names = name_inputs(snaps, names)  # in the same batch: one detection pass
        redacted = redactor.redact_batch(values + new_names if new_names else values)
        if new_names:
            names.update(zip(new_names, redacted[count:], strict=True))
        docs = redact_documents(snaps, redacted, self.config.service, self.config.host, names)
        for name in self.config.pseudonym_fields:
            for snap, doc in zip(snaps, docs, strict=True):
                value = snap.context.get(name, snap.extra.get(name))
                if value is not None:
                    doc[name] = redactor.pseudonym(name.upper(), str(value))
        return docs

    def _redact_each(self, snaps: Sequence[RecordSnapshot], redactor: Any) -> list[dict[str, Any]]:
        """After a batch failed: one record at a time, so one bad record does not withhold its neighbours."""
        docs = []
        for snap in snaps:
            try:
                docs.extend(self._redact([snap], redactor, [-1]))
            except Exception as exc:
                docs.append(self._fail_closed(snap, exc))
        return docs

    def _fail_closed(self, snap: RecordSnapshot, error: BaseException | str) -> dict[str, Any]:
        self.failed_closed += 1
        return failed_closed_document(snap, self.config.service, self.config.host, error, self._names)

    def _run(self, func: Callable[[], list[dict[str, Any]]], redactor: Any,
             timeout: float | None = None) -> list[dict[str, Any]]:
        try:
            return self._runner.run(func, self.config.detection_timeout if timeout is None else timeout)
        except DeadlineExceeded:
            stuck = self._runner.last_abandoned
            if stuck is not None:
                self._stuck = (redactor, stuck)
            raise

    def documents(self, snaps: Sequence[RecordSnapshot]) -> list[dict[str, Any]]:
        """Redacted documents for ``snaps`` (fail-closed ones where redaction failed); never raises."""
        try:
            return self._documents(snaps)
        except Exception as exc:  # a bug of ours must still never emit raw text
            return [self._fail_closed(snap, exc) for snap in snaps]

    def _documents(self, snaps: Sequence[RecordSnapshot]) -> list[dict[str, Any]]:
        if any(snap.failed for snap in snaps):  # could not even be captured: fail-closed, the rest as usual
            done = iter(self._documents([snap for snap in snaps if not snap.failed]))
            return [self._fail_closed(snap, snap.failed) if snap.failed else next(done) for snap in snaps]
        if not snaps:
            return []
        try:
            # Loading Presidio and spaCy takes seconds: not part of the detection timeout.
            redactor = self._usable_redactor()
        except Exception as exc:
            return [self._fail_closed(snap, exc) for snap in snaps]
        progress = [-1]
        try:
            return self._run(lambda: self._redact(snaps, redactor, progress), redactor)
        except DeadlineExceeded as exc:
            if len(snaps) == 1:
                return self._withheld(snaps, exc)
            return self._after_timeout(snaps, progress[0])
        except TooManyAbandoned as exc:
            return self._withheld(snaps, exc)
        except Exception as exc:
            if len(snaps) == 1:
                return [self._fail_closed(snaps[0], exc)]
            try:
                return self._run(lambda: self._redact_each(snaps, redactor), redactor)
            except (DeadlineExceeded, TooManyAbandoned) as exc2:
                return self._withheld(snaps, exc2)
            except Exception as exc2:
                return [self._fail_closed(snap, exc2) for snap in snaps]

    def _after_timeout(self, snaps: Sequence[RecordSnapshot], culprit: int) -> list[dict[str, Any]]:
        """A batch overran its deadline: withhold only what hangs. ``culprit`` is the record whose objects were being
        turned into text when the deadline passed (-1: the batch was stuck in detection itself). The retries share
        one more ``detection_timeout``."""
        timeout = self.config.detection_timeout
        budget_end = time.monotonic() + timeout
        docs: list[dict[str, Any] | None] = [None] * len(snaps)
        pending = list(range(len(snaps)))
        withheld = 0
        # Stuck turning one record's objects into text: that record is the culprit; the others go again together.
        while culprit >= 0 and pending:
            index = pending.pop(culprit)
            docs[index] = self._fail_closed(snaps[index], "DetectionTimeout")
            withheld += 1
            culprit = -1
            remaining = budget_end - time.monotonic()
            if not pending or remaining <= 0:
                break
            group = [snaps[i] for i in pending]
            progress = [-1]
            self.retried += len(group)
            try:
                redactor = self._usable_redactor()
                done = self._run(lambda g=group, r=redactor, p=progress: self._redact(g, r, p), redactor, remaining)
            except DeadlineExceeded:
                culprit = progress[0]  # another culprit, or (-1) stuck in detection: each record alone below
                continue
            except Exception:  # noqa: BLE001 - each record alone decides
                break
            for i, doc in zip(pending, done, strict=True):
                docs[i] = doc
            pending = []
        # Stuck in detection: each record alone, with a share of the deadline, so only the one that hangs is withheld.
        share = max(timeout * RETRY_SHARE, min(timeout, 0.05))
        for i in pending:
            snap = snaps[i]
            remaining = budget_end - time.monotonic()
            if remaining <= 0:
                docs[i] = self._fail_closed(snap, "DetectionTimeout")
                withheld += 1
                continue
            self.retried += 1
            try:
                redactor = self._usable_redactor()
                [docs[i]] = self._run(lambda s=snap, r=redactor: self._redact([s], r, [-1]), redactor,
                                      min(share, remaining))
            except (DeadlineExceeded, TooManyAbandoned) as exc:
                docs[i] = self._fail_closed(snap, _reason(exc))
                withheld += 1
            except Exception as exc:
                docs[i] = self._fail_closed(snap, exc)
        if withheld:
            _log.warning("logshield: redaction of %d of %d records exceeded %.1fs; written without content", withheld,
                         len(snaps), timeout)
        return [doc for doc in docs if doc is not None]

    def _withheld(self, snaps: Sequence[RecordSnapshot], exc: Exception) -> list[dict[str, Any]]:
        reason = _reason(exc)
        _log.warning("logshield: redaction of %d records %s; written without content", len(snaps),
                     f"exceeded {self.config.detection_timeout:.1f}s" if reason == "DetectionTimeout"
                     else "not started: earlier batches are still stuck in detection")
        return [self._fail_closed(snap, reason) for snap in snaps]

    def lines(self, docs: Sequence[dict[str, Any]], sealer: Callable[[dict[str, Any]], bytes] | None = None
              ) -> bytes:
        """Encoded (and, with a chain, sealed) newline-terminated lines."""
        seal = sealer or self.sealer
        if seal is None:
            return encode_lines(docs)
        return b"\n".join(map(seal, docs)) + b"\n" if docs else b""

    def encode(self, snaps: Sequence[RecordSnapshot], docs: Sequence[dict[str, Any]],
               sealer: Callable[[dict[str, Any]], bytes] | None = None) -> bytes:
        """:meth:`lines` for ``docs`` (the documents of ``snaps``), or fail-closed lines when encoding or sealing
        fails; never raises."""
        try:
            return self.lines(docs, sealer)
        except Exception as exc:  # encoding or sealing failed: still never emit raw text
            failed = [self._fail_closed(snap, exc) for snap in snaps]
            try:
                return self.lines(failed, sealer)
            except Exception:
                _log.debug("logshield: sealing a fail-closed record failed", exc_info=False)
                return encode_lines(failed)

    def render(self, snaps: Sequence[RecordSnapshot], sealer: Callable[[dict[str, Any]], bytes] | None = None
               ) -> bytes:
        """Redacted, sealed, encoded lines for ``snaps`` — or fail-closed lines; never raises."""
        return self.encode(snaps, self.documents(snaps), sealer)


def _reason(exc: Exception) -> str:
    return "DetectionTimeout" if isinstance(exc, DeadlineExceeded) else "DetectionStuck"


def _held(redactor: Any) -> bool:
    """Whether a call is inside ``redactor`` (True when it cannot tell)."""
    locked = getattr(redactor, "locked", None)
    if locked is None:
        return True
    try:
        return bool(locked())
    except Exception:  # noqa: BLE001 - cannot tell: assume it is held
        return True
