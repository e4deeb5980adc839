"""Records and batches for the alert tests: library-shaped JSON lines at chosen event times, shipped batches."""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterable, Sequence
from typing import Any

from logshield_agent.pipeline import ShippedBatch

from presidio_logshield.output import encode, rfc3339

MINUTE = 60
T0 = 1_795_000_000 // 3600 * 3600  # an hour boundary (2026-11-19)
_seq = itertools.count(1)


def record(t: float, logger: str = "shop.api", *, level: str = "INFO", message: str = "GET /api/v1/orders 200",
           actor: str | None = None, entities: dict[str, int] | None = None, audit: dict[str, Any] | None = None,
           event: str | None = None, **fields: Any) -> bytes:
    """One line as the library writes it (same field order, compact JSON, chain fields last)."""
    doc: dict[str, Any] = {"timestamp": rfc3339(t), "level": level, "logger": logger, "message": message,
                           "service": "shop", "host": "web-1", "pid": 812, "thread": "MainThread"}
    if actor is not None:
        doc["actor"] = actor
    doc["request_id"] = f"r-{next(_seq)}"
    doc.update(fields)
    if event is not None:
        doc["event"] = event
    if audit is not None:
        doc["audit"] = {"resource": None, "outcome": "success", "duration_ms": 1.5, "details": {}, **audit}
    if entities:
        doc["redaction"] = {"entities": entities, "rules": ["presidio:Recognizer"]}
    doc["stream"] = "web-1:812:1795000000:abcd"
    doc["seq"] = next(_seq)
    doc["chain"] = "0" * 64
    return encode(doc) + b"\n"


def spread(start: float, seconds: float, n: int) -> list[float]:
    """``n`` event times evenly over ``[start, start + seconds)``."""
    return [start + i * seconds / n for i in range(n)]


def steady(start: float, minutes: int, per_minute: int, *, seed: int = 0, actors: int = 40,
           card_every: int = 50) -> list[tuple[float, bytes]]:
    """Ordinary shop traffic: a few loggers, an actor on every line, a credit card redacted now and then."""
    rng = random.Random(seed)
    out = []
    for m in range(minutes):
        for t in spread(start + m * MINUTE, MINUTE, per_minute):
            entities = {"CREDIT_CARD": 1} if rng.randrange(card_every) == 0 else None
            out.append((t, record(t, rng.choice(["shop.api", "shop.api", "shop.db"]),
                                  actor=f"user{rng.randrange(actors)}", entities=entities)))
    return out


def batch(lines: Sequence[bytes], *, key: str | None = None, service: str = "shop") -> ShippedBatch:
    body = b"".join(lines)
    key = key or f"service={service}/objects/{hashlib.sha256(body).hexdigest()[:16]}.ndjson.zst"
    return ShippedBatch(key=key, sha256=hashlib.sha256(body).hexdigest(), size=len(body), lines=len(lines),
                        source="f" * 64, byte_start=0, byte_end=len(body), first_event="", last_event="",
                        service=service, body=body, already_existed=False)


def minutes_of(timed: Iterable[tuple[float, bytes]], start: float) -> dict[int, list[bytes]]:
    """Lines grouped by the minute (since ``start``) of their event time."""
    groups: dict[int, list[bytes]] = {}
    for t, line in sorted(timed, key=lambda tl: tl[0]):
        groups.setdefault(int((t - start) // MINUTE), []).append(line)
    return groups


class Recorder:
    """A destination that keeps what it is sent."""

    name = "recorder"

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []

    def send(self, document: dict[str, Any], body: bytes) -> None:
        self.documents.append(document)


class Harness:
    """An AlertObserver with a recording destination, fed batch by batch at chosen wall times."""

    def __init__(self, **settings: Any) -> None:
        from logshield_agent.alerts import AlertObserver, DetectorSettings, RateDetector

        settings.setdefault("warmup", 10 * MINUTE)
        self.wall = 0.0
        self.recorder = Recorder()
        self.observer = AlertObserver(RateDetector(DetectorSettings(**settings)), [self.recorder], host="web-1",
                                      wall=lambda: self.wall)

    @property
    def detector(self):
        return self.observer.detector

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event sent (open, ongoing, closed), in order."""
        return self.recorder.documents

    @property
    def alerts(self) -> list[dict[str, Any]]:
        """One document per incident: its latest event."""
        latest: dict[str, dict[str, Any]] = {}
        for document in self.recorder.documents:
            latest[document["id"]] = document
        return list(latest.values())

    def ship(self, lines: Sequence[bytes], wall: float, *, service: str = "shop") -> None:
        self.wall = wall
        if lines:
            self.observer.batch_shipped(batch(lines, service=service))
        self.observer.tick(wall)

    def live(self, timed: Iterable[tuple[float, bytes]], start: float, *, delay: float = 30.0) -> None:
        """Ship minute by minute, each minute's lines ``delay`` seconds after the minute ends (like live tailing)."""
        for minute, lines in sorted(minutes_of(timed, start).items()):
            self.ship(lines, start + (minute + 1) * MINUTE + delay)

    def idle(self, wall: float) -> None:
        self.wall = wall
        self.observer.tick(wall)

    def close(self) -> None:
        self.observer.close(self.wall)

