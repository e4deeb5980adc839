"""Agent benchmark: ship ~400 MB of JSON lines (4 files, zstd) to a real SeaweedFS on loopback, and in the
same run time a naive loop (read 16 MiB chunks, zstd-compress, PutObject; ``bench.naive_upload``, a process of its
own like the agent, so both figures include start-up). Prints MB/s for both, the ratio, the agent's peak RSS, and the
agent's MB/s with LOGSHIELD_REDACT=patterns over the same files (start-up included: loading Presidio takes ~1.5 s, so
on a small slice it would dominate what is a daemon's throughput; it is printed on its own, measured on nothing to
ship). BENCH_REDACT_MB runs the redaction pass on a separate slice of that size instead.
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

from tests.servers import SeaweedFS


def write_logs(directory: Path, total_mb: int, files: int = 4) -> int:
    """``files`` files of realistic JSON lines: every line unique (time, request id, latency), ~10x compressible
    like real service logs, and every file different from its first byte (files with identical heads would be
    one stream to a fingerprinting tailer)."""
    paths = ["/api/v1/orders", "/api/v1/users/me", "/healthz", "/api/v1/cart/items", "/api/v1/search"]
    per_file = total_mb * 1024 * 1024 // files
    total = 0
    for n in range(files):
        rng = random.Random(n)
        with open(directory / f"app-{n}.log", "wb") as fh:
            written = i = 0
            while written < per_file:
                chunk = []
                for _ in range(2000):
                    i += 1
                    chunk.append(json.dumps({
                        "timestamp": f"2026-11-23T{10 + i // 3_600_000 % 12:02d}:{i // 60_000 % 60:02d}:"
                                     f"{i // 1000 % 60:02d}.{i % 1000:03d}{rng.randrange(1000):03d}Z",
                        "level": "INFO" if rng.random() < 0.95 else "ERROR", "logger": "shop.api",
                        "message": f"{rng.choice(['GET', 'GET', 'POST'])} {rng.choice(paths)} "
                                   f"{rng.choice([200, 200, 201, 404])} in {rng.uniform(1, 90):.1f} ms",
                        "service": "shop-api", "host": f"web-{n}", "pid": 800 + n,
                        "request_id": f"req-{rng.getrandbits(64):016x}",
                        "user": f"user{rng.randrange(10**6)}@example.com" if rng.random() < 0.1 else None,
                    }) + "\n")
                data = "".join(chunk).encode()
                fh.write(data)
                written += len(data)
            total += written
    return total


def s3_env(s3: SeaweedFS) -> dict[str, str]:
    return dict(os.environ, AWS_ENDPOINT_URL=s3.endpoint_url, AWS_ACCESS_KEY_ID=s3.access_key,
                AWS_SECRET_ACCESS_KEY=s3.secret_key, AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")


def naive(s3: SeaweedFS, bucket: str, directory: Path) -> float:
    """Seconds for ``bench.naive_upload`` — a fresh process, like the agent — to ship the same files."""
    files = [str(p) for p in sorted(directory.glob("app-*.log"))]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bench.naive_upload", bucket, "naive", *files], env=s3_env(s3),
                   check=True, cwd=Path(__file__).resolve().parents[1], timeout=1800)
    return time.perf_counter() - start


def agent(s3: SeaweedFS, bucket: str, directory: Path, state: Path, glob: str = "app-*.log",
          redact: str = "off", prefix: str | None = None) -> tuple[float, float]:
    env = dict(s3_env(s3), LOGSHIELD_PATHS=str(directory / glob), LOGSHIELD_STATE_DIR=str(state),
               LOGSHIELD_SINK=f"s3://{bucket}/{prefix or f'agent-{redact}'}", LOGSHIELD_HTTP_ADDR="off", LOGSHIELD_REDACT=redact,
               LOGSHIELD_COMPRESSION="zstd", LOGSHIELD_DETECTION="patterns")
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
    redact_mb = os.environ.get("BENCH_REDACT_MB")
    with tempfile.TemporaryDirectory(prefix="logshield-agent-bench-") as tmp:
        root = Path(tmp)
        (root / "logs").mkdir()
        (root / "redact").mkdir()
        (root / "empty").mkdir()
        size = write_logs(root / "logs", total_mb)
        redact_dir = root / "logs"
        redact_size = size
        if redact_mb is not None:
            redact_dir, redact_size = root / "redact", write_logs(root / "redact", int(redact_mb), files=1)
        with SeaweedFS(root / "weed") as s3:
            s3.create_bucket("bench")
            naive_s = naive(s3, "bench", root / "logs")
            agent_s, peak = agent(s3, "bench", root / "logs", root / "state")
            redact_s, _ = agent(s3, "bench", redact_dir, root / "state-redact", redact="patterns")
            startup_s = min(agent(s3, "bench", root / "empty", root / f"state-empty-{i}", redact="patterns",
                                  prefix=f"startup-{i}")[0] for i in range(3))
    mb = size / 1e6
    print(f"\nagent benchmark: {mb:,.0f} MB of JSON lines in 4 files → SeaweedFS on loopback, zstd")
    print(f"naive loop (16 MiB chunks, zstd, PutObject) {mb / naive_s:8.1f} MB/s")
    print(f"logshield-agent --once                      {mb / agent_s:8.1f} MB/s   peak RSS {peak:.0f} MB")
    print(f"logshield-agent --once, REDACT=patterns     {redact_size / 1e6 / redact_s:8.1f} MB/s "
          f"({redact_size / 1e6:.0f} MB, start-up included; start-up alone {startup_s:.2f} s)")
    ratio = naive_s / agent_s
    print(f"\nagent / naive {ratio:.2f}x (target >= 0.7x {'ok' if ratio >= 0.7 else 'MISSED'}); peak RSS "
          f"{peak:.0f} MB (target <= 200 {'ok' if peak <= 200 else 'MISSED'}); redact "
          f"{redact_size / 1e6 / redact_s:.1f} MB/s (target >= 20 "
          f"{'ok' if redact_size / 1e6 / redact_s >= 20 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
