"""The alert observer: counts each shipped batch, closes windows as time moves, sends the alerts that come out.

It is not critical: a failure here is logged and counted and never holds up shipping. It sees each batch once
(a batch offered again because a critical observer failed is recognised by its key). The learned baselines are kept
in ``<state dir>/alerts-state.json`` (written atomically at shutdown and every five minutes), so a restart does not
start the warm-up over.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

from .._durable import fsync_dir, write_synced
from ..health import AgentMetrics
from ..pipeline import PipelineObserver, ShippedBatch
from .delivery import BackgroundDelivery
from .destinations import DeliveryError, Destination
from .detector import Alert, RateDetector
from .document import alert_document, encode_alert
from .extract import tally

__all__ = ["STATE_FILE", "AlertObserver"]

log = logging.getLogger("logshield_agent.alerts")

STATE_FILE = "alerts-state.json"
SAVE_EVERY = 300.0
_REMEMBERED_BATCHES = 4096


class AlertObserver(PipelineObserver):
    critical = False

    def __init__(self, detector: RateDetector, destinations: Sequence[Destination | BackgroundDelivery], *,
                 host: str, metrics: AgentMetrics | None = None,
                 state_dir: Path | None = None, wall: Callable[[], float] = time.time,
                 stop_timeout: float = 5.0) -> None:
        self.detector = detector
        self.destinations = tuple(destinations)
        self.host = host
        self.metrics = metrics
        self.wall = wall
        self.stop_timeout = stop_timeout
        self.state_path = Path(state_dir) / STATE_FILE if state_dir is not None else None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._reported = Counter({"late": 0, "future": 0})
        self._evicted: Counter[str] = Counter()
        self._saved = wall()
        self._closed = False
        self._related: dict[str, list[str]] = {}  # open incident id → the alerts raised with it
        self._load()

    # -- observer hooks
    def batch_shipped(self, batch: ShippedBatch) -> None:
        if batch.key in self._seen:
            return
        self._seen[batch.key] = None
        if len(self._seen) > _REMEMBERED_BATCHES:
            self._seen.popitem(last=False)
        settings = self.detector.settings
        found = tally(batch.body, service=batch.service, lines=batch.lines, window=settings.window,
                      dimensions=settings.dimensions)
        for dimension, key in {(d, k) for d, k, _ in found.counts}:
            found.related.setdefault((dimension, key), {}).setdefault("services", Counter())[batch.service] += 1
        now = self.wall()
        self.detector.add(found, wall=now, objects=(batch.key,))
        if self.metrics is not None and found.untimed:
            self.metrics.alert_records_untimed.inc(found.untimed)
        self._emit(self.detector.advance(now), now)

    def tick(self, wall: float) -> None:
        self._emit(self.detector.advance(wall), wall)
        if wall - self._saved >= SAVE_EVERY:
            self._save(wall)

    def close(self, wall: float) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._emit(self.detector.flush(), wall)
            self._save(wall)
        finally:
            for destination in self.destinations:
                if isinstance(destination, BackgroundDelivery):
                    destination.stop(self.stop_timeout)

    # -- alerts out
    def _emit(self, alerts: list[Alert], wall: float) -> None:
        self._sync_metrics()
        documents = [alert_document(alert, host=self.host, detected_at=wall) for alert in alerts]
        for alert, document in zip(alerts, documents, strict=True):
            # Alerts raised together for overlapping windows are usually one incident seen from several sides; an
            # incident's later events keep naming them.
            related = self._related.setdefault(document["id"], [])
            for peer, other in zip(alerts, documents, strict=True):
                if (other["id"] != document["id"] and other["id"] not in related
                        and peer.window_start < alert.window_end and alert.window_start < peer.window_end):
                    related.append(other["id"])
            document["related_alerts"] = list(related)
            if not alert.ongoing:
                self._related.pop(document["id"], None)
        for alert, document in zip(alerts, documents, strict=True):
            body = encode_alert(document)
            log.warning("anomaly alert", extra={"alert": document["id"], "state": alert.state,
                                                "dimension": alert.dimension, "count": alert.count,
                                                "baseline": alert.baseline})
            if self.metrics is not None and alert.state == "open":
                self.metrics.alerts.labels(alert.dimension).inc()
            for destination in self.destinations:
                if isinstance(destination, BackgroundDelivery):
                    destination.submit(document, body)
                    continue
                try:
                    destination.send(document, body)
                except DeliveryError as exc:
                    self._result(destination.name, "failed")
                    log.error("alert not delivered", extra={"destination": destination.name, "error": str(exc),
                                                            "alert": document["id"]})
                else:
                    self._result(destination.name, "delivered")

    def _result(self, destination: str, result: str) -> None:
        if self.metrics is not None:
            self.metrics.alert_deliveries.labels(destination, result).inc()

    def _sync_metrics(self) -> None:
        if self.metrics is None:
            return
        d = self.detector
        for reason, total in (("late", d.late), ("future", d.future)):
            if total > self._reported[reason]:
                self.metrics.alert_records_skipped.labels(reason).inc(total - self._reported[reason])
                self._reported[reason] = total
        for dimension, total in d.evicted.items():
            if total > self._evicted[dimension]:
                self.metrics.alert_keys_evicted.labels(dimension).inc(total - self._evicted[dimension])
                self._evicted[dimension] = total
        for dimension, count in d.key_counts.items():
            self.metrics.alert_keys.labels(dimension).set(count)

    # -- learned state
    def _load(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        try:
            state = json.loads(self.state_path.read_bytes())
            restored = isinstance(state, dict) and self.detector.restore(state, wall=self.wall())
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("alert baselines unreadable; learning from scratch",
                        extra={"path": str(self.state_path), "error": type(exc).__name__})
            return
        if not restored:
            log.info("alert baselines were learned with other settings; learning from scratch",
                     extra={"path": str(self.state_path)})

    def _save(self, wall: float) -> None:
        self._saved = wall
        if self.state_path is None:
            return
        tmp = self.state_path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            write_synced(tmp, json.dumps(self.detector.snapshot(), separators=(",", ":")).encode(),
                         flags=os.O_TRUNC)
            os.replace(tmp, self.state_path)
            fsync_dir(self.state_path.parent)
        except OSError as exc:
            log.warning("cannot save alert baselines", extra={"path": str(self.state_path),
                                                              "error": exc.strerror or type(exc).__name__})
            with contextlib.suppress(OSError):
                tmp.unlink()
