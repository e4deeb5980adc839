"""The format step: redacted snapshots become one JSON object per line.

Every line has the same top-level shape — ``timestamp`` (RFC 3339, UTC), ``level``, ``logger``, ``message``,
``service``, ``host``, ``pid``, ``thread``, the ``log_context`` fields, the ``extra`` fields, ``exception``,
``stack_info`` and a ``redaction`` summary (entity counts and rule ids, never values), then the chain's ``stream``,
``seq``, ``stream_start`` and ``chain``. A key of a dict message, ``log_context`` or ``extra`` named like one of these
(:data:`RESERVED_FIELDS`), or like a field already written, is kept as ``extra_<name>`` — whether or not the handler
writes that field on this line — so an application value is never taken for the handler's own (a fake redaction
summary) nor overwritten by it. Logger and thread names are application text too: they are redacted (see the
pipeline), and a fail-closed line names them only once they have been seen redacted.

Values are made plain before they reach the redactor (:func:`plain_value`): any object other than text, numbers and
containers is turned into its ``str()`` here — outside the redactor's lock, so an object whose ``__str__`` logs, blocks
or hangs never holds up other users of a shared redactor — and containers nested deeper than :data:`MAX_NESTING` are
cut off with a placeholder instead of failing the whole record.
"""

from __future__ import annotations

import json
import json.encoder
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from .record import KeyedMessage, RecordSnapshot, safe_str
from .summary import NOTHING_FOUND

__all__ = [
    "MAX_NESTING",
    "NESTED_TOO_DEEP",
    "RESERVED_FIELDS",
    "WITHHELD_NAME",
    "dropped_records_document",
    "encode",
    "encode_lines",
    "failed_closed_document",
    "limit_depth",
    "message_inputs",
    "name_inputs",
    "plain_value",
    "redact_documents",
    "redaction_inputs",
    "restore_message",
    "rfc3339",
    "secret_key_test",
]

#: Values per snapshot handed to the redactor: message, extra, context, exception, stack_info, and the values a keyed
#: message has under secret key names.
_PARTS = 6
#: Stands in a keyed message's text for the i-th value under a secret key (private-use characters: no recognizer
#: matches them or joins them to a neighbouring match).
_MARKER_BASE = 0xE100
_MAX_MARKERS = 0xF800 - _MARKER_BASE

#: Top-level fields the handler writes itself (the chain adds the last four).
RESERVED_FIELDS = frozenset({
    "timestamp", "level", "logger", "message", "service", "host", "pid", "thread", "exception", "stack_info",
    "redaction", "stream", "seq", "stream_start", "chain", "logshield_dropped", "logshield_dropped_total",
})
#: A logger or thread name on a fail-closed line that was never seen redacted.
WITHHELD_NAME = "<withheld>"
#: ``raw name -> (redacted name, summary)``, as the pipeline caches them.
NameCache = Mapping[str, tuple[str, Any]]
#: Containers nested deeper than this (in ``extra``, a dict message, ``log_context``) are written as
#: :data:`NESTED_TOO_DEEP`; the redactor reads what lies below its own, smaller, depth limit as JSON text.
MAX_NESTING = 64
NESTED_TOO_DEEP = "<logshield: nested too deep>"
#: Values handed to the redactor as they are: no code of the application's runs when they are read.
_PLAIN = frozenset({str, int, float, bool, type(None), bytes, complex})


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
#: What ``_ENCODER.encode`` builds on every call, built once: the C encoder (no circular-reference markers — every
#: document is a fresh tree from the redactor, so a cycle cannot occur; one would end in RecursionError, fail-closed).
_C_ENCODE = (json.encoder.c_make_encoder(None, str, json.encoder.encode_basestring, None, ":", ",", False, False, True)
             if json.encoder.c_make_encoder is not None else None)
_second: tuple[float, str] = (math.nan, "")  # the last whole second formatted, and its text


def rfc3339(created: float) -> str:
    """``2026-11-23T10:00:01.123456Z``: what ``datetime.fromtimestamp(created, timezone.utc).isoformat()`` gives
    (microseconds rounded half to even, like ``datetime``), with the date and time formatted once per second."""
    global _second
    fraction, whole = math.modf(created)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        micros -= 1_000_000
        whole += 1
    elif micros < 0:
        micros += 1_000_000
        whole -= 1
    cached_whole, prefix = _second
    if whole != cached_whole:
        prefix = datetime.fromtimestamp(whole, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        _second = (whole, prefix)  # one tuple, replaced whole: safe to read from any thread
    return f"{prefix}.{micros:06d}Z"


def _header(created: float, level: str, logger: str, message: Any, service: str, host: str, pid: int | None,
            thread: str | None) -> dict[str, Any]:
    return {
        "timestamp": rfc3339(created),
        "level": level,
        "logger": logger,
        "message": message,
        "service": service,
        "host": host,
        "pid": pid,
        "thread": thread,
    }


def dropped_records_document(newly: int, total: int, overflow: str, service: str, host: str) -> dict[str, Any]:
    """The handler's own warning that ``newly`` records were dropped because the queue was full."""
    doc = _header(time.time(), "WARNING", "presidio_logshield",
                  f"{newly} log records dropped: queue full (overflow={overflow})", service, host, os.getpid(),
                  "logshield-worker")
    doc["logshield_dropped"] = newly
    doc["logshield_dropped_total"] = total
    return doc


def _merge(doc: dict[str, Any], fields: Any) -> None:
    if not isinstance(fields, dict):
        return
    for key, value in fields.items():
        if type(key) is not str:
            key = str(key)
        while key in RESERVED_FIELDS or key in doc:
            key = f"extra_{key}"
        doc[key] = value


def _marker(index: int) -> str:
    return f"\ue000{chr(_MARKER_BASE + index)}\ue000"


def secret_key_test(config: Any) -> Callable[[str], bool] | None:
    """Whether a key name is a secret's, as the redactor decides it for ``config`` (a RedactionConfig); None when
    secrets are not detected. Imports the detection package: call it where Presidio is loaded anyway."""
    if config.entities is not None and "SECRET" not in config.entities:
        return None
    from .detection import SecretKeyMatcher

    matcher = SecretKeyMatcher(config.secret_keys)
    return lambda key: matcher.match(key) is not None


def message_inputs(message: Any, is_secret: Callable[[str], bool] | None) -> tuple[Any, list[dict[str, str]] | None]:
    """``(message, values under secret keys)`` to redact: a keyed message becomes its text with a marker for each
    value under a secret key, that value going to the redactor under its key (``[{"password": "hunter2"}]``)."""
    if type(message) is not KeyedMessage:
        return message, None
    if is_secret is None:
        return str(message), None
    pieces: list[str] = []
    secrets: list[dict[str, str]] = []
    for text, key in message.parts:
        if key is None or not is_secret(key):
            pieces.append(text)
        elif len(secrets) < _MAX_MARKERS:
            pieces.append(_marker(len(secrets)))
            secrets.append({key: text})
        else:
            pieces.append(WITHHELD_NAME)
    return "".join(pieces), secrets or None


def restore_message(message: Any, secrets: Any) -> Any:
    """The redacted text of a keyed message with its markers replaced by the redacted secret values."""
    if not secrets or not isinstance(message, str):
        return message
    for index, item in enumerate(secrets):
        value = next(iter(item.values()), "") if isinstance(item, dict) else item
        message = message.replace(_marker(index), value if isinstance(value, str) else str(value))
    return message


def plain_value(value: Any, depth: int = 0) -> Any:
    """``value`` with every object that is not text, a number or a container replaced by its ``str()`` (or
    ``<unprintable TYPE: ERROR>``), dict keys made text likewise, sets as their text, bytearrays as bytes, and
    containers deeper than :data:`MAX_NESTING` as :data:`NESTED_TOO_DEEP`. Returns ``value`` itself when it is already
    plain (the common case: no copy)."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if depth >= MAX_NESTING and isinstance(value, (Mapping, list, tuple)):
        return NESTED_TOO_DEEP
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or type(item) not in _PLAIN:
                break
        else:
            return value
        return {key if type(key) is str else _plain_key(key): plain_value(item, depth + 1)
                for key, item in list(value.items())}
    if kind is list or kind is tuple:
        if all(type(item) in _PLAIN for item in value):
            return value
        items = [plain_value(item, depth + 1) for item in list(value)]
        return items if kind is list else tuple(items)
    if isinstance(value, (str, int, float)):  # subclasses: the redactor reads them as text or numbers
        return value
    if isinstance(value, tuple):  # a named tuple keeps its type: its field names act as keys
        items = [plain_value(item, depth + 1) for item in value]
        make = getattr(kind, "_make", None)
        try:
            return make(items) if make is not None else tuple(items)
        except Exception:  # noqa: BLE001 - a tuple subclass with an unusual constructor
            return tuple(items)
    if isinstance(value, Mapping):
        try:
            pairs = list(value.items())
        except Exception as exc:  # noqa: BLE001 - an unreadable mapping is text like any other object
            return f"<unprintable {kind.__name__}: {type(exc).__name__}>"
        return {key if type(key) is str else _plain_key(key): plain_value(item, depth + 1) for key, item in pairs}
    if isinstance(value, list):
        return [plain_value(item, depth + 1) for item in list(value)]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return safe_str(value)


def limit_depth(value: Any, depth: int = 0) -> Any:
    """``value`` with containers (dicts, lists, tuples) deeper than :data:`MAX_NESTING` replaced by
    :data:`NESTED_TOO_DEEP`; everything else as it is."""
    if isinstance(value, (dict, list, tuple)) and depth >= MAX_NESTING:
        return NESTED_TOO_DEEP
    if isinstance(value, dict):
        return {key: limit_depth(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [limit_depth(item, depth + 1) for item in value]
    return value


def _plain_key(key: Any) -> Any:
    return key if type(key) in _PLAIN else safe_str(key)


def redaction_inputs(snaps: Sequence[RecordSnapshot], exclude: frozenset[str] = frozenset(),
                     is_secret: Callable[[str], bool] | None = None, progress: list[int] | None = None) -> list[Any]:
    """The values of each snapshot that may carry personal data, made plain (:func:`plain_value`) and flattened for
    one batched redaction; fields in ``exclude`` (pseudonymised as a whole) are left out; ``is_secret`` decides a
    keyed message's secret keys. ``progress[0]`` is set to the index of the snapshot whose values are being made
    plain (``str()`` of the application's objects runs there), then to -1."""
    values: list[Any] = []
    for index, snap in enumerate(snaps):
        if progress is not None:
            progress[0] = index
        exc = snap.exception
        message, secrets = message_inputs(snap.message, is_secret)
        if type(message) is not str:
            message = plain_value(message)
        extra = {k: v for k, v in snap.extra.items() if k not in exclude} if exclude else snap.extra  # never mutated
        context = {k: v for k, v in snap.context.items() if k not in exclude} if exclude else dict(snap.context)
        values.extend((
            message,
            plain_value(extra) if extra else extra,
            plain_value(context) if context else context,
            None if exc is None else {"type": exc.type, "message": exc.message, "traceback": exc.traceback},
            snap.stack_info,
            secrets,
        ))
    if progress is not None:
        progress[0] = -1
    return values


def name_inputs(snaps: Sequence[RecordSnapshot], cache: NameCache) -> list[str]:
    """The logger and thread names of ``snaps`` not yet in ``cache``, once each."""
    wanted: dict[str, None] = {}
    for snap in snaps:
        for name in (snap.name, snap.thread_name):
            if name and name not in cache:
                wanted[name] = None
    return list(wanted)


def _name(name: str | None, cache: NameCache | None, found: list[Any] | None = None) -> str | None:
    if not name or cache is None:
        return name
    entry = cache.get(name)
    if entry is None:
        return WITHHELD_NAME
    if found is not None and entry[1]:
        found.append(entry[1])
    return entry[0]


def redact_documents(snaps: Sequence[RecordSnapshot], redacted: Sequence[tuple[Any, Any]],
                     service: str, host: str, names: NameCache | None = None) -> list[dict[str, Any]]:
    """Assemble documents from snapshots and the redactor's results for :func:`redaction_inputs`; ``names`` holds
    the redacted logger and thread names (None: written as they are)."""
    docs = []
    for index, snap in enumerate(snaps):
        base = index * _PARTS
        parts = redacted[base:base + _PARTS]
        (message, _), (extra, _), (context, _), (exc, _), (stack, _), (secrets, _) = parts
        if secrets is not None:
            message = restore_message(message, secrets)
        found = [summary for _, summary in parts if summary is not NOTHING_FOUND and summary]
        dict_message = isinstance(message, dict)  # its keys become fields, like python-json-logger
        doc = _header(snap.created, snap.levelname, _name(snap.name, names, found), "" if dict_message else message,
                      service, host, snap.process, _name(snap.thread_name, names, found))
        if dict_message:
            _merge(doc, message)
        if context:
            _merge(doc, context)
        if extra:
            _merge(doc, extra)
        if exc is not None:
            doc["exception"] = exc
        if stack is not None:
            doc["stack_info"] = stack
        if found:
            merged = type(found[0])()
            for summary in found:
                merged.merge(summary)
            doc["redaction"] = merged.as_dict()
        docs.append(doc)
    return docs


def failed_closed_document(snap: RecordSnapshot, service: str, host: str, error: BaseException | str,
                           names: NameCache | None = None) -> dict[str, Any]:
    """A record whose redaction failed: metadata only, no text that came from the application (logger and thread
    names only as ``names`` has them redacted, when given)."""
    name = error if isinstance(error, str) else type(error).__name__
    doc = _header(snap.created, snap.levelname, _name(snap.name, names),
                  f"<logshield: redaction failed ({name}); record content withheld>", service, host, snap.process,
                  _name(snap.thread_name, names))
    doc["redaction"] = {"error": name, "withheld": True}
    return doc


def encode(doc: dict[str, Any]) -> bytes:
    """One JSON line (no newline) as UTF-8; a lone surrogate becomes a visible escape, never an error."""
    text = "".join(_C_ENCODE(doc, 0)) if _C_ENCODE is not None else _ENCODER.encode(doc)
    return text.encode("utf-8", "backslashreplace")


def encode_lines(docs: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(encode(doc) + b"\n" for doc in docs)
