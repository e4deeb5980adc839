"""How S3 errors map onto the sink contract: retry later, fix configuration, or a lock. No secret in messages."""

from __future__ import annotations

from logshield_agent.sinks.base import SinkError, SinkUnavailableError

__all__ = ["classify_error", "error_code", "is_access_denied"]

_CREDENTIALS_HINT = (
    "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), AWS_PROFILE, or the instance role"
)
_UNAVAILABLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequests",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "BadDigest",  # the bytes were damaged in transit: sending them again fixes it
        "ConditionalRequestConflict",
        "OperationAborted",
    }
)
_BAD_CREDENTIALS = {
    "InvalidAccessKeyId": "the access key id is unknown to the store",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "ExpiredToken": "the session token has expired",
    "InvalidToken": "the session token is invalid",
    "TokenRefreshRequired": "the session token must be refreshed",
}
_PERMISSION = {
    "put": "s3:PutObject",
    "multipart upload": "s3:PutObject",
    "get": "s3:GetObject",
    "head": "s3:GetObject",
    "list": "s3:ListBucket",
    "delete": "s3:DeleteObject, s3:DeleteObjectVersion and s3:ListBucketVersions",
    "check": "s3:ListBucket (HeadBucket) and, with Object Lock, s3:GetBucketObjectLockConfiguration",
    "apply lifecycle": "s3:GetLifecycleConfiguration and s3:PutLifecycleConfiguration",
}


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def is_access_denied(exc: BaseException | None) -> bool:
    """The request was authenticated but not allowed (not: unknown key, bad signature, expired token)."""
    if exc is None:
        return False
    code = error_code(exc)
    return code == "AccessDenied" or (_status(exc) == 403 and code not in _BAD_CREDENTIALS)


def _status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def classify_error(exc: Exception, *, op: str, bucket: str, key: str = "", endpoint: str = "") -> SinkError:
    """Map a boto3/botocore exception to the sink contract, with a message that names the fix and no secret."""
    from botocore import exceptions as bex

    where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
    if isinstance(exc, bex.NoCredentialsError | bex.PartialCredentialsError | bex.CredentialRetrievalError):
        return SinkError(f"S3 {op} on {where}: no usable AWS credentials found; {_CREDENTIALS_HINT}")
    if isinstance(
        exc,
        bex.EndpointConnectionError
        | bex.ConnectTimeoutError
        | bex.ReadTimeoutError
        | bex.ConnectionClosedError
        | bex.HTTPClientError,
    ):
        return SinkUnavailableError(f"S3 {op} on {where}: endpoint {endpoint} unreachable ({type(exc).__name__})")
    if not isinstance(exc, bex.ClientError):
        if isinstance(exc, SinkError):
            return exc
        return SinkError(f"S3 {op} on {where} failed: {type(exc).__name__}")
    code, status = error_code(exc), _status(exc)
    if code in _UNAVAILABLE_CODES or status in (429, 500, 502, 503, 504):
        return SinkUnavailableError(f"S3 {op} on {where}: store unavailable ({code or status}); retry later")
    if code in ("NoSuchBucket",) or (op == "check" and status == 404):
        return SinkError(
            f"S3 bucket {bucket!r} does not exist at {endpoint}: create it or fix the configured bucket name"
        )
    if code in _BAD_CREDENTIALS:
        return SinkError(f"S3 {op} on {where}: {_BAD_CREDENTIALS[code]}; {_CREDENTIALS_HINT}")
    if code == "AccessDenied" or status == 403:
        return SinkError(
            f"S3 {op} on {where}: access denied ({code or status}); the credentials need "
            f"{_PERMISSION.get(op, 'permission for this operation')} on bucket {bucket!r}, or they are "
            f"wrong — {_CREDENTIALS_HINT}"
        )
    if code == "KMS.DisabledException" or code.startswith("KMS."):
        return SinkError(f"S3 {op} on {where}: the SSE-KMS key cannot be used ({code}); check kms_key_id")
    return SinkError(f"S3 {op} on {where} failed: {code or 'error'} (HTTP {status})")
