"""Alerts benchmark: what the anomaly-alert observer costs per MB shipped, on the pipeline thread.

Feeds 16 MiB batches to the real ``AlertObserver`` (no destinations) and, in the same run, zstd-compresses the same
bytes (what an upload thread does with every batch) as the yardstick. CPU time (``time.process_time``), best of
``BENCH_ALERTS_REPEAT`` runs, for four kinds of data:

- ``bench.agent`` lines (what ``make bench`` ships: JSON in the library's field order, no actor or redaction);
- library records with an actor on every line, 3% with redactions, 1% audit records;
- other programs' JSON (structlog-like field order: the line-by-line path);
- plain text (Loghub lines: volume only).

    python -m bench.alerts            (BENCH_ALERTS_MB=64 per data set by default)
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import zstandard

from bench.agent import write_logs

BATCH = 16 * 1024 * 1024
# The shared corpus beside the checkout (…/shared/corpus), or where worktrees find it.
CORPUS = next((p for p in (Path(__file__).resolve().parents[2] / "shared" / "corpus" / "loghub",
                           Path("/work/shared/corpus/loghub")) if p.is_dir()), Path("/work/shared/corpus/loghub"))


def library_records(size: int) -> bytes:
    from presidio_logshield.output import encode, rfc3339

    rng = random.Random(3)
    out, total, i = [], 0, 0
    t = 1_795_000_000.0
    while total < size:
        i += 1
        t += 0.002
        doc = {"timestamp": rfc3339(t), "level": "INFO", "logger": rng.choice(["shop.api", "shop.db", "shop.auth"]),
               "message": f"GET /api/v1/orders/{rng.randrange(10**6)} 200 in {rng.uniform(1, 90):.1f} ms",
               "service": "shop-api", "host": "web-1", "pid": 812, "thread": "MainThread",
               "actor": f"user-{rng.randrange(5000):04d}", "request_id": f"r-{rng.getrandbits(64):016x}"}
        roll = rng.random()
        if roll < 0.01:
            doc["audit"] = {"action": "invoice.read", "resource": f"invoice/{i}", "outcome": "success",
                            "duration_ms": 2.5, "details": {}}
        elif roll < 0.04:
            doc["redaction"] = {"entities": {rng.choice(["EMAIL_ADDRESS", "CREDIT_CARD"]): 1}, "rules": ["p:x"]}
        doc.update(stream="web-1:812:1795000000:abcd", seq=i, chain=f"{rng.getrandbits(256):064x}")
        line = encode(doc) + b"\n"
        out.append(line)
        total += len(line)
    return b"".join(out)


def other_json(size: int) -> bytes:
    rng = random.Random(4)
    out, total, t = [], 0, 1_795_000_000.0
    while total < size:
        t += 0.002
        line = json.dumps({"event": rng.choice(["request finished", "cache miss", "db query"]), "level": "info",
                           "logger": "api", "timestamp": t, "duration": rng.random()}).encode() + b"\n"
        out.append(line)
        total += len(line)
    return b"".join(out)


def plain_text(size: int) -> bytes:
    lines = [line for f in sorted(CORPUS.glob("*_2k.log")) for line in f.read_bytes().splitlines(keepends=True)]
    if not lines:
        lines = [b"2026-11-19 10:00:00,000 INFO dfs.DataNode: PacketResponder 1 terminating\n"]
    reps = size // max(1, sum(map(len, lines))) + 1
    return b"".join(lines * reps)[:size].rsplit(b"\n", 1)[0] + b"\n"


def batches(data: bytes) -> list[bytes]:
    out, start = [], 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + BATCH) + 1 or len(data)
        out.append(data[start:end])
        start = end
    return out


def cost(data: bytes, repeat: int) -> tuple[float, float]:
    """(alert observer, zstd level 3) CPU ms per MB."""
    from logshield_agent.alerts import AlertObserver, DetectorSettings, RateDetector
    from logshield_agent.pipeline import ShippedBatch

    parts = batches(data)
    shipped = [ShippedBatch(key=f"k{i}", sha256="", size=0, lines=p.count(b"\n"), source="f" * 64, byte_start=0,
                            byte_end=len(p), first_event="", last_event="", service="bench", body=p,
                            already_existed=False) for i, p in enumerate(parts)]
    compressor = zstandard.ZstdCompressor(level=3)
    best_alerts = best_zstd = float("inf")
    for _ in range(repeat):
        observer = AlertObserver(RateDetector(DetectorSettings()), [], host="bench", wall=lambda: 1_795_100_000.0)
        start = time.process_time()
        for batch in shipped:
            observer.batch_shipped(batch)
        best_alerts = min(best_alerts, time.process_time() - start)
        start = time.process_time()
        for part in parts:
            compressor.compress(part)
        best_zstd = min(best_zstd, time.process_time() - start)
    mb = len(data) / 1e6
    return best_alerts / mb * 1e3, best_zstd / mb * 1e3


def main() -> int:
    logging.getLogger("logshield_agent").addHandler(logging.NullHandler())  # the alerts raised are not the figures
    logging.getLogger("logshield_agent").propagate = False
    size = int(os.environ.get("BENCH_ALERTS_MB", "64")) * 1024 * 1024
    repeat = int(os.environ.get("BENCH_ALERTS_REPEAT", "3"))
    with tempfile.TemporaryDirectory(prefix="logshield-alerts-bench-") as tmp:
        write_logs(Path(tmp), size // (1024 * 1024), files=1)
        agent_lines = (Path(tmp) / "app-0.log").read_bytes()
    sets = [("bench.agent lines (make bench)", agent_lines), ("library records, actor on every line", library_records(size)),
            ("other programs' JSON", other_json(size)), ("plain text (Loghub)", plain_text(size))]
    print(f"\nalerts benchmark: AlertObserver CPU per MB shipped, 16 MiB batches, {size / 1e6:.0f} MB per data set "
          f"(best of {repeat}); yardstick: zstd level 3 of the same bytes, same run")
    print(f"{'data':40s} {'alerts ms/MB':>13s} {'zstd ms/MB':>11s} {'alerts/zstd':>12s} {'alerts MB/s':>12s}")
    for name, data in sets:
        alerts, zstd = cost(data, repeat)
        print(f"{name:40s} {alerts:13.2f} {zstd:11.2f} {alerts / zstd:11.2f}x {1e3 / alerts:12.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
