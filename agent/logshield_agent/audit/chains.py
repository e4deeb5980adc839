"""Record chains across an archive: each object is checked on its own, then the pieces are joined per stream.

A stream (one process's records) spans many objects and even several source files (the library rotates its file
and the stream goes on in the next one), so objects cannot be checked in one pass in any fixed order. Instead each
object yields, per stream, a *segment*: its first record (sequence number, covered bytes, chain value) and its last
(sequence number, chain value), plus the problems inside it. Segments of a stream are then sorted by sequence number
and each must continue the previous one: next seq = last seq + 1, and the chain link from the previous segment's last
value to the next segment's first record must hold. Memory is one small segment per (object, stream).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from presidio_logshield.audit import split_sealed

__all__ = ["ChainIssue", "ChainJoiner", "ObjectChains", "Segment", "object_segments"]

GENESIS = "0" * 64
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
    kind: str  # chain-gap, chain-reorder, chain-mismatch, chain-duplicate
    key: str
    stream: str
    detail: str


def _link(key: bytes | None, previous: str, body: bytes) -> str:
    message = previous.encode() + b"\n" + body
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _position(body: bytes) -> tuple[str, int, dict[str, Any] | None] | None:
    """``(stream, seq, stream_start)`` of a covered record: a regex on the usual tail, JSON otherwise."""
    match = _TAIL.search(body)
    if match is not None:
        return json.loads(b'"' + match.group(1) + b'"'), int(match.group(2)), None
    try:
        doc = json.loads(body)
    except ValueError:
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
    #: Links that did not verify. Whether that is tampering depends on the stream's kind of chain (an HMAC chain
    #: cannot be checked without its key), which only the whole archive tells: the joiner decides.
    link_failures: list[ChainIssue] = field(default_factory=list)
    links_ok: dict[str, int] = field(default_factory=dict)
    sealed: int = 0
    unsealed: int = 0


def object_segments(key: str, lines: Iterable[bytes], chain_key: bytes | None) -> ObjectChains:
    """Check the chains inside one object and summarise each stream in it as a segment."""
    out = ObjectChains()
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
                start = (_position_from_json(body) or {}).get("stream_start")
            segment = Segment(stream, seq, body, chain, seq, chain, key, start if isinstance(start, dict) else None)
            open_segments[stream] = segment
            out.segments.append(segment)
            continue
        if seq != segment.last_seq + 1:
            kind = "chain-gap" if seq > segment.last_seq + 1 else "chain-reorder"
            out.issues.append(ChainIssue(kind, key, stream, f"line {number}: seq {seq} after {segment.last_seq}"))
        elif _keyed_ok(chain_key, segment.last_chain, body, chain):
            out.links_ok[stream] = out.links_ok.get(stream, 0) + 1
        else:
            out.link_failures.append(ChainIssue("chain-mismatch", key, stream,
                                                f"line {number}: chain value wrong at seq {seq}"))
        segment.last_seq, segment.last_chain = seq, chain
    return out


def _position_from_json(body: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _keyed_ok(chain_key: bytes | None, previous: str, body: bytes, chain: str) -> bool:
    return hmac.compare_digest(_link(chain_key, previous, body), chain)


class ChainJoiner:
    """Collects segments from every object, then checks that each stream's segments continue one another."""

    def __init__(self, chain_key: bytes | None, *, windowed: bool) -> None:
        self.chain_key = chain_key
        self.windowed = windowed  # with --since, a stream may begin before the window: not a gap
        self.segments: dict[str, list[Segment]] = {}
        self.link_failures: dict[str, list[ChainIssue]] = {}
        self.links_ok: dict[str, int] = {}
        self.unverifiable: set[str] = set()

    def add(self, chains: ObjectChains) -> None:
        for segment in chains.segments:
            self.segments.setdefault(segment.stream, []).append(segment)
        for failure in chains.link_failures:
            self.link_failures.setdefault(failure.stream, []).append(failure)
        for stream, n in chains.links_ok.items():
            self.links_ok[stream] = self.links_ok.get(stream, 0) + n

    def _link(self, stream: str, previous: str, body: bytes, chain: str, failure: ChainIssue) -> None:
        if _keyed_ok(self.chain_key, previous, body, chain):
            self.links_ok[stream] = self.links_ok.get(stream, 0) + 1
        else:
            self.link_failures.setdefault(stream, []).append(failure)

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
                self._link(stream, GENESIS, first.first_body, first.first_chain,
                           ChainIssue("chain-mismatch", first.key, stream, "chain value wrong at seq 1"))
            for before, after in zip(segments, segments[1:], strict=False):
                if after.first_seq <= before.last_seq:
                    issues.append(ChainIssue("chain-duplicate", after.key, stream,
                                             f"seq {after.first_seq}-{after.last_seq} also in {before.key}"))
                elif after.first_seq != before.last_seq + 1:
                    issues.append(ChainIssue("chain-gap", after.key, stream,
                                             f"seq {before.last_seq + 1}-{after.first_seq - 1} missing "
                                             f"(after {before.key})"))
                else:
                    self._link(stream, before.last_chain, after.first_body, after.first_chain,
                               ChainIssue("chain-mismatch", after.key, stream,
                                          f"seq {after.first_seq} does not continue {before.key}"))
            tips[stream] = (segments[-1].last_seq, segments[-1].last_chain)
            issues.extend(self._link_verdict(stream, segments))
        issues.extend(self._check_restarts(tips))
        return issues

    def _link_verdict(self, stream: str, segments: list[Segment]) -> list[ChainIssue]:
        """Failed links are tampering — unless the stream is an HMAC chain and no key was given (then nothing can
        be said of its links; likewise when no link verified at all and the kind of chain is unknown)."""
        failures = self.link_failures.get(stream, [])
        keyed = any(s.start and s.start.get("chain") == "hmac-sha256" for s in segments)
        if self.chain_key is None and (keyed or (failures and not self.links_ok.get(stream))):
            self.unverifiable.add(stream)
            return []
        return failures

    def _check_restarts(self, tips: dict[str, tuple[int, str]]) -> list[ChainIssue]:
        """A stream that names its predecessor's last seq: the predecessor must reach it (its tail not lost)."""
        issues = []
        for stream, segments in self.segments.items():
            start = segments[0].start if segments[0].first_seq == 1 else None
            if not start or not start.get("previous") or not isinstance(start.get("previous_seq"), int):
                continue
            tip = tips.get(str(start["previous"]))
            if tip is None:
                continue
            if tip[0] < start["previous_seq"]:
                issues.append(ChainIssue("chain-gap", segments[0].key, stream,
                                         f"the previous stream {start['previous']} ends at seq {tip[0]} but reached "
                                         f"seq {start['previous_seq']} before this one started"))
            elif tip[0] == start["previous_seq"] and tip[1] != start.get("previous_chain"):
                issues.append(ChainIssue("chain-mismatch", segments[0].key, stream,
                                         f"the previous stream {start['previous']} ends with another chain value "
                                         "than this one recorded"))
        return issues
