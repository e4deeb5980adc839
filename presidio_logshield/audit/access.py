"""Access auditing: who did what to which resource, when, with what outcome — as ordinary log records.

``audit_event`` and ``@audited`` log through the ``presidio_logshield.audit`` logger, so audit records go through the
same handlers (redaction, chain, file) as everything else. An audit record is one whose written JSON has a top-level
``"audit"`` object::

    {"action": "invoice.read", "resource": "invoice/42", "outcome": "success", "duration_ms": 3.1,
     "details": {...}}

and the usual ``actor``, ``session_id`` and ``request_id`` fields from :func:`~presidio_logshield.log_context`.
Route them to their own file (``PIIRedactingHandler(audit_file=…)`` / ``LOGSHIELD_AUDIT_FILE``) — the sidecar then
ships them as their own stream, under their own ``service=`` prefix, with their own retention — or select them in
plain logging config with :class:`AuditRecordFilter`.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..context import log_context

__all__ = ["AUDIT_LOGGER", "AuditRecordFilter", "audit_event", "audited", "is_audit_record"]

AUDIT_LOGGER = "presidio_logshield.audit"
_logger = logging.getLogger(AUDIT_LOGGER)
if _logger.level == logging.NOTSET:
    # An audit trail must not vanish because the root logger is at WARNING: INFO unless configured otherwise.
    _logger.setLevel(logging.INFO)
F = TypeVar("F", bound=Callable[..., Any])


def is_audit_record(record: logging.LogRecord) -> bool:
    audit = getattr(record, "audit", None)
    return isinstance(audit, dict) and "action" in audit


def _level(level: Any) -> int | None:
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    if isinstance(level, str):
        number = logging.getLevelName(level.upper())
        if isinstance(number, int):
            return number
    return None


def _target(logger: Any) -> logging.Logger | None:
    if logger is None:
        return _logger
    if isinstance(logger, (logging.Logger, logging.LoggerAdapter)):
        return logger  # type: ignore[return-value]
    if isinstance(logger, str) and logger:
        return logging.getLogger(logger)
    return None


def audit_event(action: str, resource: str | None = None, outcome: str = "success", *,
                actor: str | None = None, duration_ms: float | None = None, level: int | str = logging.INFO,
                logger: logging.Logger | str | None = None, **details: Any) -> None:
    """Write one audit record. ``actor`` overrides the one in ``log_context`` for this record only; ``details`` are
    redacted like any ``extra`` field. ``level`` is a level number or name, ``logger`` a logger or its name.

    Never raises into the caller (logging never does): a ``level``, ``logger`` or ``duration_ms`` that is not one
    (``level="high"`` meant as a detail) is kept in ``details`` as ``extra_level`` / ``extra_logger`` /
    ``extra_duration_ms`` and the default is used."""
    try:
        level_number, target = _level(level), _target(logger)
        if level_number is None:
            details["extra_level"], level_number = level, logging.INFO
        if target is None:
            details["extra_logger"], target = logger, _logger
        if duration_ms is not None and (isinstance(duration_ms, bool) or not isinstance(duration_ms, (int, float))):
            details["extra_duration_ms"], duration_ms = duration_ms, None
        audit = {"action": action, "resource": resource, "outcome": outcome,
                 "duration_ms": None if duration_ms is None else round(duration_ms, 3), "details": details}
        message = f"audit {action} {outcome}" + (f" {resource}" if resource else "")
        if actor is None:
            target.log(level_number, message, extra={"audit": audit}, stacklevel=2)
            return
        with log_context(actor=actor):
            target.log(level_number, message, extra={"audit": audit}, stacklevel=2)
    except Exception as exc:  # say where, never what (the details may be personal data)
        if logging.raiseExceptions and sys.stderr:
            sys.stderr.write(f"presidio_logshield: audit_event({action!r}) could not be logged: "
                             f"{type(exc).__name__}\n")


def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):  # some builtins have none
        return None


def _binds(signature: inspect.Signature | None, named: dict[str, Any]) -> bool:
    if signature is None:
        return False
    try:
        signature.bind(**named)
    except TypeError:
        return False
    return True


def _named_arguments(signature: inspect.Signature | None, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """A call's arguments by parameter name (``self`` too, defaults applied, ``**kwargs`` merged); None when they do
    not bind."""
    if signature is None:
        return None
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return None
    bound.apply_defaults()
    named: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        else:
            named[name] = value
    return named


def audited(action: str, resource: str | Callable[..., str | None] | None = None, *,
            logger: logging.Logger | None = None) -> Callable[[F], F]:
    """Decorate a function (sync or async) so every call writes an audit record: outcome ``success`` or ``failure``
    (with the exception's type, never its message), and the duration. ``resource`` may be a callable receiving the
    function's arguments by name, however they were passed (``self`` included, defaults applied), e.g.
    ``@audited("invoice.read", resource=lambda invoice_id, **_: f"invoice/{invoice_id}")`` on ``read(invoice_id, fmt)``
    called as ``read(42, "csv")``; a callable that does not take them by name gets them as they were passed.
    """

    def decorate(func: F) -> F:
        signature = _signature(func)

        takes = _signature(resource) if callable(resource) else None
        by_name = takes is not None and not any(
            p.kind is inspect.Parameter.VAR_POSITIONAL for p in takes.parameters.values())

        def resource_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
            if not callable(resource):
                return resource
            try:
                named = _named_arguments(signature, args, kwargs) if by_name else None
                if named is not None and _binds(takes, named):
                    return resource(**named)
                return resource(*args, **kwargs)
            except Exception:  # a bad resource callable must not break the audited call
                return None

        def record(started: float, args: tuple[Any, ...], kwargs: dict[str, Any], error: BaseException | None) -> None:
            elapsed = (time.perf_counter() - started) * 1000
            details = {"function": f"{func.__module__}.{func.__qualname__}"}
            if error is not None:
                details["error"] = type(error).__name__
            audit_event(action, resource_of(args, kwargs), "failure" if error is not None else "success",
                        duration_ms=elapsed, logger=logger, **details)

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    record(started, args, kwargs, exc)
                    raise
                record(started, args, kwargs, None)
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                record(started, args, kwargs, exc)
                raise
            record(started, args, kwargs, None)
            return result

        return wrapper  # type: ignore[return-value]

    return decorate


class AuditRecordFilter(logging.Filter):
    """Let through only audit records (``audit=True``) or only the others (``audit=False``): attach one to the
    handler of an audit file and the other to the handler of ordinary logs."""

    def __init__(self, audit: bool = True, name: str = "") -> None:
        super().__init__(name)
        self.audit = audit

    def filter(self, record: logging.LogRecord) -> bool:
        return super().filter(record) and is_audit_record(record) == self.audit
