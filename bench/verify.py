"""Verify benchmark: build an archive of ~1 GB of chained JSON records in SeaweedFS with the real agent, then time
``logshield-agent verify`` over it (digests, every object's hash and lines, every record's chain link).

    BENCH_VERIFY_MB=1024 python -m bench.verify
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from presidio_logshield.audit import RecordChain
from tests.servers import SeaweedFS

ROOT = Path(__file__).resolve().parents[1]


def write_chained_logs(directory: Path, total_mb: int, files: int = 4) -> tuple[int, int]:
    """Records as the handler writes them (sealed into one chain per file); returns (bytes, records)."""
    per_file = total_mb * 1024 * 1024 // files
    total = records = 0
    for n in range(files):
        rng = random.Random(n)
        chain = RecordChain(b"bench-chain-key-0123456789abcdef")
        with open(directory / f"app-{n}.log", "wb") as fh:
            written = 0
            while written < per_file:
                lines = []
                for _ in range(2000):
                    i = chain.seq
                    lines.append(chain.seal({
                        "timestamp": f"2026-11-23T{10 + i // 3_600_000 % 12:02d}:{i // 60_000 % 60:02d}:"
                                     f"{i // 1000 % 60:02d}.{i % 1000:03d}000Z",
                        "level": "INFO", "logger": "shop.api",
                        "message": f"GET /api/v1/orders/{rng.randrange(10**6)} 200 in {rng.uniform(1, 90):.1f} ms",
                        "service": "shop-api", "host": f"web-{n}", "pid": 800 + n, "thread": "MainThread",
                        "request_id": f"req-{rng.getrandbits(64):016x}",
                    }) + b"\n")
                data = b"".join(lines)
                fh.write(data)
                written += len(data)
                records += len(lines)
            total += written
    return total, records


def main() -> int:
    total_mb = int(os.environ.get("BENCH_VERIFY_MB", "1024"))
    with tempfile.TemporaryDirectory(prefix="logshield-verify-bench-") as tmp:
        root = Path(tmp)
        (root / "logs").mkdir()
        size, records = write_chained_logs(root / "logs", total_mb)
        with SeaweedFS(root / "weed") as s3:
            s3.create_bucket("verify")
            env = dict(os.environ, LOGSHIELD_PATHS=str(root / "logs" / "app-*.log"),
                       LOGSHIELD_STATE_DIR=str(root / "state"), LOGSHIELD_SINK="s3://verify/archive",
                       LOGSHIELD_HTTP_ADDR="off", LOGSHIELD_CHAIN_KEY="bench-chain-key-0123456789abcdef",
                       AWS_ENDPOINT_URL=s3.endpoint_url, AWS_ACCESS_KEY_ID=s3.access_key,
                       AWS_SECRET_ACCESS_KEY=s3.secret_key, AWS_DEFAULT_REGION="us-east-1",
                       AWS_EC2_METADATA_DISABLED="true")
            agent = str(Path(sys.executable).with_name("logshield-agent"))
            subprocess.run([agent, "--once"], env=env, check=True, capture_output=True, timeout=3600)
            start = time.perf_counter()
            done = subprocess.run([agent, "verify", "s3://verify/archive", "--json", "--public-key",
                                   str(root / "state" / "digest-public-key.pem")], env=env, capture_output=True,
                                  text=True, timeout=3600, cwd=ROOT)
            elapsed = time.perf_counter() - start
        report = json.loads(done.stdout)
    counts = report["counts"]
    print(f"\nverify benchmark: {size / 1e6:,.0f} MB of chained JSON records ({records:,} records) in "
          f"{counts.get('objects', 0)} objects ({counts.get('bytes', 0) / 1e6:,.0f} MB stored, zstd) on SeaweedFS")
    print(f"verdict {'INTACT' if report['ok'] else 'PROBLEMS'}; {elapsed:.1f} s: "
          f"{counts.get('objects', 0) / elapsed:,.1f} objects/s, {size / 1e6 / elapsed:,.1f} MB/s of log data, "
          f"{counts.get('bytes', 0) / 1e6 / elapsed:,.1f} MB/s stored, {counts.get('sealed_records', 0) / elapsed:,.0f} "
          "records/s (every hash, line count and chain link checked)")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
