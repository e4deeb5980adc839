"""Tier 1: key names whose values are secrets whatever they look like (``password``, ``db_password``, ``x-api-key``)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["KEY_WORDS", "SecretKeyMatcher", "normalise_key"]

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")

#: Found anywhere in the joined, lower-cased key: ``dbpassword``, ``awssecretaccesskey``, ``setcookie``.
_STRONG = (
    "password", "passwd", "passphrase", "secret", "apikey", "accesskey", "privatekey", "credential",
    "authorization", "cookie", "signingkey", "encryptionkey", "masterkey",
)
#: Short or ambiguous names, matched with a guard: ``token`` but not ``tokens``/``tokenizer``;
#: ``auth`` but not ``author``/``authenticated``; ``session`` but not ``sessions``.
_WEAK = re.compile(r"token(?!s|iz|is)|(?<!o)auth(?!or|ent)|pwd|session(?!s)|jwt|bearer|oauth")
#: A key that starts or ends with one of these words describes a secret, it does not hold one:
#: ``token_count``, ``max_tokens``, ``password_length``, ``has_password``, ``auth_type``, ``secret_name``.
_META_SUFFIX = frozenset({
    "count", "counts", "used", "length", "len", "limit", "limits", "type", "types", "expiry", "expires",
    "expiration", "expiresat", "expiresin", "ttl", "at", "time", "timestamp", "date", "policy", "strength",
    "required", "enabled", "set", "valid", "present", "provided", "format", "algorithm", "algo", "name",
    "path", "file", "duration", "timeout", "method", "mode", "scheme", "provider", "version", "size",
    "fail", "failed", "failure", "failures", "error", "errors", "success", "ok", "status", "result", "state",
    "level", "attempts", "retries",
})
_META_PREFIX = frozenset({"has", "is", "num", "max", "min", "total", "n"})
#: Every tier-1 name from the brief, normalised: the whole key equal to one of these is always a secret.
_EXACT = frozenset({
    "password", "passwd", "pwd", "secret", "token", "apikey", "accesskey", "authorization", "auth",
    "cookie", "setcookie", "session", "sessionid", "clientsecret", "privatekey", "credential",
    "credentials", "xapikey", "xauthtoken", "proxyauthorization",
})

#: Every key this module calls a secret contains one of these in its normalised form (a configured extra contains
#: itself): a cheap necessary condition for scanning raw JSON lines.
KEY_WORDS = ("auth", "bearer", "cookie", "credential", "jwt", "key", "pass", "pwd", "secret", "session", "token")


def normalise_key(key: str) -> str:
    """Lower-case and drop separators: ``X-Api-Key`` → ``xapikey``, ``DB_Password`` → ``dbpassword``."""
    return "".join(part.lower() for part in _WORD_SPLIT.split(key) if part)


class SecretKeyMatcher:
    """Decides whether a dict key (or a ``key=value`` key in text) names a secret."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self._extra = tuple(sorted({normalise_key(k) for k in extra if normalise_key(k)}))
        self.match = lru_cache(maxsize=4096)(self._match)

    @property
    def extras(self) -> tuple[str, ...]:
        """The configured extra key names, normalised."""
        return self._extra

    @property
    def words(self) -> tuple[str, ...]:
        """One of these is in every normalised key :meth:`match` accepts (:data:`KEY_WORDS` and the extras)."""
        return KEY_WORDS + self._extra

    def is_strong(self, normalised: str) -> bool:
        """True for unambiguous names (``password``, ``client_secret``, configured extras), False for the
        short ones (``token``, ``auth``, ``session``) that free text also uses for non-secrets."""
        return any(s in normalised for s in _STRONG) or any(e in normalised for e in self._extra)

    def _match(self, key: str) -> str | None:
        """Return the normalised key when it names a secret, else None."""
        if not key or len(key) > 80:
            return None
        words = [w.lower() for w in _WORD_SPLIT.split(key) if w]
        joined = "".join(words)
        if not joined:
            return None
        if joined in _EXACT or any(extra in joined for extra in self._extra):
            return joined
        if words[-1] in _META_SUFFIX or words[0] in _META_PREFIX:
            return None
        if any(strong in joined for strong in _STRONG) or _WEAK.search(joined):
            return joined
        return None
