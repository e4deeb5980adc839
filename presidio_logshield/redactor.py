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
from .detection import SECRET_ENTITIES, DetectionEngine, Finding
from .operators import Operators, apply_findings
from .summary import NOTHING_FOUND, RedactionSummary

__all__ = ["RedactionSummary", "Redactor", "RedactorBusy"]

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
#: Where a number inside a dict key starts or ends: a ``_``, ``-`` or ``.`` between a digit and something else, or a
#: letter right next to a long run of digits. A key with one is also detected with those characters as spaces (same
#: length, same offsets): ``token-4111111111111111`` as ``token 4111111111111111``, ``user4155552671`` as ``use
#: 4155552671`` — the recognizers do not start a number right after a letter, ``-``, ``_`` or ``.``.
_DIGIT_SEPARATOR = re.compile(r"(?<=[^\d_.-])[_.-](?=\d)|(?<=\d)[_.-](?=[^\d_.-])|[^\W\d_](?=\d[\d.-]{5})"
                              r"|(?<=\d{6})[^\W\d_]")
#: The ``hint`` of a detection item that is a dict key with its digit separators read as spaces.
_SPLIT = "\x00split"

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


class RedactorBusy(TimeoutError):
    """``redact_batch(timeout=…)`` could not start: another call has been inside the redactor for that long."""


_Findings = tuple[Finding, ...]
#: Containers that may be a ``(name, value)`` pair inside a list.
_PAIRS = (tuple, list)
#: What a dict key is: its text, the secret name it matches, the context word it implies, the personal field
#: ``(entity type, name)`` it names, and whether it is also detected with its digit separators as spaces.
_KeyKind = tuple[str, "str | None", "str | None", "tuple[str, str] | None", bool]


class Redactor:
    """Detects and replaces PII and secrets in texts and JSON-like values.

    Calls are serialised by a lock (a caller may bound its wait with ``timeout=``). Safe to keep using in a forked
    child (no threads, no open sockets; the lock is recreated after ``fork``).
    """

    def __init__(self, config: RedactionConfig) -> None:
        self.config = config
        self._engine = DetectionEngine(config, key_words=_HINT_WORDS)
        self._operators = Operators(config)
        # The key-name tier applies whatever ``entities`` selects, unless it is turned off.
        self._keys = self._engine.key_matcher if config.key_names else None
        self._personal = self._engine.personal_matcher if config.key_names else None
        self._cache: OrderedDict[tuple[str, str | None], _Findings] = OrderedDict()
        self._cheap: OrderedDict[tuple[str, str | None], _Findings] = OrderedDict()
        self._key_kinds: dict[str, _KeyKind] = {}
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

    def locked(self) -> bool:
        """True while a call is inside the redactor (e.g. one a caller abandoned as hung)."""
        return self._lock.locked()

    def redact_text(self, text: str, *, timeout: float | None = None) -> tuple[str, RedactionSummary]:
        """Redact one string."""
        return self.redact_batch([text], timeout=timeout)[0]  # type: ignore[return-value]

    def redact_batch(self, values: Sequence[Any], *, timeout: float | None = None
                     ) -> list[tuple[Any, RedactionSummary]]:
        """Redact many JSON-like values with one detection pass over their unique strings. With ``timeout``, raise
        :class:`RedactorBusy` rather than wait longer than that for another call to leave the redactor."""
        if not self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            raise RedactorBusy(f"the redactor has been busy for {timeout:.1f}s")
        try:
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
        finally:
            self._lock.release()

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
        return any(self._secret_key(key) is not None or _key_hint(key) is not None
                   or (self._personal is not None and self._personal.match(key) is not None) for key in keys)

    def cache_clear(self) -> None:
        with self._lock:
            self._cache.clear()
            self._cheap.clear()

    # ----------------------------------------------------------------------------------------- helpers

    def _secret_key(self, key: Any) -> str | None:
        return self._keys.match(key) if self._keys is not None and isinstance(key, str) else None

    def _key_kind(self, key: Any) -> _KeyKind:
        """What a dict key is (see ``_KeyKind``); memoised for string keys (one dict look-up instead of several cached
        calls, twice per key of every record)."""
        if type(key) is str:
            kind = self._key_kinds.get(key)
            if kind is None:
                if len(self._key_kinds) >= KEY_KINDS_SIZE:
                    self._key_kinds.clear()  # keys of a producer are few; a flood of random keys just starts over
                kind = self._key_kinds[key] = self._classify_key(key, key)
            return kind
        return self._classify_key(key, key if isinstance(key, str) else str(key))

    def _classify_key(self, key: Any, text: str) -> _KeyKind:
        personal = self._personal.match(key) if self._personal is not None and isinstance(key, str) else None
        return (text, self._secret_key(key), _key_hint(text), personal, _DIGIT_SEPARATOR.search(text) is not None)

    def _pair_replaced(self, pair: Sequence[Any]) -> tuple[str, str, str] | None:
        """For a ``(name, value)`` pair in a list (``headers=[("X-Api-Key", "k")]``, ASGI's byte pairs): ``(entity
        type, rule, text)`` when the name is a secret's or a personal field's and the value is replaced whole."""
        name = pair[0]
        if type(name) is bytes:
            name = name.decode("utf-8", errors="replace")
        elif type(name) is not str:
            return None
        _, secret, _, personal, _ = self._key_kind(name)
        if secret is not None and not self._count_under(name, pair[1]):
            return "SECRET", f"key:{secret}", _as_text(pair[1])
        if personal is not None:
            text = self._personal_text(personal, pair[1])
            if text is not None:
                return personal[0], f"key:{personal[1]}", text
        return None

    def _count_under(self, key: Any, value: Any) -> bool:
        """Whether ``value`` under the secret key ``key`` is a count or ids, kept and detected as usual: a number, or a
        list of numbers, under a plural name (``{"prompt_tokens": 57}``, ``{"tokens": [101, 2023]}``)."""
        if not (_is_number(value) or (type(value) in _PAIRS and all(_is_number(v) for v in value))):
            return False
        return self._keys is not None and isinstance(key, str) and self._keys.counts(key)

    def _personal_text(self, personal: tuple[str, str], value: Any) -> str | None:
        """The text replaced whole under a personal key (``{"city": "Berlin"}``), or None when the value is detected as
        usual: a container, a bool, None, an empty marker, or not of the key's shape (``{"name": "orders"}``)."""
        if type(value) is str:
            text = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            text = _number_text(value)
        elif isinstance(value, (bytes, bytearray)):
            text = bytes(value).decode("utf-8", errors="replace")
        else:
            return None
        assert self._personal is not None
        return text if self._personal.accepts(personal[1], text) else None

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
            out[(_number_text(value), hint)] = None
        elif isinstance(value, (bytes, bytearray)):
            out[(bytes(value).decode("utf-8", errors="replace"), hint)] = None
        elif isinstance(value, Mapping) and depth < MAX_DEPTH:
            self._collect_items(value, depth, out)
        elif isinstance(value, (list, tuple)) and depth < MAX_DEPTH:
            fields = _named_fields(value)
            if fields is not None:
                self._collect_items(fields, depth, out)
                return
            for item in value:
                if type(item) in _PAIRS and len(item) == 2 and self._pair_replaced(item) is not None:
                    self._collect(item[0], None, depth + 2, out)  # the name is text too; its value is not detected
                else:
                    self._collect(item, hint, depth + 1, out)
        else:
            out[(_as_text(value), hint)] = None

    def _collect_items(self, value: Mapping[Any, Any], depth: int, out: dict[tuple[str, str | None], None]) -> None:
        key_kind, known = self._key_kind, self._key_kinds
        for key, item in value.items():
            # The memo first, inline: most keys were seen before (one dict look-up, no call).
            key_text, secret, key_hint, personal, split = known.get(key) or key_kind(key)
            out[(key_text, None)] = None
            if split:
                out[(key_text, _SPLIT)] = None
            if (secret is not None and not self._count_under(key, item)) or (
                    personal is not None and self._personal_text(personal, item) is not None):
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
            text = _number_text(value)
            findings = found[(text, hint)]
            return self._apply(text, findings, summary) if findings else value
        if isinstance(value, (bytes, bytearray)):
            text = bytes(value).decode("utf-8", errors="replace")
            return self._apply(text, found[(text, hint)], summary)
        if isinstance(value, Mapping) and depth < MAX_DEPTH:
            return self._rebuild_items(value, depth, found, summary)
        if isinstance(value, (list, tuple)) and depth < MAX_DEPTH:
            fields = _named_fields(value)
            if fields is not None:  # written as a list, as before; its values redacted as under their field names
                return list(self._rebuild_items(fields, depth, found, summary).values())
            items: list[Any] = []
            for item in value:
                replaced = self._pair_replaced(item) if type(item) in _PAIRS and len(item) == 2 else None
                if replaced is None:
                    items.append(self._rebuild(item, hint, depth + 1, found, summary))
                    continue
                entity, rule, text = replaced
                items.append([self._rebuild(item[0], None, depth + 2, found, summary),
                              self._operators.apply(entity, text)])
                summary.append((entity, rule))
            return items
        text = _as_text(value)
        return self._apply(text, found[(text, hint)], summary)

    def _rebuild_items(self, value: Mapping[Any, Any], depth: int, found: Mapping[tuple[str, str | None], _Findings],
                       summary: list[tuple[str, str]]) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        key_kind, known = self._key_kind, self._key_kinds
        renamed = False  # original keys are unique: only a redacted key can collide with another
        for key, item in value.items():
            key_text, secret, key_hint, personal, split = known.get(key) or key_kind(key)
            key_findings = found[(key_text, None)]
            if split:
                key_findings = _merge(key_findings, found[(key_text, _SPLIT)])
            if key_findings:
                new_key = self._apply(key_text, key_findings, summary)
                renamed = True
            else:
                new_key = key
            if renamed:
                while new_key in result:  # two keys collide after redaction: keep both values
                    new_key = f"{new_key}~"
            if secret is not None and not self._count_under(key, item):
                result[new_key] = self._operators.apply("SECRET", _as_text(item))
                summary.append(("SECRET", f"key:{secret}"))
            elif personal is not None and (text := self._personal_text(personal, item)) is not None:
                result[new_key] = self._operators.apply(personal[0], text)
                summary.append((personal[0], f"key:{personal[1]}"))
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
            texts = [text if hint is None else _detection_text(text, hint) for text, hint in todo]
            planned: list[bool] = []
            results = self._engine.detect(texts, planned)
            scans = self._engine.scans_ascii
            for item, text, findings, worked in zip(todo, texts, results, planned, strict=True):
                if not findings:
                    kept: _Findings = ()
                elif item[1] is None or item[1] is _SPLIT:
                    kept = tuple(findings)
                else:  # found in "hint - text": back to offsets in text, dropping anything in the hint
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


def _detection_text(text: str, hint: str | None) -> str:
    """What is detected for an item: the text; a dict key with its digit separators as spaces (same length); or a
    value after its key's context word (``phone - 4155552671``: a context, never a ``key: value`` pair)."""
    if hint is None:
        return text
    if hint is _SPLIT:
        return _DIGIT_SEPARATOR.sub(" ", text)
    return f"{hint} - {text}"


def _merge(first: _Findings, second: _Findings) -> _Findings:
    """Findings of two detections of one text, overlaps resolved like the engine does (secrets, then the longest)."""
    if not second:
        return first
    if not first:
        return second
    chosen: list[Finding] = []
    for f in sorted({*first, *second}, key=lambda f: (f.entity_type not in SECRET_ENTITIES, f.start - f.end,
                                                      -f.score, f.start, f.entity_type, f.rule)):
        if all(f.end <= c.start or f.start >= c.end for c in chosen):
            chosen.append(f)
    return tuple(sorted(chosen))


def _number_text(value: int | float) -> str:
    """The text a number is detected as: ``str()``, without the ``.0`` of a float that holds an integer (a card logged
    as ``4111111111111111.0`` is the card ``4111111111111111``). Floats written with an exponent stay as they are."""
    text = str(value)
    if isinstance(value, float) and text.endswith(".0"):
        return text[:-2]
    return text


_PLAIN_NUMBER = re.compile(r"-?\d+(?:[.,_]\d+)*")


def _is_number(value: Any) -> bool:
    """An int or float (not a bool), or text that is a plain number (``"57"``, ``"1,024"``)."""
    if isinstance(value, (int, float)):
        return not isinstance(value, bool)
    return isinstance(value, str) and _PLAIN_NUMBER.fullmatch(value.strip()) is not None


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


def _named_fields(value: list[Any] | tuple[Any, ...]) -> dict[str, Any] | None:
    """A named tuple's items under its field names (``Creds(user, password)``: the names act as keys); None for any
    other sequence. (Lists of ``(name, value)`` pairs are read item by item: ``Redactor._pair_replaced``.)"""
    fields = getattr(type(value), "_fields", None) if type(value) is not list else None
    if fields is not None and len(fields) == len(value) and all(type(f) is str for f in fields):
        return dict(zip(fields, value, strict=True))
    return None
