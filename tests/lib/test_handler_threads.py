"""The handler's threads: a hung detection call is abandoned (bounded), and records logged from inside the handler's own work never deadlock it."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import threading

import pytest

from presidio_logshield import PIIRedactingHandler
from presidio_logshield.config import load_handler_config
from presidio_logshield.pipeline import Pipeline
from presidio_logshield.record import snapshot
from tests.lib.fakes import FakeRedactor
from tests.lib.fakes import json_lines as lines


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
        """With two hung calls still computing, further batches are withheld at once instead of starting threads;
        once the hung calls return, records are redacted again."""
        out = io.StringIO()
        fake = FakeRedactor(hang_on="HANG", hang_seconds=30, spin=True)
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
        writes: the application call returns, the record is written withheld, and the warning is diverted (on the
        worker) or written after it (logged re-entrantly on the application thread, synchronous mode)."""
        out = io.StringIO()
        fake = FakeRedactor(hang_on="HANG", hang_seconds=30)
        handler = on_root(PIIRedactingHandler(stream=out, redactor=fake, detection_timeout=0.3,
                                              asynchronous=asynchronous))
        try:
            assert _finishes(lambda: logging.getLogger("app").error("HANG mail alice@example.com"))
            handler.flush(timeout=10)
        finally:
            fake.release.set()
        doc, *warned = lines(out)
        assert doc["redaction"]["error"] == "DetectionTimeout" and "alice@" not in out.getvalue()
        if asynchronous:
            assert not warned and handler.stats().diverted >= 1
        else:
            assert [w["logger"] for w in warned] == ["presidio_logshield"]

    @pytest.mark.parametrize("asynchronous", [True, False])
    def test_warning_while_the_models_load_with_captured_warnings(self, on_root, asynchronous):
        """logging.captureWarnings(True) and no spaCy pipeline: the fallback warning, raised while the handler
        builds its redactor, does not re-enter it; the record is redacted, and the warning is written after it
        (synchronous mode: logged on the application thread) or diverted (on the worker)."""
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
        doc, *warned = lines(out)
        assert doc["message"] == "mail <EMAIL_ADDRESS>"
        if asynchronous:
            assert not warned and handler.stats().diverted >= 1
        else:
            assert [w["logger"] for w in warned] == ["py.warnings"] and "no spaCy pipeline" in warned[0]["message"]

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

    def test_a_record_logged_while_snapshotting_is_written_after(self, make_logger):
        """An argument whose __str__ logs (synchronous mode): the inner record is kept and written after the
        outer one, without deadlock."""
        out = io.StringIO()
        handler = PIIRedactingHandler(stream=out, redactor=FakeRedactor(), asynchronous=False)
        log = make_logger(handler)

        class Noisy:
            def __str__(self) -> str:
                log.warning("inner")
                return "noisy"

        assert _finishes(lambda: log.info("outer %s", Noisy()))
        assert [d["message"] for d in lines(out)] == ["outer noisy", "inner"] and handler.stats().diverted == 0


