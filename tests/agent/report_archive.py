"""A small archive with known contents for the compliance-report tests: data objects, audit records, an alert."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from logshield_agent.sinks.keys import object_key
from logshield_agent.sinks.local import LocalDirSink
from logshield_agent.transforms.compress import compress

START = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)


def record(when: datetime, **fields) -> dict:
    return {"timestamp": when.isoformat().replace("+00:00", "Z"), "level": "INFO", "logger": "shop.api",
            "message": "m", **fields}


def put_records(sink: LocalDirSink, docs: list[dict | str], *, start: int, service: str = "shop-api") -> str:
    first = docs[0]
    when = datetime.fromisoformat(first["timestamp"].replace("Z", "+00:00")) if isinstance(first, dict) else START
    body = b"".join((json.dumps(d) if isinstance(d, dict) else d).encode() + b"\n" for d in docs)
    key = object_key(service=service, host="h1", event_time=when, fingerprint="ab" * 32, start=start,
                     end=start + len(body), compression="zstd")
    data = compress(body, "zstd")
    sink.put(key, data, sha256=hashlib.sha256(data).hexdigest(), metadata={})
    return key


def build(root: Path) -> LocalDirSink:
    """Three hours of traffic: 30 plain records, 6 redacted cards, 2 e-mails, audit events by two actors
    (one failure), one withheld record, one non-JSON line, one alert — and an hour with nothing."""
    sink = LocalDirSink(root)
    hour0 = [record(START + timedelta(minutes=i)) for i in range(20)]
    hour0 += [record(START + timedelta(minutes=30 + i), redaction={"entities": {"CREDIT_CARD": 1},
                                                                   "rules": ["pattern:CREDIT_CARD"]})
              for i in range(6)]
    hour0 += [record(START + timedelta(minutes=40), level="ERROR",
                     redaction={"entities": {"EMAIL_ADDRESS": 2}, "rules": ["presidio:EmailRecognizer"]})]
    put_records(sink, hour0, start=0)
    hour2 = START + timedelta(hours=2)
    audit = [record(hour2 + timedelta(minutes=i), actor="alice" if i < 3 else "<script>bob</script>",
                    audit={"action": "invoice.read", "resource": f"invoice/{i}",
                           "outcome": "failure" if i == 4 else "success", "duration_ms": 3.0, "details": {}})
             for i in range(5)]
    audit += [record(hour2 + timedelta(minutes=9), redaction={"error": "DetectionTimeout", "withheld": True}),
              "plain text line from another program"]
    audit += [record(hour2 + timedelta(minutes=10 + i), stream="s1", seq=i + 1, chain="0" * 64,
                     **({"stream_start": {"chain": "hmac-sha256"}} if i == 0 else {})) for i in range(10)]
    put_records(sink, audit, start=10_000)
    alert = {"id": "a1", "kind": "rate_spike", "dimension": "entity", "key": "CREDIT_CARD",
             "window_start": (START + timedelta(minutes=30)).isoformat(), "count": 6, "baseline": 0.2}
    body = json.dumps(alert).encode()
    sink.put("_alerts/dt=2026-11-20/a1.json", body, sha256=hashlib.sha256(body).hexdigest(), metadata={},
             content_type="application/json")
    return sink
