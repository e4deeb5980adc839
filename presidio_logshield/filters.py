"""``RedactingFilter``: redact records for any existing handler (attach it to the handler, not the logger —
a logger's filters do not see records from child loggers).

On Python 3.12+ the filter returns a redacted copy and other handlers keep the original record. On older
Pythons a filter cannot replace the record, so it is redacted in place (other handlers then see the redacted
version: the safe direction). Redaction failures fail closed: the message is withheld.
"""

from __future__ import annotations

import copy
import logging
import sys
from typing import Any

from .config import RedactionConfig, load_redaction_config
from .record import RESERVED_ATTRS, snapshot
from .redaction import shared_redactor

__all__ = ["RedactingFilter"]

_RETURNS_RECORD = sys.version_info >= (3, 12)


class RedactingFilter(logging.Filter):
    """Redacts the message (with its args), ``extra`` fields, exception text and stack info of each record."""

    def __init__(self, name: str = "", *, redaction: RedactionConfig | dict[str, Any] | None = None,
                 **options: Any) -> None:
        super().__init__(name)
        if isinstance(redaction, RedactionConfig):
            self.redaction_config = redaction
        else:
            self.redaction_config = load_redaction_config(**dict(redaction or {}), **options)
        self._redactor: Any = None

    @property
    def redactor(self) -> Any:
        if self._redactor is None:
            self._redactor = shared_redactor(self.redaction_config)
        return self._redactor

    def filter(self, record: logging.LogRecord) -> bool | logging.LogRecord:  # type: ignore[override]
        if not super().filter(record):
            return False
        target = copy.copy(record) if _RETURNS_RECORD else record
        try:
            self._redact(target)
        except Exception as exc:
            target.msg = f"<logshield: redaction failed ({type(exc).__name__}); record content withheld>"
            target.args = None
            target.exc_info = target.exc_text = target.stack_info = None
            for key in [k for k in vars(target) if k not in RESERVED_ATTRS and not k.startswith("_")]:
                delattr(target, key)
        return target if _RETURNS_RECORD else True

    def _redact(self, record: logging.LogRecord) -> None:
        snap = snapshot(record)
        extra_keys = list(snap.extra)
        exc_text = snap.exception.traceback if snap.exception else None
        values = [snap.message, dict(snap.extra), exc_text, snap.stack_info]
        (message, _), (extras, _), (exc, _), (stack, _) = self.redactor.redact_batch(values)
        if isinstance(message, dict) and not isinstance(snap.message, dict):
            message = str(message)
        record.msg, record.args = message, None
        for key, value in zip(extra_keys, extras.values(), strict=False):  # keys by position: a key may be redacted
            setattr(record, key, value)
        record.exc_info, record.exc_text = None, exc
        record.stack_info = stack
