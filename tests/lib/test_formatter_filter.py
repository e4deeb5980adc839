"""JsonFormatter and RedactingFilter with the real engine (patterns mode)."""

from __future__ import annotations

import io
import json
import logging

from pythonjsonlogger.json import JsonFormatter as PlainJsonFormatter

from presidio_logshield import JsonFormatter, RedactingFilter


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


class TestJsonFormatter:
    def test_is_python_json_logger_and_redacts(self):
        """A subclass of python-json-logger's formatter that redacts message, extras and exceptions."""
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(JsonFormatter(redaction={"detection": "patterns"}))
        log = _logger("test.formatter", handler)
        log.info("mail %s", "ann@example.com", extra={"api_key": "abc123", "card": "4111 1111 1111 1111"})
        doc = json.loads(out.getvalue())
        assert issubclass(JsonFormatter, PlainJsonFormatter)
        assert "ann@example.com" not in out.getvalue() and "abc123" not in out.getvalue()
        assert "4111" not in doc["card"]
        assert doc["redaction"]["entities"]

    def test_clean_record_is_byte_identical(self):
        """Without PII the output equals python-json-logger's exactly."""
        record = logging.LogRecord("x", logging.INFO, "p.py", 1, "GET /health 200 in %d ms", (3,), None)
        assert JsonFormatter(redaction={"detection": "patterns"}).format(record) == PlainJsonFormatter().format(record)


class TestRedactingFilter:
    def test_filter_on_an_existing_handler(self):
        """Attached to a plain handler, the filter redacts args, extras and the exception text."""
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(PlainJsonFormatter())
        handler.addFilter(RedactingFilter(detection="patterns"))
        log = _logger("test.filter", handler)
        try:
            raise KeyError("token=ghp_0123456789abcdefghijklmnopqrstuvwxyzAB")
        except KeyError:
            log.exception("user %s failed", "bob@example.com", extra={"password": "pw-123"})
        text = out.getvalue()
        assert "bob@example.com" not in text and "pw-123" not in text and "ghp_0123456789" not in text
        assert "failed" in text
