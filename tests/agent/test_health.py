"""Health server: /healthz, /readyz, /metrics; stoppable and joined."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from logshield_agent._log import JsonFormatter, sanitize
from logshield_agent.commands.run import heartbeat
from logshield_agent.health import AgentMetrics, HealthServer, Liveness, Readiness, StoreProber
from logshield_agent.pipeline import PipelineObserver
from logshield_agent.sinks import SinkUnavailableError

from .conftest import make_pipeline


def get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as resp:  # noqa: S310
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")


def wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


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


    def test_not_ready_until_first_check(self):
        """Readiness that starts unchecked says so until a check or an upload answers."""
        readiness = Readiness(stale_after=60, store_ok=None)
        assert readiness.ready() == (False, "store not checked yet")
        readiness.update(store_ok=True)
        assert readiness.ready() == (True, "ok")

    @needs_ipv6
    @pytest.mark.parametrize("host", ["::1", "::"])
    def test_ipv6_addresses(self, host):
        """The server listens on an IPv6 literal; "::" (all interfaces) answers IPv4 clients too."""
        with HealthServer((host, 0), AgentMetrics(), Readiness(stale_after=60)) as server:
            assert get(server.port, "/healthz", host="[::1]")[0] == 200
            if host == "::":
                assert get(server.port, "/healthz")[0] == 200


class TestLiveness:
    def test_healthz_follows_the_heartbeat(self):
        """/healthz is 200 while the loop beats and 503, naming the stall, once it has not for stall_after s."""
        now = [0.0]
        liveness = Liveness(stall_after=30, clock=lambda: now[0])
        with HealthServer(("127.0.0.1", 0), AgentMetrics(), Readiness(stale_after=60), liveness) as server:
            now[0] = 29
            assert get(server.port, "/healthz")[0] == 200
            now[0] = 31
            code, body = get(server.port, "/healthz")
            assert code == 503 and "stalled" in body
            liveness.beat()
            assert get(server.port, "/healthz")[0] == 200

    def test_stuck_pipeline_loop_fails_liveness(self, tmp_path):
        """The run command's heartbeat observer stops beating when the pipeline loop hangs, so /healthz turns 503."""
        release = threading.Event()

        class Stuck(PipelineObserver):
            calls = 0

            def tick(self, wall: float) -> None:
                self.calls += 1
                if self.calls == 3:
                    release.wait(10)  # the loop hangs here, as in a deadlock

        liveness = Liveness(stall_after=0.3)
        stuck = Stuck()
        pipeline = make_pipeline(tmp_path, observers=[heartbeat(liveness), stuck])
        stop = threading.Event()
        thread = threading.Thread(target=pipeline.run, args=(stop,))
        with HealthServer(("127.0.0.1", 0), AgentMetrics(), Readiness(stale_after=60), liveness) as server:
            thread.start()
            try:
                assert wait_for(lambda: stuck.calls >= 1)
                assert get(server.port, "/healthz")[0] == 200
                assert wait_for(lambda: get(server.port, "/healthz")[0] == 503, timeout=5)
            finally:
                stop.set()
                release.set()
                thread.join(10)
        assert not thread.is_alive()


class TestStoreProber:
    def test_quiet_agent_becomes_ready_when_the_store_returns(self):
        """A failed start-up check is retried while nothing is pending, and a success makes /readyz ready."""
        readiness = Readiness(stale_after=60, store_ok=None)
        answers = [SinkUnavailableError("down"), SinkUnavailableError("down"), None]

        def check() -> None:
            answer = answers.pop(0) if answers else None
            if answer is not None:
                raise answer

        with StoreProber(check, readiness, min_interval=0.01, max_interval=0.02) as prober:
            assert wait_for(lambda: readiness.ready()[0])
        assert prober.checks == 3 and answers == []

    def test_failures_back_off_to_the_maximum_interval(self):
        """Repeated failures are retried with growing delays, never more often than min_interval."""
        readiness = Readiness(stale_after=60, store_ok=None)
        times: list[float] = []

        def check() -> None:
            times.append(time.monotonic())
            raise SinkUnavailableError("down")

        with StoreProber(check, readiness, min_interval=0.05, max_interval=0.2):
            assert wait_for(lambda: len(times) >= 5, timeout=5)
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert all(gap >= 0.045 for gap in gaps), gaps
        assert gaps[-1] >= 0.19 and gaps[-1] >= gaps[0] * 3, gaps
        assert readiness.ready() == (False, "store unreachable")

    def test_pending_data_leaves_readiness_to_the_uploads(self):
        """With data waiting, the prober does not flip readiness: the next upload's outcome decides."""
        readiness = Readiness(stale_after=60, store_ok=None)
        calls = []

        def check() -> None:
            calls.append(1)
            raise SinkUnavailableError("down")

        readiness.update(pending=True)
        with StoreProber(check, readiness, min_interval=0.01, max_interval=0.01):
            assert wait_for(lambda: calls)
            time.sleep(0.1)
        assert len(calls) == 1  # the start-up check only
        assert readiness.ready() == (False, "store unreachable")

    def test_stop_does_not_wait_for_a_blocked_check(self):
        """A check blocked on a silent store does not hold up stop() beyond join_timeout."""
        release = threading.Event()
        prober = StoreProber(lambda: release.wait(10), Readiness(stale_after=60), join_timeout=0.1).start()
        started = time.monotonic()
        prober.stop()
        assert time.monotonic() - started < 1
        release.set()


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
