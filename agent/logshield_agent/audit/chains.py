"""Record chains across an archive: each object is checked on its own, then the pieces are joined per stream.

A stream (one process's records) spans many objects and even several source files (the library rotates its file
and the stream goes on in the next one), so objects cannot be checked in one pass in any fixed order. Instead each
object yields, per stream, a *segment*: its first record (sequence number, covered bytes, chain value) and its last
(sequence number, chain value), plus the problems inside it. Segments of a stream are then sorted by sequence number
and each must continue the previous one: next seq = last seq + 1, and the chain link from the previous segment's last
value to the next segment's first record must hold. Memory is one small segment per (object, stream).

**Kinds of chain.** A stream declares its kind in its first record (``stream_start.chain``: ``sha256`` or
``hmac-sha256``), which is usually in another object than most of its links. So each link is classified where it is
found — it verifies as plain SHA-256, as HMAC with the verifier's key (``LOGSHIELD_CHAIN_KEY``), or as neither —
and the joiner judges the links once it knows the stream's kind:

- ``sha256``: every link must be a plain SHA-256 link (with or without a key: the key is not used for it). With a
  key given, such a stream is reported as unkeyed (anyone can recompute its chain; only the digests protect it), and
  with ``require_keyed`` that is a finding. A stream that continues an HMAC stream (its ``stream_start.previous``)
  but declares ``sha256`` is a finding: a keyed chain was rewritten as an unkeyed one (``chain-downgrade``).
- ``hmac-sha256``: with the key, every link must be an HMAC link; without it, the links cannot be checked (a note,
  neither a pass nor a failure) — except that a link which verifies as plain SHA-256 is a finding, since a keyed
  stream has none: it was rewritten by someone without the key.
- unknown (the stream's first record is not among the objects checked): the links must all be of one kind, the kind
  most of them verify as; without a key and without any plain link, nothing can be said (a note).

Sequence numbers, gaps, duplicates and lost tails are checked whatever the kind.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from presidio_logshield.audit import split_sealed

__all__ = ["KEYED", "PLAIN", "ChainIssue", "ChainJoiner", "ObjectChains", "Segment", "object_segments"]

GENESIS = "0" * 64
PLAIN, KEYED, NEITHER = "plain", "keyed", "none"  # what a link verifies as
DECLARED = {"sha256": PLAIN, "hmac-sha256": KEYED}
SAMPLES = 20  # links kept per stream and outcome (as issues); beyond, a count
_TAIL = re.compile(rb'"stream":"((?:[^"\\]|\\.)*)","seq":(\d+)}$')


@dataclass
class Segment:
    stream: str
    first_seq: int
    first_body: bytes
    first_chain: str
    last_seq: int
    last_chain: str
    key: str
    start: dict[str, Any] | None = None  # the stream_start of a seq-1 record


@dataclass(frozen=True)
class ChainIssue:
    kind: str  # chain-gap, chain-reorder, chain-mismatch, chain-duplicate, chain-downgrade, chain-unkeyed
    key: str
    stream: str
    detail: str


def _link(key: bytes | None, previous: str, body: bytes) -> str:
    message = previous.encode() + b"\n" + body
    if key is None:
        return hashlib.sha256(message).hexdigest()
    # hmac.new, not hmac.digest: the one-shot call releases the GIL on every (short) record, and verify's object
    # threads then spend more time handing the GIL over than hashing (twice the wall time with 8 workers).
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class _Links:
    """Classifies links, trying first the kind that verified last (one hash per link on a healthy stream). Keeps
    counts per stream and outcome, and the first few links of each (as issues, built only when kept)."""

    def __init__(self, chain_key: bytes | None) -> None:
        self.chain_key = chain_key
        self.counts: dict[str, Counter[str]] = {}
        self.samples: dict[tuple[str, str], list[ChainIssue]] = {}
        self._preferred: dict[str, str] = {}

    def check(self, stream: str, previous: str, body: bytes, chain: str, issue: Callable[[], ChainIssue]) -> str:
        outcome, keep = self._judge(stream, previous, body, chain)
        if keep:
            self.samples.setdefault((stream, outcome), []).append(issue())
        return outcome

    def check_line(self, stream: str, previous: str, body: bytes, chain: str, key: str, number: int, seq: int) -> str:
        """``check`` for line ``number`` of object ``key`` (the hot path: no closure per link)."""
        outcome, keep = self._judge(stream, previous, body, chain)
        if keep:
            self.samples.setdefault((stream, outcome), []).append(
                ChainIssue("chain-mismatch", key, stream, f"line {number}: chain value wrong at seq {seq}"))
        return outcome

    def _judge(self, stream: str, previous: str, body: bytes, chain: str) -> tuple[str, bool]:
        """The link's outcome, counted; and whether it is among the first few of its stream and outcome (kept)."""
        first = self._preferred.get(stream, KEYED if self.chain_key is not None else PLAIN)
        order = (first,) if self.chain_key is None else (first, PLAIN if first == KEYED else KEYED)
        outcome = NEITHER
        for kind in order:
            if hmac.compare_digest(_link(self.chain_key if kind == KEYED else None, previous, body), chain):
                outcome = self._preferred[stream] = kind
                break
        counts = self.counts.get(stream)
        if counts is None:
            counts = self.counts[stream] = Counter()
        counts[outcome] += 1
        return outcome, counts[outcome] <= SAMPLES

    def merge(self, other: _Links) -> None:
        for stream, counts in other.counts.items():
            self.counts.setdefault(stream, Counter()).update(counts)
        for where, issues in other.samples.items():
            kept = self.samples.setdefault(where, [])
            kept.extend(issues[:max(SAMPLES - len(kept), 0)])

    def bad(self, stream: str, outcomes: Iterable[str]) -> list[ChainIssue]:
        out: list[ChainIssue] = []
        for outcome in outcomes:
            kept = self.samples.get((stream, outcome), [])
            out += kept
            more = self.counts.get(stream, Counter())[outcome] - len(kept)
            if more > 0:
                out.append(ChainIssue("chain-mismatch", kept[-1].key if kept else "", stream,
                                      f"… and {more} more such links"))
        return out


def _position(body: bytes) -> tuple[str, int, dict[str, Any] | None] | None:
    """``(stream, seq, stream_start)`` of a covered record: a regex on the usual tail, JSON otherwise."""
    match = _TAIL.search(body)
    if match is not None:
        raw = match.group(1)  # a JSON string's inside: plain ASCII ids need no JSON decoder
        stream = raw.decode() if b"\\" not in raw and raw.isascii() else json.loads(b'"' + raw + b'"')
        return stream, int(match.group(2)), None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    stream, seq = doc.get("stream"), doc.get("seq")
    if not isinstance(stream, str) or not isinstance(seq, int):
        return None
    start = doc.get("stream_start")
    return stream, seq, start if isinstance(start, dict) else None


@dataclass
class ObjectChains:
    segments: list[Segment] = field(default_factory=list)
    issues: list[ChainIssue] = field(default_factory=list)
    links: _Links | None = None  # each link's outcome, judged by the joiner (it knows each stream's kind)
    sealed: int = 0
    unsealed: int = 0


def object_segments(key: str, lines: Iterable[bytes], chain_key: bytes | None) -> ObjectChains:
    """Check the chains inside one object and summarise each stream in it as a segment."""
    links = _Links(chain_key)
    out = ObjectChains(links=links)
    open_segments: dict[str, Segment] = {}
    for number, line in enumerate(lines, 1):
        sealed = split_sealed(line)
        if sealed is None:
            out.unsealed += 1
            continue
        body, chain = sealed
        position = _position(body)
        if position is None:
            out.unsealed += 1
            continue
        out.sealed += 1
        stream, seq, start = position
        segment = open_segments.get(stream)
        if segment is None:
            if seq == 1 and start is None:
                start = (_json_object(body) or {}).get("stream_start")
            segment = Segment(stream, seq, body, chain, seq, chain, key, start if isinstance(start, dict) else None)
            open_segments[stream] = segment
            out.segments.append(segment)
            continue
        if seq != segment.last_seq + 1:
            kind = "chain-gap" if seq > segment.last_seq + 1 else "chain-reorder"
            out.issues.append(ChainIssue(kind, key, stream, f"line {number}: seq {seq} after {segment.last_seq}"))
        else:
            links.check_line(stream, segment.last_chain, body, chain, key, number, seq)
        segment.last_seq, segment.last_chain = seq, chain
    return out


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


class ChainJoiner:
    """Collects segments from every object, then checks that each stream's segments continue one another."""

    def __init__(self, chain_key: bytes | None, *, windowed: bool, require_keyed: bool = False) -> None:
        self.chain_key = chain_key
        self.windowed = windowed  # with --since, a stream may begin before the window: not a gap
        self.require_keyed = require_keyed
        self.segments: dict[str, list[Segment]] = {}
        self.links = _Links(chain_key)
        self.unverifiable: set[str] = set()  # HMAC streams (or of unknown kind) whose links need the key
        self.unkeyed: set[str] = set()  # sha256 streams, reported when a key was given
        self.kinds: dict[str, str] = {}  # stream → the kind its links were judged as

    def add(self, chains: ObjectChains) -> None:
        for segment in chains.segments:
            self.segments.setdefault(segment.stream, []).append(segment)
        if chains.links is not None:
            self.links.merge(chains.links)

    def check(self) -> list[ChainIssue]:
        issues: list[ChainIssue] = []
        tips: dict[str, tuple[int, str]] = {}
        for stream, segments in self.segments.items():
            segments.sort(key=lambda s: (s.first_seq, s.last_seq))
            first = segments[0]
            if first.first_seq != 1 and not self.windowed:
                issues.append(ChainIssue("chain-gap", first.key, stream,
                                         f"stream begins at seq {first.first_seq}: earlier records are missing"))
            elif first.first_seq == 1:
                self.links.check(stream, GENESIS, first.first_body, first.first_chain,
                                 lambda f=first, st=stream: ChainIssue("chain-mismatch", f.key, st,
                                                                       "chain value wrong at seq 1"))
            for before, after in zip(segments, segments[1:], strict=False):
                if after.first_seq <= before.last_seq:
                    issues.append(ChainIssue("chain-duplicate", after.key, stream,
                                             f"seq {after.first_seq}-{after.last_seq} also in {before.key}"))
                elif after.first_seq != before.last_seq + 1:
                    issues.append(ChainIssue("chain-gap", after.key, stream,
                                             f"seq {before.last_seq + 1}-{after.first_seq - 1} missing "
                                             f"(after {before.key})"))
                else:
                    self.links.check(stream, before.last_chain, after.first_body, after.first_chain,
                                     lambda b=before, a=after, st=stream: ChainIssue(
                                         "chain-mismatch", a.key, st, f"seq {a.first_seq} does not continue {b.key}"))
            tips[stream] = (segments[-1].last_seq, segments[-1].last_chain)
        for stream, segments in self.segments.items():
            issues.extend(self._link_verdict(stream, segments))
        issues.extend(self._check_restarts(tips))
        return issues

    @staticmethod
    def declared(segments: list[Segment]) -> str | None:
        """``plain`` / ``keyed`` as the stream's first record declares, None when it is not among the segments."""
        start = segments[0].start if segments[0].first_seq == 1 else None
        return DECLARED.get(str(start.get("chain"))) if start else None

    def _link_verdict(self, stream: str, segments: list[Segment]) -> list[ChainIssue]:
        counts = self.links.counts.get(stream, Counter())
        kind = self.declared(segments)
        if kind is None:  # the kind most links verify as; none verified: the key decides what can be said
            kind = max((KEYED, PLAIN), key=lambda k: (counts[k], k == KEYED)) if counts[KEYED] or counts[PLAIN] \
                else KEYED if self.chain_key is not None else None
        if kind is None:
            if counts[NEITHER]:
                self.unverifiable.add(stream)
            return []
        self.kinds[stream] = kind
        if kind == PLAIN:
            if self.chain_key is not None:
                self.unkeyed.add(stream)
            return self.links.bad(stream, (NEITHER, KEYED))
        if self.chain_key is None:
            if counts[NEITHER]:
                self.unverifiable.add(stream)
            return [ChainIssue("chain-mismatch", i.key, stream, f"{i.detail}: an unkeyed SHA-256 link in a stream "
                               "that declares an HMAC chain (rewritten without the key)")
                    for i in self.links.bad(stream, (PLAIN,))]
        return self.links.bad(stream, (NEITHER, PLAIN))

    def _check_restarts(self, tips: dict[str, tuple[int, str]]) -> list[ChainIssue]:
        """A stream that names its predecessor's last seq: the predecessor must reach it (its tail not lost), and a
        keyed predecessor is not followed by an unkeyed stream."""
        issues = []
        for stream, segments in self.segments.items():
            start = segments[0].start if segments[0].first_seq == 1 else None
            if not start or not start.get("previous"):
                continue
            previous = str(start["previous"])
            if self.kinds.get(stream) == PLAIN and self.kinds.get(previous) == KEYED:
                issues.append(ChainIssue("chain-downgrade", segments[0].key, stream,
                                         f"an unkeyed chain continues the HMAC-chained stream {previous}"))
            tip = tips.get(previous)
            if tip is None or not isinstance(start.get("previous_seq"), int):
                continue
            if tip[0] < start["previous_seq"]:
                issues.append(ChainIssue("chain-gap", segments[0].key, stream,
                                         f"the previous stream {previous} ends at seq {tip[0]} but reached "
                                         f"seq {start['previous_seq']} before this one started"))
            elif tip[0] == start["previous_seq"] and tip[1] != start.get("previous_chain"):
                issues.append(ChainIssue("chain-mismatch", segments[0].key, stream,
                                         f"the previous stream {previous} ends with another chain value "
                                         "than this one recorded"))
        if self.require_keyed:
            issues.extend(ChainIssue("chain-unkeyed", self.segments[s][0].key, s, "an unkeyed SHA-256 chain (anyone "
                                     "can recompute it); --require-keyed-chains") for s in sorted(self.unkeyed))
        return issues
