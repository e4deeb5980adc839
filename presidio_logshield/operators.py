"""Operators turn one detected value into its replacement: replace, mask, redact, pseudonym, encrypt, keep.

``pseudonym`` is an HMAC-SHA256 keyed by the configured key over the entity type and a normalised value,
so equal values give equal pseudonyms across processes and hosts (unlike Presidio's salted ``hash``); the
key id in the token shows which key made it. ``encrypt`` is AES-256-GCM (authenticated, unlike Presidio's
AES-CBC) with a random 96-bit nonce and the entity type and key id as associated data; ``reveal_text``
reverses it for tokens made with the configured key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
import re
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .config import RedactionConfig
from .detection import SECRET_ENTITIES, Finding

__all__ = ["ENCRYPTED_TOKEN", "Operators", "apply_findings", "normalise_value", "reveal_text"]

#: ``<EMAIL_ADDRESS:enc:1a2b3c4d:base64url>`` — what ``encrypt`` writes and ``reveal_text`` reads.
ENCRYPTED_TOKEN = re.compile(r"<(?P<entity>[A-Z][A-Z0-9_]*):enc:(?P<kid>[A-Za-z0-9._-]+):(?P<data>[A-Za-z0-9_-]+)>")
_SECRET_MASK_LENGTH = 8


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def normalise_value(entity_type: str, value: str) -> str:
    """The form pseudonyms are computed over, so trivially different spellings map to one pseudonym."""
    value = value.strip()
    if entity_type == "EMAIL_ADDRESS":
        return value.lower()
    if entity_type in ("PHONE_NUMBER", "CREDIT_CARD", "US_SSN"):
        return re.sub(r"\D", "", value)
    if entity_type == "IBAN_CODE":
        return re.sub(r"\s", "", value).upper()
    if entity_type == "IP_ADDRESS":
        try:
            return ipaddress.ip_address(value.split("%", 1)[0]).compressed
        except ValueError:
            return value.lower()
    if entity_type in ("PERSON", "LOCATION"):
        return " ".join(value.split()).casefold()
    return value


class Operators:
    """Applies the operator configured for each entity type; built once from a :class:`RedactionConfig`."""

    def __init__(self, config: RedactionConfig) -> None:
        self._config = config
        self._pseudonym_key = config.pseudonym_key.get_secret_value() if config.pseudonym_key else None
        self._pseudonym_kid = config.pseudonym_kid
        self._aead = AESGCM(config.encryption_key.get_secret_value()) if config.encryption_key else None
        self._encryption_kid = config.encryption_kid

    def apply(self, entity_type: str, value: str) -> str:
        """The replacement for ``value`` found as ``entity_type``."""
        op = self._config.operator_for(entity_type)
        if op == "replace":
            return f"<{entity_type}>"
        if op == "redact":
            return ""
        if op == "keep":
            return value
        if op == "mask":
            return self._mask(entity_type, value)
        if op == "pseudonym":
            return self.pseudonym(entity_type, value)
        if op == "encrypt":
            return self.encrypt(entity_type, value)
        raise ValueError(f"unknown operator {op!r}")  # pragma: no cover - config validates the name

    def _mask(self, entity_type: str, value: str) -> str:
        char = self._config.mask_char
        if entity_type in SECRET_ENTITIES:
            return char * _SECRET_MASK_LENGTH  # nothing kept, not even the length
        keep = min(self._config.mask_keep_last, len(value) // 3)  # never show most of a short value
        return char * (len(value) - keep) + (value[-keep:] if keep else "")

    def pseudonym(self, entity_type: str, value: str) -> str:
        assert self._pseudonym_key is not None, "config validation guarantees a key"
        message = f"{entity_type}\x00{normalise_value(entity_type, value)}".encode()
        digest = hmac.new(self._pseudonym_key, message, hashlib.sha256).hexdigest()[:16]
        return f"<{entity_type}:ps:{self._pseudonym_kid}:{digest}>"

    def encrypt(self, entity_type: str, value: str) -> str:
        assert self._aead is not None, "config validation guarantees a key"
        nonce = os.urandom(12)
        aad = f"{entity_type}:{self._encryption_kid}".encode()
        sealed = self._aead.encrypt(nonce, value.encode("utf-8"), aad)
        return f"<{entity_type}:enc:{self._encryption_kid}:{_b64url(nonce + sealed)}>"


def apply_findings(text: str, findings: Iterable[Finding], operators: Operators) -> str:
    """Replace every (non-overlapping) finding, right to left so earlier offsets stay valid."""
    for f in sorted(findings, key=lambda f: f.start, reverse=True):
        text = text[:f.start] + operators.apply(f.entity_type, text[f.start:f.end]) + text[f.end:]
    return text


def reveal_text(text: str, config: RedactionConfig) -> tuple[str, int]:
    """Decrypt every ``enc:`` token made with the configured key; return the text and how many were."""
    if config.encryption_key is None:
        raise ValueError("no encryption key configured (LOGSHIELD_ENCRYPTION_KEY or LOGSHIELD_ENCRYPTION_KEY_FILE)")
    aead = AESGCM(config.encryption_key.get_secret_value())
    kid = config.encryption_kid
    count = 0

    def decrypt(match: re.Match[str]) -> str:
        nonlocal count
        if match.group("kid") != kid:
            return match.group(0)
        try:
            blob = _unb64url(match.group("data"))
            plain = aead.decrypt(blob[:12], blob[12:], f"{match.group('entity')}:{kid}".encode())
        except (InvalidTag, ValueError, binascii.Error):
            return match.group(0)  # not ours or tampered with: leave it as it is
        count += 1
        return plain.decode("utf-8", errors="replace")

    return ENCRYPTED_TOKEN.sub(decrypt, text), count
