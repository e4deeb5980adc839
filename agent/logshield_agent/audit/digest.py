"""The digest document: which objects the store acknowledged in a period, chained and signed.

A digest is one JSON object under ``<sink prefix>/_digest/host=<host>/dt=<day>/<period end>-<seq>.json``::

    {"format": "logshield-digest/1", "host": "web-1", "seq": 42,
     "period_start": "2026-11-24T09:00:00+00:00", "period_end": "2026-11-24T10:00:00+00:00",
     "agent_start": "2026-11-24T07:12:03+00:00", "kind": "period", "interval": 3600,
     "previous": {"key": "_digest/…-00000041.json", "sha256": "…"},
     "public_key": "ed25519:<sha256 of the raw public key>",
     "objects": [{"key": …, "sha256": …, "size": …, "lines": …, "source": …, "byte_start": …, "byte_end": …,
                  "first_event": …, "last_event": …, "first_record": {"stream": …, "seq": …}, "last_record": …}],
     "signature": "<base64 Ed25519 over every byte of the object before ,\\"signature\\">"}

Digests of one host form a chain (``seq`` + ``previous``); a period without objects still gets a digest, so silence
is recorded too. ``kind`` says why a digest was written: ``start`` (the agent started: written before it has shipped
anything, so every object of a run follows a digest of that run), ``period`` (the interval ended) or ``final`` (the
agent stopped: nothing of this run follows). ``interval`` is ``LOGSHIELD_DIGEST_INTERVAL``, so a verifier can tell
how recent the newest digest must be. Digests written before these two fields existed have neither (a verifier treats
them as ``period`` digests of a one-hour interval). Everything in a digest is a pure function of the ledger and the
period: a digest rebuilt after a crash has the same key and the same bytes (and the conditional put treats it as
already there).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = ["DIGEST_FORMAT", "DIGEST_KINDS", "DIGEST_PREFIX", "DigestEntry", "ParsedDigest", "digest_key",
           "encode_digest", "parse_digest", "parse_digest_key", "record_position"]

DIGEST_FORMAT = "logshield-digest/1"
DIGEST_KINDS = ("start", "period", "final")
DIGEST_PREFIX = "_digest/"
PUBLIC_KEYS_PREFIX = DIGEST_PREFIX + "public-keys/"
_KEY = re.compile(r"(?:^|/)_digest/host=(?P<host>[^/]+)/dt=\d{4}-\d{2}-\d{2}/"
                  r"(?P<end>\d{8}T\d{6}Z)-(?P<seq>\d{8})\.json$")
_SIGNATURE = re.compile(rb',"signature":"([A-Za-z0-9+/=]+)"}\s*$')
_RECORD_TAIL = re.compile(rb'"stream":"((?:[^"\\]|\\.)*)","seq":(\d+)')


@dataclass(frozen=True)
class DigestEntry:
    """One object as the store acknowledged it."""

    key: str
    sha256: str
    size: int
    lines: int
    source: str
    byte_start: int
    byte_end: int
    first_event: str
    last_event: str
    first_record: dict[str, Any] | None = None
    last_record: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DigestEntry:
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})


def record_position(line: bytes) -> dict[str, Any] | None:
    """``{"stream", "seq"}`` of a sealed library record (the last ``stream``/``seq`` pair in the line), else None."""
    if not line.rstrip().endswith(b"}"):
        return None
    found = None
    for found in _RECORD_TAIL.finditer(line):  # noqa: B007 - the last one wins
        pass
    if found is None:
        return None
    try:
        stream = json.loads(b'"' + found.group(1) + b'"')
    except ValueError:
        return None
    return {"stream": stream, "seq": int(found.group(2))}


def _utc(t: datetime) -> datetime:
    return t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)


def digest_key(host: str, period_end: datetime, seq: int) -> str:
    end = _utc(period_end)
    return f"{DIGEST_PREFIX}host={host}/dt={end:%Y-%m-%d}/{end:%Y%m%dT%H%M%SZ}-{seq:08d}.json"


def parse_digest_key(key: str) -> tuple[str, datetime, int] | None:
    match = _KEY.search(key)
    if match is None:
        return None
    end = datetime.strptime(match["end"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    return match["host"], end, int(match["seq"])


def encode_digest(doc: dict[str, Any], sign: Any) -> bytes:
    """The digest's bytes: compact JSON with ``signature`` (by ``sign(bytes) -> base64``) as the last member."""
    body = json.dumps(doc, separators=(",", ":"), sort_keys=False, ensure_ascii=True).encode()
    return body[:-1] + b',"signature":"' + sign(body).encode("ascii") + b'"}'


@dataclass(frozen=True)
class ParsedDigest:
    doc: dict[str, Any]
    signed: bytes  # the bytes the signature covers
    signature: str | None


def parse_digest(data: bytes) -> ParsedDigest:
    """Split a digest into its document, the signed bytes and the signature; ValueError when it is not one."""
    match = _SIGNATURE.search(data)
    signed = data[:match.start()] + b"}" if match else data
    doc = json.loads(signed)
    if not isinstance(doc, dict) or doc.get("format") != DIGEST_FORMAT:
        raise ValueError("not a logshield digest")
    return ParsedDigest(doc, signed, match.group(1).decode() if match else None)
