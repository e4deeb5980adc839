"""JsonFormatter and RedactingFilter with the real engine (patterns mode)."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
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


class Exploding:
    """A redactor that always fails."""

    def redact_batch(self, values):
        raise RuntimeError("detector exploded")


def _bad_template(log: logging.Logger) -> None:
    log.info("count %d for %s", "alice@example.com", "bob@example.com")


class TestFailClosedWithoutRawArguments:
    def test_filter_failure_keeps_extra_names(self):
        """When redaction fails the message is withheld and each extra keeps its name with a placeholder, so a
        format string using %(user)s still formats (the record is not lost)."""
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(logging.Formatter("%(message)s | %(user)s"))
        handler.addFilter(RedactingFilter(redactor=Exploding()))
        _logger("test.filter.fail", handler).info("hi %s", "alice@example.com", extra={"user": "bob@example.com"})
        assert out.getvalue() == ("<logshield: redaction failed (RuntimeError); record content withheld> | "
                                  "<withheld>\n")

    def test_filter_with_a_bad_template_prints_no_raw_arguments(self, capsys):
        """A %-template that does not fit its args: the filter writes the failure (redacted) and nothing on stderr
        carries the raw arguments."""
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.addFilter(RedactingFilter(detection="patterns"))
        _bad_template(_logger("test.filter.template", handler))
        assert "message formatting failed: TypeError" in out.getvalue()
        assert "alice@example.com" not in out.getvalue() + capsys.readouterr().err

    def test_formatter_with_a_bad_template_prints_no_raw_arguments(self, capsys):
        """JsonFormatter never raises: a record it cannot format is written fail-closed, so the handler's
        handleError (which prints the record's message and arguments) is never reached."""
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(JsonFormatter(redaction={"detection": "patterns"}))
        _bad_template(_logger("test.formatter.template", handler))
        doc = json.loads(out.getvalue())
        assert doc["redaction"] == {"error": "TypeError", "withheld": True}
        err = capsys.readouterr().err
        assert "alice@example.com" not in err and "Arguments" not in err


class TestKeys:
    def test_filter_redacts_extra_key_names(self):
        """An extra whose name carries personal data is renamed (redacted) on the record, its value kept."""
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(PlainJsonFormatter())
        handler.addFilter(RedactingFilter(detection="patterns"))
        _logger("test.filter.keys", handler).info("x", extra={"carl@example.com": 1, "plain": "v"})
        doc = json.loads(out.getvalue())
        assert doc["<EMAIL_ADDRESS>"] == 1 and doc["plain"] == "v" and "carl@" not in out.getvalue()

    def test_mapping_args_secret_names_in_filter_and_formatter(self):
        """"pw %(password)s" with a mapping: both the filter and the formatter replace the value as a secret."""
        for setup in ("filter", "formatter"):
            out = io.StringIO()
            handler = logging.StreamHandler(out)
            if setup == "filter":
                handler.setFormatter(logging.Formatter("%(message)s"))
                handler.addFilter(RedactingFilter(detection="patterns"))
            else:
                handler.setFormatter(JsonFormatter(redaction={"detection": "patterns"}))
            _logger(f"test.keys.{setup}", handler).info("login %(user)s pw %(password)s", {"user": "bob",
                                                                                           "password": "hunter2"})
            text = out.getvalue()
            assert "hunter2" not in text and "login bob pw <SECRET>" in text, setup
            if setup == "formatter":
                assert json.loads(text)["redaction"]["rules"] == ["key:password"]


class TestOtherHandlers:
    @pytest.mark.skipif(sys.version_info < (3, 12), reason="a filter can return a copy from Python 3.12")
    def test_other_handlers_see_the_original(self):
        """3.12+: the filter returns a redacted copy; a second handler on the logger gets the original record."""
        redacted, raw = io.StringIO(), io.StringIO()
        shielded = logging.StreamHandler(redacted)
        shielded.addFilter(RedactingFilter(detection="patterns"))
        log = _logger("test.filter.copy", shielded)
        log.addHandler(logging.StreamHandler(raw))
        log.info("mail %s", "ann@example.com")
        assert redacted.getvalue() == "mail <EMAIL_ADDRESS>\n" and raw.getvalue() == "mail ann@example.com\n"

    @pytest.mark.skipif(sys.version_info >= (3, 12), reason="before 3.12 a filter can only change the record")
    def test_before_3_12_the_record_is_redacted_in_place(self):
        """3.10/3.11 (documented limit): the record itself is redacted, so a handler after the filter's sees the
        redacted version too — never the other way round."""
        redacted, later = io.StringIO(), io.StringIO()
        shielded = logging.StreamHandler(redacted)
        shielded.addFilter(RedactingFilter(detection="patterns"))
        log = _logger("test.filter.inplace", shielded)
        log.addHandler(logging.StreamHandler(later))
        log.info("mail %s", "ann@example.com")
        assert redacted.getvalue() == later.getvalue() == "mail <EMAIL_ADDRESS>\n"
