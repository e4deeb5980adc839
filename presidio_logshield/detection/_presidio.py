"""Presidio's own recognizers for e-mail, IBAN and phone numbers, gated and tuned for log lines."""

from __future__ import annotations

import logging
import re

import phonenumbers
import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.pattern_recognizer import REGEX_TIMEOUT_SECONDS
from presidio_analyzer.predefined_recognizers import EmailRecognizer, IbanRecognizer, PhoneRecognizer

from ._base import Gate

__all__ = ["GatedEmailRecognizer", "GatedIbanRecognizer", "LogPhoneRecognizer"]

logger = logging.getLogger("presidio-analyzer")


def _gates(*gates: Gate) -> tuple[Gate, ...]:
    return gates


#: ``alice%40example.com`` (URL-encoded); it may start right after an encoded ``=``, ``&``, ``:``, space or comma.
_ENCODED_EMAIL = re.compile(
    r"(?:(?<=%3[Dd])|(?<=%26)|(?<=%2[0Cc])|(?<=%3[Aa])|(?<![\w.%+-]))"
    r"(?:[A-Za-z0-9._+-]|%(?!40|3[Dd]|26)[0-9A-Fa-f]{2})+%40[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
#: After an address: ``:path`` makes it an scp/SSH target (``git@github.com:org/repo.git``).
_SSH_PATH = re.compile(r":[\w~./-]")


class GatedEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail patterns, validated offline (no ``tldextract`` suffix-list download), plus URL-encoded
    addresses; ``user@host:path`` (an scp-style SSH remote) is not an e-mail address. (``https://token@host`` still is
    one: the user part of a URL may be a credential.)"""

    gates = _gates(Gate(["@"]), Gate(["%40"]))
    rule_id = "presidio:EmailRecognizer"

    def analyze(self, text: str, entities: list[str], nlp_artifacts: object = None,
                regex_flags: int | None = None) -> list[RecognizerResult]:
        results = self.presidio_analyze(text, entities, nlp_artifacts, regex_flags)
        if results and ":" in text:
            results = [r for r in results if not _SSH_PATH.match(text, r.end)]
        if "%40" in text:
            for match in _ENCODED_EMAIL.finditer(text):
                results.append(RecognizerResult(
                    entity_type=self.supported_entities[0], start=match.start(), end=match.end(), score=0.9,
                    recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                          RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}))
        return results

    def validate_result(self, pattern_text: str) -> bool:
        domain = pattern_text.rpartition("@")[2]
        tld = domain.rpartition(".")[2]
        return "." in domain and tld.isalpha() and len(tld) >= 2

    def presidio_analyze(self, text: str, entities: list[str], nlp_artifacts: object = None,
                         regex_flags: int | None = None) -> list[RecognizerResult]:
        """``PatternRecognizer.analyze`` for Presidio's e-mail patterns — same compiled patterns, flags, timeout,
        validation and scores — without the explanation object, clock reads and debug call it makes per match
        (a third of the cost of a line with an address). The results are the same."""
        flags = regex_flags or self.global_regex_flags
        results: list[RecognizerResult] = []
        for pattern in self.patterns:
            if not pattern.compiled_regex or pattern.compiled_with_flags != flags:
                pattern.compiled_with_flags = flags
                pattern.compiled_regex = regex.compile(pattern.regex, flags=flags)
            try:
                for match in pattern.compiled_regex.finditer(text, timeout=REGEX_TIMEOUT_SECONDS):
                    start, end = match.span()
                    if start == end:
                        continue
                    current = text[start:end]
                    valid = self.validate_result(current)
                    score = pattern.score if valid is None else (
                        EntityRecognizer.MAX_SCORE if valid else EntityRecognizer.MIN_SCORE)
                    if self.invalidate_result(current):
                        score = EntityRecognizer.MIN_SCORE
                    if score > EntityRecognizer.MIN_SCORE:
                        results.append(RecognizerResult(
                            entity_type=self.supported_entities[0], start=start, end=end, score=score,
                            recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                                  RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}))
            except TimeoutError:
                logger.warning("Regex pattern '%s' timed out after %s seconds, skipping.", pattern.name,
                               REGEX_TIMEOUT_SECONDS)
        if len(results) > 1:
            results = EntityRecognizer.remove_duplicates(results)
        return results


_LOWER_IBAN = re.compile(r"[a-z]{2}\d{2}")
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class GatedIbanRecognizer(IbanRecognizer):
    """Presidio's IBAN recognizer (country formats and mod-97 checksum), also for lower-case IBANs
    (``de89370400440532013000``): with ``iban`` in the text, or digits only after the country code."""

    gates = _gates(Gate(regex=r"[A-Z]{2}\d{2} ?[A-Z0-9]{4}"), Gate(["iban"], r"[a-z]{2}\d{2}", lower=True),
                   Gate(regex=r"[a-z]{2}\d{2}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}"))
    rule_id = "presidio:IbanRecognizer"

    def analyze(self, text: str, entities: list[str], nlp_artifacts: object = None,
                regex_flags: int | None = None) -> list[RecognizerResult]:
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        if _LOWER_IBAN.search(text):
            seen = {(r.start, r.end) for r in results}
            # ASCII upper-casing keeps every offset; the checksum keeps random letter-digit runs out.
            results += [r for r in super().analyze(text.translate(_ASCII_UPPER), entities, nlp_artifacts, regex_flags)
                        if (r.start, r.end) not in seen]
        return results


#: ``.0`` after a run of digits: how a number logged as a float is written.
_ZERO_FRACTION = re.compile(r"(?<=\d)\.0+$")
_PHONE_CONTEXT = re.compile(r"phone|\btel\b|tel[:.]|mobile|\bcell|\bfax\b|\bsms\b|whatsapp|\bcall|contact|\bmob\b")


class LogPhoneRecognizer(PhoneRecognizer):
    """Presidio's phone recognizer, validated with ``phonenumbers`` over phone-shaped candidates only.

    Presidio runs ``PhoneNumberMatcher`` over the whole text once per region (milliseconds on a line full of
    numbers); here a regex picks the phone-shaped runs first and only those are parsed and validated.
    Formatted numbers (``+44 20 7946 0958``, ``(415) 555-2671``, ``415-555-2671``) score 0.75; a bare run
    of digits (``4155552671``) is an id far more often than a phone in a log, so it needs a context word
    (``phone``, ``tel``, ``mobile``, …) in the 40 characters before it (a dict key such as ``mobile`` counts).
    """

    gates = _gates(
        Gate(["+"], r"\+\d"), Gate(["("], r"\(\d{2,5}\)[\s.-]?\d"),
        Gate(regex=r"\d[\s.-]\d{2,4}[\s.-]\d{3}"),
        Gate(["phone", "tel", "mobile", "cell", "fax", "sms", "whatsapp", "call", "contact", "mob"], r"\d{7}",
             lower=True))
    rule_id = "presidio:PhoneRecognizer"
    _candidate = re.compile(
        r"(?<![^\s(\[{\"'=:,;<>])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,5}\)[\s.-]?)?\d{1,14}(?:[\s.-]\d{1,8}){0,5}"
        r"(?=$|[\s)\]}\"',;<>]|\.(?!\d))")

    def analyze(self, text: str, entities: list[str], nlp_artifacts: object = None) -> list[RecognizerResult]:
        results = []
        for match in self._candidate.finditer(text):
            value = match.group(0).rstrip(" .-")
            end = match.start() + len(value)
            fraction = _ZERO_FRACTION.search(value)
            if fraction is not None and value[:fraction.start()].lstrip("+").isdigit():
                value = value[:fraction.start()]  # a number logged as a float: 4155552671.0
            digits = sum(map(str.isdigit, value))
            if not 7 <= digits <= 15:
                continue
            international = value.startswith("+") or "(" in value
            groups = re.split(r"[\s.-]+", value.lstrip("+"))
            if not international and re.match(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}", value):
                continue  # a date
            if not international and "." in value and len(groups) != 3:
                continue  # a version or an address: 7.2.7601.16415, 10.251.31.180
            window = text[max(0, match.start() - 40):match.start()].lower()
            if _PHONE_CONTEXT.search(window):
                score = 0.85
            elif international or (len(groups) == 3 and " " not in value):
                # 415-555-2671, 415.555.2671; space-separated columns ("3552 3534 3391") need context
                score = 0.75
            else:
                continue
            region = self._valid_region(value)
            if region is None:
                continue
            results.append(RecognizerResult(
                entity_type=self.supported_entities[0], start=match.start(), end=end,
                score=score, analysis_explanation=self._get_analysis_explanation(region),
                recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                      RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}))
        return results

    def _valid_region(self, value: str) -> str | None:
        regions = (None,) if value.startswith("+") else self.supported_regions
        for region in regions:
            try:
                number = phonenumbers.parse(value, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                return phonenumbers.region_code_for_number(number) or region or "ZZ"
        return None
