"""Anomaly alerts: rates per logger/event, actor, redacted entity type and audit action against learned baselines.

A non-critical pipeline observer (``AlertObserver``) counts what each shipped batch holds (``extract``), a detector
rates the counts per event-time window (``detector``), and the alerts it raises go to stderr, a file, a webhook or the
store (``destinations``, ``delivery``) as JSON documents (``document``).
"""

from .delivery import BackgroundDelivery
from .destinations import (
    DeliveryError,
    FileDestination,
    StderrDestination,
    StoreDestination,
    WebhookDestination,
)
from .detector import Alert, DetectorSettings, RateDetector
from .document import ALERTS_PREFIX, alert_document, alert_id, store_key
from .extract import tally
from .fields import DIMENSIONS, Tally
from .observer import AlertObserver
from .setup import alert_observers

__all__ = [
    "ALERTS_PREFIX",
    "DIMENSIONS",
    "Alert",
    "AlertObserver",
    "BackgroundDelivery",
    "DeliveryError",
    "DetectorSettings",
    "FileDestination",
    "RateDetector",
    "StderrDestination",
    "StoreDestination",
    "Tally",
    "WebhookDestination",
    "alert_document",
    "alert_id",
    "alert_observers",
    "store_key",
    "tally",
]
