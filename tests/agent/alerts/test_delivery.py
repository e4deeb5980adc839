"""Alert delivery: the webhook against a real loopback HTTP server, retries, the bounded queue, stop and join."""

from __future__ import annotations

import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from logshield_agent._log import JsonFormatter
from logshield_agent.alerts import BackgroundDelivery, DeliveryError, WebhookDestination
from logshield_agent.alerts.destinations import webhook_label

WAIT = 30.0  # generous upper bound for a thread to get something done; never a timing assertion


class Hook:
    """A webhook receiver on 127.0.0.1: answers from a script (then 200), records every request it read."""

    def __init__(self, script: list[int | str] | None = None) -> None:
        self.script = list(script or [])
        self.requests: list[tuple[dict[str, str], dict]] = []
        self.accepted: list[str] = []
        self.release = threading.Event()
        self.release.set()
        self.arrived = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.release.wait(WAIT)
                with hook.arrived:
                    hook.requests.append((dict(self.headers), body))
                    answer = hook.script.pop(0) if hook.script else 200
                    if answer == 200:
                        hook.accepted.append(body["id"])
                    hook.arrived.notify_all()
                if answer == "drop":  # took the alert, lost the answer
                    self.close_connection = True
                    return
                self.send_response(int(answer))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0KEN-in-path?sig=secret"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})

    def wait_for(self, predicate) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: predicate(self), WAIT)

    def __enter__(self) -> Hook:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.thread.join()
        self.server.server_close()


class Results(list):
    """on_result's list, with a way to wait for the delivery thread to report something."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = threading.Condition()

    def append(self, result: str) -> None:
        with self._changed:
            super().append(result)
            self._changed.notify_all()

    def wait_for(self, predicate) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: predicate(self), WAIT)


def alert(n: int) -> tuple[dict, bytes]:
    document = {"format": "logshield-alert/1", "id": f"alert-{n}", "dimension": "actor", "key": f"a{n}", "count": n}
    return document, json.dumps(document).encode()


def delivery(url: str, results: list[str], **kw) -> BackgroundDelivery:
    kw.setdefault("base", 0.001)
    kw.setdefault("cap", 0.005)
    return BackgroundDelivery(WebhookDestination(url, token=kw.pop("token", None), timeout=5),
                              on_result=results.append, rng=random.Random(0), **kw)


class TestWebhookDelivery:
    def test_fails_first_then_accepts(self):
        """Two 503s, then the server accepts: every alert is delivered once, in order, retries counted."""
        results: list[str] = []
        with Hook([503, 503]) as hook:
            sender = delivery(hook.url, results)
            for n in range(3):
                sender.submit(*alert(n))
            hook.wait_for(lambda h: len(h.accepted) == 3)
            sender.stop()
        assert hook.accepted == ["alert-0", "alert-1", "alert-2"]
        assert [body["id"] for _, body in hook.requests] == ["alert-0"] * 3 + ["alert-1", "alert-2"]
        assert results == ["retried", "retried", "delivered", "delivered", "delivered"]

    def test_lost_answer_is_sent_again_with_the_same_id(self):
        """A receiver that took the alert but whose answer was lost gets it again — same id, same Idempotency-Key."""
        results: list[str] = []
        with Hook(["drop"]) as hook:
            sender = delivery(hook.url, results)
            sender.submit(*alert(7))
            hook.wait_for(lambda h: h.accepted == ["alert-7"])
            sender.stop()
        (first_headers, first), (second_headers, second) = hook.requests
        assert first == second and first_headers["Idempotency-Key"] == second_headers["Idempotency-Key"] == "alert-7"
        assert results == ["retried", "delivered"]

    def test_never_blocks_the_caller(self):
        """While the receiver hangs, submit returns at once; a full queue drops its oldest alert, counted."""
        results: list[str] = []
        with Hook() as hook:
            hook.release.clear()  # the receiver holds every request
            sender = delivery(hook.url, results, queue_size=2)
            for n in range(5):
                sender.submit(*alert(n))
            assert hook.requests == []  # every submit returned while the receiver still held the first request
            assert results.count("dropped") >= 2 and sender.pending <= 2
            hook.release.set()
            sender.stop()
        assert "alert-4" in hook.accepted and len(hook.accepted) + results.count("dropped") == 5

    def test_client_errors_are_not_retried(self):
        """A 400 is final: one request, counted as failed."""
        results: list[str] = []
        with Hook([400]) as hook:
            sender = delivery(hook.url, results)
            sender.submit(*alert(1))
            hook.wait_for(lambda h: len(h.requests) == 1)
            sender.stop()
        assert results == ["failed"] and hook.accepted == []

    def test_bearer_token_and_headers(self):
        """The token is sent as a bearer token; the document is the JSON body."""
        results: list[str] = []
        with Hook() as hook:
            sender = delivery(hook.url, results, token="s3cr3t")
            sender.submit(*alert(2))
            hook.wait_for(lambda h: len(h.accepted) == 1)
            sender.stop()
        headers, body = hook.requests[0]
        assert headers["Authorization"] == "Bearer s3cr3t" and headers["Content-Type"] == "application/json"
        assert body["id"] == "alert-2"

    def test_stop_while_the_receiver_is_down(self, caplog):
        """With nothing listening, stop() ends the backoff, gives up, joins the thread; the URL's secrets stay out of
        the logs."""
        results = Results()
        with Hook() as hook:
            url = hook.url
        sender = delivery(url, results, base=30.0, cap=30.0)
        sender.submit(*alert(1))
        sender.submit(*alert(2))
        results.wait_for(lambda r: "retried" in r)  # the first attempt failed; the thread is in its backoff
        sender.stop(timeout=0.0)
        assert results.count("delivered") == 0 and results.count("failed") + results.count("dropped") == 2
        logged = "\n".join(JsonFormatter().format(r) for r in caplog.records)
        assert "T0KEN" not in logged and "secret" not in logged and webhook_label(url) in logged


class TestWebhookDestination:
    def test_connection_refused_is_retryable(self):
        """An unreachable receiver raises a retryable DeliveryError naming only scheme, host and port."""
        with Hook() as hook:
            url = hook.url
        with pytest.raises(DeliveryError) as raised:
            WebhookDestination(url, timeout=2).send(*alert(1))
        assert raised.value.retry and "T0KEN" not in str(raised.value) and "127.0.0.1" in str(raised.value)


class TestIncidentEvents:
    def test_open_update_and_close_are_distinct_deliveries(self):
        """One incident's open, ongoing and closed events reach the webhook as three deliveries: same id, each its
        own Idempotency-Key (a receiver that de-duplicates by key still gets the final counts)."""
        results: list[str] = []
        events = [{"format": "logshield-alert/1", "id": "inc-1", "event_id": f"inc-1.{n}", "revision": n,
                   "state": state, "count": 100 * n} for n, state in enumerate(("open", "ongoing", "closed"), 1)]
        with Hook() as hook:
            sender = delivery(hook.url, results)
            for document in events:
                sender.submit(document, json.dumps(document).encode())
            hook.wait_for(lambda h: len(h.accepted) == 3)
            sender.stop()
        assert [h["Idempotency-Key"] for h, _ in hook.requests] == ["inc-1.1", "inc-1.2", "inc-1.3"]
        assert {b["id"] for _, b in hook.requests} == {"inc-1"} and hook.requests[-1][1]["count"] == 300
