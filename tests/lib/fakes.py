"""Test doubles for the redaction engine: a small, predictable redactor with the real interface."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


@dataclass
class FakeSummary:
    entities: dict[str, int] = field(default_factory=dict)
    rules: set[str] = field(default_factory=set)

    def merge(self, other: FakeSummary) -> None:
        for key, count in other.entities.items():
            self.entities[key] = self.entities.get(key, 0) + count
        self.rules |= other.rules

    def as_dict(self) -> dict[str, Any]:
        return {"entities": dict(self.entities), "rules": sorted(self.rules)} if self else {}

    def __bool__(self) -> bool:
        return bool(self.entities)


class FakeRedactor:
    """Replaces e-mail addresses and values under a ``password`` key; can be told to fail or hang (waiting, or with
    ``spin=True`` computing, like a runaway pattern). With ``serialised=True`` one batch at a time, like the real Redactor (a hung batch holds up every caller)."""

    def __init__(self, *, fail_on: str | None = None, hang_on: str | None = None, hang_seconds: float = 5.0,
                 serialised: bool = False, spin: bool = False):
        self.spin = spin
        self.fail_on = fail_on
        self.hang_on = hang_on
        self.hang_seconds = hang_seconds
        self.batches: list[int] = []
        self.release = threading.Event()
        self._lock = threading.Lock() if serialised else None

    def redact_text(self, text: str) -> tuple[str, FakeSummary]:
        if self.fail_on and self.fail_on in text:
            raise RuntimeError("detector exploded")
        if self.hang_on and self.hang_on in text:
            if self.spin:
                deadline = time.monotonic() + self.hang_seconds
                while not self.release.is_set() and time.monotonic() < deadline:
                    pass
            else:
                self.release.wait(self.hang_seconds)
        summary = FakeSummary()
        count = len(EMAIL.findall(text))
        if count:
            summary.entities["EMAIL_ADDRESS"] = count
            summary.rules.add("fake:email")
        return EMAIL.sub("<EMAIL_ADDRESS>", text), summary

    def _value(self, value: Any, summary: FakeSummary, key: str | None = None) -> Any:
        if key is not None and "password" in key.lower():
            summary.merge(FakeSummary({"SECRET": 1}, {"key:password"}))
            return "<SECRET>"
        if isinstance(value, str):
            text, found = self.redact_text(value)
            summary.merge(found)
            return text
        if isinstance(value, dict):
            return {k: self._value(v, summary, str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._value(v, summary) for v in value]
        if value is None or isinstance(value, (bool, int, float)):
            return value
        return self._value(str(value), summary)

    def redact_batch(self, values: Sequence[Any]) -> list[tuple[Any, FakeSummary]]:
        if self._lock is not None:
            with self._lock:
                return self._redact_batch(values)
        return self._redact_batch(values)

    def _redact_batch(self, values: Sequence[Any]) -> list[tuple[Any, FakeSummary]]:
        self.batches.append(len(values))
        out = []
        for value in values:
            summary = FakeSummary()
            out.append((self._value(value, summary), summary))
        return out


def slow(seconds: float) -> None:
    time.sleep(seconds)


def json_lines(stream: io.StringIO) -> list[dict]:
    """The JSON objects written to ``stream``, one per line."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]
