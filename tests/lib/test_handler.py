"""PIIRedactingHandler with a fake redactor: record shapes, fail-closed, queueing, draining, context, configuration, fork, interpreter exit."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
import os
import subprocess
import sys
import threading
import time

import pytest

from presidio_logshield import PIIRedactingHandler, log_context
from presidio_logshield.config import ConfigError
from presidio_logshield.worker import RecordQueue
from tests.lib.fakes import FakeRedactor
from tests.lib.fakes import json_lines as lines


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

    def test_refused_handler_is_not_flushed_at_exit(self):
        """A handler whose options were refused is not registered with logging: the exit flush says nothing."""
        code = ("from presidio_logshield import PIIRedactingHandler\n"
                "try:\n    PIIRedactingHandler(entities='EMAIL')\nexcept ValueError as exc:\n    print(type(exc).__name__)\n")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and done.stdout.strip() == "ConfigError"
        assert "Traceback" not in done.stderr and "AttributeError" not in done.stderr, done.stderr

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
