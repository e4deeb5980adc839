"""``logshield-agent verify`` against a real SeaweedFS archive built by the real agent, then tampered with.

Each test builds a fresh archive (library records, rotated files, ``logshield-agent --once`` twice so there are
several digests), applies one mutation with plain S3 calls — as someone with write access would — and runs the
verify command: an untouched archive exits 0, every mutation exits 1 naming the right kind of finding.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from logshield_agent.sinks.keys import parse_key
from logshield_agent.transforms.compress import compress, decompress

from tests.agent.test_digests import app_logs
from tests.agent.test_fault import agent_env

pytestmark = pytest.mark.integration


def env_for(tmp_path: Path, server, bucket: str) -> dict[str, str]:
    env = agent_env(tmp_path)
    env.update({"LOGSHIELD_SINK": f"s3://{bucket}/archive", "AWS_ENDPOINT_URL": server.endpoint_url,
                "AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                "LOGSHIELD_BATCH_MAX_BYTES": "8KiB", "LOGSHIELD_PATHS": str(tmp_path / "logs" / "app.log*")})
    return env


def agent(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logshield_agent", *args], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def archive(tmp_path, seaweedfs, s3_bucket):
    """(env, client, bucket): an archive with two digests and about a dozen objects of chained records."""
    (tmp_path / "logs").mkdir()
    env = env_for(tmp_path, seaweedfs, s3_bucket)
    app_logs(tmp_path / "logs", 150)
    assert agent(env, "--once").returncode == 0
    app_logs(tmp_path / "logs", 100, start=150)
    done = agent(env, "--once")
    assert done.returncode == 0, done.stderr[-2000:]
    return env, seaweedfs.client(), s3_bucket


def keys(client, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"archive/{prefix}")
    return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))


def verify(env: dict[str, str], tmp_path: Path) -> tuple[int, dict]:
    done = agent(env, "verify", env["LOGSHIELD_SINK"], "--public-key",
                 str(tmp_path / "state" / "digest-public-key.pem"), "--json")
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return done.returncode, json.loads(done.stdout)


def middle_object(client, bucket: str) -> str:
    """A data object holding neither the first nor the last records of the stream."""
    entries = []
    for key in keys(client, bucket, "_digest/host="):
        doc = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read().rsplit(b',"signature"', 1)[0]
                         + b"}")
        entries += doc["objects"]
    entries.sort(key=lambda e: e["first_record"]["seq"])
    return "archive/" + entries[len(entries) // 2]["key"]


def body_of(client, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


class TestVerifyOnS3:
    def test_untouched_archive_verifies(self, archive, tmp_path):
        """Exit 0, two digests, every record chained and checked."""
        env, _, _ = archive
        code, report = verify(env, tmp_path)
        assert code == 0 and report["ok"] and report["counts"]["digests"] == 2
        assert report["counts"]["sealed_records"] == 250 and report["findings"] == []

    def test_flipped_byte(self, archive, tmp_path):
        """One byte of one object flipped and written back."""
        env, client, bucket = archive
        key = middle_object(client, bucket)
        data = bytearray(body_of(client, bucket, key))
        data[len(data) // 3] ^= 0x20
        client.put_object(Bucket=bucket, Key=key, Body=bytes(data))
        code, report = verify(env, tmp_path)
        assert code == 1 and "object-modified" in report["findings_by_kind"]

    def test_deleted_object(self, archive, tmp_path):
        """One object deleted."""
        env, client, bucket = archive
        client.delete_object(Bucket=bucket, Key=middle_object(client, bucket))
        code, report = verify(env, tmp_path)
        assert code == 1 and {"object-missing", "chain-gap"} <= set(report["findings_by_kind"])

    def test_line_dropped_and_metadata_fixed(self, archive, tmp_path):
        """One line removed, the object re-compressed and re-uploaded with matching hash metadata."""
        env, client, bucket = archive
        key = middle_object(client, bucket)
        lines = decompress(body_of(client, bucket, key), "zstd").splitlines(keepends=True)
        forged = compress(b"".join(lines[:2] + lines[3:]), "zstd")
        head = client.head_object(Bucket=bucket, Key=key)["Metadata"]
        head.update({"logshield-sha256": hashlib.sha256(forged).hexdigest(), "logshield-lines": str(len(lines) - 1)})
        client.put_object(Bucket=bucket, Key=key, Body=forged, Metadata=head)
        code, report = verify(env, tmp_path)
        assert code == 1 and {"object-modified", "lines-removed", "chain-gap"} <= set(report["findings_by_kind"])

    def test_object_copied_under_new_key(self, archive, tmp_path):
        """An object copied to another partition."""
        env, client, bucket = archive
        key = middle_object(client, bucket)
        parts = parse_key(key)
        client.copy_object(Bucket=bucket, Key=key.replace(f"/dt={parts.dt}/", "/dt=2020-01-01/"),
                           CopySource={"Bucket": bucket, "Key": key})
        code, report = verify(env, tmp_path)
        assert code == 1 and "object-added" in report["findings_by_kind"]

    def test_deleted_digest(self, archive, tmp_path):
        """The first of the two digests deleted."""
        env, client, bucket = archive
        client.delete_object(Bucket=bucket, Key=keys(client, bucket, "_digest/host=")[0])
        code, report = verify(env, tmp_path)
        assert code == 1 and "digest-missing" in report["findings_by_kind"]

    def test_reordered_digests(self, archive, tmp_path):
        """The two digests' contents swapped."""
        env, client, bucket = archive
        first, second = keys(client, bucket, "_digest/host=")
        a, b = body_of(client, bucket, first), body_of(client, bucket, second)
        client.put_object(Bucket=bucket, Key=first, Body=b)
        client.put_object(Bucket=bucket, Key=second, Body=a)
        code, report = verify(env, tmp_path)
        assert code == 1 and {"digest-order", "digest-chain"} <= set(report["findings_by_kind"])

    def test_report_includes_the_verdict(self, archive, tmp_path):
        """`report` on the tampered archive shows the problem next to the charts."""
        env, client, bucket = archive
        client.delete_object(Bucket=bucket, Key=middle_object(client, bucket))
        out = tmp_path / "report.html"
        done = agent(env, "report", env["LOGSHIELD_SINK"], "--since", "30d",
                     "--out", str(out), "--public-key", str(tmp_path / "state" / "digest-public-key.pem"))
        assert done.returncode == 0, done.stderr[-2000:]
        page = out.read_text()
        assert "Integrity problems found" in page and "object-missing" in page
        assert os.path.getsize(out) < 2_000_000
