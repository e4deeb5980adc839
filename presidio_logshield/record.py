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
import re
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from .capture import ATOMIC_TYPES, capture, is_atomic
from .context import current_context, otel_ids

__all__ = ["RESERVED_ATTRS", "ExceptionInfo", "KeyedMessage", "RecordSnapshot", "is_audit_snapshot", "safe_str",
           "snapshot"]

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
RESERVED_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


#: One printf-style conversion (``%(key)-8.3f``, ``%s``, ``%%``), as ``str % args`` reads them.
_CONVERSION = re.compile(r"%(?:\((?P<key>[^()]*)\))?[#0\- +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?[diouxXeEfFgGcrsa%]")


class KeyedMessage:
    """A message whose %-args were one mapping (``log.info("login %(user)s pw %(password)s", {...})``), formatted at
    the call but kept in parts — literal text, and each formatted value with the key it came from — so that a value
    under a secret key name is redacted as such. ``str()`` gives the message as ``getMessage()`` does."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[tuple[str, str | None], ...]) -> None:
        #: ``(text, key)``; key None for literal text.
        self.parts = parts

    def __str__(self) -> str:
        return "".join(text for text, _ in self.parts)

    def __repr__(self) -> str:
        return f"KeyedMessage({self.parts!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeyedMessage) and other.parts == self.parts

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def format(cls, msg: str, args: Mapping[Any, Any]) -> KeyedMessage | None:
        """The parts of ``msg % args``; None when the template is not one of named conversions only."""
        parts: list[tuple[str, str | None]] = []
        position = 0
        for match in _CONVERSION.finditer(msg):
            if match.start() > position:
                parts.append((msg[position:match.start()], None))
            key = match.group("key")
            if match.group(0) == "%%":
                parts.append(("%", None))
            elif key is None:
                return None  # a positional conversion with a mapping: leave it to getMessage
            else:
                conversion = "%" + msg[match.end("key") + 1:match.end()]
                parts.append((conversion % (args[key],), key))
            position = match.end()
        if position < len(msg):
            parts.append((msg[position:], None))
        return cls(tuple(parts))


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
    #: The formatted message (str), the dict passed as the message, or a :class:`KeyedMessage`.
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
    args = record.args
    if isinstance(msg, dict) and not args:
        return capture(msg) if type(msg) is dict else capture(dict(msg))
    if args and type(args) is not tuple and isinstance(args, Mapping) and isinstance(msg, str):
        try:
            keyed = KeyedMessage.format(msg, args)
            if keyed is not None and str(keyed) == record.getMessage():
                return keyed
        except Exception:  # noqa: S110 - getMessage below names the error
            pass
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
    try:  # (one function: this runs on the application thread for every record)
        atomic = ATOMIC_TYPES
        extra = {key: value if type(value) in atomic else capture(value, 1) for key, value in record.__dict__.items()
                 if key not in RESERVED_ATTRS and not key.startswith("_")}
        context = current_context()
        if context and not all(type(value) in atomic for value in context.values()):
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
            exception=_exception(record) if record.exc_info or record.exc_text else None,
            stack_info=record.stack_info,
            process=record.process,
            thread_name=record.threadName,
            pathname=record.pathname,
            lineno=record.lineno,
            func_name=record.funcName,
        )
    except Exception as exc:
        return _failed_snapshot(record, type(exc).__name__)


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
