"""Azure Blob Storage sink via azure-storage-blob: conditional block-blob uploads, per-blob immutability.

``upload_blob(overwrite=False)`` sends ``If-None-Match: *`` (on the single Put Blob, or on the Put Block List
that commits a chunked upload), so a blob is never replaced. When it exists, the stored ``logshield_sha256``
metadata decides as for S3: same content is success, different content is an ``ObjectConflictError``.

Azure metadata names must be C# identifiers, so the contract's ``logshield-*`` keys are stored with ``_`` for
``-`` and translated back on read (metadata keys are therefore lower-case ``[a-z0-9-]``).

Immutability (``immutability="unlocked"|"locked"``) needs version-level immutability support enabled on the
container (or account). The policy travels with the upload (atomic on Azure); the sink then reads the blob's
properties and raises ``SinkError`` if the store did not apply it — which is what happens on Azurite (it ignores
the header in ``--loose`` mode and answers 501 to Set Blob Immutability Policy) or on a container without the
feature. ``check()`` reports the container setting up front. A blob that already existed gets its policy
extended, never shortened.

Lifecycle (deleting blobs after N days) is a management-plane setting the data-plane SDK cannot write:
``apply_lifecycle`` returns the exact management policy JSON and the ``az`` command to install it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from azure.core.exceptions import AzureError

from logshield_agent.sinks._azure_errors import LOCKED_CODES, classify_error, error_code, error_status
from logshield_agent.sinks._cloud import (
    PROBE_BODY,
    PROBE_RETENTION,
    MiB,
    RemoteOptions,
    check_sha256,
    join_key,
    normalize_prefix,
    resolve_retain_until,
    strip_prefix,
)
from logshield_agent.sinks.base import (
    META_SHA256,
    ObjectInfo,
    ObjectLockedError,
    PutResult,
    Sink,
    SinkError,
)

__all__ = ["AzureBlobSink"]


IMMUTABILITY_MODES = ("off", "unlocked", "locked")
ACCESS_TIERS = ("Hot", "Cool", "Cold", "Archive")


def to_azure_meta(metadata: Mapping[str, str]) -> dict[str, str]:
    return {k.replace("-", "_"): v for k, v in metadata.items()}


def from_azure_meta(metadata: Mapping[str, str] | None) -> dict[str, str]:
    return {k.lower().replace("_", "-"): v for k, v in (metadata or {}).items()}


class AzureBlobSink(Sink):
    """Block blobs under ``container/prefix``; see the module docstring for the guarantees.

    Credentials, first match wins: ``service_client``; ``connection_string``; ``account_url`` with
    ``sas_token`` or ``credential``; then from ``environ`` (default ``os.environ``):
    ``AZURE_STORAGE_CONNECTION_STRING``, else ``account_url`` (or ``AZURE_STORAGE_ACCOUNT_URL``) with
    ``AZURE_STORAGE_SAS_TOKEN``, else ``azure.identity.DefaultAzureCredential``.
    """

    def __init__(
        self,
        container: str,
        prefix: str = "",
        *,
        service_client: Any = None,
        connection_string: str | None = None,
        account_url: str | None = None,
        sas_token: str | None = None,
        credential: Any = None,
        access_tier: str | None = None,
        immutability: str = "off",
        retention_days: int | None = None,
        max_single_put_size: int = 8 * MiB,
        max_block_size: int = 8 * MiB,
        options: RemoteOptions | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if not container:
            raise ValueError("container must be set")
        if immutability not in IMMUTABILITY_MODES:
            raise ValueError(f"immutability must be one of {IMMUTABILITY_MODES}, not {immutability!r}")
        if access_tier is not None and access_tier not in ACCESS_TIERS:
            raise ValueError(f"access_tier must be one of {ACCESS_TIERS} or None, not {access_tier!r}")
        if retention_days is not None and retention_days < 1:
            raise ValueError("retention_days must be >= 1")
        self.container = container
        self.prefix = normalize_prefix(prefix)
        self.access_tier = access_tier
        self.immutability = immutability
        self.retention_days = retention_days
        self.options = options or RemoteOptions()
        self._owns_client = service_client is None
        if service_client is None:
            service_client = _make_service_client(
                connection_string=connection_string,
                account_url=account_url,
                sas_token=sas_token,
                credential=credential,
                environ=os.environ if environ is None else environ,
                options=self.options,
                max_single_put_size=max_single_put_size,
                max_block_size=max_block_size,
            )
        self._service = service_client
        self._container = service_client.get_container_client(container)
        self.account = str(getattr(service_client, "account_name", "") or "account")
        self.display_url = f"azure://{self.account}/{container}/{self.prefix}"

    # -- writes
    def put(
        self,
        key: str,
        body: bytes,
        *,
        sha256: str,
        metadata: dict[str, str],
        content_type: str = "application/x-ndjson",
        content_encoding: str | None = None,
        retain_until: datetime | None = None,
    ) -> PutResult:
        from azure.storage.blob import ContentSettings

        full = join_key(self.prefix, key)
        sha256 = check_sha256(body, sha256).hex()
        until = resolve_retain_until(retain_until, self.retention_days) if self.immutability != "off" else None
        kwargs: dict[str, Any] = {
            "overwrite": False,
            "metadata": to_azure_meta({**metadata, META_SHA256: sha256}),
            "content_settings": ContentSettings(
                content_type=content_type,
                content_encoding=content_encoding,
                content_md5=bytearray(hashlib.md5(body).digest()),  # noqa: S324 - stored integrity property
            ),
            "validate_content": True,  # per-request MD5 the service checks
            "max_concurrency": 1,
        }
        if self.access_tier:
            from azure.storage.blob import StandardBlobTier

            kwargs["standard_blob_tier"] = StandardBlobTier(self.access_tier)
        if until is not None:
            kwargs["immutability_policy"] = self._policy(until)
        blob = self._container.get_blob_client(full)
        try:
            blob.upload_blob(body, **kwargs)
        except AzureError as exc:
            if error_code(exc) not in ("BlobAlreadyExists", "ConditionNotMet"):
                raise self._error(exc, "put" if until is None else "put with immutability policy", full) from exc
            result = self.resolve_existing(key, f"azure://{self.account}/{self.container}/{full}", len(body), sha256)
            if until is not None:
                self._ensure_policy(blob, full, until)
            return result
        if until is not None:
            self._verify_policy(blob, full)
        return PutResult(key=key, size=len(body), sha256=sha256)

    def _policy(self, until: datetime) -> Any:
        from azure.storage.blob import ImmutabilityPolicy

        return ImmutabilityPolicy(expiry_time=until, policy_mode=self.immutability.capitalize())

    def _verify_policy(self, blob: Any, full: str) -> None:
        try:
            policy = blob.get_blob_properties().immutability_policy
        except AzureError as exc:
            raise self._error(exc, "put", full) from exc
        if policy is None or policy.expiry_time is None:
            raise SinkError(
                f"azure://{self.account}/{self.container}/{full} was stored but the store did not apply the "
                f"immutability policy ({self.immutability}): enable version-level immutability on container "
                f"{self.container!r}, or set immutability='off' (Azurite does not support it)"
            )

    def _ensure_policy(self, blob: Any, full: str, until: datetime) -> None:
        """Give an existing blob at least ``until`` of retention (a retry after a crash between the steps)."""
        try:
            policy = blob.get_blob_properties().immutability_policy
            current = policy.expiry_time if policy is not None else None
            if current is not None and current >= until:
                return
            blob.set_immutability_policy(self._policy(until))
        except AzureError as exc:
            if error_status(exc) == 501 or error_code(exc) in ("FeatureNotSupported", "NotImplemented"):
                raise SinkError(
                    f"the store does not support blob immutability policies ({self.immutability}) for "
                    f"container {self.container!r}: enable version-level immutability or set immutability='off'"
                ) from None
            raise self._error(exc, "put", full) from exc

    # -- reads
    def get(self, key: str) -> bytes:
        full = join_key(self.prefix, key)
        try:
            return self._container.get_blob_client(full).download_blob(max_concurrency=1).readall()
        except AzureError as exc:
            if error_code(exc) == "BlobNotFound":
                raise KeyError(key) from None
            raise self._error(exc, "get", full) from exc

    def head(self, key: str) -> ObjectInfo | None:
        full = join_key(self.prefix, key)
        try:
            props = self._container.get_blob_client(full).get_blob_properties()
        except AzureError as exc:
            if error_code(exc) == "BlobNotFound":
                return None
            raise self._error(exc, "head", full) from exc
        return _info(self.prefix, props)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        full_prefix = self.prefix + prefix
        try:
            for props in self._container.list_blobs(name_starts_with=full_prefix or None, include=["metadata"]):
                yield _info(self.prefix, props)
        except AzureError as exc:
            raise self._error(exc, "list", full_prefix) from exc

    # -- retention
    def delete(self, key: str) -> None:
        """Delete the blob and its snapshots; a missing blob is already deleted.

        With blob versioning on (required for version-level immutability) Azure keeps the deleted blob as a
        previous version; the lifecycle policy from ``apply_lifecycle`` removes those.
        """
        full = join_key(self.prefix, key)
        try:
            self._container.get_blob_client(full).delete_blob(delete_snapshots="include")
        except AzureError as exc:
            if error_code(exc) == "BlobNotFound":
                return
            if error_code(exc) in LOCKED_CODES:
                raise ObjectLockedError(
                    f"azure://{self.account}/{self.container}/{full} is immutable ({error_code(exc)}); not deleted"
                ) from None
            raise self._error(exc, "delete", full) from exc

    def check(self) -> None:
        try:
            props = self._container.get_container_properties()
        except AzureError as exc:
            raise self._error(exc, "check", "") from exc
        if self.immutability != "off" and not getattr(props, "immutable_storage_with_versioning_enabled", False):
            raise SinkError(
                f"container {self.container!r} does not have version-level immutability enabled but "
                f"immutability={self.immutability!r} is configured: enable it on the container (or account), "
                "or set immutability='off' (Azurite does not support it)"
            )

    def probe(self, key: str) -> list[str]:
        """Do with a throw-away blob under ``key`` what the agent does with its own: a conditional upload with this
        sink's settings (tier, immutability policy for ``PROBE_RETENTION``), properties and a listing; then delete
        it. Raises ``SinkError`` naming the permission that is missing; returns notes (a refused delete is one)."""
        where = f"azure://{self.account}/{self.container}/{join_key(self.prefix, key)}"
        until = datetime.now(timezone.utc) + PROBE_RETENTION if self.immutability != "off" else None
        self.put(key, PROBE_BODY, sha256=hashlib.sha256(PROBE_BODY).hexdigest(), metadata={},
                 content_type="text/plain", retain_until=until)
        try:
            if self.head(key) is None:
                raise SinkError(f"Azure Blob check: {where} was written but its properties cannot be found")
            if not any(info.key == key for info in self.list(key)):
                raise SinkError(f"Azure Blob check: {where} was written but the listing does not show it")
        finally:
            try:
                self.delete(key)
            except ObjectLockedError:
                notes = [f"the probe blob {where} is immutable until its policy expires (1 hour); delete it then, "
                         "or let the lifecycle policy of `retention apply` remove it"]
            except SinkError as exc:
                notes = [f"could not delete the probe blob {where} ({exc}); delete it by hand"]
            else:
                notes = []
        return notes

    def lifecycle_policy(self, days: int) -> dict[str, Any]:
        """The storage-account management policy rule that deletes this sink's blobs after ``days``."""
        return {
            "rules": [
                {
                    "enabled": True,
                    "name": f"logshield-expire-{self.container}"[:256],
                    "type": "Lifecycle",
                    "definition": {
                        "filters": {
                            "blobTypes": ["blockBlob"],
                            "prefixMatch": [f"{self.container}/{self.prefix}"],
                        },
                        "actions": {
                            "baseBlob": {"delete": {"daysAfterModificationGreaterThan": days}},
                            "snapshot": {"delete": {"daysAfterCreationGreaterThan": days}},
                            "version": {"delete": {"daysAfterCreationGreaterThan": days}},
                        },
                    },
                }
            ]
        }

    def apply_lifecycle(self, days: int | None = None) -> str:
        """Explain the lifecycle policy to install: the data-plane API cannot set it (nothing is changed)."""
        days = days or self.retention_days
        if not days or days < 1:
            raise ValueError("apply_lifecycle needs days >= 1 (or retention_days on the sink)")
        policy = json.dumps(self.lifecycle_policy(days), indent=2)
        return (
            f"Azure lifecycle management is a storage-account (management-plane) setting that the blob data API "
            f"cannot write, so nothing was changed. To delete blobs under {self.container}/{self.prefix} "
            f"{days} day(s) after they were written (and their old versions and snapshots), merge this rule "
            f"into the account's management policy (an existing policy is replaced as a whole by the command, "
            f"so add the rule to its 'rules' list first):\n\n{policy}\n\n"
            f"  az storage account management-policy create --account-name {self.account} "
            f"--resource-group <resource-group> --policy @policy.json\n\n"
            f"Immutability policies still win: a blob under retention is deleted only after its expiry."
        )

    def close(self) -> None:
        """Close the service client if the sink made it; an injected client belongs to the caller."""
        close = getattr(self._service, "close", None) if self._owns_client else None
        if close is not None:
            close()

    def _error(self, exc: Exception, op: str, full: str) -> SinkError:
        return classify_error(exc, op=op, account=self.account, container=self.container, key=full)


def _info(prefix: str, props: Any) -> ObjectInfo:
    policy = getattr(props, "immutability_policy", None)
    return ObjectInfo(
        key=strip_prefix(prefix, props.name),
        size=int(getattr(props, "size", 0) or 0),
        last_modified=getattr(props, "last_modified", None),
        metadata=from_azure_meta(getattr(props, "metadata", None)),
        retain_until=getattr(policy, "expiry_time", None),
    )


def _make_service_client(
    *,
    connection_string: str | None,
    account_url: str | None,
    sas_token: str | None,
    credential: Any,
    environ: Mapping[str, str],
    options: RemoteOptions,
    max_single_put_size: int,
    max_block_size: int,
) -> Any:
    from azure.storage.blob import BlobServiceClient, ExponentialRetry

    kwargs: dict[str, Any] = {
        "retry_policy": ExponentialRetry(
            initial_backoff=1, increment_base=2, retry_total=options.max_attempts - 1, random_jitter_range=1
        ),
        "connection_timeout": options.connect_timeout,
        "read_timeout": options.read_timeout,
        "max_single_put_size": max_single_put_size,
        "max_block_size": max_block_size,
    }
    connection_string = connection_string or (
        None if (account_url and (sas_token or credential)) else environ.get("AZURE_STORAGE_CONNECTION_STRING")
    )
    if connection_string:
        try:
            return BlobServiceClient.from_connection_string(connection_string, **kwargs)
        except ValueError:
            raise SinkError("the Azure connection string is malformed: check AZURE_STORAGE_CONNECTION_STRING") from None
    account_url = account_url or environ.get("AZURE_STORAGE_ACCOUNT_URL")
    if not account_url:
        raise SinkError(
            "no Azure Blob credentials: set AZURE_STORAGE_CONNECTION_STRING, or an account URL "
            "(AZURE_STORAGE_ACCOUNT_URL) with AZURE_STORAGE_SAS_TOKEN or an Azure identity"
        )
    if credential is None:
        sas_token = sas_token or environ.get("AZURE_STORAGE_SAS_TOKEN")
        if sas_token:
            credential = sas_token.lstrip("?")
        else:
            try:
                from azure.identity import DefaultAzureCredential
            except ImportError:  # pragma: no cover - azure-identity is a dependency of the agent
                raise SinkError("azure-identity is not installed: pip install presidio-logshield-agent") from None
            credential = DefaultAzureCredential()
    return BlobServiceClient(account_url, credential=credential, **kwargs)
