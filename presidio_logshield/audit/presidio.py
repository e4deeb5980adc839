"""Presidio's own operations, audited: wrap an ``AnalyzerEngine`` or ``AnonymizerEngine`` you already use.

    analyzer = AuditedAnalyzerEngine(AnalyzerEngine())
    results = analyzer.analyze(text=text, language="en")        # same call, same result
    # -> audit record: action "presidio.analyze", caller "billing.export:run", entity counts, text length, duration

The record carries counts and lengths only — never the text, never a found value. Everything but ``analyze`` /
``anonymize`` is passed through to the wrapped engine unchanged.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

from .access import audit_event

__all__ = ["AuditedAnalyzerEngine", "AuditedAnonymizerEngine"]


def _caller(depth: int = 2) -> str:
    frame = sys._getframe(depth)
    return f"{frame.f_globals.get('__name__', '?')}:{frame.f_code.co_name}"


class _Audited:
    _action = ""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def _audit(self, caller: str, started: float, error: BaseException | None, **details: Any) -> None:
        if error is not None:
            details["error"] = type(error).__name__
        audit_event(self._action, type(self._engine).__name__, "failure" if error is not None else "success",
                    duration_ms=(time.perf_counter() - started) * 1000, caller=caller, **details)


class AuditedAnalyzerEngine(_Audited):
    """An ``AnalyzerEngine`` whose every ``analyze`` call writes an audit record (entity counts, text length)."""

    _action = "presidio.analyze"

    def analyze(self, text: str, language: str, *args: Any, **kwargs: Any) -> Any:
        caller, started = _caller(), time.perf_counter()
        try:
            results = self._engine.analyze(text, language, *args, **kwargs)
        except BaseException as exc:
            self._audit(caller, started, exc, language=language, text_length=len(text))
            raise
        found = Counter(r.entity_type for r in results)
        self._audit(caller, started, None, language=language, text_length=len(text),
                    entities=dict(sorted(found.items())), findings=len(results))
        return results


class AuditedAnonymizerEngine(_Audited):
    """An ``AnonymizerEngine`` whose every ``anonymize`` call writes an audit record (operators per entity type)."""

    _action = "presidio.anonymize"

    def anonymize(self, text: str, analyzer_results: list[Any], operators: dict[str, Any] | None = None,
                  *args: Any, **kwargs: Any) -> Any:
        caller, started = _caller(), time.perf_counter()
        try:
            result = self._engine.anonymize(text, analyzer_results, operators, *args, **kwargs)
        except BaseException as exc:
            self._audit(caller, started, exc, text_length=len(text))
            raise
        applied = Counter(f"{item.entity_type}:{item.operator}" for item in getattr(result, "items", ()))
        self._audit(caller, started, None, text_length=len(text), operations=dict(sorted(applied.items())),
                    findings=len(analyzer_results))
        return result
