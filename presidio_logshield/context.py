"""Fields that follow the code: request, session and actor ids put on every record logged inside a block.

Stored in a :class:`contextvars.ContextVar`, so they follow asyncio tasks and threads started with a copied
context (``contextvars.copy_context().run``, ``asyncio.to_thread``) and never leak between concurrent
requests.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["bind_context", "current_context", "log_context", "otel_ids", "unbind_context"]

try:  # the ``otel`` extra: trace and span ids on every record logged inside an active span
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - depends on the environment
    _otel_trace = None  # type: ignore[assignment]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_fields: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("logshield_context", default=_EMPTY)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[Mapping[str, Any]]:
    """Add ``fields`` to every record logged inside the block (nested blocks add to and override outer ones).

    Fields whose value is None are left out. Values are redacted like any other field when written.
    """
    merged = dict(_fields.get())
    merged.update({key: value for key, value in fields.items() if value is not None})
    token = _fields.set(MappingProxyType(merged))
    try:
        yield _fields.get()
    finally:
        _fields.reset(token)


def bind_context(**fields: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Add fields for the rest of the current context (e.g. from middleware); undo with ``unbind_context``."""
    merged = dict(_fields.get())
    merged.update({key: value for key, value in fields.items() if value is not None})
    return _fields.set(MappingProxyType(merged))


def unbind_context(token: contextvars.Token[Mapping[str, Any]]) -> None:
    _fields.reset(token)


def current_context() -> Mapping[str, Any]:
    """The fields in force here (read-only)."""
    return _fields.get()


def otel_ids() -> dict[str, str] | None:
    """``{"trace_id", "span_id"}`` of the active OpenTelemetry span, or None (no OpenTelemetry, no valid span)."""
    if _otel_trace is None:
        return None
    span_context = _otel_trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return {"trace_id": format(span_context.trace_id, "032x"), "span_id": format(span_context.span_id, "016x")}
