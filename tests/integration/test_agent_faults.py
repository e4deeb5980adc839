"""The real ``logshield-agent`` process against real stores (SeaweedFS, Azurite): crashes, an outage, bad input,
bad configuration.

Every scenario ends by counting the lines in the bucket: none lost, none twice.
"""

from __future__ import annotations

import random
import re
import signal
import socket
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import psutil
import pytest
from logshield_agent.sinks.keys import parse_key
from logshield_agent.sources.lines import PIECE_MARKER
from logshield_agent.transforms.compress import decompress

from tests.agent.test_fault import agent_env, kill_while_rotating, start_agent
from tests.servers import SeaweedFS

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def s3_env(tmp_path: Path, server: SeaweedFS, bucket: str, **extra: str) -> dict[str, str]:
    env = agent_env(tmp_path)
    env.update({
        "LOGSHIELD_SINK": f"s3://{bucket}/logs",
        "AWS_ENDPOINT_URL": server.endpoint_url, "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key, "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    })
    env.update(extra)
    return env


def bucket_lines(server: SeaweedFS, bucket: str, prefix: str = "logs/") -> Counter:
    client = server.client()
    lines: Counter = Counter()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            parts = parse_key(item["Key"])
            if parts is None:
                continue
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            lines.update(decompress(body, parts.compression).splitlines(keepends=True))
    return lines


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:  # noqa: S310 - loopback
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def run_once(env: dict[str, str]) -> tuple[int, str]:
    proc = start_agent(env, "--once")
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err.decode(errors="replace")


class TestCrashesAgainstS3:
    @pytest.mark.timeout(180)
    def test_sigkill_during_rotation_exactly_once(self, tmp_path, seaweedfs, s3_bucket):
        """Kill -9 at random moments while the app writes and rotates (rename and copytruncate): every line is in
        the bucket exactly once after a restart."""
        (tmp_path / "logs").mkdir()
        env = s3_env(tmp_path, seaweedfs, s3_bucket)
        writer, seed = kill_while_rotating(tmp_path / "logs", env, alive=(1.0, 2.5))
        code, err = run_once(env)
        assert code == 0, err[-2000:]
        stored, expected = bucket_lines(seaweedfs, s3_bucket), Counter(writer.lines)
        missing, extra = expected - stored, stored - expected
        assert not missing and not extra, (f"seed={seed}: {sum(missing.values())} lost, "
                                           f"{sum(extra.values())} extra of {len(writer.lines)}")
        assert len(writer.lines) > 300


class TestOutage:
    @pytest.mark.timeout(180)
    def test_store_down_then_back(self, tmp_path, tmp_path_factory):
        """The store goes away: the agent keeps the data in the files, reports the lag and not-ready, does not
        spin; when the store is back everything ships once and the agent becomes ready again."""
        (tmp_path / "logs").mkdir()
        log = tmp_path / "logs" / "app.log"
        port = free_port()
        with SeaweedFS(tmp_path_factory.mktemp("weed-outage")) as server:
            bucket = server.create_bucket("outage")
            env = s3_env(tmp_path, server, bucket, LOGSHIELD_HTTP_ADDR=f"127.0.0.1:{port}")
            first = [f'{{"n":{i},"phase":"before"}}\n'.encode() for i in range(200)]
            log.write_bytes(b"".join(first))
            agent = start_agent(env)
            try:
                wait_for(lambda: bucket_lines(server, bucket) == Counter(first), 30, "the first lines to ship")
                server.stop()
                during = [f'{{"n":{i},"phase":"during"}}\n'.encode() for i in range(300)]
                with open(log, "ab") as fh:
                    fh.write(b"".join(during))
                wait_for(lambda: metric(http_get(port, "/metrics")[1], "logshield_upload_failures_total") >= 2, 60,
                         "failed uploads to be counted")
                status, _ = http_get(port, "/metrics")
                metrics = http_get(port, "/metrics")[1]
                assert metric(metrics, "logshield_unshipped_bytes") >= sum(map(len, during))
                cpu_before = psutil.Process(agent.pid).cpu_times()
                time.sleep(3)
                cpu_after = psutil.Process(agent.pid).cpu_times()
                busy = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
                assert busy < 1.0, f"the agent used {busy:.2f}s of CPU in 3 s while the store was down"
                server.start()
                wait_for(lambda: bucket_lines(server, bucket) == Counter(first + during), 120,
                         "the backlog to ship after the outage")
                wait_for(lambda: http_get(port, "/readyz")[0] == 200, 60, "ready again")
            finally:
                agent.send_signal(signal.SIGTERM)
                _, err = agent.communicate(timeout=30)
            assert agent.returncode == 0, err.decode(errors="replace")[-2000:]
            assert bucket_lines(server, bucket) == Counter(first + during)
            assert b'"phase"' not in err  # the agent's own logs never carry log content


class TestBadInputAndConfiguration:
    def test_huge_line_and_invalid_utf8(self, tmp_path, seaweedfs, s3_bucket):
        """A 10 MB line is shipped in marked pieces and invalid UTF-8 verbatim; nothing is dropped."""
        (tmp_path / "logs").mkdir()
        env = s3_env(tmp_path, seaweedfs, s3_bucket, LOGSHIELD_BATCH_MAX_BYTES="4MiB",
                     LOGSHIELD_MAX_LINE_BYTES="1MiB")
        huge = random.Random(1).randbytes(5 * 1024 * 1024).hex().encode() + b"\n"  # 10 MiB, no newline inside
        lines = [b"before\n", huge, b"\xff\xfe not utf-8 \xc3\x28\n", b"after\n"]
        (tmp_path / "logs" / "app.log").write_bytes(b"".join(lines))
        code, err = run_once(env)
        assert code == 0, err[-2000:]
        stored = bucket_lines(seaweedfs, s3_bucket)
        pieces = [line for line in stored if line.endswith(PIECE_MARKER)]
        assert len(pieces) == 10 and all(stored[p] == 1 for p in pieces)
        parts = [line[:-len(PIECE_MARKER)] if line in pieces else line for line in stored if line not in lines]
        # 10 pieces of exactly 1 MiB, then the line's own newline as the last record
        assert b"".join(sorted(parts, key=lambda part: huge.index(part.rstrip(b"\n") or b"\n"))) == huge
        assert all(stored[line] == 1 for line in (lines[0], lines[2], lines[3]))

    def test_missing_bucket_fails_clearly_and_loses_nothing(self, tmp_path, seaweedfs):
        """--once against a missing bucket exits 1 naming it; once it exists, everything ships."""
        (tmp_path / "logs").mkdir()
        lines = [f"line {i}\n".encode() for i in range(50)]
        (tmp_path / "logs" / "app.log").write_bytes(b"".join(lines))
        bucket = f"not-yet-{random.randrange(1 << 30)}"
        env = s3_env(tmp_path, seaweedfs, bucket)
        code, err = run_once(env)
        assert code == 1 and bucket in err and "does not exist" in err
        seaweedfs.create_bucket(bucket)
        code, err = run_once(env)
        assert code == 0, err[-2000:]
        assert bucket_lines(seaweedfs, bucket) == Counter(lines)

    def test_bad_credentials_fail_clearly_without_leaking(self, tmp_path, seaweedfs, s3_bucket):
        """Wrong credentials: exit 1 naming the variables to fix, the secret nowhere in the output; nothing lost."""
        (tmp_path / "logs").mkdir()
        lines = [f"line {i}\n".encode() for i in range(50)]
        (tmp_path / "logs" / "app.log").write_bytes(b"".join(lines))
        secret = "WRONG-secret-1a2b3c4d5e6f"
        code, err = run_once(s3_env(tmp_path, seaweedfs, s3_bucket, AWS_SECRET_ACCESS_KEY=secret))
        assert code == 1 and "AWS_SECRET_ACCESS_KEY" in err and secret not in err
        code, err = run_once(s3_env(tmp_path, seaweedfs, s3_bucket))
        assert code == 0, err[-2000:]
        assert bucket_lines(seaweedfs, s3_bucket) == Counter(lines)


class TestAzureBlob:
    def test_once_then_restart_ships_each_line_once(self, tmp_path, azurite, azure_container):
        """The agent ships to Azure Blob (Azurite) through a connection string; a second run adds only new lines."""
        (tmp_path / "logs").mkdir()
        log = tmp_path / "logs" / "app.log"
        env = agent_env(tmp_path)
        env.update(LOGSHIELD_SINK=f"azure://{azure_container}/logs",
                   AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
        lines = [f'{{"n":{i}}}\n'.encode() for i in range(300)]
        log.write_bytes(b"".join(lines[:200]))
        assert run_once(env)[0] == 0
        with open(log, "ab") as fh:
            fh.write(b"".join(lines[200:]))
        code, err = run_once(env)
        assert code == 0, err[-2000:]
        container = azurite.client().get_container_client(azure_container)
        stored: Counter = Counter()
        for blob in container.list_blobs(name_starts_with="logs/service="):
            parts = parse_key(blob.name)
            body = container.download_blob(blob.name).readall()
            stored.update(decompress(body, parts.compression).splitlines(keepends=True))
        assert stored == Counter(lines)
