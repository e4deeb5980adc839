"""PIIRedactingHandler with a fake redactor: queueing, draining, fail-closed, fork, threads, context."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
import os
import sys
import threading
import time
from collections.abc import Mapping

import pytest

from presidio_logshield import PIIRedactingHandler, log_context
from presidio_logshield.config import ConfigError, load_handler_config
from presidio_logshield.pipeline import Pipeline
from presidio_logshield.record import RESERVED_ATTRS, snapshot
from presidio_logshield.worker import RecordQueue
from tests.lib.fakes import FakeRedactor


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
def make_logger(request):
    """A fresh logger wired to one handler; closed after the test."""
    created: list[tuple[logging.Logger, logging.Handler]] = []

    def make(handler: logging.Handler) -> logging.Logger:
        logger = logging.getLogger(f"test.{request.node.name}.{len(created)}")
        logger.handlers[:] = [handler]
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        created.append((logger, handler))
        return logger

    yield make
    for logger, handler in created:
        logger.removeHandler(handler)
        handler.close()


class TestRecordShapes:
    def test_message_args_extra_context_exception_stack(self, make_logger):
        """Every part of the record is redacted; metadata and non-PII fields are written as they were."""
        out = io.StringIO()
        log = make_logger(PIIRedactingHandler(stream=out, redactor=FakeRedactor(), service="svc"))
        with log_context(request_id="req-1", actor="ann@example.com"):
            log.info("login %s", "bob@example.com", extra={"user": {"password": "hunter2", "tags": ("a@b.io",)}})
        try:
            raise ValueError("no such user carl@example.org")
        except ValueError:
            log.exception("lookup failed", stack_info=True, extra={"attempt": 3})
        log.warning({"event": "signup", "email": "dora@example.com", "plan": "pro"})
        log.handlers[0].flush()
        text = out.getvalue()
        for raw in ("bob@example.com", "ann@example.com", "hunter2", "a@b.io", "carl@example.org",
                    "dora@example.com"):
            assert raw not in text
        first, second, third = lines(out)
        assert first["message"] == "login <EMAIL_ADDRESS>"
        assert first["request_id"] == "req-1" and first["actor"] == "<EMAIL_ADDRESS>"
        assert first["user"] == {"password": "<SECRET>", "tags": ["<EMAIL_ADDRESS>"]}
        assert first["service"] == "svc" and first["level"] == "INFO" and first["pid"] == os.getpid()
        assert first["timestamp"].endswith("Z") and "T" in first["timestamp"]
        assert first["redaction"]["entities"] == {"EMAIL_ADDRESS": 3, "SECRET": 1}
        assert second["exception"]["type"] == "ValueError"
        assert "<EMAIL_ADDRESS>" in second["exception"]["traceback"]
        assert "test_handler.py" in second["stack_info"] and second["attempt"] == 3
        assert third["event"] == "signup" and third["plan"] == "pro" and third["email"] == "<EMAIL_ADDRESS>"

    def test_no_pii_record_has_no_redaction_summary(self, make_logger):
        """A record with nothing to redact carries no summary and its text is unchanged."""
        out = io.StringIO()
        log = make_logger(PIIRedactingHandler(stream=out, redactor=FakeRedactor(), asynchronous=False))
        log.info("GET /api/v1/items 200 in %.1f ms", 12.5)
        [doc] = lines(out)
        assert doc["message"] == "GET /api/v1/items 200 in 12.5 ms" and "redaction" not in doc

    def test_other_handlers_see_the_original_record(self, make_logger):
        """The handler works on a snapshot: a second handler on the same logger gets the raw record."""
        out, raw = io.StringIO(), io.StringIO()
        log = make_logger(PIIRedactingHandler(stream=out, redactor=FakeRedactor(), asynchronous=False))
        plain = logging.StreamHandler(raw)
        log.addHandler(plain)
        log.info("mail %s", "eve@example.com", extra={"password": "pw1"})
        assert "eve@example.com" in raw.getvalue()
        assert "eve@example.com" not in out.getvalue() and "pw1" not in out.getvalue()

    def test_extra_named_like_a_base_field_is_kept_aside(self, make_logger):
        """An extra called ``service`` does not overwrite the handler's own field."""
        out = io.StringIO()
        log = make_logger(PIIRedactingHandler(stream=out, redactor=FakeRedactor(), asynchronous=False,
                                              service="real"))
        log.info("x", extra={"service": "fake", "host": "h"})
        [doc] = lines(out)
        assert doc["service"] == "real" and doc["extra_service"] == "fake" and doc["extra_host"] == "h"


class TestKeyNames:
    def test_values_under_secret_names_in_mapping_args(self, make_logger):
        """log.info("… %(password)s", {...}): the value under a secret key name is replaced, the rest redacted as
        usual, and the summary names the key rule."""
        out = io.StringIO()
        log = make_logger(PIIRedactingHandler(stream=out, redactor=FakeRedactor(), asynchronous=False))
        log.info("login %(user)s pw %(password)s mail %(mail)s", {"user": "bob", "password": "hunter2",
                                                                  "mail": "bob@example.com"})
        [doc] = lines(out)
        assert doc["message"] == "login bob pw <SECRET> mail <EMAIL_ADDRESS>" and "hunter2" not in out.getvalue()
        assert doc["redaction"]["entities"] == {"SECRET": 1, "EMAIL_ADDRESS": 1}

    def test_mapping_args_with_the_real_redactor(self, make_logger):
        """With the real redactor: any secret key name (api_key, token) counts, conversions keep their format."""
        out = io.StringIO()
        log = make_logger(PIIRedactingHandler(stream=out, detection="patterns", asynchronous=False))
        log.info("tok=%(api_key)s n=%(count)03d%% by %(who)r", {"api_key": "k", "count": 7, "who": "a@b.io"})
        [doc] = lines(out)
        assert doc["message"] == "tok=<SECRET> n=007% by '<EMAIL_ADDRESS>'"
        assert set(doc["redaction"]["rules"]) >= {"key:apikey"}

    @pytest.mark.parametrize("template, args", [
        ("a %(x)s b %(y)r c %%", {"x": 1, "y": "q"}),
        ("%(n)-6.2f|%(n)+d|%(n)x", {"n": 42}),
        ("no conversions", {"k": "v"}),
        ("%(k)s%(k)s", {"k": "twice"}),
        ("%(a(b))s", {"a(b)": "nested parens"}),
    ])
    def test_keyed_message_is_the_formatted_message(self, template, args):
        """A keyed message's text is exactly template % args (else the snapshot uses getMessage)."""
        record = logging.LogRecord("test", logging.INFO, "p.py", 1, template, (args,), None)
        message = snapshot(record).message
        assert str(message) == template % args

    def test_named_tuples_and_header_pairs_in_extra(self, make_logger):
        """A named tuple's field names and a header list's names ((name, value) pairs, also ASGI's bytes) act as keys;
        the shapes are written as before (lists)."""
        from collections import namedtuple
        creds = namedtuple("Creds", "user password")
        out = io.StringIO()
        log = make_logger(PIIRedactingHandler(stream=out, detection="patterns", asynchronous=False))
        log.info("request", extra={"creds": creds("ann", "hunter2"),
                                   "headers": [("X-Api-Key", "plainkey"), ("Accept", "json")],
                                   "raw": [["Authorization", "Bearer abc"]],
                                   "asgi": [(b"cookie", b"sid=s3cr3t"), (b"host", b"example.org")]})
        [doc] = lines(out)
        assert doc["creds"] == ["ann", "<SECRET>"]
        assert doc["headers"] == [["X-Api-Key", "<SECRET>"], ["Accept", "json"]]
        assert doc["raw"] == [["Authorization", "<SECRET>"]] and doc["asgi"][0] == ["cookie", "<SECRET>"]
        for raw in ("hunter2", "plainkey", "Bearer abc", "s3cr3t"):
            assert raw not in out.getvalue()


class RecordingRedactor(FakeRedactor):
    """Remembers every top-level value it was asked to redact."""

    def __init__(self, **options):
        super().__init__(**options)
        self.values: list = []

    def redact_batch(self, values):
        self.values.extend(values)
        return super().redact_batch(values)


class TestReservedFields:
    RESERVED = ("timestamp", "level", "logger", "message", "service", "host", "pid", "thread", "exception",
                "stack_info", "redaction", "stream", "seq", "stream_start", "chain")

    @pytest.mark.parametrize("chain", [True, False])
    def test_extras_named_like_handler_fields_are_always_renamed(self, make_logger, chain):
        """Every reserved name in extra is written as extra_<name> — also fields this line does not have (no
        exception, no finding, no chain) — so a fake redaction summary never passes for the handler's."""
        out = io.StringIO()
        log = make_logger(PIIRedactingHandler(stream=out, redactor=FakeRedactor(), asynchronous=False, chain=chain))
        fake = {name: f"app-{name}" for name in self.RESERVED if name not in RESERVED_ATTRS}  # not LogRecord's own
        fake["redaction"] = {"entities": {}, "rules": ["none found, trust me"]}
        log.info("clean line", extra=fake)
        [doc] = lines(out)
        assert "redaction" not in doc and "exception" not in doc and "stack_info" not in doc
        assert all(doc[f"extra_{name}"] == value for name, value in fake.items())
        assert doc["message"] == "clean line" and doc["level"] == "INFO"
        assert ("chain" in doc) is chain and doc.get("seq", 1) == 1

    def test_real_fields_and_the_renamed_extras_side_by_side(self, make_logger):
        """With a finding and an exception, the handler's redaction and exception fields are its own and the
        application's same-named values are kept beside them, also from a dict message."""
        out = io.StringIO()
        log = make_logger(PIIRedactingHandler(stream=out, redactor=FakeRedactor(), asynchronous=False))
        try:
            raise ValueError("bad")
        except ValueError:
            log.exception("mail a@b.io", extra={"redaction": "app", "exception": "app", "extra_redaction": "x"})
        log.info({"event": "e", "redaction": "from the message", "seq": 99, "thread": "t", "stack_info": "s",
                  "message": "m"})
        first, second = lines(out)
        assert first["redaction"]["entities"] == {"EMAIL_ADDRESS": 1} and first["exception"]["type"] == "ValueError"
        assert first["extra_redaction"] == "app" and first["extra_exception"] == "app"
        assert first["extra_extra_redaction"] == "x"
        assert second["extra_redaction"] == "from the message" and second["extra_seq"] == 99 and second["seq"] == 2
        assert (second["extra_thread"], second["extra_stack_info"], second["extra_message"]) == ("t", "s", "m")
        assert second["thread"] == "MainThread" and "stack_info" not in second


class TestNames:
    def test_logger_and_thread_names_are_redacted(self, make_logger):
        """A logger or thread name carrying personal data is redacted like the message, and counted."""
        out = io.StringIO()
        handler = PIIRedactingHandler(stream=out, redactor=FakeRedactor(), asynchronous=False)
        make_logger(handler)
        logger = logging.getLogger("audit:carol@example.com")
        logger.handlers[:] = [handler]
        logger.propagate = False
        try:
            thread = threading.Thread(target=lambda: logger.warning("hello"), name="job:bob@example.com")
            thread.start()
            thread.join()
        finally:
            logger.handlers[:] = []
        [doc] = lines(out)
        assert doc["logger"] == "audit:<EMAIL_ADDRESS>" and doc["thread"] == "job:<EMAIL_ADDRESS>"
        assert doc["redaction"]["entities"] == {"EMAIL_ADDRESS": 2} and "@example.com" not in out.getvalue()

    def test_each_name_is_detected_once(self, make_logger):
        """Names are cached: many records from one logger and thread send each name to detection once."""
        out = io.StringIO()
        fake = RecordingRedactor()
        log = make_logger(PIIRedactingHandler(stream=out, redactor=fake, batch_size=4))
        for i in range(20):
            log.info("n %d", i)
        log.handlers[0].flush()
        assert fake.values.count(log.name) == 1 and fake.values.count("MainThread") == 1
        assert [d["logger"] for d in lines(out)] == [log.name] * 20

    def test_fail_closed_lines_name_only_names_seen_redacted(self, make_logger):
        """A fail-closed line shows the logger name once it has been redacted before, and <withheld> until then."""
        out = io.StringIO()
        log = make_logger(PIIRedactingHandler(stream=out, redactor=FakeRedactor(fail_on="BOOM"), asynchronous=False))
        log.info("BOOM first")
        log.info("fine")
        log.info("BOOM again")
        first, fine, again = lines(out)
        assert first["logger"] == "<withheld>" and first["thread"] == "<withheld>"
        assert fine["logger"] == again["logger"] == log.name and again["thread"] == "MainThread"
        assert again["redaction"]["withheld"]


class BadStr:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")

    __repr__ = __str__


class ExcWithBadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("boom")


class UnreadableMapping(Mapping):
    """A mapping whose items cannot be read: the snapshot itself fails."""

    def __getitem__(self, key):
        raise KeyError(key)

    def __iter__(self):
        raise OSError("gone")

    def __len__(self) -> int:
        return 1


class TestUnprintable:
    def test_argument_whose_str_raises(self, make_logger):
        """An %-argument whose __str__ and __repr__ raise: the record is written, naming the error, no raw text."""
        out = io.StringIO()
        log = make_logger(PIIRedactingHandler(stream=out, redactor=FakeRedactor(), asynchronous=False))
        log.info("obj %s alice@example.com", BadStr())
        [doc] = lines(out)
        assert "message formatting failed: RuntimeError" in doc["message"]
        assert "<unprintable BadStr: RuntimeError>" in doc["message"] and "alice@example.com" not in out.getvalue()

    def test_exception_whose_str_raises(self, make_logger):
        """logger.exception for an exception whose __str__ raises: written, with a placeholder for its message."""
        out = io.StringIO()
        log = make_logger(PIIRedactingHandler(stream=out, redactor=FakeRedactor(), asynchronous=False))
        try:
            raise ExcWithBadStr()
        except ExcWithBadStr:
            log.exception("failed for alice@example.com")
        [doc] = lines(out)
        assert doc["message"] == "failed for <EMAIL_ADDRESS>"
        assert doc["exception"]["type"] == "ExcWithBadStr"
        assert doc["exception"]["message"] == "<unprintable ExcWithBadStr: RuntimeError>"

    def test_message_object_whose_str_raises(self, make_logger):
        """A message object that cannot be made text: written with a placeholder and the error's type."""
        out = io.StringIO()
        log = make_logger(PIIRedactingHandler(stream=out, redactor=FakeRedactor(), asynchronous=False))
        log.info(BadStr())
        [doc] = lines(out)
        assert doc["message"] == "<unprintable BadStr: RuntimeError> <logshield: message formatting failed: " \
                                 "RuntimeError>"

    @pytest.mark.parametrize("asynchronous", [True, False])
    def test_record_that_cannot_be_captured_is_written_fail_closed(self, make_logger, asynchronous):
        """When the snapshot itself fails (an extra that cannot be read), a fail-closed record is written: metadata
        and the error's type, nothing from the application."""
        out = io.StringIO()
        handler = PIIRedactingHandler(stream=out, redactor=FakeRedactor(), asynchronous=asynchronous)
        log = make_logger(handler)
        log.warning("mail alice@example.com", extra={"data": UnreadableMapping()})
        log.info("next bob@example.com")
        handler.flush()
        failed, ok = lines(out)
        assert failed["redaction"] == {"error": "OSError", "withheld": True} and failed["level"] == "WARNING"
        assert "alice" not in out.getvalue() and ok["message"] == "next <EMAIL_ADDRESS>"


class TestCaptureByValue:
    def test_containers_mutated_after_the_call_are_written_as_they_were(self, make_logger):
        """Asynchronous mode: dicts, lists and tuples in extra, a dict message and log_context fields are copied at
        the call, so changing them afterwards (before the worker gets to the record) changes nothing written."""
        out = io.StringIO()
        fake = FakeRedactor(hang_on="STALL", hang_seconds=30)
        handler = PIIRedactingHandler(stream=out, redactor=fake, batch_size=1, detection_timeout=30)
        log = make_logger(handler)
        order = {"status": "pending", "items": [1], "meta": ({"tag": "a"},)}
        message = {"event": "placed", "lines": [{"sku": "x"}]}
        context_user = {"role": "viewer"}
        log.info("STALL")  # the worker is held on this record: the next ones wait in the queue
        with log_context(user=context_user):
            log.info("order placed", extra={"order": order})
            log.info(message)
        order["status"] = "CANCELLED"
        order["items"].append(99)
        order["meta"][0]["tag"] = "b"
        message["event"] = "CHANGED"
        message["lines"][0]["sku"] = "y"
        context_user["role"] = "admin"
        fake.release.set()
        handler.flush(timeout=20)
        _, placed, dict_message = lines(out)
        assert placed["order"] == {"status": "pending", "items": [1], "meta": [{"tag": "a"}]}
        assert dict_message["event"] == "placed" and dict_message["lines"] == [{"sku": "x"}]
        assert placed["user"] == {"role": "viewer"} and dict_message["user"] == {"role": "viewer"}

    def test_capture_copies_structure_not_scalars(self):
        """capture() copies every container (a named tuple keeps its type) and keeps strings and objects as they are."""
        from collections import namedtuple

        from presidio_logshield.capture import capture
        creds = namedtuple("Creds", "user password")
        marker = object()
        value = {"a": [1, {"b": {2, 3}}], "c": creds("u", ["p"]), "o": marker, "s": "text"}
        copied = capture(value)
        assert copied == value and copied is not value
        assert copied["a"] is not value["a"] and copied["a"][1]["b"] is not value["a"][1]["b"]
        assert type(copied["c"]) is creds and copied["c"].password is not value["c"].password
        assert copied["o"] is marker and copied["s"] is value["s"]

    def test_self_referencing_extra_does_not_break_logging(self, make_logger):
        """A dict that contains itself is copied to a bounded depth and still written (the real redactor writes what
        is nested too deep as redacted text)."""
        out = io.StringIO()
        log = make_logger(PIIRedactingHandler(stream=out, detection="patterns", asynchronous=False))
        loop: dict = {"mail": "a@b.io"}
        loop["self"] = loop
        log.info("loop", extra={"loop": loop})
        [doc] = lines(out)
        assert doc["loop"]["mail"] == "<EMAIL_ADDRESS>" and "a@b.io" not in out.getvalue()


class TestFailClosed:
    def test_detector_error_withholds_only_the_bad_record(self, make_logger):
        """A record whose redaction raises is written with no application text; its batch-mates survive."""
        out = io.StringIO()
        handler = PIIRedactingHandler(stream=out, redactor=FakeRedactor(fail_on="BOOM"), batch_size=10)
        log = make_logger(handler)
        log.info("fine one a@b.io")
        log.info("BOOM secret-user@example.com")
        log.info("fine two")
        handler.flush()
        docs = lines(out)
        assert [d["redaction"].get("error") for d in docs if "error" in d.get("redaction", {})] == ["RuntimeError"]
        assert "secret-user" not in out.getvalue() and "BOOM" not in out.getvalue()
        assert {d["message"] for d in docs} >= {"fine one <EMAIL_ADDRESS>", "fine two"}
        assert handler.pipeline.failed_closed == 1

    def test_detection_timeout_fails_closed_and_app_never_waits(self, make_logger):
        """A hanging detector: records are written withheld after the timeout; emit stays fast."""
        out = io.StringIO()
        fake = FakeRedactor(hang_on="HANG", hang_seconds=30)
        handler = PIIRedactingHandler(stream=out, redactor=fake, detection_timeout=0.3)
        log = make_logger(handler)
        started = time.monotonic()
        log.info("HANG on user zed@example.com")
        emit_seconds = time.monotonic() - started
        handler.flush(timeout=5)
        fake.release.set()
        [doc] = lines(out)
        assert doc["redaction"] == {"error": "DetectionTimeout", "withheld": True}
        assert "zed@example.com" not in out.getvalue()
        assert emit_seconds < 0.3

    def test_bad_format_args_do_not_raise(self, make_logger):
        """A broken %-template is still logged (redacted), never raised into the application."""
        out = io.StringIO()
        log = make_logger(PIIRedactingHandler(stream=out, redactor=FakeRedactor(), asynchronous=False))
        log.info("value %d for %s", "not-a-number", "x@y.io")
        [doc] = lines(out)
        assert "formatting failed" in doc["message"] and "x@y.io" not in out.getvalue()

    def test_unwritable_destination_does_not_raise(self, make_logger, tmp_path, capsys):
        """A write error is reported on stderr without record content; the application continues."""
        target = tmp_path / "dir-not-file"
        target.mkdir()
        log = make_logger(PIIRedactingHandler(filename=target, redactor=FakeRedactor(), asynchronous=False))
        log.info("sensitive p@q.io")
        assert "p@q.io" not in capsys.readouterr().err


def _detect_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "logshield-detect"]


class TestHungDetection:
    @pytest.mark.parametrize("asynchronous", [True, False])
    def test_records_after_a_hang_are_redacted(self, make_logger, asynchronous):
        """After one batch times out, the next ones run on a fresh detection thread and are redacted normally."""
        out = io.StringIO()
        fake = FakeRedactor(hang_on="HANG", hang_seconds=30)
        handler = PIIRedactingHandler(stream=out, redactor=fake, detection_timeout=0.3, batch_size=1,
                                      asynchronous=asynchronous)
        log = make_logger(handler)
        try:
            log.info("HANG for zed@example.com")
            for i in range(5):
                log.info("after %d for u%d@example.com", i, i)
            handler.flush(timeout=20)
            docs = lines(out)
            assert docs[0]["redaction"] == {"error": "DetectionTimeout", "withheld": True}
            assert [d["message"] for d in docs[1:]] == [f"after {i} for <EMAIL_ADDRESS>" for i in range(5)]
            assert "zed@example.com" not in out.getvalue()
        finally:
            fake.release.set()

    def test_abandoned_threads_are_bounded(self, make_logger):
        """With two hung calls still running, further batches are withheld at once instead of starting threads;
        once the hung calls return, records are redacted again."""
        out = io.StringIO()
        fake = FakeRedactor(hang_on="HANG", hang_seconds=30)
        handler = PIIRedactingHandler(stream=out, redactor=fake, detection_timeout=0.2, asynchronous=False)
        log = make_logger(handler)
        before = set(_detect_threads())
        try:
            log.info("HANG one")
            log.info("HANG two")
            log.info("meanwhile a@b.io")
            assert lines(out)[2]["redaction"] == {"error": "DetectionStuck", "withheld": True}
            assert len(set(_detect_threads()) - before) <= 3 and handler.pipeline.abandoned_running == 2
        finally:
            fake.release.set()
        for thread in set(_detect_threads()) - before:  # both abandoned threads return and exit
            thread.join(10)
        log.info("later c@d.io")
        assert lines(out)[3]["message"] == "later <EMAIL_ADDRESS>" and handler.pipeline.abandoned_running == 0

    def test_a_shared_redactor_held_by_a_hung_call_is_replaced(self):
        """When the hung call still holds the (serialised) shared redactor, the next batch gets a redactor of its
        own instead of queueing behind it."""
        shared = FakeRedactor(hang_on="HANG", hang_seconds=30, serialised=True)
        fresh: list[FakeRedactor] = []

        def make_fresh() -> FakeRedactor:
            fresh.append(FakeRedactor(serialised=True))
            return fresh[-1]

        pipeline = Pipeline(load_handler_config(detection_timeout=0.3), lambda: shared,
                            fresh_redactor_factory=make_fresh)
        try:
            [stuck] = [json.loads(x) for x in pipeline.render([_snap("HANG x@y.io")]).splitlines()]
            later = [json.loads(x) for x in pipeline.render([_snap("mail a@b.io"), _snap("mail c@d.io")]).splitlines()]
            assert stuck["redaction"]["error"] == "DetectionTimeout"
            assert [d["message"] for d in later] == ["mail <EMAIL_ADDRESS>"] * 2
            assert len(fresh) == 1 and fresh[0].batches and pipeline.redactors_replaced == 1
        finally:
            shared.release.set()
            pipeline.close()


def _snap(message: str):
    return snapshot(logging.makeLogRecord({"msg": message, "name": "test.pipeline", "levelno": 20,
                                           "levelname": "INFO"}))


@pytest.fixture
def on_root():
    """Put a handler on the root logger (level INFO), as the README's dictConfig does; removed and closed after."""
    root = logging.getLogger()
    added: list[logging.Handler] = []
    old_level = root.level

    def add(handler: logging.Handler) -> logging.Handler:
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        added.append(handler)
        return handler

    yield add
    for handler in added:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(old_level)


def _finishes(func, seconds: float = 15.0) -> bool:
    """Run ``func`` on a thread; False when it is still running after ``seconds`` (a deadlock)."""
    thread = threading.Thread(target=func, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


class ChattyRedactor(FakeRedactor):
    """Logs from inside detection, like Presidio importing (INFO on presidio-analyzer) or a library warning."""

    def redact_batch(self, values):
        logging.getLogger("presidio-analyzer").info("loading recognizers for bob@example.com")
        logging.getLogger("app.inner").warning("something from a library while detecting")
        return super().redact_batch(values)


class TestReentrancy:
    @pytest.mark.parametrize("asynchronous", [True, False])
    def test_timeout_warning_with_the_handler_on_root(self, on_root, asynchronous):
        """The pipeline's own warning about a timed-out batch reaches the root logger's handler — itself — while it
        writes: it is diverted and counted, the application call returns, the record is written withheld."""
        out = io.StringIO()
        fake = FakeRedactor(hang_on="HANG", hang_seconds=30)
        handler = on_root(PIIRedactingHandler(stream=out, redactor=fake, detection_timeout=0.3,
                                              asynchronous=asynchronous))
        try:
            assert _finishes(lambda: logging.getLogger("app").error("HANG mail alice@example.com"))
            handler.flush(timeout=10)
        finally:
            fake.release.set()
        [doc] = lines(out)
        assert doc["redaction"]["error"] == "DetectionTimeout" and handler.stats().diverted >= 1

    @pytest.mark.parametrize("asynchronous", [True, False])
    def test_warning_while_the_models_load_with_captured_warnings(self, on_root, asynchronous):
        """logging.captureWarnings(True) and no spaCy pipeline: the fallback warning, raised while the handler
        builds its redactor, does not re-enter it; the record is redacted."""
        out = io.StringIO()
        handler = on_root(PIIRedactingHandler(stream=out, asynchronous=asynchronous, chain=False,
                                              spacy_model=f"xx_not_installed_{asynchronous}"))  # a fresh redactor
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            logging.captureWarnings(True)
            try:
                assert _finishes(lambda: logging.getLogger("app").error("mail alice@example.com"), 60)
                handler.flush(timeout=30)
            finally:
                logging.captureWarnings(False)
        [doc] = lines(out)
        assert doc["message"] == "mail <EMAIL_ADDRESS>" and handler.stats().diverted >= 1

    def test_flush_under_the_handler_lock_while_the_worker_logs(self, on_root):
        """logging.shutdown() holds the handler lock while it flushes; records the worker logs meanwhile (Presidio's
        import-time INFO, a library warning) neither wait for that lock nor get written."""
        out = io.StringIO()
        handler = on_root(PIIRedactingHandler(stream=out, redactor=ChattyRedactor(), detection_timeout=30))
        logging.getLogger("app").warning("mail alice@example.com")

        def shutdown_like() -> None:
            handler.acquire()
            try:
                handler.flush()
            finally:
                handler.release()

        assert _finishes(shutdown_like)
        assert [d["message"] for d in lines(out)] == ["mail <EMAIL_ADDRESS>"]
        assert "loading recognizers" not in out.getvalue() and "from a library" not in out.getvalue()

    def test_presidio_and_spacy_loggers_never_reach_the_handler(self, on_root):
        """Records of Presidio's and spaCy's loggers (and their children) are not taken even from the application
        thread; the handler's own audit logger is."""
        out = io.StringIO()
        handler = on_root(PIIRedactingHandler(stream=out, redactor=FakeRedactor(), asynchronous=False))
        for name in ("presidio-analyzer", "presidio_analyzer.recognizers", "decision_process", "spacy", "thinc"):
            logging.getLogger(name).error("raw text bob@example.com")
        logging.getLogger("presidio_logshield.audit").warning("audit-ish")
        logging.getLogger("spacy_app").warning("an app whose name starts with spacy")
        assert [d["message"] for d in lines(out)] == ["audit-ish", "an app whose name starts with spacy"]
        assert handler.stats().diverted == 0

    def test_a_record_logged_while_snapshotting_is_diverted(self, make_logger):
        """An argument whose __str__ logs (synchronous mode): the inner record is diverted, the outer written."""
        out = io.StringIO()
        handler = PIIRedactingHandler(stream=out, redactor=FakeRedactor(), asynchronous=False)
        log = make_logger(handler)

        class Noisy:
            def __str__(self) -> str:
                log.warning("inner")
                return "noisy"

        assert _finishes(lambda: log.info("outer %s", Noisy()))
        assert [d["message"] for d in lines(out)] == ["outer noisy"] and handler.stats().diverted == 1


class TestQueue:
    @pytest.mark.parametrize("policy", ["drop_newest", "drop_oldest", "block"])
    def test_overflow_is_counted_and_reported(self, make_logger, policy):
        """With the worker stalled, a full queue drops per policy; drops are counted and written as a record."""
        out = io.StringIO()
        fake = FakeRedactor(hang_on="STALL", hang_seconds=10)
        handler = PIIRedactingHandler(stream=out, redactor=fake, queue_size=5, overflow=policy,
                                      block_timeout=0.01, batch_size=1, detection_timeout=10)
        log = make_logger(handler)
        log.info("STALL")
        time.sleep(0.2)  # the worker is now stuck inside the first batch
        for i in range(20):
            log.info("record %d", i)
        stats = handler.stats()
        assert stats.dropped == 15
        fake.release.set()
        handler.flush(timeout=10)
        docs = lines(out)
        messages = [d["message"] for d in docs]
        kept = [m for m in messages if m.startswith("record")]
        if policy == "drop_oldest":
            assert kept == [f"record {i}" for i in range(15, 20)]
        else:
            assert kept == [f"record {i}" for i in range(5)]
        report = [d for d in docs if "logshield_dropped" in d]
        assert sum(d["logshield_dropped"] for d in report) == 15

    def test_a_waiting_worker_is_woken_by_put(self):
        """take() waiting on an empty queue returns as soon as an item is put, not at the end of its timeout."""
        queue = RecordQueue(10, "drop_newest", 0.0)
        taken: list[list[str]] = []
        waiter = threading.Thread(target=lambda: taken.append(queue.take(5, timeout=30)))
        waiter.start()
        deadline = time.monotonic() + 5
        while not queue._takers and time.monotonic() < deadline:
            time.sleep(0.01)
        queue.put("x")
        waiter.join(10)
        assert not waiter.is_alive() and taken == [["x"]]

    def test_flush_drains_everything_accepted(self, make_logger, tmp_path):
        """After flush() every accepted record is in the file, in order."""
        path = tmp_path / "app.log"
        handler = PIIRedactingHandler(filename=path, redactor=FakeRedactor(), batch_size=7)
        log = make_logger(handler)
        for i in range(500):
            log.info("n=%d", i)
        handler.flush()
        docs = [json.loads(line) for line in path.read_text().splitlines()]
        assert [d["message"] for d in docs] == [f"n={i}" for i in range(500)]

    def test_close_drains_and_stops_the_worker(self, tmp_path):
        """close() writes everything and joins the worker thread."""
        path = tmp_path / "app.log"
        handler = PIIRedactingHandler(filename=path, redactor=FakeRedactor())
        logger = logging.getLogger("test.close")
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
        for i in range(300):
            logger.info("c%d", i)
        worker = handler._worker
        logger.removeHandler(handler)
        handler.close()
        assert not worker.thread.is_alive()
        assert len(path.read_text().splitlines()) == 300

    def test_many_threads(self, make_logger, tmp_path):
        """Eight threads logging at once: every record written exactly once, each line valid JSON."""
        path = tmp_path / "app.log"
        handler = PIIRedactingHandler(filename=path, redactor=FakeRedactor(), queue_size=100_000)
        log = make_logger(handler)

        def work(n: int) -> None:
            for i in range(500):
                log.info("t%d-%d mail u%d@example.com", n, i, i)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        handler.flush()
        docs = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(docs) == 4000
        assert len({d["message"] for d in docs}) == 4000
        assert "@example.com" not in path.read_text()


class TestContext:
    def test_asyncio_tasks_keep_their_own_context(self, make_logger):
        """Concurrent tasks each see their own request id; nested blocks add fields."""
        out = io.StringIO()
        handler = PIIRedactingHandler(stream=out, redactor=FakeRedactor())
        log = make_logger(handler)

        async def request(n: int) -> None:
            with log_context(request_id=f"r{n}", session_id=f"s{n}"):
                await asyncio.sleep(0.01 * (5 - n))
                with log_context(step="inner"):
                    log.info("req %d", n)
                await asyncio.to_thread(log.info, "thread %d", n)

        async def main() -> None:
            await asyncio.gather(*(request(n) for n in range(5)))

        asyncio.run(main())
        handler.flush()
        docs = lines(out)
        for doc in docs:
            n = int(doc["message"].split()[1])
            assert doc["request_id"] == f"r{n}" and doc["session_id"] == f"s{n}"
        assert all(d.get("step") == "inner" for d in docs if d["message"].startswith("req"))
        assert len(docs) == 10


class TestConfiguration:
    def test_dictconfig_by_class_path(self, tmp_path):
        """dictConfig builds the handler from its class path with keyword options."""
        path = tmp_path / "dict.log"
        logging.config.dictConfig({
            "version": 1, "disable_existing_loggers": False,
            "handlers": {"shield": {"class": "presidio_logshield.PIIRedactingHandler", "filename": str(path),
                                    "detection": "patterns", "asynchronous": False, "service": "dc",
                                    "operators": {"EMAIL_ADDRESS": "redact"}}},
            "loggers": {"test.dictconfig": {"handlers": ["shield"], "level": "INFO", "propagate": False}},
        })
        logger = logging.getLogger("test.dictconfig")
        handler = logger.handlers[0]
        try:
            assert isinstance(handler, PIIRedactingHandler)
            assert handler.config.service == "dc" and handler.config.redaction.detection == "patterns"
            assert handler.config.redaction.operators == {"EMAIL_ADDRESS": "redact"}
        finally:
            logger.removeHandler(handler)
            handler.close()

    def test_invalid_env_value_names_the_variable(self, monkeypatch):
        """A bad LOGSHIELD_* value raises ConfigError naming the variable."""
        monkeypatch.setenv("LOGSHIELD_QUEUE_SIZE", "lots")
        with pytest.raises(ConfigError, match="LOGSHIELD_QUEUE_SIZE"):
            PIIRedactingHandler(stream=io.StringIO(), redactor=FakeRedactor())

    def test_keyword_beats_environment(self, monkeypatch):
        """A keyword option overrides the environment variable of the same name."""
        monkeypatch.setenv("LOGSHIELD_BATCH_SIZE", "3")
        handler = PIIRedactingHandler(stream=io.StringIO(), redactor=FakeRedactor(), batch_size=9)
        assert handler.config.batch_size == 9
        handler.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
class TestFork:
    def test_child_restarts_worker_and_writes_its_own_records(self, tmp_path):
        """gunicorn --preload: the handler exists (and has run) before fork; the child's records still arrive."""
        path = tmp_path / "app-{pid}.log"
        handler = PIIRedactingHandler(filename=path, redactor=FakeRedactor())
        logger = logging.getLogger("test.fork")
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.info("parent before fork a@b.io")
        handler.flush()
        pid = os.fork()
        if pid == 0:  # child
            try:
                for i in range(50):
                    logger.info("child %d", i)
                handler.close()
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        logger.info("parent after fork")
        logger.removeHandler(handler)
        handler.close()
        child_lines = (tmp_path / f"app-{pid}.log").read_text().splitlines()
        assert [json.loads(x)["message"] for x in child_lines] == [f"child {i}" for i in range(50)]
        parent = (tmp_path / f"app-{os.getpid()}.log").read_text()
        assert "parent after fork" in parent and "child" not in parent


def _run_script(*lines_of_code: str) -> None:
    """Run a script in a fresh interpreter that imports this checkout (PYTHONPATH inherited)."""
    import subprocess
    script = "\n".join(["import sys", f"sys.path.insert(0, {os.getcwd()!r})", *lines_of_code])
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


class TestExit:
    def test_records_are_drained_at_interpreter_exit(self, tmp_path):
        """A script that logs and exits without closing anything gets every record written, redacted (not withheld:
        the drain at exit still has a detection thread)."""
        path = tmp_path / "exit.log"
        _run_script(
            "import logging",
            "from presidio_logshield import PIIRedactingHandler",
            "from tests.lib.fakes import FakeRedactor",
            f"h = PIIRedactingHandler(filename={str(path)!r}, redactor=FakeRedactor())",
            "logging.getLogger().addHandler(h); logging.getLogger().setLevel(logging.INFO)",
            "for i in range(2000): logging.info('exit %d for u%d@example.com', i, i)",
        )
        messages = [json.loads(line)["message"] for line in path.read_text().splitlines()]
        assert messages == [f"exit {i} for <EMAIL_ADDRESS>" for i in range(2000)]

    def test_readme_quick_start_as_a_plain_script(self, tmp_path, monkeypatch):
        """The README's quick start, run as a script with the real redactor (patterns mode), writes its warning
        and its audit record redacted when the interpreter exits."""
        path = tmp_path / "app.log"
        monkeypatch.setenv("LOGSHIELD_DETECTION", "patterns")
        _run_script(
            "import logging",
            "from presidio_logshield import PIIRedactingHandler, audit_event, log_context",
            f"logging.getLogger().addHandler(PIIRedactingHandler({str(path)!r}, service='shop-api'))",
            "with log_context(request_id='r-42', actor='alice@example.com'):",
            "    logging.getLogger('shop').warning('card %s declined for %s', '4111111111111111', 'alice@example.com',",
            "                                      extra={'payload': {'password': 'hunter2'}})",
            "    audit_event('invoice.read', 'invoice/42')",
        )
        warning, audit = (json.loads(line) for line in path.read_text().splitlines())
        assert warning["message"] == "card <CREDIT_CARD> declined for <EMAIL_ADDRESS>"
        assert warning["payload"] == {"password": "<SECRET>"} and warning["actor"] == "<EMAIL_ADDRESS>"
        assert audit["audit"]["action"] == "invoice.read" and "withheld" not in path.read_text()

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
    def test_forked_children_exiting_with_sys_exit_drain_redacted(self, tmp_path):
        """gunicorn-style workers that leave with sys.exit (atexit runs) write all their records, redacted."""
        template = tmp_path / "app-{pid}.log"
        _run_script(
            "import logging, os",
            "from presidio_logshield import PIIRedactingHandler",
            "from tests.lib.fakes import FakeRedactor",
            f"h = PIIRedactingHandler(filename={str(template)!r}, redactor=FakeRedactor())",
            "log = logging.getLogger('fork'); log.addHandler(h); log.setLevel(logging.INFO); log.propagate = False",
            "log.info('parent a@b.io')",
            "children = []",
            "for k in range(2):",
            "    pid = os.fork()",
            "    if pid == 0:",
            "        for i in range(300): log.info('child %d msg %d bob@example.com', k, i)",
            "        sys.exit(0)",
            "    children.append(pid)",
            "for pid in children: os.waitpid(pid, 0)",
        )
        children = [p for p in tmp_path.glob("app-*.log")]
        assert len(children) == 3
        for path in children:
            messages = [json.loads(line)["message"] for line in path.read_text().splitlines()]
            assert "withheld" not in path.read_text() and "@example.com" not in path.read_text()
            if messages[0].startswith("child"):
                k = messages[0].split()[1]
                assert messages == [f"child {k} msg {i} <EMAIL_ADDRESS>" for i in range(300)]
