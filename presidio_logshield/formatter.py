"""``JsonFormatter``: python-json-logger's formatter, redacting the serialised record before it is returned.

The hook is ``jsonify_log_record``: the parent builds and serialises the record exactly as it always does;
the JSON is then redacted value by value. When nothing is found the parent's string is returned unchanged,
so for records without personal data the output is byte-for-byte python-json-logger's.

Two more hooks: ``add_fields`` keeps the key names of %-mapping args (``"pw %(password)s"``: the value under a secret
name is replaced as such), and ``format`` never raises — a record that cannot be formatted (a bad template) is
written fail-closed, so the handler's ``handleError`` never prints the record's raw arguments. Fail-closed too: a
record whose redaction would wait longer than ``detection_timeout`` for the shared redactor (a hung call elsewhere
holds it; it is then replaced), and one formatted on a thread that is itself inside this redaction (a signal
handler that logs).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from pythonjsonlogger.core import LogData
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from .config import RedactionConfig, load_redaction_config
from .output import limit_depth, message_inputs, restore_message, secret_key_test
from .record import KeyedMessage
from .redaction import BoundedRedactor
from .redaction import detection_timeout as _detection_timeout
from .summary import RedactionSummary

__all__ = ["JsonFormatter"]


class JsonFormatter(_JsonFormatter):
    """A drop-in ``pythonjsonlogger.json.JsonFormatter`` that redacts PII and secrets (fails closed)."""

    def __init__(self, *args: Any, redaction: RedactionConfig | dict[str, Any] | None = None,
                 detection_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(redaction, RedactionConfig):
            self.redaction_config = redaction
        else:
            self.redaction_config = load_redaction_config(**dict(redaction or {}))
        self._bounded = BoundedRedactor(self.redaction_config, _detection_timeout(detection_timeout))
        self._is_secret: Any = None
        self._pending = threading.local()  # from add_fields to jsonify_log_record, within one format() call

    @property
    def redactor(self) -> Any:
        return self._bounded.redactor

    @property
    def detection_timeout(self) -> float:
        return self._bounded.timeout

    def format(self, record: logging.LogRecord) -> str:
        try:
            return super().format(record)
        except Exception as exc:  # never let the handler's handleError print the record's raw message and args
            return self._withheld(type(exc).__name__)
        finally:
            self._pending.__dict__.clear()

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        args = record.args
        key = self.rename_fields.get("message", "message")
        if not (args and isinstance(args, Mapping) and isinstance(record.msg, str) and key in log_data):
            return
        keyed = KeyedMessage.format(record.msg, args)
        if keyed is None or str(keyed) != log_data[key]:
            return
        if self._is_secret is None:
            _ = self.redactor  # loads Presidio: the classifier below imports it too
            self._is_secret = secret_key_test(self.redaction_config) or (lambda name: False)
        text, secrets = message_inputs(keyed, self._is_secret)
        if secrets:
            log_data[key] = text
            self._pending.secrets = (key, secrets)

    def _withheld(self, error: str) -> str:
        return super().jsonify_log_record({
            "message": f"<logshield: redaction failed ({error}); record content withheld>",
            "redaction": {"error": error, "withheld": True},
        })

    def jsonify_log_record(self, log_data: LogData) -> str:
        try:
            text = super().jsonify_log_record(log_data)
        except RecursionError:  # an ``extra`` value nested too deep for JSON: cut there, keep the rest
            text = super().jsonify_log_record(limit_depth(log_data))
        try:
            return self._redact_json(text)
        except Exception as exc:
            logging.getLogger("presidio_logshield").debug("JsonFormatter redaction failed: %s",
                                                          type(exc).__name__)
            return self._withheld(type(exc).__name__)

    def _redact_json(self, text: str) -> str:
        pending = self._pending.__dict__.pop("secrets", None)
        try:
            data = json.loads(text)
        except ValueError:  # a custom serialiser that does not produce JSON: treat the output as text
            if pending is not None:
                raise
            redacted, summary = self._bounded.redact_text(text)
            return redacted if summary else text
        if pending is None:
            [(redacted, summary)] = self._bounded.redact_batch([data])
        else:  # the message's values under secret key names, redacted under their keys, put back in place
            key, secrets = pending
            [(redacted, summary), (secrets, found)] = self._bounded.redact_batch([data, secrets])
            if isinstance(redacted, dict) and key in redacted:
                redacted[key] = restore_message(redacted[key], secrets)
            merged = RedactionSummary()
            merged.merge(summary)
            merged.merge(found)
            summary = merged
        if not summary:
            return text
        if isinstance(redacted, dict):
            redacted["redaction"] = summary.as_dict()
        return super().jsonify_log_record(redacted)
