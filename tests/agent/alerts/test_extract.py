"""What the alert tally counts in a shipped batch, by each of its three ways through it."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from logshield_agent.alerts import tally
from logshield_agent.alerts.fields import MAX_KEY_CHARS, hashed

from presidio_logshield import PIIRedactingHandler, log_context
from presidio_logshield.audit import audit_event
from tests.lib.fakes import FakeRedactor

from .traffic import MINUTE, T0, record, spread, steady


def per_window(found, window: int = MINUTE) -> Counter:
    """(dimension, key, window start) → count, without zero entries."""
    out: Counter = Counter()
    for (dimension, key, second), n in found.counts.items():
        out[(dimension, key, second - second % window if second >= 0 else -1)] += n
    return Counter({k: v for k, v in out.items() if v})


def assert_sampled_as_exact(lines: list[bytes], service: str) -> None:
    """Counting ``lines`` by sampling gives the same counts per window as counting them one by one."""
    body = b"".join(lines)
    sampled = tally(body, service=service, lines=len(lines), sample_from=0)
    exact = tally(body, service=service, sample_from=10**9)
    assert sampled.sampled and not exact.sampled
    assert per_window(sampled) == per_window(exact)


def _local(epoch: float, *, hours: int) -> str:
    """``epoch`` as an ISO time in a zone ``hours`` east of UTC."""
    zone = timezone(timedelta(hours=hours))
    return datetime.fromtimestamp(epoch, zone).isoformat()


class TestLibraryLines:
    def test_counts_every_dimension(self):
        """Volume, logger, actor, entity counts and audit actions are counted per event second."""
        body = b"".join([
            record(T0 + 1, "shop.api", actor="alice", entities={"CREDIT_CARD": 2, "EMAIL_ADDRESS": 1}),
            record(T0 + 2, "shop.db", actor="bob"),
            record(T0 + 61, "shop.api", actor="alice",
                   audit={"action": "invoice.read", "outcome": "failure"}),
        ])
        found = per_window(tally(body, service="shop", sample_from=10**9))
        assert found == Counter({
            ("volume", "shop", T0): 2, ("volume", "shop", T0 + 60): 1,
            ("logger", "shop.api", T0): 1, ("logger", "shop.db", T0): 1, ("logger", "shop.api", T0 + 60): 1,
            ("actor", "alice", T0): 1, ("actor", "bob", T0): 1, ("actor", "alice", T0 + 60): 1,
            ("entity", "CREDIT_CARD", T0): 2, ("entity", "EMAIL_ADDRESS", T0): 1,
            ("action", "invoice.read", T0 + 60): 1, ("actor_action", "alice|invoice.read", T0 + 60): 1,
        })

    def test_event_field_counts_too(self):
        """A record with a top-level ``event`` counts under that event as well as under its logger."""
        body = record(T0, "shop.api", event="export") + record(T0 + 1, "shop.api")
        found = per_window(tally(body, service="shop", sample_from=10**9))
        assert found[("event", "export", T0)] == 1 and found[("logger", "shop.api", T0)] == 2

    def test_nested_fields_are_not_top_level(self):
        """An ``actor`` or ``event`` inside a nested object of an audit record is not the record's."""
        body = record(T0, audit={"action": "a", "details": {"actor": "x", "event": "y"}})
        found = per_window(tally(body, service="shop", sample_from=10**9))
        assert not [k for k in found if k[0] in ("actor", "event")]
        assert found[("logger", "shop.api", T0)] == 1

    def test_related_values_and_no_content(self):
        """Related values are field values (loggers, levels, outcomes), never message text."""
        body = record(T0, "shop.pay", level="ERROR", message="secret text", actor="alice",
                      entities={"CREDIT_CARD": 1})
        found = tally(body, service="shop", sample_from=10**9)
        assert found.related[("entity", "CREDIT_CARD")]["loggers"] == Counter({"shop.pay": 1})
        assert found.related[("logger", "shop.pay")]["levels"] == Counter({"ERROR": 1})
        assert "secret text" not in repr(found)

    def test_long_keys_are_truncated(self):
        """Keys are cut to MAX_KEY_CHARS characters."""
        found = tally(record(T0, actor="a" * 1000), service="shop", sample_from=10**9)
        (actor,) = [k for (d, k, _) in found.counts if d == "actor"]
        assert len(actor) == MAX_KEY_CHARS and actor.endswith("…")

    def test_real_handler_output(self, tmp_path):
        """Lines written by PIIRedactingHandler (context, chain, audit, redaction) take the library path."""
        handler = PIIRedactingHandler(filename=tmp_path / "app.log", redactor=FakeRedactor(), asynchronous=False)
        logger = logging.getLogger("tests.alerts.real")
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)
        try:
            with log_context(actor="alice", session_id="s-1"):
                logger.info("mail bob@example.com")
                logger.info("login", extra={"event": "login"})
                audit_event("invoice.read", "invoice/1", logger=logger)
        finally:
            logger.handlers[:] = []
            handler.close()
        body = (tmp_path / "app.log").read_bytes()
        found = Counter()
        for (dimension, key, _), n in tally(body, service="app", sample_from=10**9).counts.items():
            found[(dimension, key)] += n
        assert found[("volume", "app")] == 3 and found[("actor", "alice")] == 3
        assert found[("entity", "EMAIL_ADDRESS")] == 1 and found[("event", "login")] == 1
        assert found[("logger", "tests.alerts.real")] == 3 and found[("action", "invoice.read")] == 1


class TestSampledPath:
    @pytest.mark.parametrize("loggers", [1, 3])
    def test_same_counts_as_exact(self, loggers):
        """A large time-ordered batch counted by sampling gives the exact path's counts per window."""
        lines = [line for _, line in steady(T0 + 17, 4, 4000, seed=loggers)]
        if loggers == 1:
            lines = [line.replace(b'"shop.db"', b'"shop.api"') for line in lines]
        assert_sampled_as_exact(lines, "shop")

    def test_burst_between_probes_is_counted(self):
        """A run of a rare logger and a marker field between probes is still found and counted exactly."""
        times = spread(T0, MINUTE, 6000)
        lines = [record(t) for t in times]
        lines[3000:3040] = [record(t, "shop.admin", actor="mallory") for t in times[3000:3040]]
        found = per_window(tally(b"".join(lines), service="shop", lines=len(lines), sample_from=0))
        assert found[("logger", "shop.admin", T0)] == 40 and found[("actor", "mallory", T0)] == 40
        assert found[("logger", "shop.api", T0)] == 5960

    def test_other_json_same_counts_as_exact(self):
        """Other programs' JSON, large and in time order: sampled counts equal the line-by-line ones."""
        lines = []
        for i, t in enumerate(spread(T0 + 30, 3 * MINUTE, 12000)):
            doc = {"event": f"request {i % 7}", "level": "info", "logger": "api" if i % 3 else "db", "timestamp": t,
                   "actor": f"u{i % 11}"}
            if i % 97 == 0:
                doc["redaction"] = {"entities": {"EMAIL_ADDRESS": 1}}
            if i % 89 == 0:
                doc["audit"] = {"action": "login", "outcome": "success"}
            lines.append(json.dumps(doc).encode() + b"\n")
        assert_sampled_as_exact(lines, "api")

    def test_plain_text_same_counts_as_exact(self):
        """Plain text, large and in time order: sampled volume per window equals the line-by-line count."""
        lines = [f"{datetime.fromtimestamp(t, timezone.utc):%Y-%m-%d %H:%M:%S},123 INFO line {i}\n".encode()
                 for i, t in enumerate(spread(T0 + 30, 3 * MINUTE, 12000))]
        for i in range(5, len(lines), 50):
            lines[i] = b"    at continuation.Line(File.java:42)\n"
        assert_sampled_as_exact(lines, "legacy")

    def test_out_of_order_batch_counted_exactly(self):
        """Probes out of time order send the batch to the exact path."""
        lines = [record(t) for t in spread(T0 + 120, MINUTE, 3000)] + [record(t) for t in spread(T0, MINUTE, 3000)]
        found = tally(b"".join(lines), service="shop", lines=len(lines), sample_from=0)
        assert not found.sampled
        assert per_window(found)[("volume", "shop", T0)] == 3000


class TestOtherLines:
    def test_other_programs_json(self):
        """JSON from other programs: any field order, epoch or ISO time fields, logger/logger_name; their event
        (often a message) is counted hashed."""
        lines = [json.dumps({"level": "info", "ts": T0 + 5.5, "logger": "go.svc", "actor": 7}),
                 json.dumps({"@timestamp": _local(T0 + 10, hours=1), "logger_name": "java.Svc", "msg": "x"}),
                 json.dumps({"time": (T0 + 70) * 1000, "event": "user.login", "actor": "bob"})]
        found = per_window(tally(("\n".join(lines) + "\n").encode(), service="mix"))
        assert found[("logger", "go.svc", T0)] == 1 and found[("actor", "7", T0)] == 1
        assert found[("logger", "java.Svc", T0)] == 1  # an offset is honoured
        assert found[("event", hashed("user.login"), T0 + 60)] == 1 and found[("actor", "bob", T0 + 60)] == 1
        assert not [k for k in found if k[1] == "user.login"]

    def test_plain_text_counts_toward_volume_only(self):
        """Text lines count toward volume at their leading timestamp; lines without one at their neighbour's."""
        body = (b"2026-11-19 00:00:01,123 INFO start\n"
                b"  continuation without a time\n"
                b"[2026-11-19T00:01:30Z] WARN later\n")
        found = tally(body, service="legacy")
        start = 1_795_046_400  # 2026-11-19T00:00:00Z
        assert per_window(found) == Counter({("volume", "legacy", start): 2, ("volume", "legacy", start + 60): 1})
        assert found.untimed == 0  # the continuation line has a neighbour's time

    def test_no_time_at_all(self):
        """A batch without any event time is counted at second -1 (the observer uses the ship time)."""
        found = tally(b"hello\nworld\n", service="x")
        assert found.counts == Counter({("volume", "x", -1): 2}) and found.untimed == 2

    def test_dimensions_can_be_left_out(self):
        """Only the configured dimensions are counted (and volume: the records)."""
        found = tally(record(T0, actor="alice", entities={"IBAN_CODE": 1}), service="s", dimensions=("entity",))
        assert {d for d, _, _ in found.counts} == {"entity", "volume"}
