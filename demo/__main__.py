"""``make demo``: the whole story on embedded defaults, in about a minute.

A shop service logs two hours of realistic traffic (simulated clock) through ``PIIRedactingHandler`` into rotating
files; the ``logshield-agent`` sidecar ships them to SeaweedFS (an S3 store started here on loopback) with Object
Lock; then ``verify`` checks the archive and ``report`` draws it. Everything runs in a temporary directory that is
removed, and every process is stopped, on any way out (the end, an error, Ctrl-C, SIGTERM, SIGHUP; if the demo is
killed outright the kernel stops the agent); the report stays in ``demo-output/``.
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import os
import random
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from datetime import datetime
from pathlib import Path

from logshield_agent.sinks.keys import parse_key
from logshield_agent.transforms.compress import decompress

from presidio_logshield import PIIRedactingHandler
from tests.servers import SeaweedFS

from .app import SimulatedClock, Traffic
from .processes import Child, Stopped, signals_raise, workspace

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "demo-output"
START = (time.time() // 3600 - 3) * 3600  # three hours ago, on the hour: the traffic is recent
BUCKET, PREFIX = "shop-audit-logs", "shop"


def step(text: str) -> None:
    print(f"\n\033[1m{text}\033[0m", flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:  # noqa: S310 - loopback
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def run_app(logs: Path, key: bytes) -> tuple[dict[str, str], int, float]:
    handler = PIIRedactingHandler(
        filename=logs / "shop.log", audit_file=str(logs / "audit.log"), service="shop-api",
        max_bytes=256 * 1024, backup_count=50, pseudonym_fields="actor,session_id",
        pseudonym_key="base64:" + base64.b64encode(key).decode())
    clock = SimulatedClock(START)
    log = logging.getLogger("shop.api")
    log.addHandler(handler)
    log.addFilter(clock)
    logging.getLogger("presidio_logshield.audit").addHandler(handler)
    logging.getLogger("presidio_logshield.audit").addFilter(clock)
    log.setLevel(logging.INFO)
    log.propagate = logging.getLogger("presidio_logshield.audit").propagate = False
    raw: dict[str, str] = {}
    started = time.perf_counter()
    requests = Traffic(log, clock, random.Random(7), raw).run()
    handler.close()
    return raw, requests, time.perf_counter() - started


def bucket_records(s3: SeaweedFS) -> list[dict]:
    client, docs = s3.client(), []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{PREFIX}/service="):
        for item in page.get("Contents", ()):
            parts = parse_key(item["Key"])
            body = decompress(client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read(), parts.compression)
            docs.extend(json.loads(line) for line in body.splitlines() if line.strip())
    return docs


def bucket_alerts(s3: SeaweedFS) -> list[dict]:
    """One document per incident: its latest event (the store holds one object per event)."""
    client = s3.client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{PREFIX}/_alerts/")
    latest: dict[str, dict] = {}
    for page in pages:
        for item in page.get("Contents", ()):
            doc = json.loads(client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read())
            if doc.get("revision", 0) >= latest.get(doc["id"], {}).get("revision", 0):
                latest[doc["id"]] = doc
    return list(latest.values())


def main() -> int:
    """Run the story; whatever happens (an error, Ctrl-C, SIGTERM, SIGHUP) every process is stopped and the temporary
    directory (SeaweedFS data, the agent's state and signing key) is removed."""
    OUTPUT.mkdir(exist_ok=True)
    try:
        with signals_raise(), workspace() as work, SeaweedFS(work / "seaweedfs") as s3:
            return story(work, s3)
    except KeyboardInterrupt:
        print("\ninterrupted; everything stopped and removed")
        return 130
    except Stopped as exc:
        print(f"\n{exc}; everything stopped and removed")
        return 128 + exc.signum


def story(work: Path, s3: SeaweedFS) -> int:  # noqa: PLR0915 - a script that tells a story, step by step
    logs, state = work / "logs", work / "state"
    logs.mkdir()
    step(f"1. SeaweedFS (S3) on {s3.endpoint_url}: bucket {BUCKET} with Object Lock")
    s3.create_bucket(BUCKET, object_lock=True)
    port = free_port()
    env = dict(os.environ, LOGSHIELD_PATHS=f"{logs}/*.log*", LOGSHIELD_STATE_DIR=str(state),
               LOGSHIELD_SINK=f"s3://{BUCKET}/{PREFIX}", LOGSHIELD_HTTP_ADDR=f"127.0.0.1:{port}",
               LOGSHIELD_BATCH_MAX_AGE="2", LOGSHIELD_POLL_INTERVAL="0.2", LOGSHIELD_RETENTION_DAYS="30",
               LOGSHIELD_S3_OBJECT_LOCK_MODE="GOVERNANCE", LOGSHIELD_ALERT_DESTINATIONS="store",
               # The simulated clock runs ~2,400x real time, so one 2 s batch spans ~80 minutes of event time, and
               # the shop and audit files (10 of them, rotated within 3 s) are shipped in whatever order the scans
               # find them: a window must stay open for the whole simulated period, or the burst's windows may be
               # closed (its records late, not rated) by a shop batch that ends an hour later. The default (2 x
               # BATCH_MAX_AGE, at least 120 s) assumes a real clock. With 1800 s, one run in four raised nothing.
               LOGSHIELD_ALERT_LATENESS="7200",
               AWS_ENDPOINT_URL=s3.endpoint_url, AWS_ACCESS_KEY_ID=s3.access_key,
               AWS_SECRET_ACCESS_KEY=s3.secret_key, AWS_DEFAULT_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true")
    exe = str(Path(sys.executable).with_name("logshield-agent"))
    with Child([exe], env=env, log=work / "agent.log") as agent:
        step("2. the logshield-agent sidecar is tailing the log directory (health on "
             f"http://127.0.0.1:{port}/readyz)")

        step("3. the shop service logs two hours of traffic (simulated clock) through PIIRedactingHandler "
             "(NER on, actor and session pseudonymised, audit records in their own file)")
        raw, requests, took = run_app(logs, b"demo-pseudonym-key-not-for-prod!")
        files = sorted(p.name for p in logs.iterdir() if not p.name.startswith("."))  # not the chain's state files
        print(f"   {requests} requests in {took:.1f}s -> {len(files)} files ({', '.join(files[:3])}, …)")

        written = sum(path.read_bytes().count(b"\n") for path in logs.glob("*.log*"))  # what the agent tails
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and metric(port, "logshield_lines_shipped_total") < written:
            time.sleep(0.3)
        stopped = agent.stop(timeout=30)
    shipped = len(bucket_records(s3))
    if shipped != written or stopped != 0:
        print(textwrap.indent((work / "agent.log").read_text(errors="replace").strip()[-3000:], "   agent: "))
    step(f"4. the agent shipped {shipped} of {written} lines to s3://{BUCKET}/{PREFIX} and stopped on SIGTERM "
         f"(flushed, digest signed; exit status {stopped})")

    docs = bucket_records(s3)
    by_request = {d.get("request_id"): d for d in docs if "audit" not in d}
    step("5. what the application logged vs what reached the bucket")
    for rid in ("req-00000", "req-00001", "req-00002", "req-00004"):
        doc = by_request.get(rid, {})
        print("   app   : " + textwrap.shorten(raw.get(rid, "?"), 108))
        print("   bucket: " + textwrap.shorten(str(doc.get("message", "?")), 108))
        if "exception" in doc:
            print("           exception: " + textwrap.shorten(doc["exception"]["message"], 96))
    sample = next(d for d in docs if d.get("request_id") == "req-00000")
    print(f"   actor {sample['actor']}, session {sample['session_id']} (keyed pseudonyms), "
          f"seq {sample['seq']} of stream {sample['stream']}")

    counts: collections.Counter[str] = collections.Counter()
    for doc in docs:
        counts.update(doc.get("redaction", {}).get("entities", {}))
    step("6. redactions by entity type (counts only: values never leave the process)")
    for entity, count in counts.most_common():
        print(f"   {entity:<22}{count:>6}")
    leaked = [d for d in docs if any(s in json.dumps(d) for s in ("hunter2", "@example.com", "4111111111"))]
    print(f"   raw secrets, e-mails or card numbers in the bucket: {len(leaked)}")

    step("7. logshield-agent verify (digest signatures and chain, every object, every record chain)")
    public_key = str(state / "digest-public-key.pem")
    verify = subprocess.run([exe, "verify", f"s3://{BUCKET}/{PREFIX}", "--public-key", public_key],
                            env=env, capture_output=True, text=True, timeout=120)
    print(textwrap.indent(verify.stdout.strip(), "   "))
    if verify.returncode != 0:
        print(f"   verify failed (exit {verify.returncode}):")
        print(textwrap.indent(verify.stderr.strip()[-3000:] or "(no message)", "   "))

    step("8. anomaly alerts")
    alerts = sorted(bucket_alerts(s3), key=lambda a: (a["window_start"], a["dimension"]))
    for alert in alerts:
        start, end = (datetime.fromisoformat(alert[k]) for k in ("window_start", "window_end"))
        print(f"   {start:%H:%M} UTC  {alert['dimension']:<13}{alert['key'][:44]:<46}{alert['count']:>5} in "
              f"{(end - start).total_seconds():.0f}s (baseline {alert['baseline']:.1f})")
    print(f"   {len(alerts)} alert(s) in s3://{BUCKET}/{PREFIX}/_alerts/ — one burst seen from each dimension"
          if alerts else "   none raised")

    step("9. compliance report")
    report = OUTPUT / "report.html"
    made = subprocess.run([exe, "report", f"s3://{BUCKET}/{PREFIX}", "--since", "4h", "--out", str(report),
                           "--public-key", public_key],
                          env=env, capture_output=True, text=True, timeout=120)
    print("   " + (made.stdout.strip() or made.stderr.strip()[-500:]))
    print(f"   open {report}")
    ok = verify.returncode == 0 and not leaked and made.returncode == 0 and shipped == written
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
