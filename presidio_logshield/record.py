"""The first step of the data path: a :class:`logging.LogRecord` turned into a plain, immutable snapshot.

The snapshot is taken in ``emit`` on the caller's thread, so it must be cheap: the message is formatted
(%-args applied) now, because args may be mutated later; an exception is rendered to text now, because the
traceback's frames die with the ``except`` block; containers in ``extra`` and dict messages are copied now
(:func:`~presidio_logshield.capture.capture`). The original record is never modified, so other handlers
on the same logger see it as it was.

Taking a snapshot never raises: an argument, message or exception whose ``__str__``/``__repr__`` raises is written
as ``<unprintable TYPE: ERROR>`` with the formatting error named in the message, and anything else that fails gives a
snapshot marked ``failed`` — written fail-closed, metadata and error type only.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from .capture import capture, is_atomic
from .context import current_context, otel_ids

__all__ = ["RESERVED_ATTRS", "ExceptionInfo", "RecordSnapshot", "is_audit_snapshot", "safe_str", "snapshot"]

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
RESERVED_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


@dataclass(frozen=True, slots=True)
class ExceptionInfo:
    type: str
    message: str
    traceback: str


class RecordSnapshot(NamedTuple):
    """Immutable (a named tuple: built in a third of the time of a frozen dataclass, on the caller's thread)."""

    created: float
    levelname: str
    levelno: int
    name: str
    #: The formatted message (str), or the dict passed as the message.
    message: Any
    extra: Mapping[str, Any]
    context: Mapping[str, Any]
    exception: ExceptionInfo | None
    stack_info: str | None
    process: int | None
    thread_name: str | None
    pathname: str
    lineno: int
    func_name: str | None
    #: Set (to the error's type name) when the record could not be captured: it is written fail-closed.
    failed: str | None = None


def safe_str(value: Any, convert: Any = str) -> str:
    """``str(value)`` (or ``convert(value)``), or ``<unprintable TYPE: ERROR>`` when that raises."""
    try:
        return convert(value)  # type: ignore[no-any-return]
    except Exception as exc:
        return f"<unprintable {type(value).__name__}: {type(exc).__name__}>"


def _args_text(args: Any) -> str:
    if isinstance(args, tuple):
        return "(" + ", ".join(safe_str(arg, repr) for arg in args) + ("," if len(args) == 1 else "") + ")"
    if isinstance(args, Mapping):
        return "{" + ", ".join(f"{safe_str(k, repr)}: {safe_str(v, repr)}" for k, v in args.items()) + "}"
    return safe_str(args, repr)


def _format_message(record: logging.LogRecord) -> Any:
    msg = record.msg
    if isinstance(msg, dict) and not record.args:
        return capture(msg) if type(msg) is dict else capture(dict(msg))
    try:
        return record.getMessage()
    except Exception as exc:  # a bad %-template or an unprintable argument must not lose the record
        text = f"{safe_str(msg)} <logshield: message formatting failed: {type(exc).__name__}>"
        return f"{text} args={_args_text(record.args)}" if record.args else text


def _exception(record: logging.LogRecord) -> ExceptionInfo | None:
    exc_info = record.exc_info
    if exc_info and exc_info[0] is not None:
        exc_type, exc, tb = exc_info
        try:  # (traceback itself survives an exception whose __str__ raises: "<exception str() failed>")
            text = "".join(traceback.format_exception(exc_type, exc, tb)).rstrip("\n")
        except Exception as error:
            text = f"<logshield: traceback formatting failed: {type(error).__name__}>"
        return ExceptionInfo(type=getattr(exc_type, "__qualname__", safe_str(exc_type)), message=safe_str(exc),
                             traceback=text)
    if record.exc_text:
        return ExceptionInfo(type="", message="", traceback=safe_str(record.exc_text))
    return None


def snapshot(record: logging.LogRecord) -> RecordSnapshot:
    """Capture everything needed to write ``record`` later, without touching it; never raises."""
    try:
        return _snapshot(record)
    except Exception as exc:
        return _failed_snapshot(record, type(exc).__name__)


def _snapshot(record: logging.LogRecord) -> RecordSnapshot:
    fields = record.__dict__
    extra = {key: value if is_atomic(value) else capture(value, 1) for key, value in fields.items()
             if key not in RESERVED_ATTRS and not key.startswith("_")}
    context = current_context()
    if not all(map(is_atomic, context.values())):
        context = capture(dict(context))
    trace = otel_ids()
    if trace is not None:
        context = {**context, **trace}
    return RecordSnapshot(
        created=record.created,
        levelname=record.levelname,
        levelno=record.levelno,
        name=record.name,
        message=_format_message(record),
        extra=extra,
        context=context,
        exception=_exception(record),
        stack_info=record.stack_info,
        process=record.process,
        thread_name=record.threadName,
        pathname=record.pathname,
        lineno=record.lineno,
        func_name=record.funcName,
    )


def _failed_snapshot(record: logging.LogRecord, error: str) -> RecordSnapshot:
    """Metadata only (plain attributes every record has), marked failed."""
    def attr(name: str, default: Any) -> Any:
        value = getattr(record, name, default)
        return value if is_atomic(value) else default

    return RecordSnapshot(
        created=attr("created", 0.0), levelname=attr("levelname", ""), levelno=attr("levelno", 0),
        name=attr("name", ""), message=None, extra={}, context={}, exception=None, stack_info=None,
        process=attr("process", None), thread_name=attr("threadName", None), pathname=attr("pathname", ""),
        lineno=attr("lineno", 0), func_name=attr("funcName", None), failed=error,
    )


def is_audit_snapshot(snap: RecordSnapshot) -> bool:
    """Written by ``audit_event`` / ``@audited``: an ``audit`` extra with an ``action``."""
    audit = snap.extra.get("audit")
    return isinstance(audit, dict) and "action" in audit
