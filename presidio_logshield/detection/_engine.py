"""The detection engine: pre-filter (one Hyperscan pass per batch, ``re`` without it), the registry's pattern
recognizers called directly, one Presidio ``AnalyzerEngine`` for NER batched with ``nlp.pipe``."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry, RecognizerResult
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, NoOpNlpEngine

from ..config import DEFAULT_SPACY_MODELS, ENTITY_TYPES, RedactionConfig
from ._base import SECRET_ENTITIES, Gate
from ._keys import PersonalKeyMatcher, SecretKeyMatcher
from ._keytier import KEY_TIER, RULE_KEY, KeyTierRecognizer
from ._nlp import (
    NER_ENTITIES,
    LogSpacyRecognizer,
    OfflineSpacyNlpEngine,
    find_installed_model,
    name_runs,
    ner_candidate,
)
from ._recognizers import build_pattern_recognizers
from ._scan import build_scanner, build_word_scanner

__all__ = ["SUPPORTED_ENTITIES", "DetectionEngine", "Finding"]

logger = logging.getLogger("presidio_logshield.detection")

PATTERN_ENTITIES = ("PRIVATE_KEY", "JWT", "URL_CREDENTIALS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                    "API_KEY", "AUTH_TOKEN", "SECRET", "CREDIT_CARD", "US_SSN", "IP_ADDRESS",
                    "EMAIL_ADDRESS", "IBAN_CODE", "PHONE_NUMBER")
#: Found by the key-name tier only (``dob=…``, ``{"date_of_birth": …}``).
KEY_ONLY_ENTITIES = ("DATE_OF_BIRTH",)
SUPPORTED_ENTITIES = frozenset(PATTERN_ENTITIES) | frozenset(NER_ENTITIES) | frozenset(KEY_ONLY_ENTITIES)
assert SUPPORTED_ENTITIES == ENTITY_TYPES, "config.ENTITY_TYPES lists what the engine can find"
#: Lines per scan in :meth:`DetectionEngine.scan_lines` (a scan copies its chunk once or twice).
SCAN_CHUNK_LINES = 4096


class Finding(NamedTuple):
    """One detected span: ``text[start:end]`` is of ``entity_type``; ``rule`` names what found it. Immutable and
    ordered by position (a named tuple: built at half the cost of a frozen dataclass, for every finding)."""

    start: int
    end: int
    entity_type: str
    score: float
    rule: str


class _NoContextEnhancer(ContextAwareEnhancer):
    """Scores are final when recognizers return them (they read context from the raw text themselves)."""

    def __init__(self) -> None:
        super().__init__(context_similarity_factor=0.0, min_score_with_context_similarity=0.0,
                         context_prefix_count=0, context_suffix_count=0)

    def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers, context=None):  # noqa: ANN001
        return raw_results


class DetectionEngine:
    """Finds entities in many texts at once; the only object that talks to Presidio and spaCy."""

    def __init__(self, config: RedactionConfig, *, key_words: Iterable[str] = ()) -> None:
        """``key_words``: lower-case words that make a JSON key worth a look (see :meth:`scan_lines`), besides those
        of secret key names."""
        self.config = config
        wanted = SUPPORTED_ENTITIES if config.entities is None else SUPPORTED_ENTITIES & config.entities
        #: The content entity types selected; the key-name tier (``config.key_names``) reports whatever its keys hold.
        self.entities = frozenset(wanted)
        self.key_matcher = SecretKeyMatcher(config.secret_keys)
        self.personal_matcher = PersonalKeyMatcher(config.pii_keys)
        key_tier = KeyTierRecognizer(self.key_matcher, self.personal_matcher) if config.key_names else None
        recognizers = [r for r in build_pattern_recognizers(key_tier, config.phone_regions)
                       if r is key_tier or r.supported_entities[0] in self.entities]
        self._gates: list[tuple[Gate, str]] = [(g, r.supported_entities[0]) for r in recognizers for g in r.gates]
        self._prefilter = Prefilter(g for g, _ in self._gates)
        #: The id :meth:`scan_lines` reports for a JSON key containing one of ``key_words``.
        self.key_id = len(self._gates)
        self._scanner = build_scanner([(index, alt, lowered) for index, (gate, _) in enumerate(self._gates)
                                       for alts, lowered in (gate.prefilter(),) for alt in alts])
        self._key_words = build_word_scanner(sorted({*key_words, *self.key_matcher.words,
                                                     *self.personal_matcher.words}))
        self._rules: dict[str, str] = {r.name: r.rule_id for r in recognizers if r is not key_tier}
        self._allow_values = config.allow_values
        self._allow_patterns = [re.compile(p) for p in config.allow_patterns]

        self.ner_entities = tuple(e for e in NER_ENTITIES if e in self.entities)
        self.ner_available = False
        self.model_name: str | None = None
        nlp_engine = None
        if config.detection == "full" and self.ner_entities:
            self.model_name = find_installed_model(config.spacy_model, DEFAULT_SPACY_MODELS)
            if self.model_name is None:
                wanted_model = config.spacy_model or " / ".join(DEFAULT_SPACY_MODELS)
                message = (f"presidio-logshield: no spaCy pipeline installed ({wanted_model}); names and places "
                           "will not be detected (detection falls back to patterns). Install the "
                           "'presidio-logshield[spacy-model]' extra or set LOGSHIELD_DETECTION=patterns.")
                warnings.warn(message, RuntimeWarning, stacklevel=3)  # once: the Redactor is shared
            else:
                nlp_engine = OfflineSpacyNlpEngine(self.model_name)
                nlp_engine.load()
                recognizers.append(LogSpacyRecognizer(self.ner_entities))
                self._rules["logshield:ner"] = "ner"
                self.ner_available = True
        self._spacy = nlp_engine
        if nlp_engine is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                nlp_engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
        registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
        # Pattern-only texts skip AnalyzerEngine.analyze (registry look-up, context pass, per-call set-up: ~40 µs
        # a text) and run the registry's recognizers for their planned entities directly, in registry order.
        self._pattern_recognizers: dict[str, list[EntityRecognizer]] = {}
        for recognizer in registry.recognizers:
            if not recognizer.is_loaded:
                recognizer.load()
                recognizer.is_loaded = True
            for entity in recognizer.supported_entities:
                if entity not in NER_ENTITIES:
                    self._pattern_recognizers.setdefault(entity, []).append(recognizer)
        self.analyzer: AnalyzerEngine = AnalyzerEngine(
            registry=registry, nlp_engine=nlp_engine, supported_languages=["en"], log_decision_process=False,
            default_score_threshold=config.score_threshold, context_aware_enhancer=_NoContextEnhancer())
        self._empty = NlpArtifacts(entities=[], tokens=None, tokens_indices=[], lemmas=[], nlp_engine=None,
                                   language="en")
        self._warm_up()

    # ------------------------------------------------------------------------------------------ public

    def could_match(self, text: str) -> bool:
        """False when no recognizer can find anything in ``text`` (the cheap gates all stay shut)."""
        return self._prefilter.passes(text, text.lower()) or (self.ner_available and ner_candidate(text))

    def scan_lines(self, lines: Sequence[bytes]) -> list[set[int] | None]:
        """Per line, in one pass: the indices of the gates whose pre-filter matched, plus :attr:`key_id` when the line
        may hold a JSON key whose letters and digits contain one of the ``key_words`` (``p_w_d`` is ``pwd``); None for
        a line that was not scanned (not ASCII, a backslash — an escape can hide any character —, or no Hyperscan):
        use :meth:`could_match` on it. Lines are scanned in chunks, so the copies a scan needs stay small."""
        if self._scanner is None or self._key_words is None:
            return [None] * len(lines)
        found: list[set[int] | None] = []
        for start in range(0, len(lines), SCAN_CHUNK_LINES):
            found += self._scan_chunk(lines[start:start + SCAN_CHUNK_LINES])
        return found

    def _scan_chunk(self, lines: Sequence[bytes]) -> list[set[int] | None]:
        assert self._scanner is not None and self._key_words is not None
        buffer = b"\n".join(lines)
        found = self._scanner.scan_lines(lines, buffer)
        with_words = self._key_words.lines_with_words(lines, buffer)
        if with_words is None:
            return [None] * len(lines)
        for index in with_words:
            ids = found[index]
            if ids is not None:
                found[index] = ids | {self.key_id}
        if b"\\" in buffer:
            for index, line in enumerate(lines):
                if b"\\" in line:
                    found[index] = None
        return found

    @property
    def scans_ascii(self) -> bool:
        """True when :meth:`detect` rules out ASCII texts with one Hyperscan pass (cheaper than a cache look-up)."""
        return self._scanner is not None

    def ner_could_match(self, text: str) -> bool:
        """True when NER is on and ``text`` has a capitalised word that is not a common log word."""
        return self.ner_available and ner_candidate(text)

    def gates_open(self, ids: Iterable[int]) -> bool:
        """Whether ``ids`` from :meth:`scan_lines` include a gate's (not only a JSON key's)."""
        return any(ident != self.key_id for ident in ids)

    def plan(self, text: str) -> list[str]:
        """The entity types worth looking for in ``text``; empty when nothing could match (no Presidio call)."""
        entities = self._plan_patterns(text)
        if self.ner_available and ner_candidate(text):
            entities.extend(self.ner_entities)
        return entities

    def _plan_patterns(self, text: str) -> list[str]:
        """The pattern and key entity types worth looking for in ``text`` (the gates that open)."""
        entities: list[str] = []
        lowered = text.lower()
        if self._prefilter.passes(text, lowered):
            for gate, entity in self._gates:
                if (not entities or entities[-1] != entity) and gate.opens(text, lowered):
                    entities.append(entity)
        return entities

    def detect(self, texts: Sequence[str], planned: list[bool] | None = None) -> list[list[Finding]]:
        """Findings per text: filtered by allow-lists, overlaps resolved, sorted by position. When ``planned`` is
        given it receives, per text, whether any recognizer had to run (False: the cheap gates ruled it out).

        The pattern and key recognizers run first; spaCy then reads each NER candidate with what they found masked
        (same length, so offsets hold): a name is tagged more reliably without an e-mail address or a card number
        beside it, and a value found already cannot become part of a name."""
        out: list[list[Finding]] = [[] for _ in texts]
        if planned is not None:
            planned[:] = [False] * len(texts)
        threshold = self.config.score_threshold
        results: dict[int, list[RecognizerResult]] = {}
        ner_indices: list[int] = []
        ner = self.ner_available
        scanned = self._scanner.scan_texts(texts) if self._scanner is not None else [None] * len(texts)
        for i, (text, ids) in enumerate(zip(texts, scanned, strict=True)):
            if not text:
                continue
            entities = self._plan_patterns(text) if ids is None else self._plan_scanned(text, ids)
            if entities:
                results[i] = self._run_patterns(text, entities, threshold)
            if ner and ner_candidate(text):
                ner_indices.append(i)
            elif not entities:
                continue
            if planned is not None:
                planned[i] = True
        if ner_indices:
            assert self._spacy is not None
            masked = [_masked(texts[i], results.get(i, ())) for i in ner_indices]
            for i, art in zip(ner_indices, self._spacy.process_texts(masked), strict=True):
                found = self.analyzer.analyze(texts[i], language="en", entities=list(self.ner_entities),
                                              nlp_artifacts=art, score_threshold=threshold)
                results[i] = results.get(i, []) + found
        for i, found in results.items():
            out[i] = self._resolve(texts[i], found)
        return out

    def _plan_scanned(self, text: str, ids: set[int]) -> list[str]:
        """:meth:`_plan_patterns` for a text the scanner has seen: only the gates whose pre-filter matched are
        checked."""
        entities: list[str] = []
        if ids:
            lowered = text.lower()
            gates = self._gates
            for index in sorted(ids):
                if index == self.key_id:
                    continue
                gate, entity = gates[index]
                if (not entities or entities[-1] != entity) and gate.opens_after_prefilter(text, lowered):
                    entities.append(entity)
        return entities

    def _run_patterns(self, text: str, entities: list[str], threshold: float) -> list[RecognizerResult]:
        """What ``AnalyzerEngine.analyze`` returns for pattern entities, without its per-call overhead."""
        results: list[RecognizerResult] = []
        for entity in entities:
            for recognizer in self._pattern_recognizers.get(entity, ()):
                for r in recognizer.analyze(text=text, entities=entities, nlp_artifacts=self._empty) or ():
                    if r.score >= threshold:
                        if not r.recognition_metadata:
                            r.recognition_metadata = {RecognizerResult.RECOGNIZER_NAME_KEY: recognizer.name,
                                                      RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id}
                        results.append(r)
        return _without_duplicates(results)

    # ----------------------------------------------------------------------------------------- helpers

    def _rule(self, result: RecognizerResult) -> str:
        metadata = result.recognition_metadata or {}
        rule = metadata.get(RULE_KEY)
        if rule is not None:
            return rule
        name = metadata.get(RecognizerResult.RECOGNIZER_NAME_KEY, "")
        rule = self._rules.get(name, f"presidio:{name}")
        return f"ner:{result.entity_type}" if rule == "ner" else rule

    def _allowed(self, value: str) -> bool:
        return value in self._allow_values or any(p.fullmatch(value) for p in self._allow_patterns)

    def _resolve(self, text: str, results: list[RecognizerResult]) -> list[Finding]:
        candidates = []
        for r in results:
            if r.end <= r.start or (r.entity_type not in self.entities and (
                    (r.recognition_metadata or {}).get(RecognizerResult.RECOGNIZER_NAME_KEY) != KEY_TIER)):
                continue  # the key-name tier's findings count whatever entities selects
            if self._allowed(text[r.start:r.end]):
                continue
            candidates.append(Finding(r.start, r.end, r.entity_type, round(float(r.score), 4), self._rule(r)))
        # Patterns and keys beat NER, secrets beat PII, then the longest span, then the highest score; ties broken by
        # position and name. A NER span that overlaps a finding chosen before it keeps the parts of it outside that
        # finding which still look like a name (``John Smith <e-mail>`` when spaCy ran the name into the address).
        candidates.sort(key=lambda f: (f.rule.startswith("ner:"), f.entity_type not in SECRET_ENTITIES,
                                       -(f.end - f.start), -f.score, f.start, f.entity_type))
        chosen: list[Finding] = []
        for f in candidates:
            if all(f.end <= c.start or f.start >= c.end for c in chosen):
                chosen.append(f)
            elif f.rule.startswith("ner:"):
                for low, high in _uncovered(f.start, f.end, chosen):
                    for start, end in name_runs(text, low, high):
                        if all(end <= c.start or start >= c.end for c in chosen):
                            chosen.append(f._replace(start=start, end=end))
        chosen.sort()
        return chosen

    def _warm_up(self) -> None:
        """Load every recognizer now (Presidio loads lazily on the first ``analyze``)."""
        sample = ("John Smith in Paris: mail john@example.com, call +1 415-555-2671, card 4111 1111 1111 1111, "
                  "ssn 123-45-6789, ip 10.0.0.1, password=x, Bearer abcdefgh1234, eyJhbGciOi.eyJzdWIiOi.x")
        self.detect([sample])


def _masked(text: str, results: Iterable[RecognizerResult]) -> str:
    """``text`` with every span in ``results`` overwritten by dashes (what NER reads: same length, same offsets)."""
    spans = sorted((r.start, r.end) for r in results if r.end > r.start)
    if not spans:
        return text
    parts: list[str] = []
    position = 0
    for start, end in spans:
        if end <= position:
            continue
        start = max(start, position)
        parts += (text[position:start], "-" * (end - start))
        position = end
    parts.append(text[position:])
    return "".join(parts)


def _uncovered(start: int, end: int, chosen: Iterable[Finding]) -> list[tuple[int, int]]:
    """The parts of ``[start, end)`` that no finding in ``chosen`` covers."""
    parts: list[tuple[int, int]] = []
    position = start
    for c in sorted(c for c in chosen if c.end > start and c.start < end):
        if c.start > position:
            parts.append((position, c.start))
        position = max(position, c.end)
    if position < end:
        parts.append((position, end))
    return parts


def _without_duplicates(results: list[RecognizerResult]) -> list[RecognizerResult]:
    """``EntityRecognizer.remove_duplicates``, skipped when there is nothing to compare (the usual case)."""
    if not results or (len(results) == 1 and results[0].score > 0):
        return results
    if len({r.entity_type for r in results}) == len(results) and all(r.score > 0 for r in results):
        # No two of one type, so none contains another of its type: remove_duplicates would only sort them.
        return sorted(results, key=lambda r: (-r.score, r.start, -(r.end - r.start)))
    return EntityRecognizer.remove_duplicates(results)


_LEAD = re.compile(r"\\[dDsSwW]|\\[^A-Za-z0-9]|\[(?:\\.|[^\]\\])+\]|[^\\\[\](){}|?*+.^$]")
_COUNT = re.compile(r"\{(\d+)(?:,(\d*))?\}")


def _split_lead(alt: str) -> tuple[str, str]:
    """``\\d{4}x`` → (``\\d``, ``\\d{3}x``): the first atom (one character or class) and what must follow it;
    ("", alt) when the pattern does not start with exactly one fixed atom."""
    lead = _LEAD.match(alt)
    if lead is None:
        return "", alt
    atom, rest = lead.group(0), alt[lead.end():]
    if rest[:1] in ("?", "*", "+"):
        return "", alt
    count = _COUNT.match(rest)
    if count is not None:
        low, high = int(count.group(1)), count.group(2)
        if low < 1:
            return "", alt
        if count.group(0) == f"{{{low}}}":
            more = f"{{{low - 1}}}" if low > 2 else ("" if low == 1 else "")
            rest = (atom + more if low > 1 else "") + rest[count.end():]
        else:
            upper = "" if high == "" else str(int(high) - 1)
            rest = f"{atom}{{{low - 1},{upper}}}" + rest[count.end():]
    return atom, rest


class Prefilter:
    """A necessary condition for any gate to open, checked in a few microseconds.

    Python's ``re`` tries every branch of an alternation at every position, but skips positions quickly when a
    pattern starts with one fixed character or class. So the gates' prefilter alternatives (words and regexes)
    are grouped by their first atom (``A(?:KIA|SIA|…)``, ``\\d(?:…|…)``) into one compiled pattern per group.
    Most log lines fail every pattern and skip the per-gate checks.
    """

    def __init__(self, gates: Iterable[Gate]) -> None:
        grouped: dict[bool, dict[str, dict[str, None]]] = {False: {}, True: {}}
        for gate in gates:
            alternatives, lowered = gate.prefilter()
            for alt in alternatives:
                lead, rest = _split_lead(alt)
                grouped[lowered].setdefault(lead, {})[rest if lead else alt] = None
        self._regexes = tuple(_compile_groups(grouped[False]))
        self._lower_regexes = tuple(_compile_groups(grouped[True]))

    def passes(self, text: str, lowered: str) -> bool:
        return (any(regex.search(text) is not None for regex in self._regexes)
                or any(regex.search(lowered) is not None for regex in self._lower_regexes))


def _compile_groups(groups: dict[str, dict[str, None]]) -> list[re.Pattern[str]]:
    """One pattern for every group led by a literal character (``re`` scans for the set of those characters), one
    per group led by a class (``\\d``, ``[A-Z]``), one per pattern with no single leading atom."""
    literal_led: list[str] = []
    out: list[re.Pattern[str]] = []
    for lead, rests in groups.items():
        if not lead:
            out.extend(re.compile(alt) for alt in rests)
            continue
        source = lead if "" in rests else lead + "(?:" + "|".join(rests) + ")"
        if lead.startswith("[") or (lead.startswith("\\") and lead[1:2].isalpha()):
            out.append(re.compile(source))
        else:
            literal_led.append(source)
    if literal_led:
        out.insert(0, re.compile("|".join(literal_led)))
    return out
