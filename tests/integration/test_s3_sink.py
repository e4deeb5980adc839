"""S3Sink against a real SeaweedFS: conditional puts, multipart, Object Lock, lifecycle, SSE, error mapping."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta, timezone

import pytest
from logshield_agent.sinks._cloud import MiB, RemoteOptions
from logshield_agent.sinks.base import (
    META_SHA256,
    ObjectConflictError,
    ObjectLockedError,
    SinkError,
    SinkUnavailableError,
)
from logshield_agent.sinks.s3 import S3Sink

from tests.servers import SeaweedFS

pytestmark = pytest.mark.integration

FAST = RemoteOptions(max_attempts=1, connect_timeout=1, read_timeout=10)


def make_sink(server: SeaweedFS, bucket: str, prefix: str = "logs", **kwargs) -> S3Sink:
    kwargs.setdefault("options", RemoteOptions(max_attempts=2, connect_timeout=2, read_timeout=20))
    return S3Sink(bucket, prefix, client=server.client(**_config(kwargs["options"])), **kwargs)


def _config(options: RemoteOptions) -> dict:
    return {
        "retries": {"mode": "standard", "max_attempts": options.max_attempts},
        "connect_timeout": options.connect_timeout,
        "read_timeout": options.read_timeout,
    }


def put(sink: S3Sink, key: str, body: bytes, **kwargs):
    return sink.put(key, body, sha256=hashlib.sha256(body).hexdigest(), metadata={"logshield-lines": "1"}, **kwargs)


class TestS3SinkObjects:
    def test_put_get_head_list_delete(self, seaweedfs, s3_bucket):
        """An object round-trips with its metadata, is listed relative to the prefix and can be deleted."""
        sink = make_sink(seaweedfs, s3_bucket)
        body = b'{"msg": "hello"}\n'
        result = put(sink, "a/1.ndjson", body, content_encoding="identity")
        assert not result.already_existed and result.size == len(body)
        assert sink.get("a/1.ndjson") == body
        info = sink.head("a/1.ndjson")
        assert info is not None and info.size == len(body)
        assert info.metadata[META_SHA256] == hashlib.sha256(body).hexdigest()
        assert info.metadata["logshield-lines"] == "1"
        assert [o.key for o in sink.list("a/")] == ["a/1.ndjson"]
        raw = seaweedfs.client().head_object(Bucket=s3_bucket, Key="logs/a/1.ndjson")
        assert raw["ContentType"] == "application/x-ndjson"
        sink.delete("a/1.ndjson")
        assert sink.head("a/1.ndjson") is None
        assert list(sink.list()) == []
        sink.delete("a/1.ndjson")  # deleting a missing object is a no-op

    def test_standard_credential_chain_and_endpoint_env(self, seaweedfs, s3_bucket, monkeypatch, tmp_path):
        """Without an injected client the sink uses boto3's chain: AWS_* keys and AWS_ENDPOINT_URL from the env."""
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.secret_key)
        monkeypatch.setenv("AWS_ENDPOINT_URL", seaweedfs.endpoint_url)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        with S3Sink(s3_bucket, "env", options=FAST) as sink:
            sink.check()
            put(sink, "k", b"via env")
            assert sink.get("k") == b"via env"
            assert sink.display_url == f"s3://{s3_bucket}/env/"

    def test_missing_object(self, seaweedfs, s3_bucket):
        """A missing key is None from head and KeyError from get."""
        sink = make_sink(seaweedfs, s3_bucket)
        assert sink.head("nope") is None
        with pytest.raises(KeyError):
            sink.get("nope")

    def test_identical_put_is_already_existed(self, seaweedfs, s3_bucket):
        """Putting the same bytes twice succeeds the second time as already_existed."""
        sink = make_sink(seaweedfs, s3_bucket)
        put(sink, "k", b"same")
        assert put(sink, "k", b"same").already_existed

    def test_different_content_conflicts_and_keeps_original(self, seaweedfs, s3_bucket):
        """Different bytes under an existing key raise ObjectConflictError and leave the original intact."""
        sink = make_sink(seaweedfs, s3_bucket)
        put(sink, "k", b"original")
        with pytest.raises(ObjectConflictError):
            put(sink, "k", b"impostor")
        assert sink.get("k") == b"original"

    def test_object_without_sha_metadata_is_compared_by_content(self, seaweedfs, s3_bucket):
        """An object written by another tool (no sha metadata) is hashed to decide."""
        seaweedfs.client().put_object(Bucket=s3_bucket, Key="logs/k", Body=b"foreign")
        sink = make_sink(seaweedfs, s3_bucket)
        assert put(sink, "k", b"foreign").already_existed
        with pytest.raises(ObjectConflictError):
            put(sink, "k", b"other")

    def test_multipart_above_threshold(self, seaweedfs, s3_bucket):
        """A body above multipart_threshold is uploaded in parts, conditionally, and reads back whole."""
        sink = make_sink(seaweedfs, s3_bucket, multipart_threshold=1 * MiB, part_size=5 * MiB)
        body = bytes(range(256)) * (6 * MiB // 256) + b"tail"
        put(sink, "big", body)
        etag = seaweedfs.client().head_object(Bucket=s3_bucket, Key="logs/big")["ETag"]
        assert etag.endswith('-2"')  # two parts
        assert sink.get("big") == body
        assert put(sink, "big", body).already_existed
        with pytest.raises(ObjectConflictError):
            put(sink, "big", body[:-1] + b"X")
        uploads = seaweedfs.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
        assert uploads == []

    def test_conditional_complete_refuses_existing_key(self, seaweedfs, s3_bucket):
        """A multipart upload racing an existing object is refused at complete and resolved by content."""
        sink = make_sink(seaweedfs, s3_bucket, multipart_threshold=1, part_size=5 * MiB)
        real_head, calls = sink.head, []

        def head_missing_once(key):  # simulate losing the race between the pre-upload HEAD and the complete
            calls.append(key)
            return None if len(calls) == 1 else real_head(key)

        sink.head = head_missing_once
        seaweedfs.client().put_object(Bucket=s3_bucket, Key="logs/race", Body=b"winner")
        with pytest.raises(ObjectConflictError):
            put(sink, "race", b"loser")
        assert seaweedfs.client().get_object(Bucket=s3_bucket, Key="logs/race")["Body"].read() == b"winner"

    def test_sse_s3_is_applied(self, seaweedfs, s3_bucket):
        """sse='AES256' stores the object encrypted server-side."""
        sink = make_sink(seaweedfs, s3_bucket, sse="AES256", storage_class="STANDARD")
        put(sink, "enc", b"secret-ish")
        raw = seaweedfs.client().head_object(Bucket=s3_bucket, Key="logs/enc")
        assert raw["ServerSideEncryption"] == "AES256"
        assert sink.get("enc") == b"secret-ish"


class TestS3SinkRetention:
    def test_locked_version_cannot_be_deleted(self, seaweedfs, locked_bucket):
        """An object put with retain_until under Object Lock refuses deletion with ObjectLockedError."""
        sink = make_sink(seaweedfs, locked_bucket, object_lock_mode="GOVERNANCE")
        sink.check()
        until = datetime.now(timezone.utc) + timedelta(days=1)
        put(sink, "locked", b"keep me", retain_until=until)
        info = sink.head("locked")
        assert info is not None and info.retain_until is not None
        assert abs((info.retain_until - until).total_seconds()) < 2
        with pytest.raises(ObjectLockedError):
            sink.delete("locked")
        assert sink.get("locked") == b"keep me"

    def test_unlocked_versions_are_deleted_for_good(self, seaweedfs, locked_bucket):
        """On a versioned bucket delete removes every version, not just adds a delete marker."""
        sink = make_sink(seaweedfs, locked_bucket)
        put(sink, "free", b"x")
        sink.delete("free")
        versions = seaweedfs.client().list_object_versions(Bucket=locked_bucket, Prefix="logs/free")
        assert versions.get("Versions", []) == [] and versions.get("DeleteMarkers", []) == []

    def test_retention_days_fallback(self, seaweedfs, locked_bucket):
        """Without retain_until the sink locks for retention_days."""
        sink = make_sink(seaweedfs, locked_bucket, object_lock_mode="COMPLIANCE", retention_days=2)
        put(sink, "c", b"x")
        info = sink.head("c")
        assert info.retain_until > datetime.now(timezone.utc) + timedelta(days=1, hours=23)

    def test_check_requires_object_lock_when_configured(self, seaweedfs, s3_bucket):
        """check() fails with a clear message when object_lock_mode is set on a bucket without Object Lock."""
        with pytest.raises(SinkError, match="Object Lock"):
            make_sink(seaweedfs, s3_bucket, object_lock_mode="GOVERNANCE").check()

    def test_lifecycle_rule_installed_and_merged(self, seaweedfs, s3_bucket):
        """apply_lifecycle installs an expiration rule on the prefix and keeps existing rules."""
        client = seaweedfs.client()
        other = {"ID": "keep-me", "Status": "Enabled", "Filter": {"Prefix": "other/"}, "Expiration": {"Days": 90}}
        client.put_bucket_lifecycle_configuration(Bucket=s3_bucket, LifecycleConfiguration={"Rules": [other]})
        sink = make_sink(seaweedfs, s3_bucket)
        text = sink.apply_lifecycle(7)
        assert "7 day" in text and "1 other rule" in text
        sink.apply_lifecycle(7)  # idempotent: replaces its own rule
        rules = {r["ID"]: r for r in client.get_bucket_lifecycle_configuration(Bucket=s3_bucket)["Rules"]}
        assert set(rules) == {"keep-me", "logshield-expire:logs/"}
        assert rules["logshield-expire:logs/"]["Expiration"]["Days"] == 7
        assert rules["logshield-expire:logs/"]["Filter"]["Prefix"] == "logs/"


class TestS3SinkErrors:
    def test_missing_bucket_names_the_bucket(self, seaweedfs):
        """A missing bucket is a SinkError naming it, from check() and from put()."""
        sink = make_sink(seaweedfs, "no-such-bucket-xyz", options=FAST)
        with pytest.raises(SinkError, match="no-such-bucket-xyz") as err:
            sink.check()
        assert not isinstance(err.value, SinkUnavailableError)
        with pytest.raises(SinkError, match="does not exist"):
            put(sink, "k", b"x")

    @pytest.mark.parametrize("wrong", ["secret", "access_key"])
    def test_bad_credentials_do_not_leak(self, seaweedfs, s3_bucket, wrong):
        """Wrong credentials give a SinkError naming the env vars and never containing the secret."""
        import boto3

        secret = "WRONG-secret-9f8e7d6c5b4a" if wrong == "secret" else seaweedfs.secret_key
        access = seaweedfs.access_key if wrong == "secret" else "NOSUCHKEYID"
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=seaweedfs.endpoint_url,
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )
        sink = S3Sink(s3_bucket, "logs", client=client, options=FAST)
        for call in (sink.check, lambda: put(sink, "k", b"x")):
            with pytest.raises(SinkError) as err:
                call()
            assert not isinstance(err.value, SinkUnavailableError)
            message = str(err.value)
            assert "AWS_SECRET_ACCESS_KEY" in message
            assert secret not in message and seaweedfs.secret_key not in message
            assert secret not in repr(err.value.__cause__)

    def test_store_down_is_unavailable_quickly(self, s3_bucket, monkeypatch, tmp_path):
        """A closed port gives SinkUnavailableError within the configured attempts, not a hang."""
        from tests.servers import _free_ports

        # The default credential chain, kept hermetic (no files, no instance metadata lookups).
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        (port,) = _free_ports(1)
        sink = S3Sink(s3_bucket, endpoint_url=f"http://127.0.0.1:{port}", options=FAST)
        start = time.monotonic()
        with pytest.raises(SinkUnavailableError):
            put(sink, "k", b"x")
        with pytest.raises(SinkUnavailableError):
            sink.check()
        assert time.monotonic() - start < 10


def agent_environment(monkeypatch, tmp_path, server: SeaweedFS, bucket: str, **variables: str) -> None:
    """The agent's process environment for ``server``: boto3's standard chain, kept hermetic."""
    import os

    for name in list(os.environ):
        if name.startswith("LOGSHIELD_"):
            monkeypatch.delenv(name)
    for name, value in {
        "AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_ENDPOINT_URL": server.endpoint_url, "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "LOGSHIELD_PATHS": str(tmp_path / "logs" / "*.log"), "LOGSHIELD_STATE_DIR": str(tmp_path / "state"),
        "LOGSHIELD_SINK": f"s3://{bucket}/app", "LOGSHIELD_HTTP_ADDR": "off", "LOGSHIELD_STORE_MAX_ATTEMPTS": "2",
        **{f"LOGSHIELD_{k.upper()}": v for k, v in variables.items()},
    }.items():
        monkeypatch.setenv(name, value)


class TestS3Check:
    """``logshield-agent check`` against a real store: a probe object is written, read back and removed."""

    def test_check_writes_and_removes_a_probe(self, seaweedfs, s3_bucket, monkeypatch, tmp_path, capsys):
        """check exits 0 after a real conditional write under <prefix>/_check/ and leaves nothing behind."""
        from logshield_agent.cli import main

        agent_environment(monkeypatch, tmp_path, seaweedfs, s3_bucket, storage_class="STANDARD", s3_sse="AES256")
        assert main(["check"]) == 0
        out = capsys.readouterr().out
        assert f"ok: store s3://{s3_bucket}/app/ reachable and writable (a probe object written, read back and " \
               "deleted)" in out
        assert seaweedfs.client().list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0

    def test_check_on_object_lock_bucket(self, seaweedfs, locked_bucket, monkeypatch, tmp_path, capsys):
        """With Object Lock the probe is locked for an hour: check passes and says a locked version remains."""
        from logshield_agent.cli import main

        agent_environment(monkeypatch, tmp_path, seaweedfs, locked_bucket, s3_object_lock_mode="GOVERNANCE",
                          retention_days="30", digest="off")
        assert main(["check", "--strict"]) == 0
        out = capsys.readouterr().out
        assert "note: the probe's locked version" in out
        versions = seaweedfs.client().list_object_versions(Bucket=locked_bucket, Prefix="app/_check/")
        (version,) = versions["Versions"]
        head = seaweedfs.client().head_object(Bucket=locked_bucket, Key=version["Key"], VersionId=version["VersionId"])
        assert head["ObjectLockMode"] == "GOVERNANCE"
        assert head["ObjectLockRetainUntilDate"] < datetime.now(timezone.utc) + timedelta(hours=1, minutes=1)

    def test_retention_without_lock_is_warned(self, seaweedfs, s3_bucket, monkeypatch, tmp_path, capsys):
        """RETENTION_DAYS without S3_OBJECT_LOCK_MODE: check warns (exit 0), --strict fails (exit 1)."""
        from logshield_agent.cli import main

        agent_environment(monkeypatch, tmp_path, seaweedfs, s3_bucket, retention_days="30", digest="off")
        assert main(["check"]) == 0
        assert "LOGSHIELD_S3_OBJECT_LOCK_MODE is unset" in capsys.readouterr().err
        assert main(["check", "--strict"]) == 1

    def test_check_with_wrong_secret_names_the_variable_not_the_secret(self, seaweedfs, s3_bucket, monkeypatch,
                                                                       tmp_path, capsys):
        """Bad credentials fail check with exit 1 naming AWS_SECRET_ACCESS_KEY, and the secret appears nowhere."""
        from logshield_agent.cli import main

        agent_environment(monkeypatch, tmp_path, seaweedfs, s3_bucket, digest="off")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "WRONG-secret-1a2b3c4d5e6f")
        assert main(["check"]) == 1
        out, err = capsys.readouterr()
        assert "AWS_SECRET_ACCESS_KEY" in err
        assert "WRONG-secret-1a2b3c4d5e6f" not in out + err and seaweedfs.secret_key not in out + err


class TestS3DefaultMultipart:
    def test_full_batch_goes_in_parts_with_the_defaults(self, seaweedfs, s3_bucket, monkeypatch, tmp_path):
        """The sink built from the default configuration uploads a full-size batch (16 MiB, incompressible) in
        8 MiB parts, conditionally, and it reads back whole."""
        import os

        from logshield_agent.config import load_config
        from logshield_agent.sinks import sink_from_config

        agent_environment(monkeypatch, tmp_path, seaweedfs, s3_bucket)
        config = load_config()
        body = os.urandom(config.batch_max_bytes)
        with sink_from_config(config) as sink:
            put(sink, "batch", body)
            assert put(sink, "batch", body).already_existed
            assert sink.get("batch") == body
        etag = seaweedfs.client().head_object(Bucket=s3_bucket, Key="app/batch")["ETag"]
        assert etag.endswith('-2"')
