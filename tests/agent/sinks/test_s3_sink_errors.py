"""S3Sink against botocore's Stubber: error mapping, conditional-put resolution and validation without a server."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.stub import ANY, Stubber
from logshield_agent.sinks.base import (
    META_SHA256,
    ObjectConflictError,
    ObjectLockedError,
    SinkError,
    SinkUnavailableError,
)
from logshield_agent.sinks.s3 import S3Sink

BODY = b"line\n"
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def stubbed():
    client = boto3.session.Session().client(
        "s3", region_name="us-east-1", aws_access_key_id="AKID", aws_secret_access_key="TOPSECRET"
    )
    with Stubber(client) as stub:
        yield S3Sink("bkt", "p", client=client), stub
        stub.assert_no_pending_responses()


def put(sink, body=BODY, **kwargs):
    return sink.put("k", body, sha256=hashlib.sha256(body).hexdigest(), metadata={}, **kwargs)


class TestS3SinkErrorMapping:
    @pytest.mark.parametrize(
        ("code", "status", "kind", "text"),
        [
            ("SlowDown", 503, SinkUnavailableError, "retry later"),
            ("InternalError", 500, SinkUnavailableError, "retry later"),
            ("NoSuchBucket", 404, SinkError, "'bkt' does not exist"),
            ("InvalidAccessKeyId", 403, SinkError, "AWS_ACCESS_KEY_ID"),
            ("SignatureDoesNotMatch", 403, SinkError, "AWS_SECRET_ACCESS_KEY"),
            ("AccessDenied", 403, SinkError, "s3:PutObject"),
        ],
    )
    def test_put_errors(self, stubbed, code, status, kind, text):
        """Each S3 error code maps to the right sink error with a message naming the fix and no secret."""
        sink, stub = stubbed
        stub.add_client_error("put_object", service_error_code=code, http_status_code=status)
        with pytest.raises(SinkError, match=text) as err:
            put(sink)
        assert type(err.value) is kind
        assert "TOPSECRET" not in str(err.value)

    def test_sha_mismatch_is_a_caller_bug(self, stubbed):
        """A sha256 that does not match the body is a ValueError before any request."""
        sink, _ = stubbed
        with pytest.raises(ValueError):
            sink.put("k", BODY, sha256="0" * 64, metadata={})


class TestS3SinkConditionalPut:
    def test_request_shape(self, stubbed):
        """put sends If-None-Match, the SHA-256 checksum, metadata, SSE and lock headers."""
        sink, stub = stubbed
        sink.sse, sink.object_lock_mode = "AES256", "COMPLIANCE"
        until = datetime(2030, 1, 1, tzinfo=timezone.utc)
        stub.add_response(
            "put_object",
            {},
            {
                "Bucket": "bkt",
                "Key": "p/k",
                "Body": BODY,
                "IfNoneMatch": "*",
                "ChecksumSHA256": ANY,
                "ContentType": "application/x-ndjson",
                "Metadata": {META_SHA256: SHA},
                "ServerSideEncryption": "AES256",
                "ObjectLockMode": "COMPLIANCE",
                "ObjectLockRetainUntilDate": until,
            },
        )
        assert not put(sink, retain_until=until).already_existed

    def test_conflict_409_resolved_by_head(self, stubbed):
        """A 409 ConditionalRequestConflict is resolved by comparing the stored sha256."""
        sink, stub = stubbed
        stub.add_client_error("put_object", service_error_code="ConditionalRequestConflict", http_status_code=409)
        stub.add_response("head_object", {"ContentLength": 5, "Metadata": {META_SHA256: SHA}})
        assert put(sink).already_existed

    def test_conflict_with_other_content(self, stubbed):
        """A 412 with a different stored sha256 is an ObjectConflictError."""
        sink, stub = stubbed
        stub.add_client_error("put_object", service_error_code="PreconditionFailed", http_status_code=412)
        stub.add_response("head_object", {"ContentLength": 5, "Metadata": {META_SHA256: "f" * 64}})
        with pytest.raises(ObjectConflictError):
            put(sink)

    def test_conflict_while_racing_writer_is_unavailable(self, stubbed):
        """A 409 whose object is not visible yet is retried later, not treated as success."""
        sink, stub = stubbed
        stub.add_client_error("put_object", service_error_code="ConditionalRequestConflict", http_status_code=409)
        stub.add_client_error("head_object", service_error_code="404", http_status_code=404)
        with pytest.raises(SinkUnavailableError):
            put(sink)


class TestS3SinkDelete:
    def test_access_denied_on_locked_version(self, stubbed):
        """AccessDenied deleting a version whose retention runs is an ObjectLockedError."""
        sink, stub = stubbed
        stub.add_response("list_object_versions", {"Versions": [{"Key": "p/k", "VersionId": "v1"}]})
        stub.add_client_error("delete_object", service_error_code="AccessDenied", http_status_code=403)
        until = datetime.now(timezone.utc) + timedelta(days=1)
        stub.add_response("head_object", {"ObjectLockRetainUntilDate": until, "ObjectLockMode": "GOVERNANCE"})
        with pytest.raises(ObjectLockedError):
            sink.delete("k")

    def test_access_denied_without_lock_is_permission(self, stubbed):
        """AccessDenied on an unlocked version names the missing permission."""
        sink, stub = stubbed
        stub.add_response("list_object_versions", {"Versions": [{"Key": "p/k", "VersionId": "v1"}]})
        stub.add_client_error("delete_object", service_error_code="AccessDenied", http_status_code=403)
        stub.add_response("head_object", {})
        with pytest.raises(SinkError, match="s3:DeleteObjectVersion") as err:
            sink.delete("k")
        assert not isinstance(err.value, ObjectLockedError)

    def test_other_keys_with_same_prefix_untouched(self, stubbed):
        """Only versions of the exact key are deleted, not keys that merely share its prefix."""
        sink, stub = stubbed
        stub.add_response(
            "list_object_versions",
            {
                "Versions": [{"Key": "p/k", "VersionId": "v1"}, {"Key": "p/k2", "VersionId": "v2"}],
                "DeleteMarkers": [{"Key": "p/k", "VersionId": "m1"}],
            },
        )
        stub.add_response("delete_object", {}, {"Bucket": "bkt", "Key": "p/k", "VersionId": "v1"})
        stub.add_response("delete_object", {}, {"Bucket": "bkt", "Key": "p/k", "VersionId": "m1"})
        sink.delete("k")


class TestS3SinkValidation:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"sse": "rot13"},
            {"kms_key_id": "k"},
            {"object_lock_mode": "LEGAL"},
            {"part_size": 1024},
            {"retention_days": 0},
        ],
    )
    def test_bad_options(self, kwargs):
        """Invalid options are rejected at construction."""
        with pytest.raises(ValueError):
            S3Sink("bkt", client=object(), **kwargs)


class TestS3SinkProbe:
    """``probe`` (used by ``logshield-agent check``): which permission a refused write lacks, and the clean-up."""

    def test_write_read_list_delete(self, stubbed):
        """The probe is a conditional put, a HEAD, a listing and a delete of the same key; nothing to report."""
        sink, stub = stubbed
        stub.add_response("put_object", {}, {"Bucket": "bkt", "Key": "p/_check/x", "Body": ANY, "IfNoneMatch": "*",
                                             "ChecksumSHA256": ANY, "ContentType": "text/plain", "Metadata": ANY})
        stub.add_response("head_object", {"ContentLength": 10})
        stub.add_response("list_objects_v2", {"Contents": [{"Key": "p/_check/x", "Size": 10}]})
        stub.add_response("delete_object", {}, {"Bucket": "bkt", "Key": "p/_check/x"})
        assert sink.probe("_check/x") == []

    def test_missing_retention_permission_is_named(self, stubbed):
        """A put refused with Object Lock headers but accepted without them lacks s3:PutObjectRetention."""
        sink, stub = stubbed
        sink.object_lock_mode = "GOVERNANCE"
        stub.add_client_error("put_object", service_error_code="AccessDenied", http_status_code=403)
        stub.add_response("put_object", {}, {"Bucket": "bkt", "Key": "p/_check/x-without-0", "Body": ANY,
                                             "IfNoneMatch": "*", "ContentType": "text/plain", "Metadata": ANY})
        stub.add_response("delete_object", {})
        with pytest.raises(SinkError, match=r"lack s3:PutObjectRetention") as err:
            sink.probe("_check/x")
        assert "TOPSECRET" not in str(err.value)

    def test_missing_kms_permission_is_named(self, stubbed):
        """A put refused with SSE-KMS but accepted without it lacks kms:GenerateDataKey on that key."""
        sink, stub = stubbed
        sink.sse, sink.kms_key_id = "aws:kms", "alias/logs"
        stub.add_client_error("put_object", service_error_code="AccessDenied", http_status_code=403)
        stub.add_response("put_object", {})
        stub.add_response("delete_object", {})
        with pytest.raises(SinkError, match=r"kms:GenerateDataKey on KMS key alias/logs"):
            sink.probe("_check/x")

    def test_missing_put_permission_is_named(self, stubbed):
        """A put refused in every form lacks s3:PutObject on the prefix (and names the extras it also needs)."""
        sink, stub = stubbed
        sink.object_lock_mode = "COMPLIANCE"
        stub.add_client_error("put_object", service_error_code="AccessDenied", http_status_code=403)
        stub.add_client_error("put_object", service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(SinkError, match=r"need s3:PutObject on arn:aws:s3:::bkt/p/\*, and s3:PutObjectRetention"):
            sink.probe("_check/x")

    def test_bad_credentials_are_not_a_permission(self, stubbed):
        """An unknown access key is reported as credentials, not as a missing permission (no second put)."""
        sink, stub = stubbed
        stub.add_client_error("put_object", service_error_code="InvalidAccessKeyId", http_status_code=403)
        with pytest.raises(SinkError, match="AWS_ACCESS_KEY_ID"):
            sink.probe("_check/x")

    def test_missing_read_permission_is_named_and_probe_deleted(self, stubbed):
        """A refused HEAD names s3:GetObject (the agent needs it to settle a put that finds its key taken), and the
        probe is still deleted."""
        sink, stub = stubbed
        stub.add_response("put_object", {})
        stub.add_client_error("head_object", service_error_code="AccessDenied", http_status_code=403)
        stub.add_response("delete_object", {}, {"Bucket": "bkt", "Key": "p/_check/x"})
        with pytest.raises(SinkError, match="s3:GetObject"):
            sink.probe("_check/x")

    def test_refused_delete_is_a_note(self, stubbed):
        """The agent never deletes from S3, so a refused delete of the probe is a note, not a failure."""
        sink, stub = stubbed
        stub.add_response("put_object", {})
        stub.add_response("head_object", {"ContentLength": 10})
        stub.add_response("list_objects_v2", {"Contents": [{"Key": "p/_check/x", "Size": 10}]})
        stub.add_client_error("delete_object", service_error_code="AccessDenied", http_status_code=403)
        (note,) = sink.probe("_check/x")
        assert "could not delete the probe object s3://bkt/p/_check/x" in note and "AccessDenied" in note
