"""The one-pass gate scanner (Hyperscan): never less than the ``re`` pre-filter, and the same redactions either way."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presidio_logshield.config import RedactionConfig
from presidio_logshield.detection import DetectionEngine
from presidio_logshield.detection._engine import SCAN_CHUNK_LINES
from presidio_logshield.detection._scan import _translate, build_scanner
from presidio_logshield.redactor import Redactor
from tests.lib.test_leaks_text import CASES

pytest.importorskip("hyperscan")

CORPUS = Path("/work/shared/corpus/loghub_clean_lines.txt")
LOG_LINES = CORPUS.read_text(encoding="utf-8").splitlines() if CORPUS.exists() else []
SAMPLES = [text for _, text, _ in CASES] + LOG_LINES + [
    "", "a", "x\x1c415\x1d555\x1e2671", "Password: hunter2", "getting tin", "TIN 123456789", "\u00e9 a@b.co",
    "token=abc123def456", "2001:db8::1", "card 4111-1111-1111-1111", "-----BEGIN RSA PRIVATE KEY-----",
]
ascii_text = st.text(alphabet=string.printable + "\x1c\x1d\x1e\x1f", max_size=80)


@pytest.fixture(scope="module")
def engine() -> DetectionEngine:
    return DetectionEngine(RedactionConfig(detection="patterns"))


def _gates_opening(engine: DetectionEngine, text: str) -> set[int]:
    """Gates that open and whose own pre-filter matches (a ``prefilter_lower`` may be tighter than the gate)."""
    lowered = text.lower()
    opening = set()
    for index, (gate, _) in enumerate(engine._gates):
        alternatives, on_lowered = gate.prefilter()
        if gate.opens(text, lowered) and any(re.search(alt, lowered if on_lowered else text) for alt in alternatives):
            opening.add(index)
    return opening


class TestTranslate:
    def test_space_class_means_what_python_means(self) -> None:
        """``\\s`` becomes Python's ASCII whitespace set, inside and outside a class; other escapes stay."""
        assert _translate(r"\d\s\.") == r"\d[\t\n\x0b\x0c\r\x1c-\x1f ]\."
        assert _translate(r"[^\s/?#]") == r"[^\t\n\x0b\x0c\r\x1c-\x1f /?#]"
        assert _translate(r"a\\s") == r"a\\s"

    def test_translated_patterns_match_like_python(self) -> None:
        """On ASCII text a translated pattern matches exactly where Python's does."""
        scanner = build_scanner([(0, r"\d[\s.-]\d{2,4}[\s.-]\d{3}", False), (1, r"[^\s/]+@", False)])
        assert scanner is not None
        texts = ["4\x1c55 555", "4\t55-555", "a b@", "a/b@", "4 5 6", "x\x1fy@"]
        found = scanner.scan_texts(texts)
        for text, ids in zip(texts, found, strict=True):
            expected = {i for i, p in enumerate([r"\d[\s.-]\d{2,4}[\s.-]\d{3}", r"[^\s/]+@"]) if re.search(p, text)}
            assert ids == expected, text


class TestScanTexts:
    def test_every_gate_that_opens_is_reported(self, engine: DetectionEngine) -> None:
        """For generated PII, secrets and real log lines, each gate that opens on a text is among its scan hits."""
        assert engine._scanner is not None
        for text, ids in zip(SAMPLES, engine._scanner.scan_texts(SAMPLES), strict=True):
            if ids is None:
                assert not text.isascii()
                continue
            assert _gates_opening(engine, text) <= ids, text

    @settings(max_examples=300, deadline=None)
    @given(st.lists(ascii_text, min_size=1, max_size=6))
    def test_batches_lose_nothing_at_text_boundaries(self, texts: list[str]) -> None:
        """Texts scanned together get at least the hits each gets alone (joining them hides no match)."""
        engine = DetectionEngine(RedactionConfig(detection="patterns"))
        scanner = engine._scanner
        assert scanner is not None
        together = scanner.scan_texts(texts)
        for text, ids in zip(texts, together, strict=True):
            alone = scanner.scan_texts([text])[0]
            assert ids is not None and alone is not None and alone <= ids
            assert _gates_opening(engine, text) <= ids

    def test_non_ascii_text_is_left_to_re(self, engine: DetectionEngine) -> None:
        """A text that is not ASCII is not scanned (None): the re pre-filter decides it."""
        assert engine._scanner is not None
        assert engine._scanner.scan_texts(["caf\u00e9 a@b.co", "plain"]) == [None, set()]

    def test_a_flood_of_matches_falls_back(self, engine: DetectionEngine) -> None:
        """A batch with tens of thousands of matches is not scanned further; every text goes to the re path."""
        assert engine._scanner is not None
        assert engine._scanner.scan_texts(["@" * 50_000, "x"]) == [None, None]


class TestSameRedactions:
    @pytest.mark.parametrize("mode", ["patterns", "full"])
    def test_scanner_and_re_paths_find_the_same(self, mode: str) -> None:
        """Detection through the scanner gives exactly the findings of the re pre-filter path."""
        engine = DetectionEngine(RedactionConfig(detection=mode))
        with_scanner = engine.detect(SAMPLES)
        engine._scanner = None
        assert engine.detect(SAMPLES) == with_scanner


def _json_lines() -> list[bytes]:
    lines = [json.dumps({"msg": text}).encode() for text in SAMPLES[:400]]
    lines += [json.dumps({"level": "INFO", "message": text, "request_id": "req-1"}, ensure_ascii=False).encode()
              for text in LOG_LINES[:300]]
    lines += [b'{"p_w_d": "x"}', b'{"national_id": "078051120"}', b'{"mobile": 4155552671}',
              b'{"x-api-key": "abc"}', b'{"msg": "caf\\u00e9"}', b'{"MSISDN": 4155552671}', b'{"T-I-N": 1}',
              b'{"Tin" : 1}', b'{"hotel": "x"}', b'{"Set-Cookie": "a"}', b'{"a": "b"}\n', b"\xff\xfe raw",
              "{\"t\u00e9l\u00e9phone\": 1}".encode(), b"plain text line", b"", b"\n"]
    return lines


class TestLinesNeedRedaction:
    @pytest.mark.parametrize("mode", ["patterns", "full"])
    def test_same_answers_as_line_by_line(self, mode: str) -> None:
        """The batch decision equals ``line_needs_redaction`` on each line (JSON, text, non-UTF-8, escapes)."""
        redactor = Redactor(RedactionConfig(detection=mode, secret_keys=["dob", "x_internal_ref"]))
        lines = _json_lines() + [b'{"d_o_b": "1990-01-01"}', b'{"xInternalRef": 7}']
        expected = [redactor.line_needs_redaction(line.rstrip(b"\n").decode("utf-8", "surrogateescape"))
                    for line in lines]
        assert redactor.lines_need_redaction(lines) == expected

    def test_chunk_boundaries_lose_nothing(self) -> None:
        """A batch longer than one scan chunk is decided line by line exactly, around every chunk boundary."""
        redactor = _REDACTOR
        lines = [b'{"msg": "GET /x 200", "n": %d}\n' % i for i in range(2 * SCAN_CHUNK_LINES + 10)]
        for index in (0, SCAN_CHUNK_LINES - 1, SCAN_CHUNK_LINES, SCAN_CHUNK_LINES + 1, 2 * SCAN_CHUNK_LINES):
            lines[index] = b'{"msg": "mail a%d@example.com", "p_w_d": 1}\n' % index
        expected = [redactor.line_needs_redaction(line.rstrip(b"\n").decode()) for line in lines]
        assert sum(expected) == 5
        assert redactor.lines_need_redaction(lines) == expected

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(st.lists(st.text(alphabet="aBcDeiklmnoPpSsTtWwxy_-. 19:", min_size=1, max_size=14),
                                       min_size=1, max_size=4), st.booleans()), min_size=1, max_size=5))
    def test_any_key_spelling_is_caught(self, spec: list[tuple[list[str], bool]]) -> None:
        """Keys with separators or capitals anywhere (``p_W-d``, ``Ses.sion``), in any line of a batch with or
        without newlines, get the exact key check."""
        redactor = _REDACTOR
        lines = [json.dumps(dict.fromkeys(keys, 1)).encode() + (b"\n" if newline else b"") for keys, newline in spec]
        expected = [redactor.line_needs_redaction(line.rstrip(b"\n").decode()) for line in lines]
        assert redactor.lines_need_redaction(lines) == expected


_REDACTOR = Redactor(RedactionConfig(detection="patterns"))
