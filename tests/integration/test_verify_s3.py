"""``logshield-agent verify`` against a real SeaweedFS archive built by the real agent, then tampered with.

Each test builds a fresh archive (library records, rotated files, ``logshield-agent --once`` twice so there are
several digests: start and final of each run), applies one mutation with plain S3 calls — as someone with write
access would — and runs the verify command: an untouched archive exits 0, every mutation exits 1 naming the right
kind of finding (for a deleted newest digest: once a digest is overdue).
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


def verify(env: dict[str, str], tmp_path: Path, *extra: str, pin: bool = True, url: str | None = None
           ) -> tuple[int, dict]:
    pinned = ["--public-key", str(tmp_path / "state" / "digest-public-key.pem")] if pin else []
    done = agent(env, "verify", url or env["LOGSHIELD_SINK"], *pinned, "--json", *extra)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return done.returncode, json.loads(done.stdout)


def digests(client, bucket: str) -> list[tuple[str, dict]]:
    out = []
    for key in keys(client, bucket, "_digest/host="):
        out.append((key, json.loads(body_of(client, bucket, key).rsplit(b',"signature"', 1)[0] + b"}")))
    return sorted(out, key=lambda kd: kd[1]["seq"])


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
        assert code == 0 and report["ok"] and report["counts"]["digests"] == 4  # start + final per run
        assert report["counts"]["sealed_records"] == 250 and report["findings"] == []
        assert [d["kind"] for _, d in digests(*archive[1:])] == ["start", "final", "start", "final"]
        assert {w["kind"] for w in report["warnings"]} == {"host-stopped"}

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

    def test_object_copied_under_a_fresh_key(self, archive, tmp_path):
        """An object copied beside itself under a new file fingerprint (no digest lists it): it is read, and its
        records are duplicates."""
        env, client, bucket = archive
        key = middle_object(client, bucket)
        copy = key.rsplit("/", 1)[0] + "/aaaaaaaaaaaa-0000000000000000-0000000000000010.ndjson.zst"
        client.copy_object(Bucket=bucket, Key=copy, CopySource={"Bucket": bucket, "Key": key})
        code, report = verify(env, tmp_path)
        assert code == 1 and "chain-duplicate" in report["findings_by_kind"]

    def test_object_fabricated_after_the_final_digest(self, archive, tmp_path):
        """A made-up object with a valid new chain, stored after the agent's final digest: added."""
        from presidio_logshield.audit import RecordChain

        env, client, bucket = archive
        chain = RecordChain()
        body = b"".join(chain.seal({"timestamp": "2026-11-18T11:00:00.000000Z", "level": "INFO", "logger": "x",
                                    "message": f"refund {i}"}) + b"\n" for i in range(30))
        key = middle_object(client, bucket).rsplit("/", 1)[0] + f"/{'b' * 12}-{0:016x}-{len(body):016x}.ndjson.zst"
        client.put_object(Bucket=bucket, Key=key, Body=compress(body, "zstd"))
        code, report = verify(env, tmp_path)
        assert code == 1 and set(report["findings_by_kind"]) == {"object-added"}

    def test_newest_digest_deleted(self, archive, tmp_path):
        """The final digest deleted (its objects now in no digest): fine while a digest could still be due, a
        finding once it is overdue — here told with --max-digest-age 0."""
        env, client, bucket = archive
        client.delete_object(Bucket=bucket, Key=digests(client, bucket)[-1][0])
        code, report = verify(env, tmp_path)
        assert code == 0 and report["counts"]["objects_undigested"] > 0 and report["counts"]["pending"] > 0
        code, report = verify(env, tmp_path, "--max-digest-age", "0")
        assert code == 1 and {"digest-stale", "object-undigested"} <= set(report["findings_by_kind"])

    def test_host_digests_deleted(self, archive, tmp_path):
        """Every digest of the host deleted: its objects belong to no chain."""
        env, client, bucket = archive
        for key in keys(client, bucket, "_digest/host="):
            client.delete_object(Bucket=bucket, Key=key)
        code, report = verify(env, tmp_path)
        assert code == 1 and "no-digests" in report["findings_by_kind"]
        code, report = verify(env, tmp_path, "--expect-host", "faulthost,web2")
        assert code == 1 and report["findings_by_kind"].get("host-missing") == 2

    def test_first_run_deleted_then_windowed(self, archive, tmp_path):
        """The first run's digests and objects deleted, then --since 7d: the window's first digest has no
        predecessor."""
        env, client, bucket = archive
        for key, doc in digests(client, bucket)[:2]:
            for entry in doc["objects"]:
                client.delete_object(Bucket=bucket, Key="archive/" + entry["key"])
            client.delete_object(Bucket=bucket, Key=key)
        code, report = verify(env, tmp_path, "--since", "7d")
        assert code == 1 and "digest-missing" in report["findings_by_kind"]

    def test_newest_digest_re_signed_with_another_key(self, archive, tmp_path):
        """forge.py: the final digest re-signed by another key published beside the real one. Unpinned: a key
        change; pinned: a bad signature."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from logshield_agent.audit import DigestKey
        from logshield_agent.audit.digest import encode_digest, parse_digest
        from logshield_agent.audit.signing import public_pem

        env, client, bucket = archive
        attacker = DigestKey(Ed25519PrivateKey.generate(), "file")
        key = digests(client, bucket)[-1][0]
        doc = parse_digest(body_of(client, bucket, key)).doc
        doc["public_key"] = attacker.fingerprint
        client.put_object(Bucket=bucket, Key=key, Body=encode_digest(
            {k: v for k, v in doc.items() if k != "signature"}, attacker.sign))
        client.put_object(Bucket=bucket, Key=f"archive/_digest/public-keys/{attacker.fingerprint[8:]}.pem",
                          Body=public_pem(attacker.public))
        code, report = verify(env, tmp_path, pin=False)
        assert code == 1 and "digest-key-change" in report["findings_by_kind"]
        code, report = verify(env, tmp_path)
        assert code == 1 and "digest-signature" in report["findings_by_kind"]

    def test_wrong_prefix_is_not_intact(self, archive, tmp_path):
        """A mistyped prefix: nothing to verify, exit 1."""
        env, _, bucket = archive
        code, report = verify(env, tmp_path, url=f"s3://{bucket}/archiv")
        assert code == 1 and set(report["findings_by_kind"]) == {"archive-empty"}

    def test_deleted_digest(self, archive, tmp_path):
        """The first digest (run 1's start) deleted."""
        env, client, bucket = archive
        client.delete_object(Bucket=bucket, Key=keys(client, bucket, "_digest/host=")[0])
        code, report = verify(env, tmp_path)
        assert code == 1 and "digest-missing" in report["findings_by_kind"]

    def test_reordered_digests(self, archive, tmp_path):
        """The two digests' contents swapped."""
        env, client, bucket = archive
        first, second = keys(client, bucket, "_digest/host=")[1:3]
        a, b = body_of(client, bucket, first), body_of(client, bucket, second)
        client.put_object(Bucket=bucket, Key=first, Body=b)
        client.put_object(Bucket=bucket, Key=second, Body=a)
        code, report = verify(env, tmp_path)
        assert code == 1 and {"digest-order", "digest-chain"} <= set(report["findings_by_kind"])

    def test_report_includes_the_verdict(self, archive, tmp_path):
        """`report` on the tampered archive shows the problem next to the charts and exits 1; its footer repeats
        the pinned key."""
        env, client, bucket = archive
        client.delete_object(Bucket=bucket, Key=middle_object(client, bucket))
        out = tmp_path / "report.html"
        pem = str(tmp_path / "state" / "digest-public-key.pem")
        done = agent(env, "report", env["LOGSHIELD_SINK"], "--since", "30d", "--out", str(out), "--public-key", pem)
        assert done.returncode == 1, done.stderr[-2000:]
        page = out.read_text()
        assert "Integrity problems found" in page and "object-missing" in page
        assert f"--public-key {pem}" in page.split("<footer>", 1)[1]
        assert os.path.getsize(out) < 2_000_000
