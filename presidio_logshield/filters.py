"""``RedactingFilter``: redact records for any existing handler (attach it to the handler, not the logger —
a logger's filters do not see records from child loggers).

On Python 3.12+ the filter returns a redacted copy and other handlers keep the original record. On Python 3.10 and
3.11 a filter cannot replace the record, so it is redacted in place: every handler that sees the record after this
filter ran — on this logger and its parents — sees the redacted version (the safe direction, but a limit: attach the
filter to the last handler, or use ``PIIRedactingHandler``, when another handler must see the original).

The message is formatted (%-args applied) and its args dropped, so the handler's formatter cannot fail on a bad
template and print the raw arguments; ``extra`` keys that carry personal data are renamed like the values are
redacted; the logger, thread and process names are redacted too (``%(name)s``, ``%(threadName)s``). Objects in
``extra`` are turned into text before the shared redactor is entered, so an object whose ``__str__`` logs is redacted
like any record and one that blocks holds up only its own call. Redaction failures fail closed: the message,
exception and stack are withheld and every ``extra`` value is replaced by ``<withheld>`` (the names stay, so a
format string using ``%(user)s`` still works) — also when the redactor has been busy for ``detection_timeout``
(a hung call elsewhere: the redactor is then replaced) and for a record logged on a thread that is itself inside
this redaction (a signal handler).
"""

from __future__ import annotations

import copy
import logging
import sys
from typing import Any

from .config import RedactionConfig, load_redaction_config
from .output import WITHHELD_NAME, message_inputs, plain_value, restore_message, secret_key_test
from .record import RESERVED_ATTRS, snapshot
from .redaction import BoundedRedactor
from .redaction import detection_timeout as _detection_timeout

__all__ = ["RedactingFilter"]

_RETURNS_RECORD = sys.version_info >= (3, 12)
#: Record attributes holding names the filter redacts (``taskName`` from Python 3.12).
NAME_ATTRS = ("name", "threadName", "processName", "taskName")
#: Names remembered redacted (a flood of unique thread names just starts the cache over).
NAME_CACHE_SIZE = 4096


class _NotCaptured(Exception):
    """The record could not be captured; the message is the original error's type name."""


class RedactingFilter(logging.Filter):
    """Redacts the message (with its args), ``extra`` fields, exception text, stack info and the logger, thread and
    process names of each record."""

    def __init__(self, name: str = "", *, redaction: RedactionConfig | dict[str, Any] | None = None,
                 redactor: Any = None, detection_timeout: float | None = None, **options: Any) -> None:
        super().__init__(name)
        if isinstance(redaction, RedactionConfig):
            self.redaction_config = redaction
        else:
            self.redaction_config = load_redaction_config(**dict(redaction or {}), **options)
        # ``redactor`` is for tests and embedders; normally one Redactor per configuration is shared.
        self._bounded = BoundedRedactor(self.redaction_config, _detection_timeout(detection_timeout), redactor)
        self._is_secret: Any = None
        self._names: dict[str, str] = {}

    @property
    def redactor(self) -> Any:
        return self._bounded.redactor

    @property
    def detection_timeout(self) -> float:
        return self._bounded.timeout

    def filter(self, record: logging.LogRecord) -> bool | logging.LogRecord:  # type: ignore[override]
        if not super().filter(record):
            return False
        target = copy.copy(record) if _RETURNS_RECORD else record
        try:
            self._redact(target)
        except Exception as exc:
            _withhold(target, str(exc) if isinstance(exc, _NotCaptured) else type(exc).__name__, self._names)
        return target if _RETURNS_RECORD else True

    def _redact(self, record: logging.LogRecord) -> None:
        snap = snapshot(record)
        if snap.failed:
            raise _NotCaptured(snap.failed)
        bounded = self._bounded
        _ = bounded.redactor  # loads Presidio: the classifier below imports it too
        if self._is_secret is None:
            self._is_secret = secret_key_test(self.redaction_config) or (lambda key: False)
        extra_keys = list(snap.extra)
        exc_text = snap.exception.traceback if snap.exception else None
        message, secrets = message_inputs(snap.message, self._is_secret)
        # Objects become text here, before the redactor is entered (an object's __str__ may log, or block).
        values = [plain_value(message), plain_value(dict(snap.extra)), exc_text, snap.stack_info, secrets]
        names = self._names
        if len(names) >= NAME_CACHE_SIZE:
            names.clear()
        new_names = list(dict.fromkeys(value for attr in NAME_ATTRS
                                       if isinstance(value := getattr(record, attr, None), str) and value
                                       and value not in names))
        results = bounded.redact_batch(values + new_names)
        (message, _), (extras, _), (exc, _), (stack, _), (secrets, _) = results[:5]
        for raw, (redacted, _) in zip(new_names, results[5:], strict=True):
            names[raw] = redacted if isinstance(redacted, str) else str(redacted)
        message = restore_message(message, secrets)
        if isinstance(message, dict) and not isinstance(snap.message, dict):
            message = str(message)
        items = list(extras.items())  # same order and length as extra_keys; a key with personal data is renamed
        if len(items) != len(extra_keys):
            raise ValueError("redacted extra fields do not match the record's")
        for key, (new_key, _) in zip(extra_keys, items, strict=True):
            if new_key != key:
                delattr(record, key)
        for new_key, value in items:
            setattr(record, str(new_key), value)
        record.msg, record.args = message, None
        record.exc_info, record.exc_text = None, exc
        record.stack_info = stack
        for attr in NAME_ATTRS:
            value = getattr(record, attr, None)
            if isinstance(value, str) and value:
                setattr(record, attr, names.get(value, WITHHELD_NAME))


def _withhold(record: logging.LogRecord, error: str, names: dict[str, str]) -> None:
    """Fail closed: no application text left on the record, every ``extra`` name kept with a placeholder value, and
    the logger, thread and process names only as they were seen redacted."""
    record.msg = f"<logshield: redaction failed ({error}); record content withheld>"
    record.args = None
    record.exc_info = record.exc_text = record.stack_info = None
    for key in [k for k in vars(record) if k not in RESERVED_ATTRS and not k.startswith("_")]:
        setattr(record, key, WITHHELD_NAME)
    for attr in NAME_ATTRS:
        value = getattr(record, attr, None)
        if isinstance(value, str) and value:
            setattr(record, attr, names.get(value, WITHHELD_NAME))
