"""Stores the agent ships to. ``sink_from_config`` builds one from ``LOGSHIELD_SINK``; cloud SDKs load lazily."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import (
    ObjectConflictError,
    ObjectInfo,
    ObjectLockedError,
    PutResult,
    Sink,
    SinkError,
    SinkUnavailableError,
)

if TYPE_CHECKING:
    from ..config import AgentConfig

__all__ = [
    "ObjectConflictError",
    "ObjectInfo",
    "ObjectLockedError",
    "PutResult",
    "Sink",
    "SinkError",
    "SinkUnavailableError",
    "sink_from_config",
]


def sink_from_config(config: AgentConfig) -> Sink:
    """``file:///dir`` → LocalDirSink, ``s3://bucket/prefix`` → S3Sink, ``azure://container/prefix`` → AzureBlobSink."""
    scheme, _, rest = config.sink_url.partition("://")
    if scheme == "file":
        from .local import LocalDirSink

        return LocalDirSink("/" + rest.lstrip("/"), retention_days=config.retention_days)
    target, _, prefix = rest.partition("/")
    from ._cloud import RemoteOptions

    options = RemoteOptions(max_attempts=config.store_max_attempts, connect_timeout=config.store_connect_timeout,
                            read_timeout=config.store_read_timeout)
    if scheme == "s3":
        from .s3 import S3Sink

        return S3Sink(
            target,
            prefix,
            sse=None if config.s3_sse == "none" else config.s3_sse,
            kms_key_id=config.s3_kms_key_id,
            storage_class=config.s3_storage_class,
            object_lock_mode=config.s3_object_lock_mode,
            retention_days=config.retention_days,
            multipart_threshold=config.multipart_threshold,
            part_size=config.multipart_part_size,
            options=options,
        )
    if scheme == "azure":
        from .azure_blob import AzureBlobSink

        return AzureBlobSink(
            target,
            prefix,
            account_url=config.azure_account_url,
            access_tier=config.azure_access_tier,
            immutability=config.azure_immutability,
            retention_days=config.retention_days,
            max_single_put_size=config.multipart_threshold,
            max_block_size=config.multipart_part_size,
            options=options,
        )
    raise SinkError(f"LOGSHIELD_SINK: unsupported scheme {scheme!r}")
