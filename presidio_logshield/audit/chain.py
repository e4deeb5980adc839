"""Tamper-evident record chains: every written record carries its stream id, a sequence number and a chain
value — HMAC-SHA256 (keyed) or SHA-256 (unkeyed) over the previous chain value and the record's canonical JSON.

Removing, reordering or editing a line breaks the chain from that line on; :func:`verify_chain` says where.
Without a key the chain detects accidents (truncation, lost lines, bit rot), not forgery: anyone can recompute
it. A process restart or fork starts a new stream; its first record names the previous stream when known.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["ChainProblem", "RecordChain", "canonical_json", "verify_chain"]

GENESIS = "0" * 64
_CHAIN_FIELDS = ("chain",)


def canonical_json(doc: dict[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes the chain covers (every field but ``chain`` itself)."""
    body = {key: value for key, value in doc.items() if key not in _CHAIN_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _link(key: bytes | None, previous: str, doc: dict[str, Any]) -> str:
    message = previous.encode() + b"\n" + canonical_json(doc)
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class RecordChain:
    """Seals documents in write order. Not thread-safe: the handler calls it from its writer only."""

    def __init__(self, key: bytes | None = None, *, previous_stream: str | None = None) -> None:
        self.key = key
        self.previous_stream = previous_stream
        self._start()

    def _start(self) -> None:
        self.stream = f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}:{secrets.token_hex(4)}"
        self.seq = 0
        self.last = GENESIS

    def restart_after_fork(self) -> None:
        self.previous_stream = self.stream
        self._start()

    def seal(self, doc: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        doc["stream"] = self.stream
        doc["seq"] = self.seq
        if self.seq == 1:
            doc["stream_start"] = {
                "previous": self.previous_stream,
                "chain": "hmac-sha256" if self.key else "sha256",
                **({} if self.key else {"note": "unkeyed chain: detects accidental loss or change, not forgery"}),
            }
        self.last = doc["chain"] = _link(self.key, self.last, doc)
        return doc


@dataclass(frozen=True)
class ChainProblem:
    line: int
    stream: str
    kind: str  # "gap", "reorder", "mismatch", "unsealed", "unparseable"
    detail: str


def verify_chain(lines: Iterable[str], key: bytes | None = None) -> list[ChainProblem]:
    """Check every stream in ``lines`` (JSON records, any interleaving of streams); [] when intact."""
    state: dict[str, tuple[int, str]] = {}
    problems: list[ChainProblem] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            problems.append(ChainProblem(number, "", "unparseable", "not a JSON object"))
            continue
        stream, seq, chain = doc.get("stream"), doc.get("seq"), doc.get("chain")
        if not isinstance(stream, str) or not isinstance(seq, int) or not isinstance(chain, str):
            problems.append(ChainProblem(number, str(stream or ""), "unsealed", "record has no stream/seq/chain"))
            continue
        last_seq, last_chain = state.get(stream, (0, GENESIS))
        if seq != last_seq + 1:
            kind = "gap" if seq > last_seq + 1 else "reorder"
            problems.append(ChainProblem(number, stream, kind, f"expected seq {last_seq + 1}, found {seq}"))
            if kind == "reorder":
                continue
            last_chain = None  # cannot check the link across a gap; re-anchor on this record
        if last_chain is not None and not hmac.compare_digest(_link(key, last_chain, doc), chain):
            problems.append(ChainProblem(number, stream, "mismatch", f"chain value wrong at seq {seq}"))
        state[stream] = (seq, chain)
    return problems
