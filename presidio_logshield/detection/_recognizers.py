"""Tier 2: validated patterns and secrets, as Presidio recognizers registered in a ``RecognizerRegistry``.

Every recognizer carries ``gates``: cheap tests (substring look-ups, then at most one short regular
expression) one of which must pass for the recognizer to be worth running on a text. A text no gate opens
for never reaches Presidio at all — most log lines.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Sequence

from presidio_analyzer import LocalRecognizer

from ._base import Gate, RegexRecognizer, Rule, before
from ._presidio import GatedEmailRecognizer, GatedIbanRecognizer, LogPhoneRecognizer

__all__ = ["build_pattern_recognizers"]


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_CARD_BRANDS = (
    (re.compile(r"4"), (13, 16, 19)),                                  # Visa
    (re.compile(r"5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)"), (16,)),      # Mastercard
    (re.compile(r"3[47]"), (15,)),                                     # Amex
    (re.compile(r"6(?:011|5|4[4-9]|22)"), (16, 19)),                   # Discover, UnionPay
    (re.compile(r"3(?:0[0-5]|[689])"), (14, 16)),                      # Diners
    (re.compile(r"35(?:2[89]|[3-8])"), (16, 19)),                      # JCB
    (re.compile(r"62"), (16, 17, 18, 19)),                             # UnionPay
    (re.compile(r"5[06-8]|6\d"), (12, 13, 14, 15, 16, 17, 18, 19)),    # Maestro
)


def _card(text: str, match: re.Match[str]) -> float | None:
    raw = match.group("n")
    digits = re.sub(r"\D", "", raw)
    if len(set(digits)) < 2 or not _luhn(digits):
        return None
    if not any(prefix.match(digits) and len(digits) in lengths for prefix, lengths in _CARD_BRANDS):
        return None
    # Separators must be consistent (4111 1111 1111 1111 / 4111-1111-...), or absent.
    seps = set(re.findall(r"\D", raw))
    if len(seps) > 1:
        return None
    return 1.0


_SSN_CONTEXT = re.compile(r"ssn|social\s*security|\bsocial\b|tax\s*id|\btin\b")


def _ssn(text: str, match: re.Match[str]) -> float | None:
    area, group, serial = match.group("a"), match.group("g"), match.group("s")
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return None
    if len(set(area + group + serial)) == 1:
        return None
    sep1, sep2 = match.group("s1"), match.group("s2")
    if sep1 != sep2:
        return None
    if sep1:  # 123-45-6789: the shape is distinctive
        return 0.85
    return 0.8 if _SSN_CONTEXT.search(before(text, match)) else None


#: A dotted quad right after one of these words is a version, not an address: ``version 10.2.3.4``, ``openssl
#: 3.0.11.1``, ``kernel 5.10.0.1``.
_VERSION_CONTEXT = re.compile(
    r"(?:^|[^a-z])(?:version|ver|release|build|firmware|v|rev|revision|protocol|oid|openssl|openssh|libssl|kernel|"
    r"linux|python|java|jdk|jre|nodejs|npm|golang|ruby|perl|php|nginx|apache|httpd|tomcat|jetty|chrome|chromium|"
    r"firefox|safari|msie|windows|macos|osx|ios|android|ubuntu|debian|centos|rhel|fedora|alpine|docker|kubernetes|"
    r"kubelet|kubectl|helm|terraform|postgres|postgresql|mysql|mariadb|redis|mongodb|elasticsearch|kafka|zookeeper|"
    r"hadoop|glibc|gcc|clang|llvm|bash|git|curl|wget|dotnet|sdk|bios|driver|package|pkg|patch)[\s:=_/-]*$")
#: ``Chrome/120.0.0.0``, ``openssl-3.0.11.1``: a product token (a word starting a token) and its version.
_PRODUCT_VERSION = re.compile(r"(?:^|[\s(\[;,\"'])(?P<word>[A-Za-z][\w.+]*)[/-]$")
_ADDRESS_WORDS = frozenset({"ip", "ipv4", "host", "addr", "address", "node", "server", "client", "peer", "src", "dst"})
#: ``/8`` after an address: a CIDR prefix length.
_PREFIX = re.compile(r"/(\d{1,3})(?![\d.])")


def _network(text: str, end: int, address: str) -> bool:
    """True when the address is a network in CIDR notation (``10.0.0.0/8``, ``2001:db8::/32``: host bits all zero), not
    a host's address; ``192.168.1.7/24`` (an interface address with its prefix) and ``/32`` are hosts."""
    prefix = _PREFIX.match(text, end)
    if prefix is None:
        return False
    try:
        network = ipaddress.ip_network(f"{address}/{prefix.group(1)}", strict=True)
    except ValueError:
        return False  # host bits set, or not a prefix length
    return network.num_addresses > 1


def _valid_ipv4(value: str) -> bool:
    """``ipaddress.IPv4Address(value)`` would accept it (four ASCII decimal octets <= 255, no leading zeros),
    without building the object and its exception: a third of the cost of a line with an address."""
    octets = value.split(".")
    if len(octets) != 4:
        return False
    for octet in octets:
        if not octet or len(octet) > 3 or not (octet.isascii() and octet.isdigit()):
            return False
        if (octet[0] == "0" and octet != "0") or int(octet) > 255:
            return False
    return True


def _ipv4(text: str, match: re.Match[str]) -> float | None:
    value = match.group("ip")
    if not _valid_ipv4(value):
        return None
    context = text[max(0, match.start() - 40):match.start()]
    if _VERSION_CONTEXT.search(context[-20:].lower()):
        return None
    product = _PRODUCT_VERSION.search(context)
    if product is not None and product.group("word").lower() not in _ADDRESS_WORDS:
        return None
    if text[match.end():match.end() + 1] == "/" and _network(text, match.end(), value):
        return None
    return 0.9


def _ipv6(text: str, match: re.Match[str]) -> float | None:
    value = match.group("ip")
    if value.count(":") < 2:
        return None
    try:
        ipaddress.IPv6Address(value.split("%", 1)[0])
    except ValueError:
        return None
    # "12:34:56" style times are not IPv6; a valid IPv6 needs "::" or 8 groups.
    if "::" not in value and value.count(":") < 7:
        return None
    if value == "::":
        return None
    if text[match.end():match.end() + 1] == "/" and _network(text, match.end(), value.split("%", 1)[0]):
        return None
    return 0.9


def _url_credentials(text: str, match: re.Match[str]) -> float | None:
    """``user:password@`` in a URL; an unencoded ``/`` may be in the password (``redis://:p/ss@cache``), but
    ``host:8080/users/bob@example.com`` is a port and a path."""
    password = match.group("ui").partition(":")[2]
    if "/" in password and password.split("/", 1)[0].isdigit():
        return None
    return 0.95


def _b64json(segment: str) -> bool:
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        return isinstance(json.loads(data), dict)
    except (binascii.Error, ValueError):
        return False


def _jwt(text: str, match: re.Match[str]) -> float | None:
    return 0.95 if _b64json(match.group("h")) else 0.8


def _basic(text: str, match: re.Match[str]) -> float | None:
    value = match.group("v")
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return 0.9 if b":" in decoded else None


def _bearer(text: str, match: re.Match[str]) -> float | None:
    value = match.group("v")
    if value.isalpha() and value.islower():
        return None  # "Bearer authentication failed"
    return 0.9


_AWS_CONTEXT = re.compile(r"aws|secret|amazon|s3|iam")


def _aws_secret(text: str, match: re.Match[str]) -> float | None:
    value = match.group("v")
    if re.fullmatch(r"[0-9a-fA-F]+", value):
        return None  # a 40-hex SHA-1 (git commit, checksum)
    if not (re.search(r"[A-Z]", value) and re.search(r"[a-z]", value) and re.search(r"\d", value)):
        return None
    return 0.85 if _AWS_CONTEXT.search(before(text, match, 80)) else None


def build_pattern_recognizers(key_tier: LocalRecognizer | None, phone_regions: Sequence[str]) -> list[LocalRecognizer]:
    """Every tier-2 recognizer and the key-name tier's (if any), in a fixed order (the order is part of the
    deterministic output)."""

    recognizers: list[LocalRecognizer] = [
        RegexRecognizer("PRIVATE_KEY", [Rule("pem", re.compile(
            r"-----BEGIN (?P<kind>(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----"
            r"(?:.*?-----END (?P=kind)-----|.*\Z)", re.DOTALL), 1.0)],
            gates=[Gate(["-----BEGIN"], r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY")]),
        RegexRecognizer("JWT", [Rule("jwt", re.compile(
            r"\b(?P<h>eyJ[A-Za-z0-9_-]{5,})\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), validate=_jwt)],
            gates=[Gate(["eyJ"])]),
        RegexRecognizer("URL_CREDENTIALS", [Rule("url", re.compile(
            r"\b[A-Za-z][A-Za-z0-9+.-]{0,20}://(?P<ui>[^\s/?#@\"'<>]*:(?:[^\s/?#\"'<>]*|[^\s?#\"'<>@]*))"
            r"@[^\s/?#@\"'<>]"), group="ui", validate=_url_credentials)],
            gates=[Gate(["://"], r"://[^\s/?#@]*:[^\s?#]*@")]),
        RegexRecognizer("AWS_ACCESS_KEY_ID", [Rule("akid", re.compile(
            r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b"), 0.95)],
            gates=[Gate(["AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "ABIA", "ACCA",
                         "A3T"])]),
        RegexRecognizer("AWS_SECRET_ACCESS_KEY", [Rule("aws-secret", re.compile(
            r"(?<![A-Za-z0-9/+=])(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"), validate=_aws_secret)],
            gates=[Gate(["aws", "secret", "amazon", "s3", "iam"], r"[A-Za-z0-9/+]{40}", lower=True)]),
        RegexRecognizer("API_KEY", [
            Rule("github", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b")),
            Rule("slack", re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{10,}")),
            Rule("slack-webhook", re.compile(r"hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,}")),
            Rule("stripe", re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}\b")),
            Rule("google", re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])")),
            Rule("openai", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}")),
            Rule("gitlab", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
            Rule("npm", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
            Rule("sendgrid", re.compile(r"\bSG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}")),
        ], gates=[Gate(["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "hooks.slack", "_live_", "_test_",
                 "AIza", "sk-", "glpat-", "npm_", "SG."])]),
        RegexRecognizer("AUTH_TOKEN", [
            Rule("bearer", re.compile(r"(?i:\bbearer)\s+(?P<v>[A-Za-z0-9._~+/=-]{8,})"), group="v",
                 validate=_bearer),
            Rule("basic", re.compile(r"(?i:\bbasic)\s+(?P<v>[A-Za-z0-9+/]{6,}={0,2})"), group="v",
                 validate=_basic),
        ], gates=[Gate(["bearer", "basic"], lower=True)]),
        *([key_tier] if key_tier is not None else []),
        # A card logged as a float (``4111111111111111.0``, ``%f``) is found with its zero fraction.
        RegexRecognizer("CREDIT_CARD", [Rule("card", re.compile(
            r"(?<![\w.-])(?P<n>(?:\d[ -]?){11,18}\d)(?:\.0+)?(?![\w-]|\.\d)"), validate=_card)],
            gates=[Gate(regex=r"\d{4}[ -]?\d{4}[ -]?\d{4}")], rule_id="pattern:CREDIT_CARD"),
        RegexRecognizer("US_SSN", [Rule("ssn", re.compile(
            r"(?<![\w.-])(?P<a>\d{3})(?P<s1>[- ]?)(?P<g>\d{2})(?P<s2>[- ]?)(?P<s>\d{4})(?:\.0+)?(?![\w-]|\.\d)"),
            validate=_ssn)],
            gates=[Gate(regex=r"\d{3}[- ]\d{2}[- ]\d{4}"),
                   # "tin" at a word end only, like the validator's ``\btin\b`` (not "getting", "waiting").
                   Gate(["ssn", "social", "tax", "tin"], r"\d{9}", lower=True,
                        prefilter_lower=("ssn", "social", "tax", r"tin\b"))]),
        RegexRecognizer("IP_ADDRESS", [
            Rule("ipv4", re.compile(r"(?<![\w.])(?P<ip>(?:\d{1,3}\.){3}\d{1,3})(?![\w]|\.\d)"), validate=_ipv4),
            Rule("ipv6", re.compile(
                r"(?<![\w:.])(?P<ip>(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?"
                r"(?:%[\w.]+)?)(?![\w:])"), validate=_ipv6),
        ], gates=[Gate(regex=r"\d\.\d{1,3}\.\d{1,3}\.\d"), Gate(["::"]),
                  Gate([":"], r"[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]")]),
        GatedEmailRecognizer(),
        GatedIbanRecognizer(),
        LogPhoneRecognizer(supported_regions=tuple(phone_regions)),
    ]
    return recognizers
