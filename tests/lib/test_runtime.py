"""Runtime robustness: reconfiguring logging, signals, re-entrant objects, hung detection, fork, warnings, close.

The cases that used to hang run in a child interpreter with a timeout, so a regression fails instead of hanging.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from presidio_logshield import JsonFormatter, PIIRedactingHandler, RedactingFilter
from presidio_logshield.config import load_handler_config
from presidio_logshield.output import NESTED_TOO_DEEP
from presidio_logshield.pipeline import Pipeline
from presidio_logshield.record import RecordSnapshot, snapshot
from tests.lib.fakes import FakeRedactor
from tests.lib.fakes import json_lines as lines

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter; a hang fails the test (timeout) instead of hanging it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, timeout=timeout,
                              capture_output=True, text=True, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"hung (no exit within {timeout:.0f}s); stderr: {exc.stderr!r}")


def _deep(depth: int, leaf: object) -> object:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


class TestReconfiguration:
    @pytest.mark.parametrize("how", ["dictConfig", "basicConfig"])
    def test_reconfiguring_right_after_the_first_record_does_not_hang(self, tmp_path, how):
        """dictConfig twice or basicConfig(force=True) while the worker still imports Presidio (which needs
        logging's module lock that close() runs under) returns; the record accepted before is written redacted."""
        log = tmp_path / "app.log"
        result = _run(f"""
            import logging, logging.config
            cfg = {{"version": 1, "handlers": {{"shield": {{"class": "presidio_logshield.PIIRedactingHandler",
                    "filename": {str(log)!r}, "detection": "patterns", "chain": False}}}},
                    "root": {{"handlers": ["shield"], "level": "INFO"}}}}
            logging.config.dictConfig(cfg)
            logging.getLogger("app").warning("first mail alice@example.com")
            if {how!r} == "dictConfig":
                logging.config.dictConfig({{"version": 1, "root": {{"level": "INFO"}}}})
            else:
                logging.basicConfig(force=True)
            print("returned")
        """)
        assert result.returncode == 0 and "returned" in result.stdout, result.stderr
        docs = [json.loads(line) for line in log.read_text().splitlines()]
        assert [d["message"] for d in docs] == ["first mail <EMAIL_ADDRESS>"]


class TestSignalReentrancy:
    @pytest.mark.parametrize("call", ["stats", "flush"])
    def test_a_signal_handler_that_logs_during_stats_or_flush(self, call):
        """A signal handler logging while the main thread is inside stats() or flush() does not deadlock; its
        records are written."""
        result = _run(f"""
            import io, logging, signal, time
            from presidio_logshield import PIIRedactingHandler
            out = io.StringIO()
            h = PIIRedactingHandler(stream=out, detection="patterns", chain=False)
            log = logging.getLogger("sig"); log.propagate = False; log.addHandler(h); log.setLevel(10)
            fired = [0]
            def on_alarm(signum, frame):
                fired[0] += 1
                log.warning("alarm %d for bob@example.com", fired[0])
            signal.signal(signal.SIGALRM, on_alarm)
            log.info("warm"); h.flush()
            signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
            end = time.monotonic() + 3
            while time.monotonic() < end:
                h.{call}()
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            h.close()
            print(fired[0], out.getvalue().count('"alarm'), "bob@" in out.getvalue())
        """)
        assert result.returncode == 0, result.stderr
        fired, written, leaked = result.stdout.split()
        assert int(fired) > 0 and int(written) > 0 and leaked == "False"


class TestFilterReentrancy:
    def test_an_extra_object_whose_str_logs(self):
        """RedactingFilter with an ``extra`` object whose __str__ logs through the same filter: no deadlock on the
        shared redactor; both records are redacted."""
        result = _run("""
            import io, logging
            from presidio_logshield import RedactingFilter
            out = io.StringIO()
            h = logging.StreamHandler(out); h.addFilter(RedactingFilter(detection="patterns"))
            h.setFormatter(logging.Formatter("%(message)s %(o)s"))
            log = logging.getLogger("re"); log.propagate = False; log.addHandler(h)
            class Chatty:
                def __str__(self):
                    log.warning("inside alice@example.com", extra={"o": "-"})
                    return "Chatty(bob@example.com)"
            log.warning("outer", extra={"o": Chatty()})
            print(out.getvalue())
        """, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "outer Chatty(<EMAIL_ADDRESS>)" in result.stdout and "@example.com" not in result.stdout


class TestSharedRedactorDeadline:
    @pytest.mark.parametrize("component", ["filter", "formatter"])
    def test_a_hung_call_holding_the_shared_redactor(self, component):
        """A detection call the handler abandoned still holds the shared redactor: the filter or formatter waits
        only its detection_timeout, withholds that record, and the next record gets a fresh redactor."""
        result = _run(f"""
            import io, logging, sys, threading
            from presidio_logshield import JsonFormatter, PIIRedactingHandler, RedactingFilter
            from presidio_logshield import redactor as R
            detect = R.Redactor._detect
            def hanging(self, items):
                if any("HANG" in text for text, _ in items):
                    threading.Event().wait()
                return detect(self, items)
            R.Redactor._detect = hanging
            shield = PIIRedactingHandler(stream=io.StringIO(), detection="patterns", chain=False,
                                         detection_timeout=0.5, asynchronous=False)
            a = logging.getLogger("a"); a.propagate = False; a.addHandler(shield)
            plain = logging.StreamHandler(sys.stdout)
            if {component!r} == "filter":
                plain.addFilter(RedactingFilter(detection="patterns", detection_timeout=0.5))
            else:
                plain.setFormatter(JsonFormatter(redaction={{"detection": "patterns"}}, detection_timeout=0.5))
            b = logging.getLogger("b"); b.propagate = False; b.addHandler(plain)
            b.warning("before alice@example.com")
            a.warning("HANG")
            b.warning("during alice@example.com")
            b.warning("after alice@example.com")
            print("returned")
        """)
        assert result.returncode == 0 and "returned" in result.stdout, result.stderr
        out = result.stdout.splitlines()
        assert "alice@" not in result.stdout
        assert "before <EMAIL_ADDRESS>" in out[0] and "withheld" in out[1] and "after <EMAIL_ADDRESS>" in out[2]


class TestFork:
    def test_fork_while_another_thread_loads_the_shared_redactor(self):
        """A child forked while a thread loads the shared redactor (imports included) redacts its own records
        instead of blocking on locks the vanished thread held; no traceback in the parent."""
        result = _run("""
            import logging, os, sys, threading, time
            from presidio_logshield import JsonFormatter
            h = logging.StreamHandler(sys.stdout); h.setFormatter(JsonFormatter(redaction={"detection": "patterns"}))
            log = logging.getLogger("fl"); log.propagate = False; log.setLevel(10); log.addHandler(h)
            th = threading.Thread(target=lambda: log.info("thread alice@example.com")); th.start()
            time.sleep(0.3)
            pid = os.fork()
            if pid == 0:
                log.info("child bob@example.com"); sys.stdout.flush(); os._exit(0)
            th.join()
            print("child status", os.waitpid(pid, 0)[1])
        """, timeout=90)
        assert result.returncode == 0, result.stderr
        assert "child <EMAIL_ADDRESS>" in result.stdout and "child status 0" in result.stdout
        assert "Traceback" not in result.stderr

    def test_fork_does_not_wait_for_a_batch_in_detection(self):
        """os.fork() while the worker's batch is in detection returns without waiting for that batch."""
        result = _run("""
            import io, logging, os, threading
            from presidio_logshield import PIIRedactingHandler
            from presidio_logshield.summary import NOTHING_FOUND
            entered, forked = threading.Event(), threading.Event()
            class Blocking:
                def redact_batch(self, values):
                    entered.set(); forked.wait(); return [(v, NOTHING_FOUND) for v in values]
                def pseudonym(self, *args): return ""
            out = io.StringIO()
            h = PIIRedactingHandler(stream=out, redactor=Blocking(), detection_timeout=300, chain=False)
            log = logging.getLogger("f"); log.propagate = False; log.addHandler(h); log.setLevel(10)
            log.info("x"); entered.wait()
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            forked.set(); os.waitpid(pid, 0); h.flush(); print(out.getvalue().count('"x"'))
        """, timeout=30)
        assert result.returncode == 0 and result.stdout.split() == ["1"], result.stderr


class TestDetectionRetry:
    def test_a_timed_out_batch_withholds_only_the_hanging_record(self):
        """When a batch overruns detection_timeout, its records are tried again alone: only the one that hangs is
        withheld."""
        fake = FakeRedactor(hang_on="HANG", hang_seconds=30)
        pipeline = Pipeline(load_handler_config(detection_timeout=0.5), lambda: fake)
        try:
            text = pipeline.render([_snap(msg) for msg in ("one a@b.io", "HANG c@d.io", "two e@f.io")]).decode()
        finally:
            fake.release.set()
            pipeline.close()
        docs = [json.loads(line) for line in text.splitlines()]
        assert [d["redaction"] for d in docs][1] == {"error": "DetectionTimeout", "withheld": True}
        assert [docs[0]["message"], docs[2]["message"]] == ["one <EMAIL_ADDRESS>", "two <EMAIL_ADDRESS>"]
        assert "c@d.io" not in text

    def test_records_are_redacted_again_after_calls_that_never_return(self, make_logger):
        """Three detection calls hung for good (waiting, not computing) do not make every later record
        DetectionStuck: later records are redacted."""
        out = io.StringIO()
        fake = FakeRedactor(hang_on="HANG", hang_seconds=30)
        handler = PIIRedactingHandler(stream=out, redactor=fake, detection_timeout=0.2, asynchronous=False,
                                      chain=False)
        log = make_logger(handler)
        try:
            for i in range(3):
                log.info("HANG %d", i)
            log.info("later a@b.io")
            docs = lines(out)
        finally:
            fake.release.set()
        assert [d["redaction"].get("error") for d in docs[:3]] == ["DetectionTimeout"] * 3
        assert docs[3]["message"] == "later <EMAIL_ADDRESS>"


def _snap(message: str) -> RecordSnapshot:
    return snapshot(logging.makeLogRecord({"msg": message, "name": "test.pipeline", "levelno": 20,
                                           "levelname": "INFO"}))


class TestOwnWarnings:
    def test_missing_model_warning_reaches_stderr_once_with_captured_warnings(self):
        """logging.captureWarnings(True) routes the 'no spaCy pipeline' warning, raised on the handler's worker,
        into the handler itself, which cannot take it: it is written to stderr, once."""
        result = _run("""
            import io, logging
            logging.captureWarnings(True)
            from presidio_logshield import PIIRedactingHandler
            out = io.StringIO()
            h = PIIRedactingHandler(stream=out, chain=False, spacy_model="xx_not_installed_model")
            logging.getLogger().addHandler(h); logging.getLogger().setLevel(logging.INFO)
            logging.getLogger("app").error("mail alice@example.com")
            h.flush()
            logging.getLogger("app").error("again bob@example.com")
            h.close()
            print(out.getvalue())
        """, timeout=90)
        assert result.returncode == 0, result.stderr
        assert result.stderr.count("no spaCy pipeline installed") == 1
        assert "mail <EMAIL_ADDRESS>" in result.stdout


class TestAfterClose:
    def test_records_after_close_are_written_redacted_and_counted(self, tmp_path):
        """A record emitted after close() is written, redacted, to the file (reopened, like a stdlib FileHandler)
        and counted in stats().after_close; it leaves no detection thread behind."""
        path = tmp_path / "app.log"
        handler = PIIRedactingHandler(str(path), redactor=FakeRedactor(), chain=False)
        log = logging.getLogger("test.after_close")
        log.propagate, log.handlers[:] = False, [handler]
        before = set(threading.enumerate())
        try:
            log.warning("before a@b.io")
            handler.close()
            log.warning("after c@d.io")
        finally:
            log.handlers[:] = []
            handler.close()
        docs = [json.loads(line) for line in path.read_text().splitlines()]
        assert [d["message"] for d in docs] == ["before <EMAIL_ADDRESS>", "after <EMAIL_ADDRESS>"]
        assert handler.stats().after_close == 1
        assert not [t for t in threading.enumerate() if t.name == "logshield-detect" and t not in before]


class TestFilterNames:
    def test_logger_thread_and_process_names_are_redacted(self):
        """RedactingFilter redacts personal data in the logger, thread and process names."""
        out = io.StringIO()
        stream = logging.StreamHandler(out)
        stream.addFilter(RedactingFilter(redactor=FakeRedactor()))
        stream.setFormatter(logging.Formatter("%(name)s|%(threadName)s|%(processName)s|%(message)s"))
        log = logging.getLogger("app john@example.com")
        log.propagate, log.handlers[:] = False, [stream]
        record = log.makeRecord(log.name, logging.WARNING, __file__, 1, "hello", None, None)
        record.threadName, record.processName = "session john@x.com", "worker mary@example.org"
        log.handle(record)
        assert out.getvalue().strip() == "app <EMAIL_ADDRESS>|session <EMAIL_ADDRESS>|worker <EMAIL_ADDRESS>|hello"


class TestDeepNesting:
    def test_handler_redacts_deep_extra_to_a_depth_limit(self, make_logger):
        """An ``extra`` value nested 1000 deep: the record is written redacted; only the part below the depth
        limit is replaced."""
        out = io.StringIO()
        log = make_logger(PIIRedactingHandler(stream=out, detection="patterns", asynchronous=False, chain=False))
        log.warning("mail alice@example.com", extra={"deep": _deep(1000, "bob@example.com"), "user": "c@d.io"})
        [doc] = lines(out)
        assert doc["message"] == "mail <EMAIL_ADDRESS>" and doc["user"] == "<EMAIL_ADDRESS>"
        assert NESTED_TOO_DEEP in json.dumps(doc["deep"]) and "@example.com" not in out.getvalue()

    def test_filter_and_formatter_redact_deep_extra_to_a_depth_limit(self):
        """RedactingFilter and JsonFormatter likewise keep the record and cut only what is too deep."""
        record = logging.makeLogRecord({"name": "app", "levelno": 30, "levelname": "WARNING",
                                        "msg": "mail alice@example.com", "deep": _deep(1000, "bob@example.com")})
        text = JsonFormatter(redaction={"detection": "patterns"}).format(logging.makeLogRecord(record.__dict__))
        assert "mail <EMAIL_ADDRESS>" in text and "@example.com" not in text
        RedactingFilter(detection="patterns").filter(record)
        assert record.getMessage() == "mail <EMAIL_ADDRESS>" and NESTED_TOO_DEEP in json.dumps(record.deep)
