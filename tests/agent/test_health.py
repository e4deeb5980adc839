"""Health server: /healthz, /readyz, /metrics; stoppable and joined."""

from __future__ import annotations

import urllib.error
import urllib.request

from logshield_agent._log import JsonFormatter, sanitize
from logshield_agent.health import AgentMetrics, HealthServer, Readiness


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:  # noqa: S310
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class TestHealthServer:
    def test_endpoints(self):
        """healthz is 200, readyz follows the store state, metrics exposes the agent's counters."""
        metrics = AgentMetrics()
        readiness = Readiness(stale_after=60)
        metrics.lines_shipped.inc(3)
        with HealthServer(("127.0.0.1", 0), metrics, readiness) as server:
            assert get(server.port, "/healthz")[0] == 200
            assert get(server.port, "/readyz")[0] == 200
            readiness.update(store_ok=False)
            code, body = get(server.port, "/readyz")
            assert code == 503 and "store" in body
            code, body = get(server.port, "/metrics")
            assert code == 200 and "logshield_lines_shipped_total 3.0" in body
            assert "logshield_unshipped_bytes" in body
            assert get(server.port, "/nope")[0] == 404

    def test_not_ready_when_pending_and_stale(self):
        """Data pending without a recent upload makes /readyz fail."""
        now = [0.0]
        readiness = Readiness(stale_after=10, clock=lambda: now[0])
        readiness.update(pending=True)
        assert readiness.ready()[0]
        now[0] = 11
        assert not readiness.ready()[0]
        readiness.update(uploaded=True)
        assert readiness.ready()[0]


class TestLogSanitising:
    def test_secrets_removed(self):
        """Connection-string keys, SAS tokens and signatures never reach the agent's logs."""
        text = ("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0a2V5;EndpointSuffix=x "
                "https://a.blob.core.windows.net/c/b?sv=2021&sig=abcdef%3D&se=2030 AKIAABCDEFGHIJKLMNOP")
        clean = sanitize(text)
        for secret in ("c2VjcmV0a2V5", "abcdef%3D", "AKIAABCDEFGHIJKLMNOP"):
            assert secret not in clean

    def test_json_lines(self):
        """Agent logs are one JSON object per line with extra fields."""
        import json
        import logging

        record = logging.makeLogRecord({"msg": "x AccountKey=abc", "levelname": "INFO", "levelno": 20,
                                        "name": "logshield_agent", "path": "/var/log/a.log"})
        out = json.loads(JsonFormatter().format(record))
        assert out["path"] == "/var/log/a.log" and "abc" not in out["message"]
