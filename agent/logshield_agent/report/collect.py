"""Read an archive once and keep only aggregates: what the compliance report shows, never a log line's content.

The scan walks the data objects whose partition hour can overlap the window, decompresses each one, and counts
per record: the event hour, level, service, redactions by entity type, records withheld because redaction
failed, audit events by actor and outcome, and whether the record is sealed in a tamper-evident chain. Memory is
bounded by the number of hours, entity types, actors and alerts in the window — not by the archive's size.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ..sinks.base import Sink
from ..sinks.keys import parse_key
from ..transforms.compress import decompress

__all__ = ["ALERTS_PREFIX", "ArchiveSummary", "collect"]

ALERTS_PREFIX = "_alerts/"
#: Actors shown by name in the audit chart; the rest are summed as "other".
MAX_ACTORS = 12


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) < 19:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def _hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


@dataclass
class ArchiveSummary:
    """Counts over one time window of an archive."""

    since: datetime
    until: datetime
    objects: int = 0
    stored_bytes: int = 0
    records: int = 0
    records_by_hour: Counter[datetime] = field(default_factory=Counter)
    errors_by_hour: Counter[datetime] = field(default_factory=Counter)
    levels: Counter[str] = field(default_factory=Counter)
    services: Counter[str] = field(default_factory=Counter)
    redactions: Counter[str] = field(default_factory=Counter)
    records_redacted: int = 0
    withheld: int = 0
    sealed: int = 0
    chain_kinds: Counter[str] = field(default_factory=Counter)
    audit_by_actor: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    audit_actions: Counter[str] = field(default_factory=Counter)
    audit_failures: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    unreadable_objects: list[str] = field(default_factory=list)
    non_json_records: int = 0

    @property
    def audit_events(self) -> int:
        return sum(self.audit_actions.values())

    def bucket_hours(self) -> int:
        """Hours per chart bar: 1 up to three days, 6 up to 18 days, then 24 (at most ~72 bars up to 72 days)."""
        span = (self.until - self.since).total_seconds() / 3600
        return 1 if span <= 72 else 6 if span <= 18 * 24 else 24

    def buckets(self) -> list[datetime]:
        """Every bucket of the window, oldest first (empty ones included: silence shows)."""
        step = self.bucket_hours()
        start = _hour(self.since)
        start -= timedelta(hours=start.hour % step)
        out = []
        while start < self.until:
            out.append(start)
            start += timedelta(hours=step)
        return out

    def per_bucket(self, by_hour: Counter[datetime]) -> dict[datetime, int]:
        step = self.bucket_hours()
        out: Counter[datetime] = Counter()
        for hour, count in by_hour.items():
            out[hour - timedelta(hours=hour.hour % step)] += count
        return dict(out)

    def top_actors(self) -> list[tuple[str, Counter[str]]]:
        ranked = sorted(self.audit_by_actor.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        shown = ranked[:MAX_ACTORS]
        rest: Counter[str] = Counter()
        for _, counts in ranked[MAX_ACTORS:]:
            rest.update(counts)
        if rest:
            shown.append((f"{len(ranked) - MAX_ACTORS} other actors", rest))
        return shown

    # -- one record
    def add_record(self, doc: dict[str, Any] | None, when: datetime, service: str) -> None:
        self.records += 1
        self.records_by_hour[_hour(when)] += 1
        self.services[service] += 1
        if doc is None:
            self.non_json_records += 1
            return
        level = str(doc.get("level") or doc.get("levelname") or "").upper() or "UNKNOWN"
        self.levels[level] += 1
        if level in ("ERROR", "CRITICAL", "FATAL"):
            self.errors_by_hour[_hour(when)] += 1
        redaction = doc.get("redaction")
        if isinstance(redaction, dict):
            entities = redaction.get("entities")
            if isinstance(entities, dict) and entities:
                self.records_redacted += 1
                for entity, count in entities.items():
                    if isinstance(count, int):
                        self.redactions[str(entity)] += count
            if redaction.get("withheld"):
                self.withheld += 1
        if isinstance(doc.get("seq"), int) and isinstance(doc.get("chain"), str):
            self.sealed += 1
            start = doc.get("stream_start")
            if isinstance(start, dict):
                self.chain_kinds[str(start.get("chain", "unknown"))] += 1
        audit = doc.get("audit")
        if isinstance(audit, dict) and audit.get("action"):
            self._add_audit(doc, audit, when)

    def _add_audit(self, doc: dict[str, Any], audit: dict[str, Any], when: datetime) -> None:
        actor = str(doc.get("actor") or "(no actor)")
        outcome = str(audit.get("outcome") or "unknown")
        action = str(audit["action"])
        self.audit_by_actor[actor][outcome] += 1
        self.audit_actions[action] += 1
        if outcome != "success" and len(self.audit_failures) < 50:
            self.audit_failures.append({"time": when.isoformat(), "actor": actor, "action": action,
                                        "resource": str(audit.get("resource") or ""), "outcome": outcome})


def _records(body: bytes) -> Iterable[dict[str, Any] | None]:
    for line in body.split(b"\n"):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            yield None
            continue
        yield doc if isinstance(doc, dict) else None


def collect(sink: Sink, since: datetime, until: datetime, *,
            progress: Callable[[int], None] | None = None) -> ArchiveSummary:
    """Scan the data objects and alerts of ``sink`` whose events fall in ``[since, until)``."""
    summary = ArchiveSummary(since=since, until=until)
    first_hour, last_hour = _hour(since), until
    for info in sink.list(""):
        if info.key.startswith(ALERTS_PREFIX):
            _add_alert(sink, info.key, summary)
            continue
        parts = parse_key(info.key)
        if parts is None:
            continue  # digests and anything else that is not a data object
        partition = datetime.fromisoformat(f"{parts.dt}T{parts.hour}:00:00+00:00")
        # An object is partitioned by its first record's hour; later records may run past it, never before.
        if partition >= last_hour or partition < first_hour - timedelta(days=1):
            continue
        try:
            data = sink.get(info.key)
        except KeyError:
            continue  # deleted since the listing (retention)
        try:
            body = decompress(data, parts.compression)
        except Exception as exc:  # noqa: BLE001 - a corrupt object can make any codec raise anything
            summary.unreadable_objects.append(f"{info.key}: {type(exc).__name__}")
            continue
        counted = False
        for doc in _records(body):
            when = _parse_time(doc.get("timestamp") if doc else None) or partition
            if not since <= when < until:
                continue
            counted = True
            summary.add_record(doc, when, parts.service)
        if counted:
            summary.objects += 1
            summary.stored_bytes += info.size
        if progress is not None:
            progress(1)
    latest: dict[str, dict[str, Any]] = {}
    for alert in summary.alerts:  # one incident, several events (open, updates, closed): its latest one
        name = str(alert.get("id") or id(alert))
        known = latest.get(name)
        if known is None or _revision(alert) > _revision(known):
            latest[name] = alert
    summary.alerts = sorted(latest.values(), key=lambda a: str(a.get("window_start") or a.get("time") or ""))
    return summary


def _revision(alert: dict[str, Any]) -> int:
    revision = alert.get("revision")
    return revision if isinstance(revision, int) else 0


def _add_alert(sink: Sink, key: str, summary: ArchiveSummary) -> None:
    try:
        alert = json.loads(sink.get(key))
    except (KeyError, ValueError, OSError):
        summary.unreadable_objects.append(f"{key}: unreadable alert")
        return
    if not isinstance(alert, dict):
        return
    when = _parse_time(alert.get("window_start") or alert.get("time"))
    if when is None or summary.since <= when < summary.until:
        summary.alerts.append(alert)
