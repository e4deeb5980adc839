"""What was redacted in a value or a record: counts per entity type and the rule ids — never a value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["NOTHING_FOUND", "RedactionSummary"]


@dataclass(eq=False)
class RedactionSummary:
    """What was redacted, as counts only — never a value."""

    entities: dict[str, int] = field(default_factory=dict)
    rules: set[str] = field(default_factory=set)

    def add(self, entity_type: str, rule: str, count: int = 1) -> None:
        self.entities[entity_type] = self.entities.get(entity_type, 0) + count
        self.rules.add(rule)

    def merge(self, other: RedactionSummary) -> None:
        if not other.entities:
            return
        for entity, count in other.entities.items():
            self.entities[entity] = self.entities.get(entity, 0) + count
        self.rules |= other.rules

    def as_dict(self) -> dict[str, Any]:
        if not self:
            return {}
        return {"entities": dict(sorted(self.entities.items())), "rules": sorted(self.rules)}

    def __bool__(self) -> bool:
        return bool(self.entities)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RedactionSummary):
            return NotImplemented
        return self.entities == other.entities and self.rules == other.rules

    __hash__ = None  # type: ignore[assignment] - mutable

    @classmethod
    def of(cls, hits: list[tuple[str, str]]) -> RedactionSummary:
        """A summary of ``(entity type, rule)`` pairs; the shared empty summary when there are none."""
        if not hits:
            return NOTHING_FOUND
        summary = cls()
        for entity_type, rule in hits:
            summary.add(entity_type, rule)
        return summary


class _NothingFound(RedactionSummary):
    """The summary of a value with no finding, shared by all of them: read-only."""

    def add(self, entity_type: str, rule: str, count: int = 1) -> None:
        raise TypeError("the shared empty RedactionSummary is read-only; merge it into a new one")

    def merge(self, other: RedactionSummary) -> None:
        if other.entities:
            raise TypeError("the shared empty RedactionSummary is read-only; merge it into a new one")


NOTHING_FOUND: RedactionSummary = _NothingFound()
