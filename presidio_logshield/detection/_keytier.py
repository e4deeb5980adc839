"""Tier 1 in free text: values after the name of a secret or a personal field.

Recognised forms: ``key=value``, ``key: value``, ``"key": "value"``, ``key=>value`` (quoted values are taken whole, a
bare value up to the next space or ``,;&``); ``--key value`` and ``key is value`` (secrets only); ``Cookie:`` and
``Set-Cookie:`` headers (every pair); ``curl -u user:password``; URL-encoded pairs (``password%3Dhunter2``).

What counts as a value:

- after a strong secret name (``password``, ``pwd``, ``pass``, ``pw``, ``secret``, ``api_key``, ``access_token``,
  configured ``secret_keys``): anything of one character or more;
- after a weak one (``token``, ``session``, ``sid``, ``auth``, and every plural matched by its singular: ``tokens``,
  ``refresh_tokens``, ``sessions``): anything but a plain number (``Session:
  30546174_3349806149``, ``sessionid: 0x24edfaa8717002d``), after ``auth`` also not a single word (``auth:SIMPLE``),
  and after ``:`` not a single plain word (``token: expired``);
- after a personal name (``first_name``, ``city``, ``iban``…): the value and the words that continue it in the shape
  of that field (``name=John Smith``, ``phone=+1 415 555 2671``, ``address=221B Baker Street``), except empty markers
  (``null``, ``-``); ``name`` and ``address`` only when the value looks like a full name or a street address.

An unquoted value of several words after a secret name is taken up to its first space: ``password=my secret pass``
replaces ``my`` only (quote it). Every finding names its rule from a fixed vocabulary: ``key:<built-in or configured
name>`` (``key:password`` for ``db_password``), ``pattern:curl-user``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from presidio_analyzer import LocalRecognizer, RecognizerResult

from ._base import Gate
from ._keys import PersonalKeyMatcher, SecretKeyMatcher

__all__ = ["KEY_TIER", "RULE_KEY", "KeyTierRecognizer"]

#: The recognizer's name: its findings count whatever ``entities`` selects.
KEY_TIER = "logshield:keys"
#: ``recognition_metadata`` entry holding a finding's rule id.
RULE_KEY = "logshield_rule"

_KV_KEY = (r"(?<![\w.\\/-])(?P<kq>[\"']?)(?P<key>[A-Za-z_][\w.-]{0,60})(?P=kq)\s*(?P<sep>:|=>|=)(?!//)\s*")
_KV_VALUE = (r"(?:\"(?P<dq>(?:[^\"\\\n]|\\.)*)\"|'(?P<sq>[^'\n]*)'"
             r"|(?P<bare>(?:(?i:bearer|basic|digest|negotiate|token)\s+)?[^\s,;&\"'}\])<>]+))")
_KV = re.compile(_KV_KEY + _KV_VALUE)

#: ``--password hunter2`` / ``--password=hunter2`` (a command-line flag and its argument) or ``password is hunter2``
#: (prose); a quoted value is taken whole, a bare one without trailing punctuation.
_SPACED = re.compile(
    r"(?:(?<![\w-])--(?P<flag>[A-Za-z][\w.-]{0,60})(?:[ \t]+|=)(?!-)"
    r"|(?<![\w.\\/-])(?P<key>[A-Za-z_][\w.-]{0,60})[ \t]+(?i:is|was)[ \t]+)"
    r"(?:(?P<q>[\"'`])(?P<quoted>[^\"'`\n]+)(?P=q)|(?P<word>[^\s\"'<>`]*[^\s\"'<>`.,;:!?)\]}]))")
_SPACED_GATE = r"--[A-Za-z]|[ \t](?i:is|was)[ \t]"
#: One of these is in every built-in secret name (lower-cased): the literals of the secret gates.
_SECRET_WORDS = ("pass", "pwd", "secret", "token", "key", "auth", "cookie", "session", "credential", "jwt")
#: Where a key ends and its value begins in text: the separator of ``key=value``, ``key: value``, ``key%3Dvalue``.
_SEPARATOR = r"[\"']?[ \t]*(?:[:=]|%3d)"

#: ``Cookie: a=1; sid=s%3Aabc`` / ``Set-Cookie: sid=abc; HttpOnly``: every pair after the header name.
_COOKIE_PAIR = r"[^\s;=,\"'<>]+(?:=[^\s;\"'<>]*)?"
_COOKIE = re.compile(r"(?<![\w-])(?P<name>(?i:set-cookie|cookie))2?[ \t]*:[ \t]*"
                     rf"(?P<v>[^\s;=,\"'<>]+=[^\s;\"'<>]*(?:;[ \t]*{_COOKIE_PAIR})*)")
#: ``curl -u admin:hunter2``, ``--user 'admin:hunter2'``, ``--proxy-user a:b``.
_CURL = re.compile(r"(?<![\w-])(?:-[uU]|--user|--proxy-user)(?:[ \t]+|=)(?P<q>[\"']?)(?P<v>[^\s:\"']*:[^\s\"']+)(?P=q)")
#: ``password%3Dhunter2`` inside URL-encoded text (a form body, an encoded query); the value ends at ``%26`` (``&``).
_ENCODED = re.compile(r"(?:(?<=%26)|(?<=%3[Ff])|(?<![\w.-]))(?P<key>[A-Za-z_][\w.-]{0,60})%3[Dd]"
                      r"(?P<v>(?:[^\s&\"'<>,;%]|%(?!26)[0-9A-Fa-f]{2})+)")

_NUMBER = re.compile(r"0x[0-9a-fA-F]+|[\d_.:-]+")
_PLACEHOLDERS = frozenset({"null", "None", "***", "[REDACTED]"})
#: A word continuing a bare value (``name=John Smith``); the value stops before a word that is itself a key.
_MORE = re.compile(r"[)\]]?[ \t]+([^\s,;&\"'<>=:(){}\[\]]+)")
_KEY_AHEAD = re.compile(r"[ \t]*(?:[:=]|%3[dD])")
_MAX_MORE = 5
#: How many levels of pairs inside values are looked into.
_NESTING = 3
#: An unmatched key's bare value up to this long may be the next key: the scan resumes at its start.
_RESUME_WITHIN = 64
_INNER_SEPARATOR = re.compile(r"[:=]|%3[dD]")

Shape = Callable[[str], bool]


def _title(word: str) -> bool:
    return word[0].isupper() or word in ("van", "von", "de", "del", "da", "di", "du", "le", "la", "der", "den", "bin")


def _address(word: str) -> bool:
    return word[0].isupper() or word[0].isdigit()


def _numeric(word: str) -> bool:
    return any(c.isdigit() for c in word) or (len(word) <= 4 and word.isalnum() and word.isupper())


def _no_more(word: str) -> bool:
    return False


_ENTITY_SHAPES: dict[str, Shape] = {
    "PERSON": _title, "LOCATION": _title, "PHONE_NUMBER": _numeric, "CREDIT_CARD": _numeric, "US_SSN": _numeric,
    "IBAN_CODE": _numeric, "DATE_OF_BIRTH": _numeric, "EMAIL_ADDRESS": _no_more,
}


def _shape(entity: str, name: str) -> Shape:
    if "address" in name or "street" in name:
        return _address
    if "zip" in name or "post" in name:
        return _numeric
    return _ENTITY_SHAPES.get(entity, _no_more)


def _weak_value(name: str, value: str, sep: str) -> bool:
    """Whether a value after a weak secret name (``token``, ``session``, ``sid``, ``auth``) is a credential."""
    if _NUMBER.fullmatch(value):
        return False  # a counter or a numeric id: "Session: 30546174_3349806149", "sessionid: 0x24edfaa8717002d"
    # Not an auth method ("auth:SIMPLE", "auth=oidc") nor a state ("token: expired").
    word = value.isalpha() and (value.islower() or value.isupper() or value.istitle())
    return not (value.isalpha() and name == "auth") and not (word and sep == ":")


def _token_like(value: str) -> bool:
    """A value after a weak name in prose (``--session 3``, ``token is 0x1f``): letters and digits mixed over 8+
    characters, or 20+ characters, or an auth scheme followed by a credential."""
    if re.match(r"(?i)(?:bearer|basic|digest|negotiate|token)\s+\S", value):
        return True
    if _NUMBER.fullmatch(value):
        return False
    has_letter = any(c.isalpha() for c in value)
    has_digit = any(c.isdigit() for c in value)
    return (len(value) >= 8 and has_letter and has_digit) or (len(value) >= 20 and has_letter)


def _spelled(words: tuple[str, ...]) -> str:
    """A key as a pattern on lower-cased text: its words with an optional ``_``, ``-`` or ``.`` between them."""
    return "[_.-]?".join(re.escape(word) for word in words)


def _key_gate(spellings: list[str]) -> Gate:
    """Opens on one of these keys — whole, not the end of a longer one (``name=`` but not ``hostname=``) — followed by
    a separator: one Hyperscan pattern, checked again with ``re`` on the (case-folded) text."""
    keys = "|".join(sorted(spellings, key=lambda s: (-len(s), s)))
    body = f"(?:{keys}){_SEPARATOR}"
    return Gate(regex=f"(?i:(?:^|[^a-z0-9_.-]){body})", prefilter_lower=(f"[^a-z0-9_.-]{body}", f"^{body}"))


def _extra_key_gates(extras: tuple[str, ...], regex: str) -> list[Gate]:
    """``dob=…`` in free text when ``dob`` is a configured secret key: its letters in order, separators allowed
    between them (the matcher compares keys without separators: ``D_O_B`` is ``dob``)."""
    if not extras:
        return []
    words = tuple("[^a-z0-9]*".join(re.escape(ch) for ch in extra) for extra in extras)
    return [Gate(regex=regex, prefilter_lower=words)]


class KeyTierRecognizer(LocalRecognizer):
    """The key-name tier over free text, for Presidio's registry. Planned as SECRET, it returns findings of the
    entity type each key holds (SECRET, PERSON, LOCATION, …)."""

    def __init__(self, secrets: SecretKeyMatcher, personal: PersonalKeyMatcher) -> None:
        self.secrets = secrets
        self.personal = personal
        personal_words = [_spelled(s) for s in personal.spellings() if len(s) > 1 or len(s[0]) > 1]
        self.gates = (
            Gate(_SECRET_WORDS, r"[:=]|%3[dD]", lower=True),
            *_extra_key_gates(secrets.extras, r"[:=]|%3[dD]"),
            Gate(_SECRET_WORDS, _SPACED_GATE, lower=True),
            *_extra_key_gates(secrets.extras, _SPACED_GATE),
            Gate(regex=f"(?i:pw{_SEPARATOR})", prefilter_lower=(f"pw{_SEPARATOR}",)),  # pw=, db_pw=, adminPw:
            _key_gate(["sid"]),  # whole keys only: not "inside:" or "aside="
            *([_key_gate(personal_words)] if personal_words else []),
            Gate(regex=r"(?:-[uU]|--user|--proxy-user)[ \t=]+[\"']?[^\s:\"']*:"),
        )
        super().__init__(supported_entities=["SECRET"], supported_language="en", name=KEY_TIER)

    def load(self) -> None:
        """Nothing to load: patterns are compiled at import."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: object = None) -> list[RecognizerResult]:
        found: list[RecognizerResult] = []
        # A pair whose key names nothing may hide one: its short bare value may be the next key ("note: pw: x",
        # "body=full_name=…"), so the scan resumes there; a quoted or long value may hold pairs ('{"data":
        # "password=x"}', "url=https://h/?token=x"), so it is scanned again, a few levels deep. Resuming only inside
        # short values, and rescanning spans that do not overlap, keeps the work linear in the text.
        spans = [(0, len(text))]
        for _ in range(_NESTING):
            inner: list[tuple[int, int]] = []
            for low, high in spans:
                position = low
                while (match := _KV.search(text, position, high)) is not None:
                    position = self._pair(text, match, found, inner)
            if not inner:
                break
            spans = inner
        for match in _SPACED.finditer(text):
            self._spaced(match, found)
        lowered = text.lower()
        if "cookie" in lowered:
            for match in _COOKIE.finditer(text):
                name = "setcookie" if match.group("name").lower().startswith("set") else "cookie"
                self._add(found, "SECRET", *match.span("v"), 0.95, f"key:{name}")
        if "%3d" in lowered:
            for match in _ENCODED.finditer(text):
                self._encoded(match, found)
        if "-u" in lowered:  # -u, -U, --user, --proxy-user
            for match in _CURL.finditer(text):
                user, _, password = match.group("v").partition(":")
                if not (user.isdigit() and password.isdigit()):  # "docker run -u 1000:1000": uid:gid
                    self._add(found, "SECRET", *match.span("v"), 0.9, "pattern:curl-user")
        return found

    def _add(self, found: list[RecognizerResult], entity: str, start: int, end: int, score: float, rule: str) -> None:
        if end > start:
            found.append(RecognizerResult(entity_type=entity, start=start, end=end, score=score, recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: self.name, RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                RULE_KEY: rule}))

    def _pair(self, text: str, match: re.Match[str], found: list[RecognizerResult],
              inner: list[tuple[int, int]]) -> int:
        """Add the finding of one ``key=value`` match, if any, and return where the scan goes on; a value not taken
        that may hold a pair of its own goes to ``inner``."""
        key = match.group("key")
        group = "dq" if match.group("dq") is not None else "sq" if match.group("sq") is not None else "bare"
        value = match.group(group)
        start, end = match.span(group)
        taken = self._finding(text, match, key, group, value, start, end, found)
        if taken is not None:
            return taken
        if group == "bare" and len(value) <= _RESUME_WITHIN:
            return start
        if _INNER_SEPARATOR.search(value):
            inner.append((start, end))
        return match.end()

    def _finding(self, text: str, match: re.Match[str], key: str, group: str, value: str, start: int, end: int,
                 found: list[RecognizerResult]) -> int | None:
        """Add the finding of a pair whose key names a secret or a personal field; return where it ends, or None."""
        secret = self.secrets.classify(key)
        if secret is not None:
            name, strong = secret
            if not value or value in _PLACEHOLDERS or value.startswith("<"):
                return None
            if not strong and not _weak_value(name, value, match.group("sep")):
                return None
            self._add(found, "SECRET", start, end, 0.9, f"key:{name}")
            return match.end()
        personal = self.personal.match(key)
        if personal is None:
            return None
        entity, name = personal
        if group == "bare":
            end = self._continue(text, end, _shape(entity, name))
            while end > start and text[end - 1] in ".!?)]":
                end -= 1
        if not self.personal.accepts(name, text[start:end]):
            return None
        self._add(found, entity, start, end, 0.9, f"key:{name}")
        return max(end, match.end())

    @staticmethod
    def _continue(text: str, end: int, shape: Shape) -> int:
        """Where a bare value ends once the words that continue it in ``shape`` are added (``John`` → ``John Smith``);
        a word followed by a separator is the next key, not part of the value."""
        for _ in range(_MAX_MORE):
            more = _MORE.match(text, end)
            if more is None or not shape(more.group(1)) or _KEY_AHEAD.match(text, more.end()):
                break
            end = more.end()
        return end

    def _spaced(self, match: re.Match[str], found: list[RecognizerResult]) -> None:
        secret = self.secrets.classify(match.group("flag") or match.group("key"))
        if secret is None:
            return
        name, strong = secret
        group = "quoted" if match.group("quoted") is not None else "word"
        value = match.group(group)
        if value in _PLACEHOLDERS:
            return
        if value.isalpha() and (value.islower() or value.isupper() or value.istitle()):
            return  # a word: "password is incorrect", "--password Required", "token was EXPIRED"
        if not strong and not _token_like(value):
            return  # "--session 3", "token is 0x1f": a number
        self._add(found, "SECRET", *match.span(group), 0.85, f"key:{name}")

    def _encoded(self, match: re.Match[str], found: list[RecognizerResult]) -> None:
        key, value = match.group("key"), match.group("v")
        secret = self.secrets.classify(key)
        if secret is not None:
            name, strong = secret
            if strong or _weak_value(name, value, "="):
                self._add(found, "SECRET", *match.span("v"), 0.9, f"key:{name}")
            return
        personal = self.personal.match(key)
        if personal is not None and self.personal.accepts(personal[1], value.replace("%20", " ").replace("+", " ")):
            self._add(found, personal[0], *match.span("v"), 0.9, f"key:{personal[1]}")
