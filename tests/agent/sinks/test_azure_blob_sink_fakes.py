"""AzureBlobSink against an in-memory fake of the blob SDK: immutability, conflicts, credentials, error mapping."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from logshield_agent.sinks.azure_blob import AzureBlobSink
from logshield_agent.sinks.base import (
    META_SHA256,
    ObjectLockedError,
    SinkError,
    SinkUnavailableError,
)


def _err(cls, code: str, status: int):
    exc = cls(message=f"{code} from fake")
    exc.error_code = code
    exc.status_code = status
    return exc


class FakeBlob:
    def __init__(self, container: FakeContainer, name: str) -> None:
        self.container, self.name = container, name

    def upload_blob(self, body, *, overwrite, metadata, content_settings, immutability_policy=None, **_):
        assert overwrite is False
        if self.container.fail:
            raise self.container.fail
        if self.name in self.container.blobs:
            raise _err(ResourceExistsError, "BlobAlreadyExists", 409)
        policy = immutability_policy if self.container.supports_immutability else None
        self.container.blobs[self.name] = {"body": bytes(body), "metadata": dict(metadata), "policy": policy}

    def get_blob_properties(self):
        blob = self.container.blobs.get(self.name)
        if blob is None:
            raise _err(ResourceNotFoundError, "BlobNotFound", 404)
        policy = blob["policy"] or SimpleNamespace(expiry_time=None, policy_mode=None)
        return SimpleNamespace(
            name=self.name,
            size=len(blob["body"]),
            last_modified=None,
            metadata=blob["metadata"],
            immutability_policy=policy,
        )

    def set_immutability_policy(self, policy):
        if not self.container.supports_immutability:
            raise _err(HttpResponseError, "NotImplemented", 501)
        self.container.blobs[self.name]["policy"] = policy

    def download_blob(self, **_):
        return SimpleNamespace(readall=lambda: self.container.blobs[self.name]["body"])

    def delete_blob(self, **_):
        blob = self.container.blobs.get(self.name)
        if blob is None:
            raise _err(ResourceNotFoundError, "BlobNotFound", 404)
        policy = blob["policy"]
        if policy is not None and policy.expiry_time > datetime.now(timezone.utc):
            raise _err(HttpResponseError, "BlobImmutableDueToPolicy", 409)
        del self.container.blobs[self.name]


class FakeContainer:
    def __init__(self, *, supports_immutability: bool = True) -> None:
        self.blobs: dict[str, dict] = {}
        self.supports_immutability = supports_immutability
        self.fail: Exception | None = None

    def get_blob_client(self, name: str) -> FakeBlob:
        return FakeBlob(self, name)

    def get_container_properties(self):
        if self.fail:
            raise self.fail
        return SimpleNamespace(immutable_storage_with_versioning_enabled=self.supports_immutability)

    def list_blobs(self, name_starts_with=None, include=None):
        for name in sorted(self.blobs):
            if name.startswith(name_starts_with or ""):
                yield self.get_blob_client(name).get_blob_properties()


class FakeService:
    account_name = "fakeacct"

    def __init__(self, container: FakeContainer) -> None:
        self.container = container

    def get_container_client(self, name: str) -> FakeContainer:
        return self.container


def make(container: FakeContainer, **kwargs) -> AzureBlobSink:
    return AzureBlobSink("logs", "app", service_client=FakeService(container), **kwargs)


def put(sink, key, body, **kwargs):
    return sink.put(key, body, sha256=hashlib.sha256(body).hexdigest(), metadata={"logshield-lines": "3"}, **kwargs)


class TestAzureBlobSinkImmutability:
    def test_policy_applied_and_delete_refused(self):
        """With immutability on, the blob carries the retain-until and deleting it raises ObjectLockedError."""
        container = FakeContainer()
        sink = make(container, immutability="locked")
        sink.check()
        until = datetime.now(timezone.utc) + timedelta(days=3)
        put(sink, "k", b"x", retain_until=until)
        stored = container.blobs["app/k"]
        assert stored["policy"].expiry_time == until and stored["policy"].policy_mode == "Locked"
        assert stored["metadata"]["logshield_sha256"] == hashlib.sha256(b"x").hexdigest()
        assert sink.head("k").retain_until == until
        with pytest.raises(ObjectLockedError):
            sink.delete("k")

    def test_existing_blob_gets_policy_extended_not_shortened(self):
        """A retried put of an existing blob extends a shorter policy and keeps a longer one."""
        container = FakeContainer()
        sink = make(container, immutability="unlocked")
        soon = datetime.now(timezone.utc) + timedelta(days=1)
        later = soon + timedelta(days=5)
        put(sink, "k", b"x", retain_until=soon)
        assert put(sink, "k", b"x", retain_until=later).already_existed
        assert container.blobs["app/k"]["policy"].expiry_time == later
        put(sink, "k", b"x", retain_until=soon)
        assert container.blobs["app/k"]["policy"].expiry_time == later

    def test_retention_days_fallback(self):
        """Without retain_until the policy lasts retention_days."""
        container = FakeContainer()
        put(make(container, immutability="unlocked", retention_days=2), "k", b"x")
        expiry = container.blobs["app/k"]["policy"].expiry_time
        assert expiry > datetime.now(timezone.utc) + timedelta(days=1, hours=23)

    def test_unsupported_store_is_detected(self):
        """A store that ignores the policy makes put fail (never a silently unprotected success)."""
        container = FakeContainer(supports_immutability=False)
        sink = make(container, immutability="unlocked", retention_days=1)
        with pytest.raises(SinkError, match="version-level immutability"):
            sink.check()
        with pytest.raises(SinkError, match="did not apply"):
            put(sink, "k", b"x")
        with pytest.raises(SinkError, match="does not support"):
            put(sink, "k", b"x")  # the retry finds the blob and still cannot protect it

    def test_off_sends_no_policy(self):
        """immutability='off' never asks for a policy, even with retain_until."""
        container = FakeContainer()
        put(make(container), "k", b"x", retain_until=datetime.now(timezone.utc) + timedelta(days=1))
        assert container.blobs["app/k"]["policy"] is None
        make(container).delete("k")


class TestAzureBlobSinkErrors:
    @pytest.mark.parametrize(
        ("exc", "kind"),
        [
            (_err(HttpResponseError, "ServerBusy", 503), SinkUnavailableError),
            (_err(HttpResponseError, "InternalError", 500), SinkUnavailableError),
            (_err(HttpResponseError, "TooManyRequests", 429), SinkUnavailableError),
            (ServiceRequestError("connection refused"), SinkUnavailableError),
            (_err(ClientAuthenticationError, "AuthenticationFailed", 403), SinkError),
            (_err(ResourceNotFoundError, "ContainerNotFound", 404), SinkError),
        ],
    )
    def test_error_mapping(self, exc, kind):
        """SDK errors map to SinkUnavailableError (retry) or SinkError (fix configuration)."""
        container = FakeContainer()
        container.fail = exc
        with pytest.raises(SinkError) as err:
            put(make(container), "k", b"x")
        assert type(err.value) is kind

    def test_metadata_keys_round_trip(self):
        """logshield-* metadata is stored with underscores (Azure rule) and read back with hyphens."""
        container = FakeContainer()
        sink = make(container)
        put(sink, "k", b"x")
        assert set(container.blobs["app/k"]["metadata"]) == {"logshield_lines", "logshield_sha256"}
        assert sink.head("k").metadata == {"logshield-lines": "3", META_SHA256: hashlib.sha256(b"x").hexdigest()}


class TestAzureBlobSinkCredentials:
    def test_nothing_configured(self):
        """With no connection string, URL or identity the error names the variables to set."""
        with pytest.raises(SinkError, match="AZURE_STORAGE_CONNECTION_STRING"):
            AzureBlobSink("logs", environ={})

    def test_sas_token_from_environment(self):
        """account_url plus AZURE_STORAGE_SAS_TOKEN builds a SAS client; the token is not in display_url."""
        sink = AzureBlobSink(
            "logs",
            account_url="https://acct.blob.core.windows.net",
            environ={"AZURE_STORAGE_SAS_TOKEN": "?sv=2024&sig=SECRETSIG"},
        )
        assert "SECRETSIG" not in sink.display_url and sink.display_url == "azure://acct/logs/"

    def test_malformed_connection_string_does_not_leak(self):
        """A malformed connection string is a SinkError that does not echo it."""
        with pytest.raises(SinkError) as err:
            AzureBlobSink("logs", connection_string="AccountKey=SECRETKEY;garbage", environ={})
        assert "SECRETKEY" not in str(err.value)


class TestAzureBlobSinkProbe:
    """``probe`` (used by ``logshield-agent check``): a real write, the permission a refusal lacks, clean-up."""

    def test_write_read_delete(self):
        """The probe blob is written, found and deleted; nothing to report."""
        container = FakeContainer()
        assert make(container).probe("_check/x") == []
        assert container.blobs == {}

    def test_missing_write_permission_is_named(self):
        """A write refused for lack of permission names the SAS permissions / role to grant, not the credentials."""
        container = FakeContainer()
        container.fail = _err(HttpResponseError, "AuthorizationPermissionMismatch", 403)
        with pytest.raises(SinkError, match="SAS permissions c and w") as err:
            make(container).probe("_check/x")
        assert "refused the credentials" not in str(err.value)

    def test_missing_immutability_permission_is_named(self):
        """With immutability on, the refused write says the policy needs SAS permission i too."""
        container = FakeContainer()
        container.fail = _err(HttpResponseError, "AuthorizationPermissionMismatch", 403)
        with pytest.raises(SinkError, match="c, w and i"):
            make(container, immutability="unlocked").probe("_check/x")

    def test_immutable_probe_is_a_note(self):
        """With immutability the probe cannot be deleted before its one-hour policy ends: a note, not a failure."""
        container = FakeContainer()
        (note,) = make(container, immutability="locked").probe("_check/x")
        assert "immutable until its policy expires" in note and "app/_check/x" in container.blobs
