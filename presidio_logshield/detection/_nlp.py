"""Tier 3: Presidio NER over an installed spaCy pipeline — loaded offline, only the components NER needs."""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Iterable, Sequence

import regex
from presidio_analyzer import RecognizerResult
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

__all__ = ["NER_ENTITIES", "LogSpacyRecognizer", "OfflineSpacyNlpEngine", "find_installed_model", "name_runs",
           "ner_candidate"]

logger = logging.getLogger("presidio_logshield.detection")

NER_ENTITIES = ("PERSON", "LOCATION")
#: Longer texts (dumps, stack traces) get the pattern tiers only: NER cost grows with length, and spaCy
#: refuses texts over ``nlp.max_length``.
NER_MAX_CHARS = 20_000
_MAPPING = {"PERSON": "PERSON", "PER": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION"}
_IGNORED = ("ORG", "ORGANIZATION", "NORP", "NRP", "FAC", "DATE", "TIME", "PERCENT", "MONEY", "QUANTITY",
            "ORDINAL", "CARDINAL", "EVENT", "WORK_OF_ART", "LAW", "LANGUAGE", "PRODUCT", "MISC")
#: Only the NER component (it has its own embedding layer in the en_core_web_* pipelines).
_NOT_NEEDED = ("tok2vec", "tagger", "morphologizer", "parser", "attribute_ruler", "lemmatizer", "senter")


def find_installed_model(preferred: str | None, candidates: Sequence[str]) -> str | None:
    """The first installed spaCy pipeline package among ``preferred`` or ``candidates``; never downloads."""
    import spacy.util

    for name in ([preferred] if preferred else list(candidates)):
        if spacy.util.is_package(name) or importlib.util.find_spec(name) is not None:
            return name
    return None


class OfflineSpacyNlpEngine(SpacyNlpEngine):
    """Presidio's spaCy engine that loads an installed package only (no ``spacy.cli.download``).

    The pipeline keeps only the NER component: the recognizers in use take their context from the raw
    text, so lemmas, tags and parses would cost time for nothing.
    """

    def __init__(self, model_name: str) -> None:
        super().__init__(
            models=[{"lang_code": "en", "model_name": model_name}],
            ner_model_configuration=NerModelConfiguration(
                model_to_presidio_entity_mapping=dict(_MAPPING), labels_to_ignore=list(_IGNORED),
                low_score_entity_names=[]))

    def load(self) -> None:
        import spacy

        name = self.models[0]["model_name"]
        nlp = spacy.load(name, exclude=list(_NOT_NEEDED))
        if "ner" not in nlp.pipe_names:
            raise ValueError(f"spaCy pipeline {name!r} has no 'ner' component")
        self.nlp = {"en": nlp}

    def process_texts(self, texts: Sequence[str], batch_size: int = 64) -> list[NlpArtifacts]:
        """Run ``nlp.pipe`` over many texts and wrap each doc as Presidio ``NlpArtifacts``."""
        assert self.nlp is not None
        docs = self.nlp["en"].pipe(texts, batch_size=batch_size)
        return [self._doc_to_nlp_artifact(doc, "en") for doc in docs]

    def _doc_to_nlp_artifact(self, doc, language: str) -> NlpArtifacts:  # type: ignore[no-untyped-def]
        entities, scores = self._get_updated_entities(list(doc.ents), self._get_scores_for_entities(doc))
        # No lemmatizer: keywords are not used (context comes from the raw text), keep them empty.
        artifacts = NlpArtifacts.__new__(NlpArtifacts)
        artifacts.entities = entities
        artifacts.tokens = doc
        artifacts.tokens_indices = [token.idx for token in doc]
        artifacts.lemmas = []
        artifacts.keywords = []
        artifacts.nlp_engine = self
        artifacts.scores = scores
        return artifacts


# Words that start log messages or name software, capitalised but never a person or a place.
_COMMON = frozenset("""
a an the and or but if of to in on at by for from with without into onto over under after before about
as is are was were be been being has have had do does did not no yes ok error warning warn info debug
trace fatal critical exception traceback file line failed failure success successful starting started
stopping stopped start stop done received sending sent request response get post put delete patch head
options connection connected disconnected closing closed open opened user users session server client
service host node job task thread process worker queue cache database table index key value time date
total count size memory disk cpu new old true false null none unknown invalid valid default config
configuration loading loaded saving saved using running ran run retry retrying timeout timed out unable
cannot could not found missing ready shutting down up initializing initialized creating created updating
updated deleting deleted removing removed adding added checking checked processing processed writing
read reading wrote skipping skipped ignoring ignored block packet responder receiving verification
succeeded authentication accepted invalid password disconnecting reverse mapping this that these those
there here when while then else for each all any some kernel module driver device network system systems
manager service services support plug play power powered off on clock mode select normal sleep wake
linux windows android apple mac server agent application app interface adapter controller bus port link
address buffer stream channel handler listener monitor scheduler component container cluster instance
region zone pool volume storage backup restore update upgrade install installer package version release
build debugger console terminal shell kernel bios firmware hardware software status state health check
heartbeat ping signal event message notification alert alarm info detail summary report log logs logger
logging audit security policy rule filter router gateway proxy firewall bridge switch low high medium
mid midplane temperature fan voltage current battery charge limit mask latch reset enabled disabled
active inactive idle busy full empty local remote internal external public private primary secondary
master slave leader follower main default standard custom manual auto automatic generic unknown other
""".split())  # noqa: SIM905

#: Days and months (``Sat Jun 25 09:20:24 2005``): a span of these only is a date, never a name. (Not in ``_COMMON``:
#: ``June`` or ``April`` after a cue may be a person.)
_CALENDAR = frozenset("""
mon tue tues wed thu thur thurs fri sat sun monday tuesday wednesday thursday friday saturday sunday jan feb mar apr
may jun jul aug sep sept oct nov dec january february march april june july august september october november december
""".split())  # noqa: SIM905

_TITLE_WORD = re.compile(r"(?<![\w./@:-])[A-Z][a-z]+(?:['-][A-Za-z][a-z]+)?(?![\w./@-])")
#: :data:`_TITLE_WORD` in every script with letter case (``José``, ``Łukasz``), for texts that are not ASCII.
_TITLE_WORD_ANY = regex.compile(r"(?<![\w./@:-])[\p{Lu}\p{Lt}][\p{Ll}\p{M}]+(?:['’-]\p{L}[\p{Ll}\p{M}]+)?"
                                r"(?![\w./@-])")


def ner_candidate(text: str) -> bool:
    """Cheap gate: could spaCy find a person or place here? Needs a capitalised word that is not a common
    log word, and some letters around it; pure identifiers and lower-case lines skip the pipeline."""
    if not 3 <= len(text) <= NER_MAX_CHARS or " " not in text.strip():
        return False
    words = _TITLE_WORD if text.isascii() else _TITLE_WORD_ANY
    return any(m.group(0).lower() not in _COMMON for m in words.finditer(text))


#: A name-shaped word: an upper-case letter and lower-case ones, in any script with letter case (``Alice``, ``José``,
#: ``Łukasz``, ``Søren``), combining accents included; parts joined by an apostrophe or a hyphen (``O'Brien``,
#: ``Jean-Luc``, ``Smith's``); ``Mc`` before a capital (``McDonald``); an initial (``J.``). Not ``iPhone``, ``HTTP``,
#: ``NullPointerException`` or ``MacBook``.
_NAME_TOKEN = regex.compile(r"(?:Mc|O['’])?[\p{Lu}\p{Lt}][\p{Ll}\p{M}]+(?:['’-][\p{Lu}\p{Lt}]?[\p{Ll}\p{M}]+)*"
                            r"|[\p{Lu}\p{Lt}]\.?")
_PARTICLES = frozenset({"van", "von", "de", "del", "della", "da", "di", "du", "le", "la", "bin", "al", "der",
                        "den", "ter", "dos", "das", "st.", "st"})


def _looks_like_name(span_text: str) -> bool:
    words = span_text.split()
    if not words or len(words) > 5:
        return False
    if not any(len(w) > 1 and _NAME_TOKEN.fullmatch(w) for w in words):
        return False
    for w in words:
        if w.lower() in _PARTICLES:
            continue
        if not _NAME_TOKEN.fullmatch(w.rstrip(",.")):
            return False
    return not all(w.lower().rstrip(",.") in _COMMON for w in words) and \
        not all(w.lower().rstrip(",.") in _CALENDAR for w in words)


_WORD = re.compile(r"\S+")


def name_runs(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The parts of ``text[start:end]`` that look like a name: runs of name-shaped words (particles such as ``van``
    inside a run only), each accepted by the name-shape filter. spaCy often runs a span on into the next token
    (``John Smith john.smith@example.com``, ``Sarah Smith 4111111111111111``) or starts it a word early (``for Sarah
    Smith``): the name is what is kept, not nothing. A span that is all name-shaped comes back unchanged."""
    runs: list[list[tuple[int, int, bool]]] = [[]]  # (start, end, is a particle) per word of each run
    for match in _WORD.finditer(text, start, end):
        word = match.group(0)
        if _NAME_TOKEN.fullmatch(word.rstrip(",.")):
            runs[-1].append((match.start(), match.end(), False))
        elif word.lower() in _PARTICLES and runs[-1]:
            runs[-1].append((match.start(), match.end(), True))
        elif runs[-1]:
            runs.append([])
    out: list[tuple[int, int]] = []
    for words in runs:
        while words and words[-1][2]:  # a particle ends no name
            words.pop()
        if not words:
            continue
        run_start, run_end = words[0][0], words[-1][1]
        if (run_start, run_end) != (start, end):
            last = text[words[-1][0]:run_end]
            core = last.rstrip(",.")
            if len(core) > 1:  # "Smith," loses its comma; an initial keeps its dot ("J.")
                run_end -= len(last) - len(core)
        if _looks_like_name(text[run_start:run_end]):
            out.append((run_start, run_end))
    return out


_PERSON_CUE = re.compile(r"(?:name|user|customer|client|by|dear|mr|mrs|ms|miss|dr|prof|hello|hi|contact|patient|"
                         r"employee|author|owner|manager|from|to|cc|signed|agent|member)\W{0,3}$", re.IGNORECASE)


_SHORT_WORD_BEFORE = regex.compile(r"(?:^|\s)\p{Ll}{1,4}\s+$")


def _after_short_word(text: str, start: int) -> bool:
    """Whether a short lower-case word (``in``, ``aus``, ``nach``, ``à``) comes right before ``start``."""
    return _SHORT_WORD_BEFORE.search(text, max(0, start - 8), start) is not None


def _embedded(text: str, start: int, end: int) -> bool:
    """Inside a path, a dotted name or an identifier: ``/Frameworks/Safari/``, ``com.apple.Safari.x``. A value after
    ``=`` is not embedded (``user=Alice Johnson``): a single word there still needs a cue to count as a person."""
    left = text[start - 1] if start else " "
    right = text[end] if end < len(text) else " "
    after = text[end + 1] if end + 1 < len(text) else " "
    return (left.isalnum() or left in "/\\._-@$" or right.isalnum() or right in "/\\_-@("
            or (right in ".:" and after.isalnum()))


class LogSpacyRecognizer(SpacyRecognizer):
    """Presidio's spaCy recognizer for PERSON and LOCATION, keeping only spans shaped like names
    (``Jane O'Neil``, ``Los Angeles``) — never ``Thunderbird_C1``, ``bn445`` or ``MILLISECONDS``."""

    rule_prefix = "ner"

    def __init__(self, entities: Iterable[str] = NER_ENTITIES) -> None:
        super().__init__(supported_entities=list(entities), ner_strength=0.85, name="logshield:ner")

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
                ) -> list[RecognizerResult]:
        if nlp_artifacts is None or not nlp_artifacts.entities:
            return []
        kept = []
        for r in super().analyze(text, entities, nlp_artifacts):
            for start, end in name_runs(text, r.start, r.end):
                if _embedded(text, start, end):
                    continue
                # A lone capitalised word is a component or a setting far more often than a person in a log:
                # a single-word PERSON needs a cue before it ("user Alice", "by Smith", "Dear Jane").
                names = [w for w in text[start:end].split() if w.lower() not in _PARTICLES]
                cue = _PERSON_CUE.search(text[max(0, start - 12):start])
                if r.entity_type == "PERSON" and len(names) < 2 and not cue:
                    continue
                # The English model reads the nouns of other languages as places ("Zeitüberschreitung", "Straße"):
                # a lone word with letters outside ASCII is a place only after a short word such as "in" or "aus".
                if len(names) < 2 and not cue and not text[start:end].isascii() and not _after_short_word(text, start):
                    continue
                kept.append(r if (start, end) == (r.start, r.end) else RecognizerResult(
                    entity_type=r.entity_type, start=start, end=end, score=r.score,
                    analysis_explanation=r.analysis_explanation,
                    recognition_metadata=dict(r.recognition_metadata or {})))
        return kept
