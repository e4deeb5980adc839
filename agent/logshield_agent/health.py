"""Metrics and the /healthz, /readyz, /metrics HTTP server (stdlib server in one stoppable, joined thread).

- ``/healthz`` (liveness) is the pipeline loop's heartbeat: 503 once the loop has not completed an iteration for
  ``LOGSHIELD_LIVENESS_TIMEOUT`` seconds, so a liveness probe restarts an agent whose pipeline thread is stuck.
- ``/readyz`` (readiness) says whether the agent can ship: the store answered its last check or upload, and data
  that is waiting does not wait too long. While the store is unreachable and nothing is waiting, ``StoreProber``
  checks it again (at most every ``max_interval`` seconds), so a quiet application's pod becomes ready again
  without an upload; while data waits, the uploads' own retries decide.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["AgentMetrics", "HealthServer", "Liveness", "Readiness", "StoreProber"]

log = logging.getLogger("logshield_agent")


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
        # Files matched but not followed, and what following costs (logshield_agent.sources)
        self.files_skipped = Counter("logshield_files_skipped", "Matched files not shipped because of their content "
                                     "(reason=compressed), once per file", ["reason"], registry=r)
        self.unreadable_files = Gauge("logshield_unreadable_files", "Matched files that cannot be read (permission "
                                      "denied); retried on every scan", registry=r)
        self.open_files = Gauge("logshield_open_files", "Log files open now", registry=r)
        self.waiting_files = Gauge("logshield_waiting_files", "Matched files waiting for a free descriptor",
                                   registry=r)
        self.truncation_lost = Counter("logshield_truncated_unread_bytes", "Bytes a file held beyond what had been "
                                       "read when it was truncated in place with no copy found (copytruncate)",
                                       registry=r)
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
    """What /readyz reports; the pipeline thread and the store prober update it, the HTTP thread reads it.

    ``store_ok=None`` means "not checked yet" (not ready until the first check or upload answers).
    """

    def __init__(self, *, stale_after: float, clock: Any = time.monotonic, store_ok: bool | None = True) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.stale_after = stale_after
        self.store_ok = store_ok
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
            if self.store_ok is None:
                return False, "store not checked yet"
            if not self.store_ok:
                return False, "store unreachable"
            if self.pending and self._clock() - self.last_upload > self.stale_after:
                return False, "data pending and no upload recently"
            return True, "ok"

    def wants_probe(self) -> bool:
        """The store is not known to work and no data is waiting (so no upload will find out)."""
        with self._lock:
            return self.store_ok is not True and not self.pending


class Liveness:
    """What /healthz reports: the pipeline loop ``beat()``s once per iteration; stale after ``stall_after`` s."""

    def __init__(self, *, stall_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.stall_after = stall_after
        self._last = clock()

    def beat(self) -> None:
        self._last = self._clock()  # one float store: atomic under the GIL, no lock needed

    def alive(self) -> tuple[bool, str]:
        idle = self._clock() - self._last
        if idle > self.stall_after:
            return False, f"pipeline loop stalled: no iteration for {idle:.0f}s (limit {self.stall_after:.0f}s)"
        return True, "ok"


class StoreProber:
    """Checks the store from a background thread: once at start, then while ``readiness.wants_probe()``.

    Failed checks back off from ``min_interval`` to ``max_interval`` seconds (bounded request rate). ``check`` is
    the sink's own (``Sink.check``); it may block for the SDK's timeouts, which is why it runs here and not in the
    thread that handles signals. ``stop()`` waits at most ``join_timeout`` for a check in progress (the thread is a
    daemon: a check blocked on a silent store cannot hold up the agent's exit).
    """

    def __init__(self, check: Callable[[], None], readiness: Readiness, *, name: str = "store",
                 min_interval: float = 5.0, max_interval: float = 60.0, join_timeout: float = 0.2) -> None:
        self._check = check
        self._readiness = readiness
        self._name = name
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.join_timeout = join_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.checks = 0

    def start(self) -> StoreProber:
        self._thread = threading.Thread(target=self._run, name="logshield-store-probe", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.join_timeout)
            self._thread = None

    def __enter__(self) -> StoreProber:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        from ._log import sanitize

        delay, last_error = 0.0, None
        first = True
        while not self._stop.wait(delay):
            if not first and not self._readiness.wants_probe():
                delay = self.min_interval
                continue
            first = False
            self.checks += 1
            try:
                self._check()
            except Exception as exc:  # any failure means "not ready"; the thread must survive it
                error = sanitize(str(exc)) or type(exc).__name__
                if self._stop.is_set():
                    return
                self._readiness.update(store_ok=False)
                if error != last_error:
                    log.error("store check failed; will keep retrying", extra={"sink": self._name, "error": error})
                last_error = error
                delay = min(self.max_interval, max(self.min_interval, 2 * delay))
            else:
                self._readiness.update(store_ok=True)
                if last_error is not None:
                    log.info("store reachable again", extra={"sink": self._name})
                last_error, delay = None, self.min_interval


class HealthServer:
    """``with HealthServer(("127.0.0.1", 0), metrics, readiness, liveness) as server: server.port``.

    An IPv6 literal host (``"::1"``, ``"::"``) listens on IPv6; ``"::"`` accepts IPv4 too (dual stack). Without
    ``liveness``, /healthz only says the HTTP thread is up.
    """

    def __init__(self, address: tuple[str, int], metrics: AgentMetrics, readiness: Readiness,
                 liveness: Liveness | None = None) -> None:
        metrics_ref, readiness_ref, liveness_ref = metrics, readiness, liveness

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    ok, why = liveness_ref.alive() if liveness_ref is not None else (True, "ok")
                    self._send(200 if ok else 503, why.encode() + b"\n", "text/plain")
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

        server_class = _IPv6Server if _is_ipv6(address[0]) else ThreadingHTTPServer
        self._server = server_class(address, Handler)
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


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        if self.server_address[0] == "::":  # all interfaces: IPv4 clients too, whatever net.ipv6.bindv6only says
            with contextlib.suppress(OSError, AttributeError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()
