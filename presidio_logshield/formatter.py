"""``JsonFormatter``: python-json-logger's formatter, redacting the serialised record before it is returned.

The hook is ``jsonify_log_record``: the parent builds and serialises the record exactly as it always does;
the JSON is then redacted value by value. When nothing is found the parent's string is returned unchanged,
so for records without personal data the output is byte-for-byte python-json-logger's.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pythonjsonlogger.core import LogData
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from .config import RedactionConfig, load_redaction_config
from .redaction import shared_redactor

__all__ = ["JsonFormatter"]


class JsonFormatter(_JsonFormatter):
    """A drop-in ``pythonjsonlogger.json.JsonFormatter`` that redacts PII and secrets (fails closed)."""

    def __init__(self, *args: Any, redaction: RedactionConfig | dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(redaction, RedactionConfig):
            self.redaction_config = redaction
        else:
            self.redaction_config = load_redaction_config(**dict(redaction or {}))
        self._redactor: Any = None

    @property
    def redactor(self) -> Any:
        if self._redactor is None:
            self._redactor = shared_redactor(self.redaction_config)
        return self._redactor

    def jsonify_log_record(self, log_data: LogData) -> str:
        text = super().jsonify_log_record(log_data)
        try:
            return self._redact_json(text)
        except Exception as exc:
            logging.getLogger("presidio_logshield").debug("JsonFormatter redaction failed: %s",
                                                          type(exc).__name__)
            return super().jsonify_log_record({
                "message": f"<logshield: redaction failed ({type(exc).__name__}); record content withheld>",
                "redaction": {"error": type(exc).__name__, "withheld": True},
            })

    def _redact_json(self, text: str) -> str:
        try:
            data = json.loads(text)
        except ValueError:  # a custom serialiser that does not produce JSON: treat the output as text
            redacted, summary = self.redactor.redact_text(text)
            return redacted if summary else text
        [(redacted, summary)] = self.redactor.redact_batch([data])
        if not summary:
            return text
        if isinstance(redacted, dict):
            redacted["redaction"] = summary.as_dict()
        return super().jsonify_log_record(redacted)
