"""Tier 1: key names whose values are replaced whatever they look like — secrets (``password``, ``db_password``,
``x-api-key``) and personal fields (``first_name``, ``city``, ``iban``).

Both matchers name what matched from a fixed vocabulary (the built-in or configured name, never the key itself), so
a rule id such as ``key:password`` can be written in a record's summary without carrying data from the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from ..config import ENTITY_TYPES

__all__ = ["BUILTIN_PII_KEYS", "KEY_WORDS", "PersonalKeyMatcher", "SecretKeyMatcher", "normalise_key"]

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")

#: Found anywhere in the joined, lower-cased key: ``dbpassword``, ``awssecretaccesskey``, ``setcookie``.
_STRONG = (
    "password", "passwd", "passphrase", "secret", "apikey", "accesskey", "privatekey", "credential",
    "authorization", "cookie", "signingkey", "encryptionkey", "masterkey",
)
#: Short or ambiguous names, matched with a guard: ``token`` but not ``tokenizer`` (nor ``tokens`` here: plurals are
#: matched by their singular, as weak names); ``auth`` but not ``author``/``authenticated``; ``session`` but not
#: ``sessionstore``.
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
#: Whole keys (normalised) that are always secrets. Those not in _WEAK_NAMES are "strong": in free text any value
#: after them is a secret, even ``pw=a``.
_EXACT = frozenset({
    "password", "passwd", "pwd", "pass", "pw", "secret", "token", "apikey", "accesskey", "authorization", "auth",
    "cookie", "setcookie", "session", "sessionid", "sid", "clientsecret", "privatekey", "credential",
    "credentials", "xapikey", "xauthtoken", "proxyauthorization", "accesstoken", "refreshtoken", "idtoken",
    "authtoken", "apitoken", "sessiontoken", "csrftoken", "xsrftoken", "xcsrftoken", "bearertoken", "oauthtoken",
})
#: Names also used for what is not a credential (``auth:SIMPLE``, ``Session: 30546174_3349806149``): in free text
#: their value must not be a plain number (nor, after ``auth``, a single word — an auth method).
_WEAK_NAMES = frozenset({"token", "auth", "session", "sessionid", "sid", "jwt", "bearer", "oauth"})
#: Short names matched as the last word of a key only: ``db_pass``, ``adminPw`` (not ``bypass``, ``compass``).
_LAST_WORD = frozenset({"pass", "pw", "pwd"})

#: Every key this module calls a secret contains one of these in its normalised form (a configured extra contains
#: itself): a cheap necessary condition for scanning raw JSON lines.
KEY_WORDS = ("auth", "bearer", "cookie", "credential", "jwt", "key", "pass", "pw", "secret", "session", "sid",
             "token")


def normalise_key(key: str) -> str:
    """Lower-case and drop separators: ``X-Api-Key`` → ``xapikey``, ``DB_Password`` → ``dbpassword``."""
    return "".join(part.lower() for part in _WORD_SPLIT.split(key) if part)


class SecretKeyMatcher:
    """Decides whether a dict key (or a ``key=value`` key in text) names a secret."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self._extra = tuple(sorted({normalise_key(k) for k in extra if normalise_key(k)}))
        self._lookup = lru_cache(maxsize=4096)(self._classify_key)

    @property
    def extras(self) -> tuple[str, ...]:
        """The configured extra key names, normalised."""
        return self._extra

    @property
    def words(self) -> tuple[str, ...]:
        """One of these is in every normalised key :meth:`match` accepts (:data:`KEY_WORDS` and the extras)."""
        return KEY_WORDS + self._extra

    def match(self, key: str) -> str | None:
        """The name that makes ``key`` a secret (``db_password`` → ``password``, ``X-Api-Key`` → ``xapikey``,
        ``access_tokens`` → ``accesstoken``), from the built-in names and the configured extras only; None when
        ``key`` is not a secret's name."""
        found = self._lookup(key)
        return found[0] if found else None

    def classify(self, key: str) -> tuple[str, bool] | None:
        """``(name, strong)`` when ``key`` names a secret, else None. Strong names (``password``, ``access_token``,
        configured extras) make any value a secret in free text; weak ones (``token``, ``session``, and every plural
        matched by its singular) need one that is not a plain number."""
        found = self._lookup(key)
        return found[:2] if found else None

    def counts(self, key: str) -> bool:
        """Whether ``key`` is a plural matched by its singular (``tokens``, ``access_tokens``, ``sessions``): a number,
        or a list of numbers, under it is a count or ids (``prompt_tokens: 57``, token ids), not secrets."""
        found = self._lookup(key)
        return found is not None and found[2]

    def _classify_key(self, key: str) -> tuple[str, bool, bool] | None:
        """``(name, strong, plural)`` when ``key`` names a secret, else None."""
        if not key or len(key) > 80:
            return None
        words = [w.lower() for w in _WORD_SPLIT.split(key) if w]
        if not words:
            return None
        found = self._classify_words(words)
        if found is not None:
            return (*found, False)
        last = words[-1]
        if len(last) > 2 and last.endswith("s") and not last.endswith("ss"):
            singular = self._classify_words([*words[:-1], last[:-1]])
            if singular is not None:
                return singular[0], False, True
        return None

    def _classify_words(self, words: list[str]) -> tuple[str, bool] | None:
        """``(name, strong)`` for a key split into lower-case words, or None."""
        joined = "".join(words)
        if joined in _EXACT:
            return joined, joined not in _WEAK_NAMES
        for extra in self._extra:
            if extra in joined:
                return extra, True
        if words[-1] in _META_SUFFIX or words[0] in _META_PREFIX:
            return None
        for strong in _STRONG:
            if strong in joined:
                return strong, True
        if len(words) > 1 and words[-1] in _LAST_WORD:
            return words[-1], True
        weak = _WEAK.search(joined)
        if weak is None:
            return None
        # A qualified weak name ending the key (``refresh_token``, ``user_session``) is a credential's name.
        return weak.group(0), len(words) > 1 and words[-1].endswith(weak.group(0))


#: Built-in personal key names (snake case: the words free text may separate with ``_``, ``-``, ``.`` or nothing) and
#: the entity type their value is replaced as. Exact keys only: ``billing_city`` is not ``city``.
BUILTIN_PII_KEYS: Mapping[str, str] = {
    **dict.fromkeys(("first_name", "last_name", "full_name", "given_name", "family_name", "surname", "middle_name",
                     "maiden_name", "customer_name", "contact_name", "person_name", "name"), "PERSON"),
    **dict.fromkeys(("email", "e_mail", "email_address", "user_email", "customer_email", "contact_email"),
                    "EMAIL_ADDRESS"),
    **dict.fromkeys(("phone", "phone_number", "mobile", "mobile_number", "mobile_phone", "cell_phone", "telephone",
                     "home_phone", "work_phone", "fax", "fax_number", "msisdn"), "PHONE_NUMBER"),
    **dict.fromkeys(("address", "street", "street_address", "home_address", "billing_address", "shipping_address",
                     "postal_address", "mailing_address", "address_line1", "address_line2", "city", "town", "zip",
                     "zip_code", "postcode", "postal_code"), "LOCATION"),
    **dict.fromkeys(("dob", "date_of_birth", "birth_date", "birthdate", "birthday"), "DATE_OF_BIRTH"),
    **dict.fromkeys(("ssn", "social_security_number"), "US_SSN"),
    "iban": "IBAN_CODE",
    **dict.fromkeys(("card", "card_number", "credit_card", "credit_card_number", "cc_number"), "CREDIT_CARD"),
}

#: ``Alice``, ``O'Neil``, ``Jean-Luc``, ``Müller``: a capitalised name word.
_NAME_WORD = re.compile(r"[^\W\d_][^\W\d_'’.-]*(?:['’-][^\W\d_]+)*\.?")
_PARTICLES = frozenset({"van", "von", "de", "del", "della", "da", "di", "du", "le", "la", "bin", "al", "der", "den",
                        "ter", "dos", "das"})


def looks_like_full_name(value: str) -> bool:
    """Two to four capitalised words (particles such as ``van`` or ``de`` allowed): ``Alice Johnson``, ``Ludwig van
    Beethoven`` — not ``orders-queue``, ``web-1`` or ``Payments``."""
    words = value.split()
    if not 2 <= len(words) <= 4:
        return False
    return all((w[0].isupper() and _NAME_WORD.fullmatch(w) is not None) or w in _PARTICLES for w in words) and \
        not all(w in _PARTICLES for w in words)


def _looks_like_street_address(value: str) -> bool:
    """Several words with letters (``221B Baker Street``), not ``10.0.0.1:8080``, ``0x7ffee4`` or ``localhost``."""
    words = value.split()
    return len(words) >= 2 and not value.startswith("0x") and re.search(r"[^\W\d_]{3}", value) is not None


#: Built-in names that also hold what is not personal (``{"name": "orders-queue"}``, ``address=10.0.0.1:80``): their
#: value counts only when it has the shape of what the name would hold. A configured name is never ambiguous.
_AMBIGUOUS = {"name": looks_like_full_name, "address": _looks_like_street_address}
#: A value of digits only under a personal key is that entity only with at least this many digits (a count such as
#: ``{"entities": {"EMAIL_ADDRESS": 1}}`` is not); types not listed (names, places, e-mail) are never all digits.
_MIN_DIGITS = {"PHONE_NUMBER": 7, "CREDIT_CARD": 12, "US_SSN": 4, "IBAN_CODE": 8, "DATE_OF_BIRTH": 6}
_POSTCODES = frozenset({"zip", "zipcode", "postcode", "postalcode"})
#: Values that say nothing is there.
_EMPTY_VALUES = frozenset({"", "null", "none", "nil", "-", "n/a", "na", "true", "false", "***", "[redacted]",
                           "redacted", "undefined", "unknown"})


class PersonalKeyMatcher:
    """Decides whether a dict key (or a ``key=value`` key in text) names a personal field, and as which entity type
    its value is replaced. Keys are compared whole after :func:`normalise_key` (``First-Name`` is ``first_name``)."""

    def __init__(self, changes: Mapping[str, str] = {}) -> None:  # noqa: B006 - read only
        keys = {} if changes.get("*") == "none" else {normalise_key(k): e for k, e in BUILTIN_PII_KEYS.items()}
        self._snake = {normalise_key(k): k for k in BUILTIN_PII_KEYS}
        configured: set[str] = set()
        for key, entity in changes.items():
            if key == "*":
                continue
            name = normalise_key(key)
            if entity == "none":
                keys.pop(name, None)
            else:
                keys[name] = entity
                configured.add(name)
        self.keys: Mapping[str, str] = dict(sorted(keys.items()))
        self._ambiguous = {k: check for k, check in _AMBIGUOUS.items() if k in keys and k not in configured}
        self.match = lru_cache(maxsize=4096)(self._match)

    @property
    def words(self) -> tuple[str, ...]:
        """Every key :meth:`match` accepts contains one of these in its normalised form (they are the keys)."""
        return tuple(self.keys)

    def spellings(self) -> tuple[tuple[str, ...], ...]:
        """Each key as its words (``("first", "name")``), for patterns that allow separators between them; configured
        keys, whose word boundaries are unknown, as their letters."""
        out = []
        for key in self.keys:
            snake = self._snake.get(key)
            out.append(tuple(snake.split("_")) if snake is not None else tuple(key))
        return tuple(out)

    def _match(self, key: str) -> tuple[str, str] | None:
        """``(entity type, name)`` when ``key`` is a personal field's name, else None. A key spelled as an entity type
        (``EMAIL_ADDRESS``, ``PHONE_NUMBER``) is this library's label — summary counts, operator settings — not a
        field (its value is still detected as any other)."""
        if not key or len(key) > 80 or key in ENTITY_TYPES:
            return None
        name = normalise_key(key)
        entity = self.keys.get(name)
        return None if entity is None else (entity, name)

    def accepts(self, name: str, value: str) -> bool:
        """Whether ``value`` under the key ``name`` (as :meth:`match` returned it) is replaced: not an empty marker
        (``null``, ``-``, ``true``) nor a placeholder already (``<PERSON>``), not a number too short for the entity
        (``{"PHONE_NUMBER": 2}`` is a count), and for an ambiguous name (``name``, ``address``) of the shape that name
        would hold."""
        stripped = value.strip()
        if stripped.lower() in _EMPTY_VALUES or (stripped.startswith("<") and stripped.endswith(">")):
            return False
        if stripped.isdigit():
            minimum = 3 if name in _POSTCODES else _MIN_DIGITS.get(self.keys.get(name, ""))
            return minimum is not None and len(stripped) >= minimum
        check = self._ambiguous.get(name)
        return check is None or check(stripped)
