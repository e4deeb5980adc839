"""Agent benchmark: ship ~400 MB of JSON lines (4 files, zstd) to a real SeaweedFS on loopback, and in the
same run time a naive loop (read 16 MiB chunks, zstd-compress, PutObject). Prints MB/s for both, the ratio,
the agent's peak RSS, and the agent's MB/s with LOGSHIELD_REDACT=patterns on a smaller slice.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zstandard

from tests.servers import SeaweedFS

CHUNK = 16 * 1024 * 1024


def write_logs(directory: Path, total_mb: int, files: int = 4) -> int:
    rng = random.Random(3)
    paths = ["/api/v1/orders", "/api/v1/users/me", "/healthz", "/api/v1/cart/items"]
    lines = []
    for i in range(5000):
        lines.append(json.dumps({
            "timestamp": f"2026-11-23T10:{i % 60:02d}:{i % 59:02d}.{i:06d}Z", "level": "INFO", "logger": "shop.api",
            "message": f"GET {rng.choice(paths)} {rng.choice([200, 200, 201, 404])} in {rng.uniform(1, 90):.1f} ms",
            "service": "shop-api", "host": "web-1", "pid": 812, "request_id": f"req-{rng.getrandbits(64):016x}",
            "user": f"user{i}@example.com" if i % 10 == 0 else None}) + "\n")
    block = "".join(lines).encode()
    per_file = total_mb * 1024 * 1024 // files
    total = 0
    for n in range(files):
        with open(directory / f"app-{n}.log", "wb") as fh:
            written = 0
            while written < per_file:
                fh.write(block)
                written += len(block)
            total += written
    return total


def naive(s3: SeaweedFS, bucket: str, directory: Path) -> float:
    client = s3.client()
    compressor = zstandard.ZstdCompressor(level=3)
    start = time.perf_counter()
    for path in sorted(directory.glob("app-*.log")):
        with open(path, "rb") as fh:
            index = 0
            while chunk := fh.read(CHUNK):
                client.put_object(Bucket=bucket, Key=f"naive/{path.name}/{index}.zst", Body=compressor.compress(chunk))
                index += 1
    return time.perf_counter() - start


def agent(s3: SeaweedFS, bucket: str, directory: Path, state: Path, glob: str = "app-*.log",
          redact: str = "off") -> tuple[float, float]:
    env = dict(os.environ, LOGSHIELD_PATHS=str(directory / glob), LOGSHIELD_STATE_DIR=str(state),
               LOGSHIELD_SINK=f"s3://{bucket}/agent-{redact}", LOGSHIELD_HTTP_ADDR="off", LOGSHIELD_REDACT=redact,
               LOGSHIELD_COMPRESSION="zstd", AWS_ENDPOINT_URL=s3.endpoint_url, AWS_ACCESS_KEY_ID=s3.access_key,
               AWS_SECRET_ACCESS_KEY=s3.secret_key, AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               LOGSHIELD_DETECTION="patterns")
    exe = str(Path(sys.executable).with_name("logshield-agent"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run([exe, "--once"], env=env, capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"agent failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak_mb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return elapsed, peak_mb


def main() -> int:
    total_mb = int(os.environ.get("BENCH_AGENT_MB", "400"))
    redact_mb = int(os.environ.get("BENCH_REDACT_MB", "40"))
    with tempfile.TemporaryDirectory(prefix="logshield-agent-bench-") as tmp:
        root = Path(tmp)
        (root / "logs").mkdir()
        (root / "redact").mkdir()
        size = write_logs(root / "logs", total_mb)
        redact_size = write_logs(root / "redact", redact_mb, files=1)
        with SeaweedFS(root / "weed") as s3:
            s3.create_bucket("bench")
            naive_s = naive(s3, "bench", root / "logs")
            agent_s, peak = agent(s3, "bench", root / "logs", root / "state")
            redact_s, _ = agent(s3, "bench", root / "redact", root / "state-redact", redact="patterns")
    mb = size / 1e6
    print(f"\nagent benchmark: {mb:,.0f} MB of JSON lines in 4 files → SeaweedFS on loopback, zstd")
    print(f"naive loop (16 MiB chunks, zstd, PutObject) {mb / naive_s:8.1f} MB/s")
    print(f"logshield-agent --once                      {mb / agent_s:8.1f} MB/s   peak RSS {peak:.0f} MB")
    print(f"logshield-agent --once, REDACT=patterns     {redact_size / 1e6 / redact_s:8.1f} MB/s "
          f"({redact_size / 1e6:.0f} MB)")
    ratio = naive_s / agent_s
    print(f"\nagent / naive {ratio:.2f}x (target >= 0.7x {'ok' if ratio >= 0.7 else 'MISSED'}); peak RSS "
          f"{peak:.0f} MB (target <= 200 {'ok' if peak <= 200 else 'MISSED'}); redact "
          f"{redact_size / 1e6 / redact_s:.1f} MB/s (target >= 20 "
          f"{'ok' if redact_size / 1e6 / redact_s >= 20 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
