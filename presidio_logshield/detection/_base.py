"""Building blocks of the pattern tier: gates (cheap pre-checks) and regex recognizers for Presidio."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from presidio_analyzer import EntityRecognizer, LocalRecognizer, RecognizerResult

__all__ = ["SECRET_ENTITIES", "Gate", "RegexRecognizer", "Rule", "Validator", "before"]

#: Entity types that are credentials: masked without keeping any character.
SECRET_ENTITIES = frozenset({
    "SECRET", "JWT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AUTH_TOKEN", "PRIVATE_KEY",
    "URL_CREDENTIALS", "API_KEY",
})

Validator = Callable[[str, "re.Match[str]"], float | None]


class Gate:
    """Opens when one of ``literals`` occurs in the text (lower-cased first when ``lower``) and then
    ``regex`` (if any) matches; with no literals only the regex is tried.

    ``prefilter()`` is a necessary condition as a regex source, for one pass over a text for all gates at once:
    the gate's regex, else its literals (on the lower-cased text when ``lower``). ``prefilter_lower`` overrides
    it with a tighter pattern on the lower-cased text, e.g. a context word only as a whole word.
    """

    __slots__ = ("literals", "lower", "prefilter_lower", "regex")

    def __init__(self, literals: Sequence[str] = (), regex: str | None = None, *, lower: bool = False,
                 prefilter_lower: Sequence[str] | None = None) -> None:
        self.literals = tuple(literals)
        self.lower = lower
        self.regex = re.compile(regex) if regex else None
        self.prefilter_lower = tuple(prefilter_lower) if prefilter_lower is not None else None

    def prefilter(self) -> tuple[tuple[str, ...], bool]:
        """``(regex alternatives, on_lowered_text)``: where the gate can open, one of these matches."""
        if self.prefilter_lower is not None:
            return self.prefilter_lower, True
        if self.lower and self.literals:
            return tuple(re.escape(lit) for lit in self.literals), True
        if self.regex is not None:
            return (self.regex.pattern,), False
        return tuple(re.escape(lit) for lit in self.literals), False

    def opens(self, text: str, lowered: str) -> bool:
        if self.literals:
            haystack = lowered if self.lower else text
            if not any(lit in haystack for lit in self.literals):
                return False
        return self.regex is None or self.regex.search(text) is not None

    def opens_after_prefilter(self, text: str, lowered: str) -> bool:
        """:meth:`opens`, for a text in which :meth:`prefilter` is known to match: only the part of the condition
        the pre-filter does not already establish is checked."""
        if self.prefilter_lower is not None:
            return self.opens(text, lowered)
        if self.lower and self.literals:  # the pre-filter was the literals
            return self.regex is None or self.regex.search(text) is not None
        if self.regex is not None:  # the pre-filter was the regex
            return not self.literals or any(lit in text for lit in self.literals)
        return True  # the pre-filter was the literals, and there is nothing else


def _gates(*gates: Gate) -> tuple[Gate, ...]:
    return gates


@dataclass(frozen=True)
class Rule:
    """One regular expression; ``group`` is the part replaced; ``validate`` returns a score or None."""

    name: str
    pattern: re.Pattern[str]
    score: float = 0.9
    group: str | int = 0
    validate: Validator | None = None


class RegexRecognizer(LocalRecognizer):
    """A Presidio recognizer over stdlib ``re`` rules, with access to the whole text for validation."""

    def __init__(self, entity: str, rules: Sequence[Rule], gates: Sequence[Gate], *,
                 rule_id: str | None = None) -> None:
        self.rules = tuple(rules)
        self.gates = tuple(gates)
        self.rule_id = rule_id or f"pattern:{entity}"
        super().__init__(supported_entities=[entity], supported_language="en",
                         name=f"logshield:{entity}")

    def load(self) -> None:
        """Nothing to load: rules are compiled at construction."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: object = None) -> list[RecognizerResult]:
        entity = self.supported_entities[0]
        results: list[RecognizerResult] = []
        for rule in self.rules:
            for match in rule.pattern.finditer(text):
                score = rule.validate(text, match) if rule.validate else rule.score
                if score is None:
                    continue
                start, end = match.span(rule.group)
                if start < 0 or end <= start:
                    continue
                results.append(RecognizerResult(
                    entity_type=entity, start=start, end=end, score=score,
                    recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                          RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}))
        if not results or (len(results) == 1 and results[0].score > 0):
            return results  # what remove_duplicates would return, without its sorting and grouping
        return EntityRecognizer.remove_duplicates(results)


def before(text: str, match: re.Match[str], width: int = 40) -> str:
    """The lower-cased ``width`` characters before a match (where context words are looked for)."""
    return text[max(0, match.start() - width):match.start()].lower()
