"""AzureBlobSink against a real Azurite: conditional uploads, metadata, tiers, error mapping, lifecycle text."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from logshield_agent.sinks._cloud import MiB, RemoteOptions
from logshield_agent.sinks.azure_blob import AzureBlobSink
from logshield_agent.sinks.base import META_SHA256, ObjectConflictError, SinkError, SinkUnavailableError

from tests.servers import AZURITE_KEY, Azurite

pytestmark = pytest.mark.integration

FAST = RemoteOptions(max_attempts=1, connect_timeout=1, read_timeout=10)


def make_sink(server: Azurite, container: str, prefix: str = "logs", **kwargs) -> AzureBlobSink:
    kwargs.setdefault("options", RemoteOptions(max_attempts=2, connect_timeout=2, read_timeout=20))
    return AzureBlobSink(container, prefix, connection_string=server.connection_string, environ={}, **kwargs)


def put(sink: AzureBlobSink, key: str, body: bytes, **kwargs):
    return sink.put(key, body, sha256=hashlib.sha256(body).hexdigest(), metadata={"logshield-lines": "1"}, **kwargs)


class TestAzureBlobSinkObjects:
    def test_put_get_head_list_delete(self, azurite, azure_container):
        """A blob round-trips with its metadata and content settings, is listed and can be deleted."""
        sink = make_sink(azurite, azure_container)
        sink.check()
        body = b'{"msg": "hello"}\n'
        result = put(sink, "a/1.ndjson.zst", body, content_encoding="zstd")
        assert not result.already_existed
        assert sink.get("a/1.ndjson.zst") == body
        info = sink.head("a/1.ndjson.zst")
        assert info is not None and info.size == len(body)
        assert info.metadata[META_SHA256] == hashlib.sha256(body).hexdigest()
        assert info.metadata["logshield-lines"] == "1"
        props = azurite.client().get_blob_client(azure_container, "logs/a/1.ndjson.zst").get_blob_properties()
        assert props.content_settings.content_type == "application/x-ndjson"
        assert props.content_settings.content_encoding == "zstd"
        assert props.metadata["logshield_sha256"] == info.metadata[META_SHA256]
        listed = list(sink.list("a/"))
        assert [o.key for o in listed] == ["a/1.ndjson.zst"] and listed[0].metadata[META_SHA256]
        sink.delete("a/1.ndjson.zst")
        assert sink.head("a/1.ndjson.zst") is None
        sink.delete("a/1.ndjson.zst")  # deleting a missing blob is a no-op
        with pytest.raises(KeyError):
            sink.get("a/1.ndjson.zst")

    def test_identical_put_is_already_existed(self, azurite, azure_container):
        """Putting the same bytes twice succeeds the second time as already_existed."""
        sink = make_sink(azurite, azure_container)
        put(sink, "k", b"same")
        assert put(sink, "k", b"same").already_existed

    def test_different_content_conflicts_and_keeps_original(self, azurite, azure_container):
        """Different bytes under an existing name raise ObjectConflictError and leave the original intact."""
        sink = make_sink(azurite, azure_container)
        put(sink, "k", b"original")
        with pytest.raises(ObjectConflictError):
            put(sink, "k", b"impostor")
        assert sink.get("k") == b"original"

    def test_chunked_upload_is_conditional(self, azurite, azure_container):
        """A body above max_single_put_size is uploaded in blocks and still never overwrites."""
        sink = make_sink(azurite, azure_container, max_single_put_size=1 * MiB, max_block_size=1 * MiB)
        body = bytes(range(256)) * (3 * MiB // 256) + b"tail"
        put(sink, "big", body)
        assert sink.get("big") == body
        blocks = azurite.client().get_blob_client(azure_container, "logs/big").get_block_list()[0]
        assert len(blocks) == 4
        assert put(sink, "big", body).already_existed
        with pytest.raises(ObjectConflictError):
            put(sink, "big", body[:-1] + b"X")

    def test_access_tier(self, azurite, azure_container):
        """access_tier is set on upload."""
        sink = make_sink(azurite, azure_container, access_tier="Cool")
        put(sink, "cool", b"x")
        props = azurite.client().get_blob_client(azure_container, "logs/cool").get_blob_properties()
        assert props.blob_tier == "Cool"


class TestAzureBlobSinkRetention:
    def test_immutability_unsupported_is_detected(self, azurite, azure_container):
        """On Azurite (no immutability support) check() and put() fail clearly instead of storing unprotected."""
        sink = make_sink(azurite, azure_container, immutability="unlocked", retention_days=1)
        with pytest.raises(SinkError, match="immutability"):
            sink.check()
        with pytest.raises(SinkError, match="did not apply the immutability policy"):
            put(sink, "k", b"x")

    def test_lifecycle_explanation(self, azurite, azure_container):
        """apply_lifecycle explains the management policy with exact JSON for the container/prefix."""
        sink = make_sink(azurite, azure_container)
        text = sink.apply_lifecycle(30)
        assert "az storage account management-policy create" in text and "nothing was changed" in text
        policy = json.loads(text[text.index("{") : text.rindex("}") + 1])
        rule = policy["rules"][0]
        assert rule["definition"]["filters"]["prefixMatch"] == [f"{azure_container}/logs/"]
        assert rule["definition"]["actions"]["baseBlob"]["delete"]["daysAfterModificationGreaterThan"] == 30


class TestAzureBlobSinkErrors:
    def test_missing_container_names_it(self, azurite):
        """A missing container is a SinkError naming it, from check() and put()."""
        sink = make_sink(azurite, "no-such-container", options=FAST)
        with pytest.raises(SinkError, match="no-such-container") as err:
            sink.check()
        assert not isinstance(err.value, SinkUnavailableError)
        with pytest.raises(SinkError, match="does not exist"):
            put(sink, "k", b"x")

    def test_bad_key_does_not_leak(self, azurite, azure_container):
        """A wrong account key gives a SinkError naming the env var and never containing the key."""
        import base64

        wrong = base64.b64encode(b"not-the-key-" * 5).decode()
        bad = azurite.connection_string.replace(AZURITE_KEY, wrong)
        sink = AzureBlobSink(azure_container, connection_string=bad, environ={}, options=FAST)
        for call in (sink.check, lambda: put(sink, "k", b"x")):
            with pytest.raises(SinkError) as err:
                call()
            assert not isinstance(err.value, SinkUnavailableError)
            assert "AZURE_STORAGE_CONNECTION_STRING" in str(err.value)
            assert wrong not in str(err.value) and AZURITE_KEY not in str(err.value)

    def test_connection_string_from_environment(self, azurite, azure_container):
        """Without explicit credentials the sink reads AZURE_STORAGE_CONNECTION_STRING."""
        env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
        sink = AzureBlobSink(azure_container, environ=env, options=FAST)
        sink.check()
        assert sink.display_url == f"azure://devstoreaccount1/{azure_container}/"

    def test_store_down_is_unavailable_quickly(self, azurite, azure_container):
        """A closed port gives SinkUnavailableError quickly."""
        from tests.servers import _free_ports

        (port,) = _free_ports(1)
        down = azurite.connection_string.replace(str(azurite.port), str(port))
        sink = AzureBlobSink(azure_container, connection_string=down, environ={}, options=FAST)
        start = time.monotonic()
        with pytest.raises(SinkUnavailableError):
            put(sink, "k", b"x")
        with pytest.raises(SinkUnavailableError):
            sink.check()
        assert time.monotonic() - start < 10


def agent_environment(monkeypatch, tmp_path, server: Azurite, container: str, **variables: str) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("LOGSHIELD_", "AZURE_")):
            monkeypatch.delenv(name)
    for name, value in {
        "AZURE_STORAGE_CONNECTION_STRING": server.connection_string,
        "LOGSHIELD_PATHS": str(tmp_path / "logs" / "*.log"), "LOGSHIELD_STATE_DIR": str(tmp_path / "state"),
        "LOGSHIELD_SINK": f"azure://{container}/app", "LOGSHIELD_HTTP_ADDR": "off", "LOGSHIELD_DIGEST": "off",
        "LOGSHIELD_STORE_MAX_ATTEMPTS": "2",
        **{f"LOGSHIELD_{k.upper()}": v for k, v in variables.items()},
    }.items():
        monkeypatch.setenv(name, value)


class TestAzureCheck:
    def test_check_writes_and_removes_a_probe(self, azurite, azure_container, monkeypatch, tmp_path, capsys):
        """check exits 0 after a real conditional upload under <prefix>/_check/ and leaves no blob behind."""
        from logshield_agent.cli import main

        agent_environment(monkeypatch, tmp_path, azurite, azure_container, azure_access_tier="Cool")
        assert main(["check"]) == 0
        assert "reachable and writable (a probe object written, read back and deleted)" in capsys.readouterr().out
        assert list(azurite.client().get_container_client(azure_container).list_blobs()) == []

    def test_retention_without_immutability_is_warned(self, azurite, azure_container, monkeypatch, tmp_path, capsys):
        """RETENTION_DAYS with AZURE_IMMUTABILITY=off: check warns, --strict fails."""
        from logshield_agent.cli import main

        agent_environment(monkeypatch, tmp_path, azurite, azure_container, retention_days="30")
        assert main(["check"]) == 0
        assert "LOGSHIELD_AZURE_IMMUTABILITY=off" in capsys.readouterr().err
        assert main(["check", "--strict"]) == 1

    def test_wrong_key_fails_without_leaking(self, azurite, azure_container, monkeypatch, tmp_path, capsys):
        """A wrong account key fails check (exit 1) naming the variable, never the key."""
        import base64

        from logshield_agent.cli import main

        wrong = base64.b64encode(b"not-the-key-" * 5).decode()
        agent_environment(monkeypatch, tmp_path, azurite, azure_container)
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string.replace(AZURITE_KEY, wrong))
        assert main(["check"]) == 1
        out, err = capsys.readouterr()
        assert "AZURE_STORAGE_CONNECTION_STRING" in err and wrong not in out + err and AZURITE_KEY not in out + err


class TestAzureDefaultMultipart:
    def test_full_batch_goes_in_blocks_with_the_defaults(self, azurite, azure_container, monkeypatch, tmp_path):
        """The sink built from the default configuration uploads a full-size batch (16 MiB, incompressible) as
        8 MiB blocks committed conditionally, and it reads back whole."""
        import os

        from logshield_agent.config import load_config
        from logshield_agent.sinks import sink_from_config

        agent_environment(monkeypatch, tmp_path, azurite, azure_container)
        config = load_config()
        body = os.urandom(config.batch_max_bytes)
        with sink_from_config(config) as sink:
            put(sink, "batch", body)
            assert put(sink, "batch", body).already_existed
            assert sink.get("batch") == body
        blocks = azurite.client().get_blob_client(azure_container, "app/batch").get_block_list()[0]
        assert [b.size for b in blocks] == [8 * MiB, 8 * MiB]
