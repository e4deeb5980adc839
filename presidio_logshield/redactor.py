"""Redactor: texts and JSON-like values in, redacted copies and counts of what was found out.

A batch is handled in three steps: every string of every value is collected and de-duplicated; the
strings not in the LRU cache go through detection once — one pre-filter pass over all of them (Hyperscan, or
``re``) rules most out, spaCy ``nlp.pipe`` runs over the NER candidates, then the planned recognizers per text;
the values are rebuilt with the operators applied. ``lines_need_redaction`` decides the same for raw log lines
without decoding them (the agent's pass).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from presidio_analyzer import AnalyzerEngine

from .config import RedactionConfig
from .detection import DetectionEngine, Finding
from .operators import Operators, apply_findings
from .summary import NOTHING_FOUND, RedactionSummary

__all__ = ["RedactionSummary", "Redactor"]

#: Strings longer than this are detected every time (not cached).
CACHE_MAX_TEXT = 2048
CACHE_SIZE = 8192
CHEAP_CACHE_SIZE = 2048
KEY_KINDS_SIZE = 4096
#: Containers nested deeper than this are written as text (and that text is redacted).
MAX_DEPTH = 32

_PHONE_KEY = re.compile(r"phone|tel(?!l)|mobile|cell(?!s)|fax|msisdn|whatsapp|sms")
_SSN_KEY = re.compile(r"ssn|socialsecurity|taxid|^tin$|nationalid")
#: One of these is in every normalised key ``_key_hint`` gives a hint for.
_HINT_WORDS = ("phone", "tel", "mobile", "cell", "fax", "msisdn", "whatsapp", "sms", "ssn", "socialsecurity", "taxid",
               "tin", "nationalid")
_KEY_SPLIT = re.compile(r"[^a-z0-9]+")
_JSON_KEY = re.compile(r'"([^"\\]{1,80})"\s*:')

for _name in ("presidio-analyzer", "presidio-anonymizer", "decision_process"):
    # Presidio's loggers may carry raw text; they must not reach an application's root handlers through us.
    _presidio_logger = logging.getLogger(_name)
    if _presidio_logger.level == logging.NOTSET:
        _presidio_logger.setLevel(logging.ERROR)




@functools.lru_cache(maxsize=4096)
def _key_hint(key: str) -> str | None:
    """A context word implied by a dict key (``{"mobile": "4155552671"}`` is a phone number)."""
    norm = _KEY_SPLIT.sub("", key.lower())
    if _PHONE_KEY.search(norm):
        return "phone"
    if _SSN_KEY.search(norm):
        return "ssn"
    return None


_Findings = tuple[Finding, ...]


class Redactor:
    """Detects and replaces PII and secrets in texts and JSON-like values.

    Call from one thread at a time. Safe to keep using in a forked child (no threads, no open sockets;
    the cache lock is recreated after ``fork``).
    """

    def __init__(self, config: RedactionConfig) -> None:
        self.config = config
        self._engine = DetectionEngine(config, key_words=_HINT_WORDS)
        self._operators = Operators(config)
        self._keys = self._engine.key_matcher if "SECRET" in self._engine.entities else None
        self._cache: OrderedDict[tuple[str, str | None], _Findings] = OrderedDict()
        self._cheap: OrderedDict[tuple[str, str | None], _Findings] = OrderedDict()
        self._key_kinds: dict[str, tuple[str, str | None, str | None]] = {}
        self._lock = threading.Lock()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (r := ref()) is not None and r._after_fork())

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    @property
    def ner_available(self) -> bool:
        return self._engine.ner_available

    @property
    def analyzer(self) -> AnalyzerEngine | None:
        return self._engine.analyzer

    @analyzer.setter
    def analyzer(self, value: AnalyzerEngine) -> None:
        """Let a wrapper (auditing) stand in for the engine's analyzer."""
        self._engine.analyzer = value

    # ------------------------------------------------------------------------------------------ public

    def redact_text(self, text: str) -> tuple[str, RedactionSummary]:
        """Redact one string."""
        return self.redact_batch([text])[0]  # type: ignore[return-value]

    def redact_batch(self, values: Sequence[Any]) -> list[tuple[Any, RedactionSummary]]:
        """Redact many JSON-like values with one detection pass over their unique strings."""
        with self._lock:
            wanted: dict[tuple[str, str | None], None] = {}
            for value in values:
                if type(value) is str:  # the common values first: a message, an absent exception
                    wanted[(value, None)] = None
                elif value is not None:
                    self._collect(value, None, 0, wanted)
            found = self._detect(list(wanted))
            results: list[tuple[Any, RedactionSummary]] = []
            for value in values:
                if value is None or (type(value) is str and not found[(value, None)]):
                    results.append((value, NOTHING_FOUND))
                    continue
                hits: list[tuple[str, str]] = []
                results.append((self._rebuild(value, None, 0, found, hits), RedactionSummary.of(hits)))
            return results

    def pseudonym(self, entity_type: str, value: str) -> str:
        """The keyed pseudonym of ``value`` (the ``pseudonym`` operator), e.g. for ``pseudonym_fields``."""
        return self._operators.pseudonym(entity_type, value)

    def line_needs_redaction(self, text: str) -> bool:
        """False when a JSON (or plain) log line certainly holds nothing to redact, so it can be kept byte for byte
        without parsing: no gate opens on the raw text, no key names a secret or implies a context (``mobile``,
        ``national_id``), and no escape sequence could hide a character the gates look for."""
        if "\\" in text or self._engine.could_match(text):
            return True
        return self._keys_need_redaction(tuple(_JSON_KEY.findall(text)))

    def lines_need_redaction(self, lines: Sequence[bytes]) -> list[bool]:
        """:meth:`line_needs_redaction` for many lines (UTF-8 bytes, newline-terminated or not), with the same answers,
        in one pass of the scanner over them all: a line nothing matched is decided without being decoded."""
        engine = self._engine
        found = engine.scan_lines(lines)
        out = [False] * len(lines)
        candidates = range(len(lines)) if engine.ner_available else [
            i for i, ids in enumerate(found) if ids is None or ids]  # the rest: nothing matched, no NER
        for index in candidates:
            ids = found[index]
            if ids is None:  # not scanned (not ASCII, an escape sequence, no Hyperscan): decided as one line
                out[index] = self.line_needs_redaction(_line_text(lines[index]))
            elif ids and engine.gates_open(ids):
                out[index] = True
            else:
                text = _line_text(lines[index])
                out[index] = (bool(ids) and self._keys_need_redaction(tuple(_JSON_KEY.findall(text)))
                              or engine.ner_could_match(text))
        return out

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - lines of one producer share a few key sets; bounded
    def _keys_need_redaction(self, keys: tuple[str, ...]) -> bool:
        return any(self._secret_key(key) is not None or _key_hint(key) is not None for key in keys)

    def cache_clear(self) -> None:
        with self._lock:
            self._cache.clear()
            self._cheap.clear()

    # ----------------------------------------------------------------------------------------- helpers

    def _secret_key(self, key: Any) -> str | None:
        return self._keys.match(key) if self._keys is not None and isinstance(key, str) else None

    def _key_kind(self, key: Any) -> tuple[str, str | None, str | None]:
        """``(text, secret name or None, hint or None)`` of a dict key; memoised for string keys (one dict look-up
        instead of two cached calls, twice per key of every record)."""
        if type(key) is str:
            kind = self._key_kinds.get(key)
            if kind is None:
                if len(self._key_kinds) >= KEY_KINDS_SIZE:
                    self._key_kinds.clear()  # keys of a producer are few; a flood of random keys just starts over
                kind = self._key_kinds[key] = (key, self._secret_key(key), _key_hint(key))
            return kind
        text = key if isinstance(key, str) else str(key)
        return text, self._secret_key(key), _key_hint(text)

    def _collect(self, value: Any, hint: str | None, depth: int, out: dict[tuple[str, str | None], None]) -> None:
        exact_dict = type(value) is dict  # most containers: decided without the isinstance chain
        if not exact_dict and isinstance(value, str):
            out[(value, hint)] = None
        elif exact_dict:
            if depth < MAX_DEPTH:
                self._collect_items(value, depth, out)
            else:
                out[(_as_text(value), hint)] = None
        elif value is None or isinstance(value, bool):
            return
        elif isinstance(value, (int, float)):
            out[(str(value), hint)] = None
        elif isinstance(value, (bytes, bytearray)):
            out[(bytes(value).decode("utf-8", errors="replace"), hint)] = None
        elif isinstance(value, Mapping) and depth < MAX_DEPTH:
            self._collect_items(value, depth, out)
        elif isinstance(value, (list, tuple)) and depth < MAX_DEPTH:
            keyed = self._keyed(value)
            if keyed is not None:
                self._collect_items(keyed[0], depth, out)
                return
            for item in value:
                self._collect(item, hint, depth + 1, out)
        else:
            out[(_as_text(value), hint)] = None

    def _collect_items(self, value: Mapping[Any, Any], depth: int, out: dict[tuple[str, str | None], None]) -> None:
        key_kind = self._key_kind
        for key, item in value.items():
            key_text, secret, key_hint = key_kind(key)
            out[(key_text, None)] = None
            if secret is not None:
                continue
            if type(item) is str:  # most values: no recursion
                out[(item, key_hint)] = None
            elif item is not None:
                self._collect(item, key_hint, depth + 1, out)

    def _rebuild(self, value: Any, hint: str | None, depth: int,
                 found: Mapping[tuple[str, str | None], _Findings], summary: list[tuple[str, str]]) -> Any:
        exact_dict = type(value) is dict  # most containers: decided without the isinstance chain
        if not exact_dict and isinstance(value, str):
            return self._apply(value, found[(value, hint)], summary)
        if exact_dict:
            if depth < MAX_DEPTH:
                return self._rebuild_items(value, depth, found, summary)
            text = _as_text(value)
            return self._apply(text, found[(text, hint)], summary)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            text = str(value)
            findings = found[(text, hint)]
            return self._apply(text, findings, summary) if findings else value
        if isinstance(value, (bytes, bytearray)):
            text = bytes(value).decode("utf-8", errors="replace")
            return self._apply(text, found[(text, hint)], summary)
        if isinstance(value, Mapping) and depth < MAX_DEPTH:
            return self._rebuild_items(value, depth, found, summary)
        if isinstance(value, (list, tuple)) and depth < MAX_DEPTH:
            keyed = self._keyed(value)
            if keyed is not None:  # written as a list, as before; its values redacted as under their keys
                items = self._rebuild_items(keyed[0], depth, found, summary)
                return [*next(iter(items.items()))] if keyed[1] else list(items.values())
            return [self._rebuild(item, hint, depth + 1, found, summary) for item in value]
        text = _as_text(value)
        return self._apply(text, found[(text, hint)], summary)

    def _keyed(self, value: list[Any] | tuple[Any, ...]) -> tuple[dict[Any, Any], bool] | None:
        """``(items, is a pair)`` for a sequence whose items have keys: a named tuple (its field names), or a
        ``(name, value)`` pair whose name is a secret or hinting key — header lists (``[("X-Api-Key", "…")]``,
        ASGI's byte pairs); None for any other sequence."""
        fields = getattr(type(value), "_fields", None) if type(value) is not list else None
        if fields is not None and len(fields) == len(value) and all(type(f) is str for f in fields):
            return dict(zip(fields, value, strict=True)), False
        if len(value) == 2:
            name = value[0]
            if isinstance(name, (bytes, bytearray)):
                name = bytes(name).decode("utf-8", errors="replace")
            if type(name) is str and (self._secret_key(name) is not None or _key_hint(name) is not None):
                return {name: value[1]}, True
        return None

    def _rebuild_items(self, value: Mapping[Any, Any], depth: int, found: Mapping[tuple[str, str | None], _Findings],
                       summary: list[tuple[str, str]]) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        key_kind = self._key_kind
        renamed = False  # original keys are unique: only a redacted key can collide with another
        for key, item in value.items():
            key_text, secret, key_hint = key_kind(key)
            key_findings = found[(key_text, None)]
            if key_findings:
                new_key = self._apply(key_text, key_findings, summary)
                renamed = True
            else:
                new_key = key
            if renamed:
                while new_key in result:  # two keys collide after redaction: keep both values
                    new_key = f"{new_key}~"
            if secret is not None:
                result[new_key] = self._operators.apply("SECRET", _as_text(item))
                summary.append(("SECRET", f"key:{secret}"))
            elif item is None:
                result[new_key] = None
            elif type(item) is str:  # most values: no recursion
                findings = found[(item, key_hint)]
                result[new_key] = self._apply(item, findings, summary) if findings else item
            else:
                result[new_key] = self._rebuild(item, key_hint, depth + 1, found, summary)
        return result

    def _apply(self, text: str, findings: _Findings, summary: list[tuple[str, str]]) -> str:
        if not findings:
            return text
        for f in findings:
            summary.append((f.entity_type, f.rule))
        return apply_findings(text, findings, self._operators)

    def _detect(self, items: list[tuple[str, str | None]]) -> dict[tuple[str, str | None], _Findings]:
        found: dict[tuple[str, str | None], _Findings] = {}
        todo: list[tuple[str, str | None]] = []
        cache, cheap = self._cache, self._cheap
        for item in items:
            cached = cache.get(item)
            if cached is not None:
                cache.move_to_end(item)
                found[item] = cached
                continue
            cached = cheap.get(item)
            if cached is not None:
                cheap.move_to_end(item)
                found[item] = cached
            else:
                todo.append(item)
        if todo:
            texts = [text if hint is None else f"{hint}: {text}" for text, hint in todo]
            planned: list[bool] = []
            results = self._engine.detect(texts, planned)
            scans = self._engine.scans_ascii
            for item, text, findings, worked in zip(todo, texts, results, planned, strict=True):
                if not findings:
                    kept: _Findings = ()
                elif item[1] is None:
                    kept = tuple(findings)
                else:  # found in "hint: text": back to offsets in text, dropping anything in the hint
                    shift = len(text) - len(item[0])
                    kept = tuple(Finding(f.start - shift, f.end - shift, f.entity_type, f.score, f.rule)
                                 for f in findings if f.start >= shift)
                found[item] = kept
                if worked or not (scans and text.isascii()):  # a scanned text nothing matched costs less than a cache
                    self._remember(item, kept, costly=worked)
        return found

    def _remember(self, item: tuple[str, str | None], findings: _Findings, *, costly: bool) -> None:
        """Two LRUs: texts that needed a recognizer run (worth keeping long), and texts the gates ruled out
        (cheap to redo; unique ids would otherwise flush the costly ones out)."""
        if len(item[0]) > CACHE_MAX_TEXT:
            return
        cache, size = (self._cache, CACHE_SIZE) if costly else (self._cheap, CHEAP_CACHE_SIZE)
        cache[item] = findings
        if len(cache) > size:
            cache.popitem(last=False)


def _line_text(line: bytes) -> str:
    """A log line as text, without its newline; bytes that are not UTF-8 kept as surrogates (reversible)."""
    return (line[:-1] if line.endswith(b"\n") else line).decode("utf-8", errors="surrogateescape")


def _as_text(value: Any) -> str:
    """Text of a value replaced or scanned as a whole: JSON for containers, ``str()`` for the rest."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value, sort_keys=True, default=str)
        except (TypeError, ValueError):
            return str(value)
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break logging
        return f"<unprintable {type(value).__name__}>"
