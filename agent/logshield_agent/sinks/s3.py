"""S3 (and S3-compatible) sink via boto3: conditional puts, per-object Object Lock, SSE, lifecycle expiry.

Exactly-once rests on ``If-None-Match: *``: a put never replaces an object. When the key exists (412
PreconditionFailed, or 409 ConditionalRequestConflict while another writer races us) the stored
``logshield-sha256`` metadata decides: same content is success (``already_existed``), different content is an
``ObjectConflictError``. Objects without that metadata are downloaded and hashed.

Bodies at or above ``multipart_threshold`` go through a multipart upload whose *complete* carries
``If-None-Match: *`` as well (AWS since 2024, SeaweedFS 4.x). A HEAD before the upload skips re-uploading a
batch that is already there; the conditional complete closes the race between that HEAD and the complete.
A failed multipart upload is aborted.

Deletion is for the retention sweep and removes the object for good: on a versioned bucket (always the case
with Object Lock) a plain DELETE only adds a delete marker, so ``delete`` lists the key's versions and
deletes each by ``VersionId`` (data versions first, then delete markers). A version under retention makes S3
answer 403 AccessDenied; the sink then HEADs that version and raises ``ObjectLockedError`` if it is locked.

Error messages name what to fix (bucket, credential variables, permission) and never carry secrets: they are
built from the error code and HTTP status only, never from request details.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from logshield_agent.sinks._cloud import (
    PROBE_BODY,
    PROBE_RETENTION,
    MiB,
    RemoteOptions,
    b64,
    check_sha256,
    join_key,
    normalize_prefix,
    resolve_retain_until,
    strip_prefix,
)
from logshield_agent.sinks._s3_errors import classify_error, error_code, is_access_denied
from logshield_agent.sinks.base import (
    META_SHA256,
    ObjectInfo,
    ObjectLockedError,
    PutResult,
    Sink,
    SinkError,
)

__all__ = ["S3Sink"]

log = logging.getLogger(__name__)

SSE_MODES = ("AES256", "aws:kms")
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
LIFECYCLE_RULE_PREFIX = "logshield-expire"
MIN_PART_SIZE = 5 * MiB
_SDK_ERRORS = (BotoCoreError, ClientError)


class S3Sink(Sink):
    """Objects under ``s3://bucket/prefix``; see the module docstring for the guarantees.

    ``retain_until`` on ``put`` (or, when the caller passes none, now + ``retention_days``) becomes the object's
    Object Lock retain-until date, in ``object_lock_mode``; without ``object_lock_mode`` no lock is requested
    (a bucket default retention, if configured, still applies).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        sse: str | None = None,
        kms_key_id: str | None = None,
        storage_class: str | None = None,
        object_lock_mode: str | None = None,
        retention_days: int | None = None,
        multipart_threshold: int = 8 * MiB,
        part_size: int = 8 * MiB,
        retry_mode: str = "standard",
        options: RemoteOptions | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("bucket must be set")
        if sse not in (None, *SSE_MODES):
            raise ValueError(f"sse must be one of {SSE_MODES} or None, not {sse!r}")
        if kms_key_id and sse != "aws:kms":
            raise ValueError("kms_key_id needs sse='aws:kms'")
        if object_lock_mode not in (None, *LOCK_MODES):
            raise ValueError(f"object_lock_mode must be one of {LOCK_MODES} or None, not {object_lock_mode!r}")
        if retention_days is not None and retention_days < 1:
            raise ValueError("retention_days must be >= 1")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be >= {MIN_PART_SIZE} bytes (S3 minimum part size)")
        if multipart_threshold < 1:
            raise ValueError("multipart_threshold must be >= 1")
        if retry_mode not in ("standard", "adaptive"):
            raise ValueError("retry_mode must be 'standard' or 'adaptive'")
        self.bucket = bucket
        self.prefix = normalize_prefix(prefix)
        self.sse = sse
        self.kms_key_id = kms_key_id
        self.storage_class = storage_class
        self.object_lock_mode = object_lock_mode
        self.retention_days = retention_days
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.options = options or RemoteOptions()
        self._owns_client = client is None
        self._client = (
            client if client is not None else _make_client(endpoint_url, region_name, retry_mode, self.options)
        )
        self.endpoint = str(getattr(self._client.meta, "endpoint_url", endpoint_url or "")) or "AWS S3"
        self.display_url = f"s3://{bucket}/{self.prefix}"

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
        full = join_key(self.prefix, key)
        digest = check_sha256(body, sha256)
        sha256 = digest.hex()
        args = self._object_args(metadata, sha256, content_type, content_encoding, retain_until)
        if len(body) >= self.multipart_threshold:
            return self._put_multipart(key, full, body, sha256, args)
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=full, Body=body, IfNoneMatch="*", ChecksumSHA256=b64(digest), **args
            )
        except _SDK_ERRORS as exc:
            if error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                return self.resolve_existing(key, f"s3://{self.bucket}/{full}", len(body), sha256)
            raise self._error(exc, "put", full) from exc
        return PutResult(key=key, size=len(body), sha256=sha256)

    def _object_args(
        self,
        metadata: dict[str, str],
        sha256: str,
        content_type: str,
        content_encoding: str | None,
        retain_until: datetime | None,
    ) -> dict[str, Any]:
        args: dict[str, Any] = {"ContentType": content_type, "Metadata": {**metadata, META_SHA256: sha256}}
        if content_encoding:
            args["ContentEncoding"] = content_encoding
        if self.sse:
            args["ServerSideEncryption"] = self.sse
            if self.kms_key_id:
                args["SSEKMSKeyId"] = self.kms_key_id
        if self.storage_class:
            args["StorageClass"] = self.storage_class
        if self.object_lock_mode:
            until = resolve_retain_until(retain_until, self.retention_days)
            if until is not None:
                args["ObjectLockMode"] = self.object_lock_mode
                args["ObjectLockRetainUntilDate"] = until
        return args

    def _put_multipart(self, key: str, full: str, body: bytes, sha256: str, args: dict[str, Any]) -> PutResult:
        if self.head(key) is not None:  # skip re-uploading a batch that is already there
            return self.resolve_existing(key, f"s3://{self.bucket}/{full}", len(body), sha256)
        try:
            upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=full, **args)["UploadId"]
        except _SDK_ERRORS as exc:
            raise self._error(exc, "multipart upload", full) from exc
        try:
            parts = []
            view = memoryview(body)
            for number, start in enumerate(range(0, len(body), self.part_size), start=1):
                chunk = view[start : start + self.part_size]
                etag = self._client.upload_part(
                    Bucket=self.bucket,
                    Key=full,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=bytes(chunk),
                    ContentMD5=b64(hashlib.md5(chunk).digest()),  # noqa: S324 - transport integrity, not security
                )["ETag"]
                parts.append({"PartNumber": number, "ETag": etag})
            self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
            )
        except _SDK_ERRORS as exc:
            self._abort(full, upload_id)
            if error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                return self.resolve_existing(key, f"s3://{self.bucket}/{full}", len(body), sha256)
            raise self._error(exc, "multipart upload", full) from exc
        return PutResult(key=key, size=len(body), sha256=sha256)

    def _abort(self, full: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
        except _SDK_ERRORS as exc:  # the lifecycle rule's AbortIncompleteMultipartUpload cleans up leftovers
            log.warning("could not abort multipart upload of s3://%s/%s: %s", self.bucket, full, error_code(exc))

    # -- reads
    def get(self, key: str) -> bytes:
        full = join_key(self.prefix, key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=full)
            return response["Body"].read()
        except _SDK_ERRORS as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                raise KeyError(key) from None
            raise self._error(exc, "get", full) from exc

    def head(self, key: str) -> ObjectInfo | None:
        full = join_key(self.prefix, key)
        try:
            r = self._client.head_object(Bucket=self.bucket, Key=full)
        except _SDK_ERRORS as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise self._error(exc, "head", full) from exc
        return ObjectInfo(
            key=key,
            size=int(r.get("ContentLength", 0)),
            last_modified=r.get("LastModified"),
            metadata=dict(r.get("Metadata") or {}),
            retain_until=r.get("ObjectLockRetainUntilDate"),
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        full_prefix = self.prefix + prefix
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full_prefix)
            for page in pages:
                for item in page.get("Contents", ()):
                    yield ObjectInfo(
                        key=strip_prefix(self.prefix, item["Key"]),
                        size=int(item.get("Size", 0)),
                        last_modified=item.get("LastModified"),
                    )
        except _SDK_ERRORS as exc:
            raise self._error(exc, "list", full_prefix) from exc

    # -- retention
    def delete(self, key: str) -> None:
        """Remove every version of ``key`` (see module docstring); a missing key is already deleted."""
        full = join_key(self.prefix, key)
        try:
            versions, markers = self._versions(full)
        except _SDK_ERRORS as exc:
            raise self._error(exc, "delete", full) from exc
        if not versions and not markers:
            return
        for version_id in versions + markers:
            try:
                self._client.delete_object(Bucket=self.bucket, Key=full, VersionId=version_id)
            except _SDK_ERRORS as exc:
                if error_code(exc) == "AccessDenied":
                    until = self._lock_until(full, version_id)
                    if until is not None:
                        raise ObjectLockedError(
                            f"s3://{self.bucket}/{full} is under Object Lock retention until "
                            f"{until.isoformat()}; not deleted"
                        ) from None
                raise self._error(exc, "delete", full) from exc

    def _versions(self, full: str) -> tuple[list[str], list[str]]:
        versions: list[str] = []
        markers: list[str] = []
        paginator = self._client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            versions += [v["VersionId"] or "null" for v in page.get("Versions", ()) if v["Key"] == full]
            markers += [m["VersionId"] or "null" for m in page.get("DeleteMarkers", ()) if m["Key"] == full]
        return versions, markers

    def _lock_until(self, full: str, version_id: str) -> datetime | None:
        """The retain-until date keeping this version (far future for a legal hold), or None if unlocked."""
        try:
            r = self._client.head_object(Bucket=self.bucket, Key=full, VersionId=version_id)
        except _SDK_ERRORS:
            return None
        if r.get("ObjectLockLegalHoldStatus") == "ON":
            return datetime.max.replace(tzinfo=timezone.utc)
        until = r.get("ObjectLockRetainUntilDate")
        if until is not None and until > datetime.now(timezone.utc):
            return until
        return None

    def check(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except _SDK_ERRORS as exc:
            raise self._error(exc, "check", "") from exc
        if self.object_lock_mode:
            try:
                conf = self._client.get_object_lock_configuration(Bucket=self.bucket)
                enabled = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except _SDK_ERRORS as exc:
                if error_code(exc) != "ObjectLockConfigurationNotFoundError":
                    raise self._error(exc, "check", "") from exc
                enabled = False
            if not enabled:
                raise SinkError(
                    f"S3 bucket {self.bucket!r} does not have Object Lock enabled but object_lock_mode="
                    f"{self.object_lock_mode} is configured: create the bucket with Object Lock enabled "
                    "(--object-lock-enabled-for-bucket) or unset object_lock_mode"
                )
        if self.sse == "aws:kms":
            log.info(
                "SSE-KMS for s3://%s cannot be verified without writing: the first put fails if the key "
                "is unusable (needs kms:GenerateDataKey on it)",
                self.bucket,
            )

    def probe(self, key: str) -> list[str]:
        """Do with a throw-away object under ``key`` what the agent does with its own: a conditional put with this
        sink's settings (SSE, storage class, Object Lock for ``PROBE_RETENTION``), a HEAD and a listing; then
        delete it.

        Raises ``SinkError`` naming the permission that is missing. Returns notes: a refused delete is one, not an
        error (the agent itself never deletes from S3), and so is the locked version a delete leaves behind.
        """
        full = join_key(self.prefix, key)
        where = f"s3://{self.bucket}/{full}"
        until = datetime.now(timezone.utc) + PROBE_RETENTION if self.object_lock_mode else None
        try:
            self.put(key, PROBE_BODY, sha256=hashlib.sha256(PROBE_BODY).hexdigest(), metadata={},
                     content_type="text/plain", retain_until=until)
        except SinkError as exc:
            if not is_access_denied(exc.__cause__):
                raise
            raise SinkError(self._refused_put(full)) from None
        notes: list[str] = []
        try:
            if self.head(key) is None:
                raise SinkError(f"S3 check: {where} was written but HEAD does not find it")
            if not any(info.key == key for info in self.list(key)):
                raise SinkError(f"S3 check: {where} was written but the listing does not show it")
        finally:
            notes += self._delete_probe(full)
        return notes

    def _refused_put(self, full: str) -> str:
        """Why the probe put was refused: put again without each extra that needs a permission of its own."""
        where = f"s3://{self.bucket}/{full}"
        args = self._object_args({}, hashlib.sha256(PROBE_BODY).hexdigest(), "text/plain", None,
                                 datetime.now(timezone.utc) + PROBE_RETENTION)
        extras = []
        if "ObjectLockMode" in args:
            extras.append(("s3:PutObjectRetention (needed for LOGSHIELD_S3_OBJECT_LOCK_MODE)",
                           ("ObjectLockMode", "ObjectLockRetainUntilDate")))
        if self.sse == "aws:kms":
            kms = f"on KMS key {self.kms_key_id}" if self.kms_key_id else "on the bucket's default KMS key"
            extras.append((f"kms:GenerateDataKey {kms} (needed for LOGSHIELD_S3_SSE=aws:kms)",
                           ("ServerSideEncryption", "SSEKMSKeyId")))
        for number, (permission, drop) in enumerate(extras):
            trial = f"{full}-without-{number}"
            try:
                self._client.put_object(Bucket=self.bucket, Key=trial, Body=PROBE_BODY, IfNoneMatch="*",
                                        **{k: v for k, v in args.items() if k not in drop})
            except _SDK_ERRORS:
                continue
            self._delete_probe(trial)
            return (f"S3 put on {where}: access denied; the credentials may write objects but lack {permission} "
                    f"on bucket {self.bucket!r}")
        return (f"S3 put on {where}: access denied; the credentials need s3:PutObject on "
                f"arn:aws:s3:::{self.bucket}/{self.prefix}*"
                + "".join(f", and {permission}" for permission, _ in extras))

    def _delete_probe(self, full: str) -> list[str]:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=full)
        except _SDK_ERRORS as exc:
            return [f"could not delete the probe object s3://{self.bucket}/{full} ({error_code(exc) or 'error'}): "
                    "the agent needs no s3:DeleteObject, so this is fine; delete it by hand or let a lifecycle rule "
                    "expire it (verify lists it as an unknown object until then)"]
        if self.object_lock_mode:
            return [f"the probe's locked version s3://{self.bucket}/{full} stays behind a delete marker until its "
                    "retain-until (1 hour); the lifecycle rule of `retention apply` removes it a day later"]
        return []

    def apply_lifecycle(self, days: int | None = None) -> str:
        """Install (or replace) this sink's expiration rule, keeping every other rule of the bucket."""
        days = days or self.retention_days
        if not days or days < 1:
            raise ValueError("apply_lifecycle needs days >= 1 (or retention_days on the sink)")
        rule_id = f"{LIFECYCLE_RULE_PREFIX}:{self.prefix or '*'}"[:255]
        try:
            current = self._client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
            rules = current.get("Rules", [])
            extra = {k: current[k] for k in ("TransitionDefaultMinimumObjectSize",) if current.get(k)}
        except _SDK_ERRORS as exc:
            if error_code(exc) != "NoSuchLifecycleConfiguration":
                raise self._error(exc, "apply lifecycle", "") from exc
            rules, extra = [], {}
        others = [r for r in rules if r.get("ID") != rule_id]
        rule = {
            "ID": rule_id,
            "Status": "Enabled",
            "Filter": {"Prefix": self.prefix},
            "Expiration": {"Days": days},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
        try:
            self._client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": [*others, rule]}, **extra
            )
        except _SDK_ERRORS as exc:
            raise self._error(exc, "apply lifecycle", "") from exc
        kept = f"; {len(others)} other rule(s) kept" if others else ""
        return (
            f"s3://{self.bucket}/{self.prefix}: lifecycle rule {rule_id!r} expires objects {days} day(s) after "
            f"creation, removes noncurrent versions 1 day later and aborts incomplete multipart uploads after "
            f"1 day{kept}. Object Lock retention still wins: locked versions are kept until their date."
        )

    def close(self) -> None:
        """Close the client if the sink made it; an injected client belongs to the caller."""
        close = getattr(self._client, "close", None) if self._owns_client else None
        if close is not None:
            close()

    # -- errors
    def _error(self, exc: Exception, op: str, full: str) -> SinkError:
        return classify_error(exc, op=op, bucket=self.bucket, key=full, endpoint=self.endpoint)


def _make_client(endpoint_url: str | None, region_name: str | None, retry_mode: str, options: RemoteOptions) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": retry_mode, "max_attempts": options.max_attempts},
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
    )
    # A fresh session per sink: boto3's default session is not thread-safe. AWS_ENDPOINT_URL, AWS_PROFILE and
    # the rest of the standard chain are honoured by boto3 itself.
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region_name, config=config)
