"""Access auditing: audit_event and @audited records, their routing, Presidio engines audited, and request context
from WSGI / ASGI middleware and OpenTelemetry."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from presidio_logshield import PIIRedactingHandler, log_context
from presidio_logshield.audit import (
    AuditedAnalyzerEngine,
    AuditedAnonymizerEngine,
    AuditRecordFilter,
    audit_event,
    audited,
    verify_chain,
)
from presidio_logshield.middleware import ASGILogContextMiddleware, LogContextMiddleware


@pytest.fixture
def capture(tmp_path: Path):
    """Route the root logger (audit records propagate to it) to a synchronous handler; yield a reader."""
    handler = PIIRedactingHandler(tmp_path / "app.log", asynchronous=False, detection="patterns",
                                  audit_file=str(tmp_path / "audit.log"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def read(name: str = "app.log") -> list[dict]:
        handler.flush()
        path = tmp_path / name
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    yield read
    root.removeHandler(handler)
    root.setLevel(old_level)
    handler.close()


class TestAuditEvent:
    def test_audit_record_shape_and_routing(self, capture):
        """An audit record has the audit object and the context's actor; it goes to the audit file, not the log."""
        with log_context(actor="alice", session_id="s-1", request_id="r-9"):
            audit_event("invoice.read", "invoice/42", "success", duration_ms=3.14159, fields=2)
            logging.getLogger("app").info("ordinary line")
        (record,) = capture("audit.log")
        assert record["audit"] == {"action": "invoice.read", "resource": "invoice/42", "outcome": "success",
                                   "duration_ms": 3.142, "details": {"fields": 2}}
        assert (record["actor"], record["request_id"]) == ("alice", "r-9")
        assert record["session_id"] == "<SECRET>"  # a session id is a credential unless pseudonymised (below)
        assert [r["message"] for r in capture()] == ["ordinary line"]

    def test_audit_file_is_its_own_chain(self, capture, tmp_path):
        """Audit records are sealed in a stream of their own that verifies on its own."""
        for i in range(3):
            audit_event("doc.read", f"doc/{i}")
            logging.getLogger("app").info("x")
        capture()
        audit_lines = (tmp_path / "audit.log").read_text().splitlines()
        assert verify_chain(audit_lines) == [] and verify_chain((tmp_path / "app.log").read_text().splitlines()) == []
        assert json.loads(audit_lines[0])["stream"] != json.loads((tmp_path / "app.log").read_text().split("\n")[0])[
            "stream"]

    def test_details_are_redacted(self, capture):
        """PII in details is redacted like any extra field."""
        audit_event("user.lookup", "users", email="bob@example.com", password="hunter2")
        (record,) = capture("audit.log")
        assert record["audit"]["details"] == {"email": "<EMAIL_ADDRESS>", "password": "<SECRET>"}

    def test_explicit_actor_overrides_context(self, capture):
        """actor= names who did it for this record only."""
        with log_context(actor="service-account"):
            audit_event("export.run", "exports/7", actor="carol")
        (record,) = capture("audit.log")
        assert record["actor"] == "carol"


class TestAuditEventNeverRaises:
    def test_values_that_are_not_a_level_logger_or_duration_become_details(self, capture):
        """level="high", logger=42, duration_ms="fast": no exception; written at INFO through the audit logger with
        the values kept in details as extra_level / extra_logger / extra_duration_ms."""
        audit_event("doc.read", "doc/1", level="high", logger=42, duration_ms="fast", clearance="secret-ish")
        (record,) = capture("audit.log")
        assert record["level"] == "INFO" and record["logger"] == "presidio_logshield.audit"
        assert record["audit"]["duration_ms"] is None
        assert record["audit"]["details"] == {"extra_level": "high", "extra_logger": 42, "extra_duration_ms": "fast",
                                              "clearance": "secret-ish"}

    def test_level_names_and_logger_names_are_accepted(self, capture):
        """level may be a level name and logger a logger's name."""
        audit_event("invoice.export", "invoice/9", level="warning", logger="billing")
        (record,) = capture("audit.log")
        assert record["level"] == "WARNING" and record["logger"] == "billing" and record["audit"]["details"] == {}


class TestAudited:
    def test_resource_callable_gets_arguments_by_name(self, capture):
        """The docstring's lambda gets the arguments by name however the function was called: positionally, by
        keyword, as a method (self included), with defaults applied."""

        @audited("invoice.read", resource=lambda invoice_id, **_: f"invoice/{invoice_id}")
        def read(invoice_id: int, fmt: str = "csv") -> str:
            return fmt

        class Repo:
            @audited("invoice.read", resource=lambda self, invoice_id, fmt, **_: f"{self.name}/{invoice_id}.{fmt}")
            def read(self, invoice_id: int, fmt: str = "pdf") -> str:
                return fmt

            name = "repo"

        @audited("bulk.read", resource=lambda ids, **_: ",".join(map(str, ids)))
        def bulk(*ids: int, **options: str) -> None:
            return None

        read(42, "csv")
        read(invoice_id=43)
        Repo().read(7)
        bulk(1, 2, 3, mode="x")
        resources = [r["audit"]["resource"] for r in capture("audit.log")]
        assert resources == ["invoice/42", "invoice/43", "repo/7.pdf", "1,2,3"]

    def test_resource_callable_taking_positional_arguments_still_works(self, capture):
        """A resource callable written for the arguments as passed (*args) still gets them."""

        @audited("x.read", resource=lambda *args, **kwargs: f"x/{args[0]}")
        def read(item: int) -> None:
            return None

        read(5)
        (record,) = capture("audit.log")
        assert record["audit"]["resource"] == "x/5"

    def test_success_and_failure_with_duration(self, capture):
        """A decorated function records success, or failure with the exception type but not its message."""

        @audited("invoice.pay", resource=lambda invoice_id, **_: f"invoice/{invoice_id}")
        def pay(invoice_id: int, fail: bool = False) -> str:
            if fail:
                raise PermissionError("card 4111111111111111 declined for bob@example.com")
            return "paid"

        assert pay(1) == "paid"
        with pytest.raises(PermissionError):
            pay(2, fail=True)
        ok, failed = capture("audit.log")
        assert ok["audit"]["outcome"] == "success" and ok["audit"]["resource"] == "invoice/1"
        assert failed["audit"]["outcome"] == "failure" and failed["audit"]["details"]["error"] == "PermissionError"
        assert ok["audit"]["duration_ms"] >= 0 and "4111" not in json.dumps(failed)

    def test_async_functions(self, capture):
        """Coroutines are audited when awaited, in the caller's context."""

        @audited("job.run")
        async def job() -> int:
            await asyncio.sleep(0)
            return 7

        async def main() -> int:
            with log_context(actor="scheduler"):
                return await job()

        assert asyncio.run(main()) == 7
        (record,) = capture("audit.log")
        assert record["audit"]["action"] == "job.run" and record["actor"] == "scheduler"


class TestAuditRecordFilter:
    def test_splits_audit_from_ordinary_records(self):
        """audit=True lets only audit records through, audit=False only the others."""
        make = logging.makeLogRecord
        audit, plain = make({"audit": {"action": "a"}}), make({"msg": "m"})
        assert AuditRecordFilter(audit=True).filter(audit) and not AuditRecordFilter(audit=True).filter(plain)
        assert AuditRecordFilter(audit=False).filter(plain) and not AuditRecordFilter(audit=False).filter(audit)


class TestAuditedPresidio:
    def test_analyzer_and_anonymizer_calls_are_audited_without_values(self, capture):
        """Each analyze/anonymize call writes counts, lengths and the caller — never the text or a value."""
        from presidio_analyzer import AnalyzerEngine, PatternRecognizer, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NoOpNlpEngine
        from presidio_anonymizer import AnonymizerEngine

        registry = RecognizerRegistry(recognizers=[PatternRecognizer("EMAIL_ADDRESS", deny_list=["bob@example.com"])])
        nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
        analyzer = AuditedAnalyzerEngine(AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"]))
        anonymizer = AuditedAnonymizerEngine(AnonymizerEngine())
        text = "write to bob@example.com"
        results = analyzer.analyze(text=text, language="en")
        anonymized = anonymizer.anonymize(text, results)
        assert anonymized.text == "write to <EMAIL_ADDRESS>"
        analyze, anonymize = capture("audit.log")
        assert analyze["audit"]["action"] == "presidio.analyze"
        assert analyze["audit"]["details"]["entities"] == {"EMAIL_ADDRESS": 1}
        assert analyze["audit"]["details"]["text_length"] == len(text)
        assert analyze["audit"]["details"]["caller"].endswith(":test_analyzer_and_anonymizer_calls_are_audited_without_values")
        assert anonymize["audit"]["details"]["operations"] == {"EMAIL_ADDRESS:replace": 1}
        assert "bob@example.com" not in json.dumps([analyze, anonymize])
        assert analyzer.get_supported_entities() == ["EMAIL_ADDRESS"]  # everything else passes through


class TestPseudonymFields:
    def test_actor_and_session_are_stable_pseudonyms(self, tmp_path, monkeypatch):
        """pseudonym_fields: the same actor gives the same token in two processes' worth of handlers, and no trace
        of the value; other fields are untouched."""
        key = "base64:" + base64.b64encode(b"k" * 32).decode()
        tokens = []
        for run in range(2):
            handler = PIIRedactingHandler(tmp_path / f"{run}.log", asynchronous=False, detection="patterns",
                                          pseudonym_fields="actor,session_id", pseudonym_key=key)
            logger = logging.getLogger(f"test.pseudonym.{run}")
            logger.handlers[:] = [handler]
            logger.propagate = False
            with log_context(actor="alice@example.com", session_id="sess-1", request_id="r1"):
                logger.warning("did a thing")
            handler.close()
            record = json.loads((tmp_path / f"{run}.log").read_text())
            tokens.append(record["actor"])
            assert record["request_id"] == "r1" and "alice" not in json.dumps(record)
            assert record["actor"].startswith("<ACTOR:ps:") and "redaction" not in record
        assert tokens[0] == tokens[1]

    def test_missing_key_names_the_variable(self, monkeypatch):
        """pseudonym_fields without a key is a configuration error naming LOGSHIELD_PSEUDONYM_KEY."""
        from presidio_logshield import ConfigError

        monkeypatch.delenv("LOGSHIELD_PSEUDONYM_KEY", raising=False)
        with pytest.raises(ConfigError, match="LOGSHIELD_PSEUDONYM_KEY"):
            PIIRedactingHandler(stream=None, pseudonym_fields="actor")


def wsgi_app(environ, start_response):
    logging.getLogger("web").info("handling %s", environ["PATH_INFO"])
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        logging.getLogger("web").info("streaming")
        yield b"ok"

    return body()


class TestMiddleware:
    def test_wsgi_request_context_and_echo(self, capture):
        """Every record of a WSGI request (body streaming included) has the request's id, actor and session."""
        app = LogContextMiddleware(wsgi_app, actor=lambda env: env.get("REMOTE_USER"),
                                   session=lambda env: env.get("HTTP_COOKIE", "").removeprefix("sid="))
        environ = {"PATH_INFO": "/orders", "REMOTE_USER": "dave", "HTTP_COOKIE": "sid=abc",
                   "HTTP_X_REQUEST_ID": "req-123"}
        setup_testing_defaults(environ)
        sent = {}
        body = b"".join(app(environ, lambda status, headers, exc=None: sent.update(headers=headers)))
        assert body == b"ok" and ("X-Request-ID", "req-123") in sent["headers"]
        records = capture()
        assert [r["message"] for r in records] == ["handling /orders", "streaming"]
        assert all(r["request_id"] == "req-123" and r["actor"] == "dave" and r["session_id"] == "<SECRET>"
                   for r in records)

    def test_wsgi_untrusted_request_id_is_replaced(self, capture):
        """A request id header that is not a plain id (here: an injection attempt) is replaced by a fresh one."""
        app = LogContextMiddleware(wsgi_app)
        environ = {"PATH_INFO": "/", "HTTP_X_REQUEST_ID": 'x"}\n{"forged":1'}
        setup_testing_defaults(environ)
        b"".join(app(environ, lambda *a: None))
        (first, _) = capture()
        assert len(first["request_id"]) == 32 and "forged" not in json.dumps(first)

    def test_asgi_http_context_and_echo(self, capture):
        """ASGI: the request id reaches every record logged while handling; the response carries it back."""

        async def asgi_app(scope, receive, send):
            logging.getLogger("web").info("asgi %s", scope["path"])
            await asyncio.gather(asyncio.sleep(0))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        sent = []

        async def send(message):
            sent.append(message)

        async def receive():
            return {"type": "http.request"}

        app = ASGILogContextMiddleware(asgi_app, actor=lambda scope: scope.get("user"))
        scope = {"type": "http", "path": "/x", "user": "erin",
                 "headers": [(b"x-request-id", b"abc-1"),
                             (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]}
        asyncio.run(app(scope, receive, send))
        assert (b"x-request-id", b"abc-1") in sent[0]["headers"]
        (record,) = capture()
        assert record["request_id"] == "abc-1" and record["actor"] == "erin"
        assert record["trace_id"] == "0af7651916cd43dd8448eb211c80319c"


class TestOpenTelemetry:
    def test_active_span_ids_on_every_record(self, capture):
        """Inside an active span, records carry its trace and span ids; outside, none."""
        span = NonRecordingSpan(SpanContext(trace_id=0x1234, span_id=0x99, is_remote=False,
                                            trace_flags=TraceFlags(TraceFlags.SAMPLED)))
        with trace.use_span(span):
            logging.getLogger("app").info("inside")
        logging.getLogger("app").info("outside")
        inside, outside = capture()
        assert inside["trace_id"] == f"{0x1234:032x}" and inside["span_id"] == f"{0x99:016x}"
        assert "trace_id" not in outside


class TestAuditFileFromEnvironment:
    def test_variable_routes_audit_records(self, tmp_path, monkeypatch):
        """LOGSHIELD_AUDIT_FILE, the variable `logshield reveal` uses too, configures the handler's audit file."""
        monkeypatch.setenv("LOGSHIELD_AUDIT_FILE", str(tmp_path / "audit.log"))
        handler = PIIRedactingHandler(tmp_path / "app.log", asynchronous=False, detection="patterns")
        logger = logging.getLogger("test.audit.env")
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)
        audit_event("x.y", logger=logger)
        handler.close()
        assert json.loads((tmp_path / "audit.log").read_text())["audit"]["action"] == "x.y"
        assert not (tmp_path / "app.log").exists() or (tmp_path / "app.log").read_text() == ""
