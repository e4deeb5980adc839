"""An alert event as the JSON document every destination receives, with stable ids and its key in the store.

    {"format": "logshield-alert/1", "id": "20261124T101500Z-3f2a…", "event_id": "20261124T101500Z-3f2a….2",
     "state": "closed", "revision": 2, "end_reason": "quiet", "kind": "rate_spike",
     "dimension": "entity", "key": "CREDIT_CARD", "key_hashed": false,
     "window_start": "2026-11-24T10:15:00+00:00", "window_end": "2026-11-24T10:17:00+00:00", "window_seconds": 60,
     "windows": 2, "count": 812, "peak_count": 604, "peak_window_start": "2026-11-24T10:15:00+00:00",
     "baseline": 2.4, "factor": 5.0, "floor": 100, "threshold": 100, "ratio": 251.7,
     "sample": {"loggers": ["shop.checkout"], "services": ["shop-api"], "objects": ["service=shop-api/…"]},
     "ongoing": false, "learned": false, "host": "web-1", "detected_at": "2026-11-24T10:20:03+00:00",
     "related_alerts": ["20261124T101500Z-…"]}

One incident has one ``id`` (a function of host, dimension, key and its first window, so the same incident found
twice — a restart replaying batches — has the same id) and several events: ``open`` (revision 1, sent as soon as
its first window closes: counts of that window), ``ongoing`` updates, and ``closed`` (the final counts;
``end_reason`` ``quiet`` or ``shutdown``). Each event has its own ``event_id`` (``<id>.<revision>``): the webhook's
``Idempotency-Key`` and the store key, so a receiver that de-duplicates deliveries still gets every update, and
groups them by ``id``. ``count`` is the incident's total over its anomalous windows so far, ``baseline`` the key's
usual count per window before it, ``ratio`` = ``peak_count`` / ``baseline`` (null when the key had no baseline).

No log content: ``sample`` names only values of the counted fields (loggers, levels, actors, actions, outcomes), the
services and the archive objects holding the records. Keys that can carry content are not shown as they are: an
actor that is not already a placeholder or pseudonym written by the library (``<EMAIL_ADDRESS>``,
``<ACTOR:ps:kid:…>``) is shown as ``sha256:`` + the first 16 hex digits of the SHA-256 of its UTF-8 text
(``key_hashed`` says so; the actor part of an ``actor_action`` key and the actors of a sample likewise), and an
``event`` of another program's JSON (which is often its message) was hashed the same way when it was counted. The
hash is unkeyed: it keeps a name out of the alert channel, not from someone who can guess and hash candidates (to
correlate without that, log actors as keyed pseudonyms: the library's ``pseudonym_fields=actor``).
``related_alerts`` (added by the observer) lists the alerts raised at the same time for overlapping windows — one
incident seen from several dimensions (a new endpoint's logger, its actor, the entity it leaks).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from typing import Any

from .detector import OTHER, Alert
from .fields import hashed

__all__ = ["ALERTS_PREFIX", "ALERT_FORMAT", "alert_document", "alert_id", "encode_alert", "hashed", "shown_actor",
           "store_key"]

ALERT_FORMAT = "logshield-alert/1"
ALERTS_PREFIX = "_alerts/"
#: What the library writes in place of a value: ``<TYPE>``, ``<TYPE:ps:kid:hex>``, ``<TYPE:enc:kid:data>``.
PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*(?::(?:ps|enc):[A-Za-z0-9._-]+:[A-Za-z0-9_-]+)?>")
HASHED = re.compile(r"sha256:[0-9a-f]{16}")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


def shown_actor(actor: str) -> str:
    """An actor as an alert may show it: a library placeholder or pseudonym as it is, anything else hashed."""
    if actor == OTHER or PLACEHOLDER.fullmatch(actor) or HASHED.fullmatch(actor):
        return actor
    return hashed(actor)


def _shown_key(dimension: str, key: str) -> str:
    if dimension == "actor":
        return shown_actor(key)
    if dimension == "actor_action" and "|" in key:
        actor, action = key.rsplit("|", 1)
        return f"{shown_actor(actor)}|{action}"
    return key


def alert_id(host: str, dimension: str, key: str, window_start: int) -> str:
    """``<first window, UTC>-<20 hex digits of SHA-256 over host, dimension, key and that window>``."""
    digest = hashlib.sha256("\0".join((host, dimension, key, str(window_start))).encode()).hexdigest()[:20]
    return f"{datetime.fromtimestamp(window_start, timezone.utc):%Y%m%dT%H%M%SZ}-{digest}"


def alert_document(alert: Alert, *, host: str, detected_at: float) -> dict[str, Any]:
    threshold = max(alert.floor, alert.factor * alert.baseline)
    sample: dict[str, list[str]] = {name: [shown_actor(v) for v in values] if name == "actors" else list(values)
                                    for name, values in alert.related.items()}
    if alert.objects:
        sample["objects"] = alert.objects
    key = _shown_key(alert.dimension, alert.key)
    incident = alert_id(host, alert.dimension, alert.key, alert.window_start)
    return {
        "format": ALERT_FORMAT,
        "id": incident,
        "event_id": f"{incident}.{alert.revision}",
        "state": alert.state,
        "revision": alert.revision,
        "end_reason": alert.end_reason,
        "kind": "rate_spike",
        "dimension": alert.dimension,
        "key": key,
        "key_hashed": key != alert.key,
        "window_start": _iso(alert.window_start),
        "window_end": _iso(alert.window_end),
        "window_seconds": alert.window_seconds,
        "windows": alert.windows,
        "count": alert.count,
        "peak_count": alert.peak_count,
        "peak_window_start": _iso(alert.peak_window_start),
        "baseline": alert.baseline,
        "factor": alert.factor,
        "floor": alert.floor,
        "threshold": round(threshold, 3),
        "ratio": round(alert.peak_count / alert.baseline, 1) if alert.baseline > 0 else None,
        "sample": sample,
        "ongoing": alert.ongoing,
        "learned": alert.learned,
        "host": host,
        "detected_at": _iso(detected_at),
    }


def encode_alert(document: dict[str, Any]) -> bytes:
    """Compact JSON, one line, no newline."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")


def store_key(document: dict[str, Any]) -> str:
    """``_alerts/dt=<day of the first window>/<id>.<revision>.json`` (relative to the sink's prefix): one object per
    event, so a store that never overwrites (Object Lock, conditional puts) keeps every update."""
    revision = document.get("revision")
    name = f"{document['id']}.{revision}" if isinstance(revision, int) else document["id"]
    return f"{ALERTS_PREFIX}dt={document['window_start'][:10]}/{name}.json"
