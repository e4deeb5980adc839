"""One pass over a whole batch: which gates may open in which text (or line), from a single Hyperscan database.

Python's ``re`` walks every character once per pattern (tens of nanoseconds each on a log line); Hyperscan matches
all the gates' pre-filter alternatives at once, in one call over the joined batch, at hundreds of MB/s. Only texts
with a hit go on to the per-gate checks. Results are exactly a superset of the ``re`` pre-filter's:

- only ASCII text is scanned (``\\d``, ``\\w``, ``\\b`` and case-folding then mean the same in both engines, and byte
  offsets are character offsets); other texts get ``None`` and take the ``re`` path;
- ``\\s`` is rewritten to Python's ASCII whitespace set (which includes ``\\x1c``-``\\x1f``);
- every match is reported (no single-match flag), so the texts joined with ``\\n`` lose none; a match that runs over
  a separator only makes the next text a candidate for nothing.

A flood of matches (a line of ten thousand ``@``) stops the scan; every text of that batch then gets ``None``.
Without the ``hyperscan`` package (a platform with no wheel), :func:`build_scanner` returns None and the engine uses
the ``re`` pre-filter alone — same results, slower.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import logging
import threading
from collections.abc import Sequence

__all__ = ["GateScanner", "WordScanner", "build_scanner", "build_word_scanner"]

logger = logging.getLogger("presidio_logshield.detection")

#: Python's ``\s`` on ASCII text; PCRE's lacks the four information separators.
_PY_ASCII_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f "
#: Matches beyond this (plus a few per text) stop a scan; later texts take the ``re`` path.
_MAX_HITS = 20_000


def _translate(pattern: str) -> str:
    """A Python ``re`` pattern (the pre-filter subset: literals, classes, counted repeats, ``\\d \\w \\s \\b``) in
    PCRE syntax with Python's meaning of ``\\s`` on ASCII text."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            escaped = pattern[i + 1]
            if escaped == "s":
                out.append(_PY_ASCII_SPACE if in_class else f"[{_PY_ASCII_SPACE}]")
            elif escaped == "S":
                if in_class:
                    raise ValueError(f"cannot translate \\S inside a class: {pattern!r}")
                out.append(f"[^{_PY_ASCII_SPACE}]")
            else:
                out.append(pattern[i:i + 2])
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
            out.append(ch)
            if pattern[i + 1:i + 2] == "^":
                out.append("^")
                i += 1
            if pattern[i + 1:i + 2] == "]":  # a literal ] first in a class
                out.append("\\]")
                i += 1
        elif ch == "]" and in_class:
            in_class = False
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out)


class _Database:
    """A compiled Hyperscan database; each thread scans with its own scratch space."""

    def __init__(self, database: object, hyperscan: object) -> None:
        self._db = database
        self._hs = hyperscan
        self._local = threading.local()

    def _matches(self, buffer: bytes, limit: int) -> list[tuple[int, int]] | None:
        """Every ``(id, end offset)`` in ``buffer``, in the order reported; None after more than ``limit``."""
        hits: list[tuple[int, int]] = []
        add = hits.append

        def on_match(ident: int, start: int, end: int, flags: int, context: object) -> bool:
            add((ident, end))
            return len(hits) > limit  # True stops the scan

        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = self._hs.Scratch(self._db)  # type: ignore[attr-defined]
        try:
            self._db.scan(buffer, match_event_handler=on_match, scratch=scratch)  # type: ignore[attr-defined]
        except self._hs.error as exc:  # type: ignore[attr-defined]  # ScanTerminated (the flood) or any failure
            if not isinstance(exc, self._hs.ScanTerminated):  # type: ignore[attr-defined]
                logger.warning("presidio_logshield: hyperscan scan failed (%s); using re", type(exc).__name__)
            return None
        return hits


class GateScanner(_Database):
    """Scans a batch of ASCII texts (or lines) for many patterns at once: per text, the set of ids that matched."""

    def _scan(self, buffer: bytes, ends: list[int]) -> list[set[int] | None]:
        """Ids per segment of ``buffer`` (segment ``i`` ends before offset ``ends[i]``); all None when the scan was
        stopped by a flood of matches."""
        hits = self._matches(buffer, _MAX_HITS + 4 * len(ends))
        if hits is None:
            return [None] * len(ends)
        empty: set[int] = set()
        found: list[set[int] | None] = [empty] * len(ends)  # the shared empty set is never mutated, only replaced
        for ident, end in hits:
            # ``end`` is exclusive: a match ending exactly at ``ends[i]`` lies in segment i.
            index = bisect.bisect_left(ends, end)
            ids = found[index]
            if ids is empty:
                found[index] = {ident}
            else:
                ids.add(ident)  # type: ignore[union-attr]
        return found

    def scan_texts(self, texts: Sequence[str]) -> list[set[int] | None]:
        """Per text: the ids that matched (empty: none could), or None when the text was not scanned (not ASCII)."""
        ascii_indices = [i for i, text in enumerate(texts) if text.isascii()]
        result: list[set[int] | None] = [None] * len(texts)
        if not ascii_indices:
            return result
        chosen = [texts[i] for i in ascii_indices]
        buffer = "\n".join(chosen).encode("ascii")
        ends = list(itertools.accumulate(len(text) + 1 for text in chosen))
        found = self._scan(buffer, ends)
        for index, ids in zip(ascii_indices, found, strict=True):
            result[index] = ids
        return result

    def scan_lines(self, lines: Sequence[bytes], buffer: bytes) -> list[set[int] | None]:
        """Per line of ``buffer`` (``b"\\n".join(lines)``): like :meth:`scan_texts`; None for a line that is not
        ASCII."""
        ends = list(itertools.accumulate(len(line) + 1 for line in lines))
        found = self._scan(buffer, ends)
        if not buffer.isascii():
            for index, line in enumerate(lines):
                if not line.isascii():
                    found[index] = None
        return found


#: Every byte but ASCII letters, digits, the double quote and the newline.
_SEPARATORS = bytes(b for b in range(256) if not (chr(b).isascii() and chr(b).isalnum()) and b not in b'"\n')


class WordScanner(_Database):
    """Which lines contain one of some lower-case words, case-insensitively, once every byte but letters, digits,
    double quotes and newlines is deleted: a JSON key ``"P_w-D"`` reads ``"PwD"`` there. Every ASCII key whose
    letters and digits, lower-cased and read without separators, contain a word is found (and more)."""

    def lines_with_words(self, lines: Sequence[bytes], buffer: bytes) -> set[int] | None:
        """Indices of the lines of ``buffer`` (``b"\\n".join(lines)``) that may hold such a key; None after a flood
        of matches."""
        squeezed = buffer.translate(None, _SEPARATORS)
        hits = self._matches(squeezed, _MAX_HITS + 4 * len(lines))
        if hits is None:
            return None
        if not hits:
            return set()
        # Newlines survive the squeeze: line i ends with the newline number newline_ends[i] of the buffer.
        newline_ends = list(itertools.accumulate(line.count(b"\n") + 1 for line in lines))
        found: set[int] = set()
        seen = position = 0
        for end in sorted(end for _, end in hits):
            seen += squeezed.count(b"\n", position, end)
            position = end
            found.add(bisect.bisect_right(newline_ends, seen))
        return found


def _hyperscan() -> object | None:
    try:
        import hyperscan
    except ImportError:
        logger.info("presidio_logshield: the hyperscan package is not installed; the pre-filter uses re (slower)")
        return None
    return hyperscan


@functools.lru_cache(maxsize=16)
def _compile(alternatives: tuple[tuple[int, str, bool], ...]) -> object | None:
    hyperscan = _hyperscan()
    if hyperscan is None:
        return None
    expressions = [_translate(pattern).encode("ascii") for _, pattern, _ in alternatives]
    flags = [hyperscan.HS_FLAG_CASELESS if caseless else 0 for _, _, caseless in alternatives]  # type: ignore[attr-defined]
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)  # type: ignore[attr-defined]
    try:
        database.compile(expressions=expressions, ids=[ident for ident, _, _ in alternatives],
                         elements=len(expressions), flags=flags)
    except hyperscan.error as exc:  # type: ignore[attr-defined]
        logger.warning("presidio_logshield: the pre-filter could not be compiled for hyperscan (%s); using re",
                       type(exc).__name__)
        return None
    return database


def build_scanner(alternatives: Sequence[tuple[int, str, bool]]) -> GateScanner | None:
    """A scanner for ``alternatives`` (``(id, python regex, caseless)``), or None without Hyperscan. Databases are
    shared between scanners with the same alternatives (compiling takes ~0.1 s)."""
    if not alternatives:
        return None
    database = _compile(tuple(alternatives))
    if database is None:
        return None
    return GateScanner(database, _hyperscan())


def build_word_scanner(words: Sequence[str]) -> WordScanner | None:
    """A :class:`WordScanner` for lower-case ASCII ``words`` (letters and digits), or None without Hyperscan."""
    if not words or not all(word.isascii() and word.isalnum() and word.islower() for word in words):
        return None
    database = _compile(tuple((0, word, True) for word in sorted(set(words))))
    if database is None:
        return None
    return WordScanner(database, _hyperscan())
