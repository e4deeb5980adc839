"""The alert observer in the real pipeline: alerts in the store for the report and verify, a file, /metrics."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from logshield_agent.alerts import StderrDestination, StoreDestination, alert_observers, store_key
from logshield_agent.alerts.fields import hashed
from logshield_agent.audit import DigestKey, DigestWriter, verify_archive
from logshield_agent.health import AgentMetrics
from logshield_agent.report import collect
from logshield_agent.sinks.local import LocalDirSink
from prometheus_client import generate_latest

from ..conftest import agent_config, make_pipeline
from .traffic import MINUTE, T0, batch, record, spread, steady


def write_traffic(path: Path) -> None:
    """40 minutes of shop traffic with 600 card redactions by one actor in minute 30, in event-time order."""
    timed = steady(T0, 40, 300)
    timed += [(t, record(t, "shop.checkout", actor="mallory", entities={"CREDIT_CARD": 1}))
              for t in spread(T0 + 30 * MINUTE + 0.01, MINUTE, 600)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(line for _, line in sorted(timed, key=lambda tl: tl[0])))


def observer_for(tmp_path: Path, metrics: AgentMetrics, **env: str):
    env.setdefault("alert_destinations", f"store,file://{tmp_path / 'alerts.jsonl'}")
    config = agent_config(tmp_path, **env)
    (observer,) = alert_observers(config, LocalDirSink(tmp_path / "store"), metrics)
    return observer


class TestInPipeline:
    def test_alerts_reach_store_file_report_and_verify(self, tmp_path):
        """A spike shipped by the pipeline gives alerts in _alerts/ (read by the report, listed by verify) and in the
        file, with the same documents."""
        write_traffic(tmp_path / "logs" / "app.log")
        metrics = AgentMetrics()
        observer = observer_for(tmp_path, metrics)
        sink = LocalDirSink(tmp_path / "store")
        key = DigestKey.load(key=None, key_file=None, state_dir=tmp_path / "state")
        digests = DigestWriter(sink, tmp_path / "state", host="testhost", key=key)
        make_pipeline(tmp_path, sink, observers=[digests, observer], metrics=metrics).run_once()
        in_file = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
        raised = {(a["dimension"], a["key"]) for a in in_file}
        assert raised == {("entity", "CREDIT_CARD"), ("actor", hashed("mallory")), ("logger", "shop.checkout")}
        assert [a["state"] for a in in_file].count("open") == 3 and [a["state"] for a in in_file].count("closed") == 3
        stored = {i.key: json.loads(sink.get(i.key)) for i in sink.list("_alerts/")}
        assert sorted(stored) == sorted(store_key(a) for a in in_file)  # one object per event
        by_event = lambda a: a["event_id"]  # noqa: E731
        assert sorted(stored.values(), key=by_event) == sorted(in_file, key=by_event)
        start = datetime.fromtimestamp(T0, timezone.utc)
        summary = collect(sink, start, start + timedelta(hours=1))
        assert sorted(a["event_id"] for a in summary.alerts) == sorted(a["event_id"] for a in in_file
                                                                       if a["state"] == "closed")
        report = verify_archive(sink)
        assert report.counts["alerts"] == 3  # informational; none is a finding (the test chain is not real: skip)
        assert not [f for f in report.findings + report.warnings if f.key.startswith("_alerts/")]
        exposed = generate_latest(metrics.registry).decode()
        assert 'logshield_alerts_total{dimension="entity"} 1.0' in exposed
        assert 'logshield_alert_deliveries_total{destination="store",result="delivered"} 6.0' in exposed
        assert 'logshield_alert_deliveries_total{destination="file",result="delivered"} 6.0' in exposed
        assert 'logshield_alert_keys{dimension="actor"} 41.0' in exposed
        assert (tmp_path / "state" / "alerts-state.json").exists()

    def test_batch_offered_twice_counts_once(self, tmp_path):
        """A batch the pipeline offers again (a critical observer failed) is not counted twice."""
        observer = observer_for(tmp_path, AgentMetrics(), alert_destinations="stderr")
        lines = [record(t, "shop.admin") for t in spread(T0, MINUTE, 80)]
        observer.batch_shipped(batch(lines))
        observer.batch_shipped(batch(lines))
        assert observer.detector._open[T0 // MINUTE][("logger", "shop.admin")].count == 80
        observer.close(T0)

    def test_alerts_off(self, tmp_path):
        """LOGSHIELD_ALERTS=off builds no observer."""
        config = agent_config(tmp_path, alerts="off")
        assert alert_observers(config, LocalDirSink(tmp_path / "store"), AgentMetrics()) == []


class TestDestinations:
    def test_store_put_is_idempotent_per_incident(self, tmp_path):
        """The same incident stored twice (another detection time after a replay) keeps the first object."""
        sink = LocalDirSink(tmp_path / "store")
        document = {"id": "20261118T113000Z-abc", "window_start": "2026-11-18T11:30:00+00:00", "detected_at": "1"}
        StoreDestination(sink).send(document, json.dumps(document).encode())
        StoreDestination(sink).send({**document, "detected_at": "2"}, json.dumps({**document, "detected_at": "2"})
                                    .encode())
        body = sink.get("_alerts/dt=2026-11-18/20261118T113000Z-abc.json")
        assert json.loads(body)["detected_at"] == "1"
        assert sink.head("_alerts/dt=2026-11-18/20261118T113000Z-abc.json").metadata == {}
        assert hashlib.sha256(body).hexdigest()

    def test_stderr_is_one_json_line(self):
        """stderr gets exactly the document, one line."""
        stream = io.StringIO()
        StderrDestination(stream).send({"id": "x"}, b'{"id":"x"}')
        assert stream.getvalue() == '{"id":"x"}\n'
