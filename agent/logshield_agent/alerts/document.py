"""An alert as the JSON document every destination receives, with a stable id and its key in the store.

    {"format": "logshield-alert/1", "id": "20261124T101500Z-3f2a…", "kind": "rate_spike",
     "dimension": "entity", "key": "CREDIT_CARD",
     "window_start": "2026-11-24T10:15:00+00:00", "window_end": "2026-11-24T10:17:00+00:00", "window_seconds": 60,
     "windows": 2, "count": 812, "peak_count": 604, "peak_window_start": "2026-11-24T10:15:00+00:00",
     "baseline": 2.4, "factor": 5.0, "floor": 100, "threshold": 100, "ratio": 251.7,
     "sample": {"loggers": ["shop.checkout"], "services": ["shop-api"], "objects": ["service=shop-api/…"]},
     "ongoing": false, "host": "web-1", "detected_at": "2026-11-24T10:20:03+00:00",
     "related_alerts": ["20261124T101500Z-…"]}

``count`` is the incident's total over its anomalous windows, ``baseline`` the key's usual count per window before
it, ``ratio`` = ``peak_count`` / ``baseline`` (null when the key had no baseline). ``sample`` names only values of the
counted fields (loggers, levels, actors, actions, outcomes), the services and the archive objects holding the records
— never a message or any other content. The id is a function of host, dimension, key and the incident's first
window, so the same incident found twice (a restart replaying batches) has the same id and the same store key.
``related_alerts`` (added by the observer) lists the alerts raised at the same time for overlapping windows — one
incident seen from several dimensions (a new endpoint's logger, its actor, the entity it leaks).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from .detector import Alert

__all__ = ["ALERTS_PREFIX", "ALERT_FORMAT", "alert_document", "alert_id", "encode_alert", "store_key"]

ALERT_FORMAT = "logshield-alert/1"
ALERTS_PREFIX = "_alerts/"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


def alert_id(host: str, dimension: str, key: str, window_start: int) -> str:
    """``<first window, UTC>-<20 hex digits of SHA-256 over host, dimension, key and that window>``."""
    digest = hashlib.sha256("\0".join((host, dimension, key, str(window_start))).encode()).hexdigest()[:20]
    return f"{datetime.fromtimestamp(window_start, timezone.utc):%Y%m%dT%H%M%SZ}-{digest}"


def alert_document(alert: Alert, *, host: str, detected_at: float) -> dict[str, Any]:
    threshold = max(alert.floor, alert.factor * alert.baseline)
    sample: dict[str, list[str]] = dict(alert.related)
    if alert.objects:
        sample["objects"] = alert.objects
    return {
        "format": ALERT_FORMAT,
        "id": alert_id(host, alert.dimension, alert.key, alert.window_start),
        "kind": "rate_spike",
        "dimension": alert.dimension,
        "key": alert.key,
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
        "host": host,
        "detected_at": _iso(detected_at),
    }


def encode_alert(document: dict[str, Any]) -> bytes:
    """Compact JSON, one line, no newline."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")


def store_key(document: dict[str, Any]) -> str:
    """``_alerts/dt=<day of the first window>/<id>.json`` (relative to the sink's prefix)."""
    return f"{ALERTS_PREFIX}dt={document['window_start'][:10]}/{document['id']}.json"
