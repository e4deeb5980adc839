"""How Azure Blob errors map onto the sink contract: retry later, fix configuration, or immutability."""

from __future__ import annotations

from logshield_agent.sinks.base import ObjectLockedError, SinkError, SinkUnavailableError

__all__ = ["LOCKED_CODES", "classify_error", "error_code", "error_status"]

_CREDENTIALS_HINT = (
    "check AZURE_STORAGE_CONNECTION_STRING, or the account URL with AZURE_STORAGE_SAS_TOKEN, or the Azure "
    "identity (role 'Storage Blob Data Contributor' on the container)"
)
_AUTH_CODES = frozenset(
    {
        "AuthenticationFailed",
        "AuthorizationFailure",
        "AuthorizationProtocolMismatch",
        "AuthorizationSourceIPMismatch",
        "InvalidAuthenticationInfo",
        "NoAuthenticationInformation",
    }
)
# The credentials are valid, the operation is not allowed to them: name what to grant.
_PERMISSION_CODES = frozenset(
    {"AuthorizationPermissionMismatch", "AuthorizationResourceTypeMismatch", "InsufficientAccountPermissions"}
)
_PERMISSION = {
    "put": "create and write blobs (SAS permissions c and w; Azure RBAC: Storage Blob Data Contributor)",
    "put with immutability policy": "create and write blobs and set their immutability policy (SAS permissions c, "
                                    "w and i)",
    "get": "read blobs (SAS permission r)",
    "head": "read blobs (SAS permission r)",
    "list": "list blobs (SAS permission l)",
    "delete": "delete blobs (SAS permission d)",
    "check": "read the container's properties (a container-level SAS with r, or Azure RBAC: Storage Blob Data "
             "Reader or Contributor)",
}
_UNAVAILABLE_CODES = frozenset({"ServerBusy", "OperationTimedOut", "InternalError", "Md5Mismatch"})
LOCKED_CODES = frozenset({"BlobImmutableDueToPolicy", "BlobImmutableDueToLegalHold"})


def error_code(exc: BaseException) -> str:
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def error_status(exc: BaseException) -> int:
    return int(getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", 0) or 0)


def classify_error(exc: Exception, *, op: str, account: str, container: str, key: str = "") -> SinkError:
    """Map an azure-core exception to the sink contract; messages name the fix and carry no secret."""
    from azure.core import exceptions as aex

    where = f"azure://{account}/{container}/{key}" if key else f"azure://{account}/{container}"
    if isinstance(exc, SinkError):
        return exc
    if isinstance(exc, aex.ServiceRequestError | aex.ServiceResponseError):
        return SinkUnavailableError(f"Azure Blob {op} on {where}: service unreachable ({type(exc).__name__})")
    code, status = error_code(exc), error_status(exc)
    if isinstance(exc, aex.ClientAuthenticationError) and not code:
        # azure-identity: no identity could produce a token.
        return SinkError(f"Azure Blob {op} on {where}: no usable Azure credentials; {_CREDENTIALS_HINT}")
    if code in _PERMISSION_CODES:
        return SinkError(
            f"Azure Blob {op} on {where}: access denied ({code}); the credentials need permission to "
            f"{_PERMISSION.get(op, op)} on container {container!r}"
        )
    if code in _AUTH_CODES or status in (401, 403):
        return SinkError(
            f"Azure Blob {op} on {where}: the store refused the credentials ({code or status}); {_CREDENTIALS_HINT}"
        )
    if code == "ContainerNotFound":
        return SinkError(
            f"Azure container {container!r} does not exist in account {account!r}: create it or fix the "
            "configured container name"
        )
    if code in LOCKED_CODES:
        return ObjectLockedError(f"Azure Blob {op} on {where}: blob is immutable ({code})")
    if code in _UNAVAILABLE_CODES or status in (408, 429, 500, 502, 503, 504):
        return SinkUnavailableError(f"Azure Blob {op} on {where}: store unavailable ({code or status}); retry later")
    if not isinstance(exc, aex.HttpResponseError):
        return SinkError(f"Azure Blob {op} on {where} failed: {type(exc).__name__}")
    return SinkError(f"Azure Blob {op} on {where} failed: {code or 'error'} (HTTP {status})")
