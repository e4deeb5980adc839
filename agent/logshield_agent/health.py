"""Metrics and the /healthz, /readyz, /metrics HTTP server (stdlib server in one stoppable, joined thread)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["AgentMetrics", "HealthServer", "Readiness"]


class AgentMetrics:
    """The agent's Prometheus metrics, in their own registry (never the process-global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.lines_read = Counter("logshield_lines_read", "Records read from log files", registry=r)
        self.bytes_read = Counter("logshield_bytes_read", "Bytes read from log files", registry=r)
        self.lines_shipped = Counter("logshield_lines_shipped", "Records acknowledged by the store", registry=r)
        self.bytes_shipped = Counter("logshield_bytes_shipped", "Source bytes acknowledged by the store", registry=r)
        self.batches = Counter("logshield_batches_shipped", "Objects acknowledged by the store", registry=r)
        self.batches_existing = Counter("logshield_batches_already_stored",
                                        "Puts answered by an identical existing object (replays)", registry=r)
        self.failures = Counter("logshield_upload_failures", "Failed upload attempts", ["reason"], registry=r)
        self.retries = Counter("logshield_upload_retries", "Upload retries after a failure", registry=r)
        self.unshipped = Gauge("logshield_unshipped_bytes", "Bytes in followed files not yet acknowledged",
                               registry=r)
        self.oldest = Gauge("logshield_oldest_unacknowledged_seconds",
                            "Age of the oldest batch not yet acknowledged", registry=r)
        self.streams = Gauge("logshield_streams", "Files being followed", registry=r)
        self.stalled = Gauge("logshield_stalled_streams", "Streams that cannot ship (see logs)", registry=r)
        # Anomaly alerts (logshield_agent.alerts)
        self.alerts = Counter("logshield_alerts", "Anomaly alerts raised", ["dimension"], registry=r)
        self.alert_deliveries = Counter("logshield_alert_deliveries", "Alert deliveries per destination by result "
                                        "(delivered, retried, failed, dropped)", ["destination", "result"], registry=r)
        self.alert_records_skipped = Counter("logshield_alert_records_skipped", "Records not rated: late (their "
                                             "window had closed) or future (clock skew)", ["reason"], registry=r)
        self.alert_records_untimed = Counter("logshield_alert_records_untimed", "Records rated at the time they "
                                             "were shipped: no line of their batch had an event time", registry=r)
        self.alert_keys = Gauge("logshield_alert_keys", "Keys with a learned baseline", ["dimension"], registry=r)
        self.alert_keys_evicted = Counter("logshield_alert_keys_evicted", "Keys forgotten to bound memory",
                                          ["dimension"], registry=r)


class Readiness:
    """What /readyz reports; the pipeline thread updates it, the HTTP thread reads it."""

    def __init__(self, *, stale_after: float, clock: Any = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.stale_after = stale_after
        self.store_ok = True
        self.last_upload = clock()
        self.pending = False

    def update(self, *, store_ok: bool | None = None, uploaded: bool = False, pending: bool | None = None) -> None:
        with self._lock:
            if store_ok is not None:
                self.store_ok = store_ok
            if uploaded:
                self.last_upload = self._clock()
            if pending is not None:
                self.pending = pending

    def ready(self) -> tuple[bool, str]:
        with self._lock:
            if not self.store_ok:
                return False, "store unreachable"
            if self.pending and self._clock() - self.last_upload > self.stale_after:
                return False, "data pending and no upload recently"
            return True, "ok"


class HealthServer:
    """``with HealthServer(("127.0.0.1", 0), metrics, readiness) as server: server.port``."""

    def __init__(self, address: tuple[str, int], metrics: AgentMetrics, readiness: Readiness) -> None:
        metrics_ref, readiness_ref = metrics, readiness

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    self._send(200, b"ok\n", "text/plain")
                elif path == "/readyz":
                    ok, why = readiness_ref.ready()
                    self._send(200 if ok else 503, why.encode() + b"\n", "text/plain")
                elif path == "/metrics":
                    self._send(200, generate_latest(metrics_ref.registry), CONTENT_TYPE_LATEST)
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass  # access logs would be noise on the agent's stderr

        self._server = ThreadingHTTPServer(address, Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="logshield-health", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
