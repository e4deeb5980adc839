"""Optional redaction pass (``LOGSHIELD_REDACT=patterns|full``) using the presidio_logshield library.

A line on which no recognizer's gate opens (and whose keys name no secret) is kept byte for byte without being
decoded or parsed — most lines; the library decides that for a whole batch in one scan (``lines_need_redaction``).
Any other record that parses as a JSON object is redacted as a dict (so key names like ``password`` count) and, if
something was found, re-serialised compactly; anything else is redacted as text.

The library is imported only when this transform is built, so ``LOGSHIELD_REDACT=off`` never loads Presidio. The
output must be deterministic for a given input (the library guarantees it), otherwise a crash replay would conflict
with the object already stored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["BatchRedactor", "RecordRedactor", "build_redactor"]

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # json.dumps builds one per call


class BatchRedactor(Protocol):
    def redact_batch(self, values: Sequence[Any]) -> list[tuple[Any, Any]]: ...

    def line_needs_redaction(self, text: str) -> bool: ...


def _needing_redaction(redactor: BatchRedactor, records: Sequence[bytes]) -> list[bool]:
    """Which records the redactor must see: in one call when it can decide a batch at once."""
    batch = getattr(redactor, "lines_need_redaction", None)
    if batch is not None:
        return batch(records)
    return [redactor.line_needs_redaction(_text(record)) for record in records]


def _text(record: bytes) -> str:
    return (record[:-1] if record.endswith(b"\n") else record).decode("utf-8", errors="surrogateescape")


class RecordRedactor:
    """Callable: list of records (bytes, newline-terminated) in, redacted records out, same length and order."""

    def __init__(self, redactor: BatchRedactor) -> None:
        self._redactor = redactor

    def __call__(self, records: Sequence[bytes]) -> list[bytes]:
        out = list(records)
        todo: list[int] = []
        values: list[Any] = []
        is_json: list[bool] = []
        for index, needed in enumerate(_needing_redaction(self._redactor, records)):
            if not needed:
                continue  # nothing any recognizer could find: kept byte for byte, never parsed
            todo.append(index)
            decoded = _text(records[index])
            obj = None
            if decoded.lstrip().startswith("{"):
                try:
                    obj = json.loads(decoded)
                except (ValueError, RecursionError):
                    obj = None
            if isinstance(obj, dict):
                values.append(obj)
                is_json.append(True)
            else:
                values.append(decoded)
                is_json.append(False)
        results = self._redactor.redact_batch(values) if values else []
        for index, (value, summary), as_json in zip(todo, results, is_json, strict=True):
            if not summary:
                continue  # nothing found: the original bytes, not a re-serialisation
            text = _ENCODER.encode(value) if as_json else str(value)
            try:
                raw = text.encode("utf-8", errors="surrogateescape")
            except UnicodeEncodeError:
                raw = text.encode("utf-8", errors="replace")
            out[index] = raw + b"\n"
        return out


def build_redactor(mode: str) -> RecordRedactor | None:
    """``off`` → None; otherwise a ``RecordRedactor`` over the library's ``Redactor`` (imported here, lazily)."""
    if mode == "off":
        return None
    try:
        from presidio_logshield import config as lib_config
        from presidio_logshield.redactor import Redactor
    except ImportError as exc:  # pragma: no cover - depends on the library's state
        raise RuntimeError(
            f"LOGSHIELD_REDACT={mode} needs presidio_logshield.redactor ({type(exc).__name__}: {exc.name}); "
            "install presidio-logshield with redaction support"
        ) from None
    try:
        config = lib_config.redaction_config_from_env(mode=mode)
    except ValueError as exc:  # the library's ConfigError names its own LOGSHIELD_* variable
        raise RuntimeError(f"LOGSHIELD_REDACT={mode}: {exc}") from None
    from presidio_logshield.pipeline import freeze_long_lived_objects

    redactor = Redactor(config)
    freeze_long_lived_objects()  # the models are loaded: keep the collector off them
    return RecordRedactor(redactor)
