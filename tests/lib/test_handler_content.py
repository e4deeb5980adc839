"""What the handler writes for hard records: key names in %-mapping args, named tuples and header pairs; reserved field names; logger and thread names; unprintable values; containers captured by value."""

from __future__ import annotations

import io
import logging
import logging.config
import threading
from collections.abc import Mapping

import pytest

from presidio_logshield import PIIRedactingHandler, log_context
from presidio_logshield.record import RESERVED_ATTRS, snapshot
from tests.lib.fakes import FakeRedactor
from tests.lib.fakes import json_lines as lines


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


