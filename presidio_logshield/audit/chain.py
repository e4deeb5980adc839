"""Tamper-evident record chains: every written record carries its stream id, a sequence number and a chain
value — HMAC-SHA256 (keyed) or SHA-256 (unkeyed) over the previous chain value and the record's bytes.

A sealed line is the record's JSON with ``"chain"`` as its last member::

    {"timestamp":…,"stream":"web-1:812:1764000000:1a2b3c4d","seq":7,"chain":"<64 hex>"}

and the chain value covers exactly the bytes of that line without its ``,"chain":"…"`` member (so sealing costs one
JSON encoding, and any change to any byte of a line — even re-serialising it — breaks the chain from there on).
Removing, reordering or editing a line is reported by :func:`verify_chain`. Without a key the chain detects
accidents (truncation, lost lines, bit rot), not forgery: anyone can recompute it.

A process start, restart or fork begins a new stream. Its first record carries ``stream_start``: the kind of chain
and, when known, the ``previous`` stream with its last ``previous_seq`` and ``previous_chain`` — so a verifier can
tell a clean restart (the previous stream ends exactly there) from lost records. For a file, the previous stream is
the dead stream of the same file *template* (``app-{pid}.log``: another process's file) the new stream claims from
the template's :class:`~presidio_logshield.audit.streams.StreamRegistry`; before any state exists, the last stream
at the end of the file; after a fork, the parent's.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..output import encode
from .streams import StreamRegistry

__all__ = ["ChainProblem", "ChainTip", "ChainVerifier", "RecordChain", "last_chain_tip", "registry_for",
           "split_sealed", "stream_paths", "verify_chain"]

GENESIS = "0" * 64
_SEALED_FIELDS = ("stream", "seq", "stream_start", "chain")
# Spacing is tolerated here so that a re-serialised line is reported as changed ("mismatch"), not as unsealed.
_SEAL = re.compile(rb',\s*"chain"\s*:\s*"([0-9a-f]{64})"\s*}\s*$')
#: How much of a file's end is read to find its last sealed record.
_TAIL_BYTES = 256 * 1024


def _link(key: bytes | None, previous: str, body: bytes) -> str:
    message = previous.encode() + b"\n" + body
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.digest(key, message, "sha256").hex()  # one C call: hmac.new(...).hexdigest(), faster


@dataclass(frozen=True)
class ChainTip:
    """Where a stream ended: its id, last sequence number and last chain value."""

    stream: str
    seq: int
    chain: str


class RecordChain:
    """Seals documents in write order. Not thread-safe: the handler calls it under its write lock.

    With a ``registry`` (and the ``path`` written to), the first record claims the template's dead predecessor;
    call :meth:`settle` once the lines sealed so far are written, and :meth:`close` at the end. ``guess_previous``
    (the stream at the end of the file) is named only when the template has no registry state yet.
    """

    def __init__(self, key: bytes | None = None, *, previous: ChainTip | None = None,
                 registry: StreamRegistry | None = None, path: str | None = None,
                 guess_previous: ChainTip | None = None) -> None:
        self.key = key
        self.previous = previous
        self.registry = registry
        self.path = path
        self._guess = guess_previous
        self._claiming = False
        self._start()

    def _start(self) -> None:
        self.stream = f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}:{secrets.token_hex(4)}"
        self.seq = 0
        self.last = GENESIS

    @property
    def tip(self) -> ChainTip:
        return ChainTip(self.stream, self.seq, self.last)

    def restart_after_fork(self) -> None:
        self.previous = self.tip
        self._guess = None
        self._claiming = False
        if self.registry is not None:
            self.registry.reset_after_fork()
        self._start()

    def _first_previous(self) -> ChainTip | None:
        if self.registry is not None and self.path is not None:
            try:
                existed, claimed = self.registry.claim(self.stream, self.path)
                self._claiming = True
            except Exception:  # noqa: BLE001 - no state, no claim: the record is still written
                existed, claimed = False, None
            if claimed is not None:
                return ChainTip(claimed.stream, claimed.seq, claimed.chain)
            if existed:
                return self.previous
        return self.previous if self.previous is not None else self._guess

    def settle(self, written: bool = True) -> None:
        """After the first record is written: commit its claim (and this stream) to the template's state; when the
        write failed, give the claim up (the predecessor stays to be claimed by the next stream)."""
        if self._claiming and self.registry is not None:
            self._claiming = False
            with contextlib.suppress(Exception):
                if written:
                    self.registry.commit()
                else:
                    self.registry.abandon()

    def close(self) -> None:
        """Record where this stream ended, for the stream that follows it."""
        self.settle()
        if self.registry is not None and self.seq:
            with contextlib.suppress(Exception):
                self.registry.closed(self.stream, self.seq, self.last)

    def seal(self, doc: dict[str, Any]) -> bytes:
        """The sealed line for ``doc`` (UTF-8, no newline); ``doc`` gains ``stream``, ``seq``, ``stream_start``."""
        self.seq += 1
        for name in _SEALED_FIELDS:  # an application field of the same name is kept, renamed, never overwritten
            if name in doc:
                doc[f"extra_{name}"] = doc.pop(name)
        doc["stream"] = self.stream
        doc["seq"] = self.seq
        if self.seq == 1:
            start: dict[str, Any] = {"chain": "hmac-sha256" if self.key else "sha256"}
            self.previous = self._first_previous()
            if self.previous is not None:
                start.update(previous=self.previous.stream, previous_seq=self.previous.seq,
                             previous_chain=self.previous.chain)
            else:
                start["previous"] = None
            if not self.key:
                start["note"] = "unkeyed chain: detects accidental loss or change, not forgery"
            doc["stream_start"] = start
        body = encode(doc)
        self.last = _link(self.key, self.last, body)
        return b'%b,"chain":"%b"}' % (memoryview(body)[:-1], self.last.encode())


def split_sealed(line: bytes | str) -> tuple[bytes, str] | None:
    """``(covered bytes, chain value)`` of a sealed line, or None when the line is not sealed."""
    raw = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
    match = _SEAL.search(raw)
    if match is None:
        return None
    return raw[:match.start()] + b"}", match.group(1).decode()


def last_chain_tip(*paths: str | os.PathLike[str], stream: str | None = None) -> ChainTip | None:
    """The last sealed record (of ``stream``, when given) of the first of ``paths`` that has one (a log file, then its
    rotated copy)."""
    for path in paths:
        try:
            with open(path, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(max(0, size - _TAIL_BYTES))
                tail = fh.read()
        except OSError:
            continue
        for line in reversed(tail.split(b"\n")):
            sealed = split_sealed(line)
            if sealed is None:
                continue
            try:
                doc = json.loads(sealed[0])
            except ValueError:
                continue
            if isinstance(doc.get("stream"), str) and isinstance(doc.get("seq"), int) and (
                    stream is None or doc["stream"] == stream):
                return ChainTip(doc["stream"], doc["seq"], sealed[1])
    return None


def _tip_reader(paths: tuple[str, ...], stream: str) -> tuple[int, str] | None:
    tip = last_chain_tip(*paths, stream=stream)
    return None if tip is None else (tip.seq, tip.chain)


def registry_for(template: str | os.PathLike[str]) -> StreamRegistry | None:
    """The stream registry of a file template, or None where it cannot work (no ``fcntl``)."""
    return StreamRegistry(template, tip_reader=_tip_reader) if StreamRegistry.available() else None


@dataclass(frozen=True)
class ChainProblem:
    line: int
    stream: str
    kind: str  # "gap", "reorder", "mismatch", "unsealed", "unparseable"
    detail: str


class ChainVerifier:
    """Feeds lines one by one (any interleaving of streams); keeps one tip per stream, never the lines."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key
        self.tips: dict[str, ChainTip] = {}
        self.problems: list[ChainProblem] = []
        self._claims: list[tuple[int, str, ChainTip]] = []  # (line, new stream, where it says the previous ended)

    def feed(self, number: int, line: bytes | str) -> None:
        if not (line.strip() if isinstance(line, (bytes, str)) else line):
            return
        sealed = split_sealed(line)
        if sealed is None:
            self.problems.append(ChainProblem(number, "", "unsealed", "record has no chain value"))
            return
        body, chain = sealed
        try:
            doc = json.loads(body)
        except ValueError:
            self.problems.append(ChainProblem(number, "", "unparseable", "not a JSON object"))
            return
        stream, seq = doc.get("stream"), doc.get("seq")
        if not isinstance(stream, str) or not isinstance(seq, int):
            self.problems.append(ChainProblem(number, str(stream or ""), "unsealed", "record has no stream/seq"))
            return
        tip = self.tips.get(stream)
        last_seq, last_chain = (tip.seq, tip.chain) if tip else (0, GENESIS)
        if seq != last_seq + 1:
            kind = "gap" if seq > last_seq + 1 else "reorder"
            self.problems.append(ChainProblem(number, stream, kind, f"expected seq {last_seq + 1}, found {seq}"))
            if kind == "reorder":
                return
            last_chain = None  # cannot check the link across a gap; re-anchor on this record
        if last_chain is not None and not hmac.compare_digest(_link(self.key, last_chain, body), chain):
            self.problems.append(ChainProblem(number, stream, "mismatch", f"chain value wrong at seq {seq}"))
        self.tips[stream] = ChainTip(stream, seq, chain)
        start = doc.get("stream_start")
        if seq == 1 and isinstance(start, dict) and start.get("previous") and isinstance(start.get("previous_seq"),
                                                                                          int):
            self._claims.append((number, stream, ChainTip(str(start["previous"]), start["previous_seq"],
                                                          str(start.get("previous_chain", "")))))

    def finish(self) -> list[ChainProblem]:
        """After the last line: a stream that says its predecessor reached seq N, while the predecessor's records
        here stop before N, lost its tail (e.g. the last lines before a restart were removed)."""
        for number, stream, claimed in self._claims:
            seen = self.tips.get(claimed.stream)
            if seen is None:
                continue  # the previous stream is not in what was checked (another file, another period)
            if seen.seq < claimed.seq:
                self.problems.append(ChainProblem(
                    number, stream, "gap", f"previous stream {claimed.stream} ends at seq {seen.seq}, but the "
                    f"stream that followed it says it reached seq {claimed.seq}"))
            elif seen.seq == claimed.seq and not hmac.compare_digest(seen.chain, claimed.chain):
                self.problems.append(ChainProblem(
                    number, stream, "mismatch", f"previous stream {claimed.stream} ends with another chain value "
                    "than the stream that followed it recorded"))
        self._claims.clear()
        return self.problems


def verify_chain(lines: Iterable[bytes | str], key: bytes | None = None) -> list[ChainProblem]:
    """Check every stream in ``lines`` (sealed JSON records, any interleaving of streams); [] when intact."""
    verifier = ChainVerifier(key)
    for number, line in enumerate(lines, 1):
        verifier.feed(number, line)
    return verifier.finish()


def stream_paths(path: str | os.PathLike[str]) -> tuple[str, str]:
    """The files whose end tells where the previous process's stream stopped: the log and its first backup."""
    return os.fspath(path), f"{os.fspath(Path(path))}.1"
