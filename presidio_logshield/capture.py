"""Values captured at log time: containers copied (structure only), everything else kept as it is.

A record is written later, on the worker thread, so a dict or list passed in ``extra``, as a dict message or as a
``log_context`` field must be read now: the application may change it right after the call (or while the worker
reads it, which can raise). Dicts, lists, tuples, sets and other mappings are copied, nested ones too; strings,
numbers and other objects are immutable or are rendered as text later (``str()`` on the worker) — they are not
copied. Copying starts from ``dict.copy()`` / ``list.copy()`` (one C call each), so a container another thread is
mutating is still copied in a consistent state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ATOMIC_TYPES", "MAX_CAPTURE_DEPTH", "capture", "is_atomic"]

#: Types kept as they are without a look inside (immutable; the common values of ``extra``).
ATOMIC_TYPES = _ATOMIC = frozenset({str, int, float, bool, type(None), bytes, complex})
#: Containers nested deeper than this are kept by reference (the redactor writes anything past its own, smaller,
#: depth limit as text anyway); this also ends self-referencing containers.
MAX_CAPTURE_DEPTH = 40


def is_atomic(value: Any) -> bool:
    return type(value) in _ATOMIC


def capture(value: Any, depth: int = 0) -> Any:
    """``value`` with every container in it copied (a named tuple stays a named tuple of the same type)."""
    kind = type(value)
    if kind in _ATOMIC or depth >= MAX_CAPTURE_DEPTH:
        return value
    if kind is dict:
        copied = value.copy()
        for key, item in copied.items():
            if type(item) not in _ATOMIC:
                copied[key] = capture(item, depth + 1)  # replacing values does not resize the dict
        return copied
    if kind is list:
        return [item if type(item) in _ATOMIC else capture(item, depth + 1) for item in value.copy()]
    if kind is tuple:
        return tuple(item if type(item) in _ATOMIC else capture(item, depth + 1) for item in value)
    if isinstance(value, tuple):
        items = [capture(item, depth + 1) for item in value]
        make = getattr(kind, "_make", None)  # a named tuple: its field names are keys to the redactor
        if make is not None:
            try:
                return make(items)
            except Exception:  # noqa: BLE001 - a tuple subclass with an unusual constructor
                return tuple(items)
        return tuple(items)
    if isinstance(value, (set, frozenset)):
        return value.copy()  # members are hashable, hence (nearly always) immutable
    if isinstance(value, Mapping):
        return {key: capture(item, depth + 1) for key, item in list(value.items())}
    if isinstance(value, list):
        return [capture(item, depth + 1) for item in list(value)]
    if isinstance(value, bytearray):
        return bytes(value)
    return value
