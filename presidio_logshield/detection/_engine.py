"""The detection engine: pre-filter, one Presidio ``AnalyzerEngine``, NER batched with ``nlp.pipe``."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, NoOpNlpEngine

from ..config import DEFAULT_SPACY_MODELS, RedactionConfig
from ._base import SECRET_ENTITIES, Gate
from ._keys import SecretKeyMatcher
from ._nlp import NER_ENTITIES, LogSpacyRecognizer, OfflineSpacyNlpEngine, find_installed_model, ner_candidate
from ._recognizers import build_pattern_recognizers

__all__ = ["SUPPORTED_ENTITIES", "DetectionEngine", "Finding"]

logger = logging.getLogger("presidio_logshield.detection")

PATTERN_ENTITIES = ("PRIVATE_KEY", "JWT", "URL_CREDENTIALS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                    "API_KEY", "AUTH_TOKEN", "SECRET", "CREDIT_CARD", "US_SSN", "IP_ADDRESS",
                    "EMAIL_ADDRESS", "IBAN_CODE", "PHONE_NUMBER")
SUPPORTED_ENTITIES = frozenset(PATTERN_ENTITIES) | frozenset(NER_ENTITIES)


@dataclass(frozen=True, order=True)
class Finding:
    """One detected span: ``text[start:end]`` is of ``entity_type``; ``rule`` names what found it."""

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

    def __init__(self, config: RedactionConfig) -> None:
        self.config = config
        wanted = SUPPORTED_ENTITIES if config.entities is None else SUPPORTED_ENTITIES & config.entities
        self.entities = frozenset(wanted)
        self.key_matcher = SecretKeyMatcher(config.secret_keys)
        recognizers = [r for r in build_pattern_recognizers(self.key_matcher, config.phone_regions)
                       if r.supported_entities[0] in self.entities]
        self._gates: list[tuple[Gate, str]] = [(g, r.supported_entities[0]) for r in recognizers for g in r.gates]
        self._rules: dict[str, str] = {r.name: r.rule_id for r in recognizers}
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
        self.analyzer: AnalyzerEngine = AnalyzerEngine(
            registry=registry, nlp_engine=nlp_engine, supported_languages=["en"], log_decision_process=False,
            default_score_threshold=config.score_threshold, context_aware_enhancer=_NoContextEnhancer())
        self._empty = NlpArtifacts(entities=[], tokens=None, tokens_indices=[], lemmas=[], nlp_engine=None,
                                   language="en")
        self._warm_up()

    # ------------------------------------------------------------------------------------------ public

    def plan(self, text: str) -> list[str]:
        """The entity types worth looking for in ``text``; empty when nothing could match (no Presidio call)."""
        lowered = text.lower()
        entities: list[str] = []
        for gate, entity in self._gates:
            if (not entities or entities[-1] != entity) and gate.opens(text, lowered):
                entities.append(entity)
        if self.ner_available and ner_candidate(text):
            entities.extend(self.ner_entities)
        return entities

    def detect(self, texts: Sequence[str]) -> list[list[Finding]]:
        """Findings per text: filtered by allow-lists, overlaps resolved, sorted by position."""
        out: list[list[Finding]] = [[] for _ in texts]
        plans: list[tuple[int, list[str]]] = []
        ner_indices: list[int] = []
        for i, text in enumerate(texts):
            if not text:
                continue
            entities = self.plan(text)
            if self.ner_entities and self.ner_entities[-1] in entities:
                ner_indices.append(i)
            if entities:
                plans.append((i, entities))
        artifacts: dict[int, NlpArtifacts] = {}
        if ner_indices:
            assert self._spacy is not None
            for i, art in zip(ner_indices, self._spacy.process_texts([texts[i] for i in ner_indices]),
                              strict=True):
                artifacts[i] = art
        for i, entities in plans:
            results = self.analyzer.analyze(texts[i], language="en", entities=entities,
                                            nlp_artifacts=artifacts.get(i, self._empty))
            out[i] = self._resolve(texts[i], results)
        return out

    # ----------------------------------------------------------------------------------------- helpers

    def _rule(self, result: RecognizerResult) -> str:
        name = (result.recognition_metadata or {}).get(RecognizerResult.RECOGNIZER_NAME_KEY, "")
        rule = self._rules.get(name, f"presidio:{name}")
        return f"ner:{result.entity_type}" if rule == "ner" else rule

    def _allowed(self, value: str) -> bool:
        return value in self._allow_values or any(p.fullmatch(value) for p in self._allow_patterns)

    def _resolve(self, text: str, results: list[RecognizerResult]) -> list[Finding]:
        candidates = []
        for r in results:
            if r.entity_type not in self.entities or r.end <= r.start or self._allowed(text[r.start:r.end]):
                continue
            candidates.append(Finding(r.start, r.end, r.entity_type, round(float(r.score), 4), self._rule(r)))
        # Secrets beat PII, then the longest span, then the highest score; ties broken by position and name.
        candidates.sort(key=lambda f: (f.entity_type not in SECRET_ENTITIES, -(f.end - f.start), -f.score,
                                       f.start, f.entity_type))
        chosen: list[Finding] = []
        for f in candidates:
            if all(f.end <= c.start or f.start >= c.end for c in chosen):
                chosen.append(f)
        chosen.sort()
        return chosen

    def _warm_up(self) -> None:
        """Load every recognizer now (Presidio loads lazily on the first ``analyze``)."""
        sample = ("John Smith in Paris: mail john@example.com, call +1 415-555-2671, card 4111 1111 1111 1111, "
                  "ssn 123-45-6789, ip 10.0.0.1, password=x, Bearer abcdefgh1234, eyJhbGciOi.eyJzdWIiOi.x")
        self.detect([sample])
