"""Where alerts go: stderr, a file, a webhook, the store. Each ``send`` raises ``DeliveryError`` when it failed.

``LOGSHIELD_ALERT_DESTINATIONS`` lists them: ``stderr``, ``store`` (``_alerts/dt=…/<id>.<revision>.json`` in the
sink, written with its conditional put: one object per event of an incident), ``file:///path`` (JSON lines
appended), ``http(s)://…`` (a POST of the JSON document with ``Idempotency-Key: <event_id>`` — distinct for the open,
update and closed events of one incident, the same for a retried delivery — and, when configured,
``Authorization: Bearer …``). Every destination gets every event; receivers group them by ``id``. stderr and file
are written at once; the webhook and the store go through a ``BackgroundDelivery`` so a slow or dead endpoint never
holds up shipping.
Messages name a webhook by scheme, host and port only (its path or query may hold a secret).
"""

from __future__ import annotations

import hashlib
import http.client
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, Any, Protocol

from ..sinks.base import ObjectConflictError, Sink, SinkError, SinkUnavailableError
from .document import store_key

__all__ = ["DeliveryError", "Destination", "FileDestination", "StderrDestination", "StoreDestination",
           "WebhookDestination", "webhook_label"]


class DeliveryError(Exception):
    """Delivery failed; ``retry`` says whether trying again later may work. The message holds no secret."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


class Destination(Protocol):
    name: str  # the ``destination`` label in /metrics

    def send(self, document: dict[str, Any], body: bytes) -> None: ...


class StderrDestination:
    """One JSON line per alert on the agent's stderr (beside its own JSON logs; alerts carry ``"format"``)."""

    name = "stderr"

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream

    def send(self, document: dict[str, Any], body: bytes) -> None:
        stream = self._stream or sys.stderr
        try:
            stream.write(body.decode("utf-8") + "\n")
            stream.flush()
        except (OSError, ValueError) as exc:
            raise DeliveryError(f"cannot write to stderr: {type(exc).__name__}", retry=False) from None


class FileDestination:
    """Appends one JSON line per alert to a file (created if missing; its directory must exist)."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def send(self, document: dict[str, Any], body: bytes) -> None:
        try:
            with open(self.path, "ab") as fh:
                fh.write(body + b"\n")
        except OSError as exc:
            raise DeliveryError(f"cannot append to {self.path}: {exc.strerror or type(exc).__name__}",
                                retry=False) from None


class StoreDestination:
    """The alert as an object in the archive, beside the logs it is about (the compliance report reads them)."""

    name = "store"

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def send(self, document: dict[str, Any], body: bytes) -> None:
        key = store_key(document)
        try:
            self.sink.put(key, body, sha256=hashlib.sha256(body).hexdigest(), metadata={},
                          content_type="application/json")
        except ObjectConflictError:
            return  # the same incident, stored by an earlier detection (a replay): already there
        except (SinkUnavailableError, OSError) as exc:
            raise DeliveryError(f"store unavailable: {type(exc).__name__}", retry=True) from None
        except SinkError as exc:
            raise DeliveryError(f"store refused {key}: {type(exc).__name__}", retry=False) from None


def webhook_label(url: str) -> str:
    """``scheme://host[:port]`` — safe to log."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirected POST would lose its body: report the 3xx instead


class WebhookDestination:
    """POST the document; 2xx is delivered, 408/429/5xx and network errors are retried, other answers are not."""

    name = "webhook"

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 10.0) -> None:
        self.url = url
        self.label = webhook_label(url)
        self._token = token
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirect)

    def send(self, document: dict[str, Any], body: bytes) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "logshield-agent",
                   "Idempotency-Key": str(document.get("event_id") or document.get("id", ""))}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(65536)
        except urllib.error.HTTPError as exc:
            code = exc.code
            exc.close()
            raise DeliveryError(f"{self.label} answered HTTP {code}",
                                retry=code in (408, 425, 429) or code >= 500) from None
        except ValueError as exc:  # (http.client.InvalidURL among them) a bad URL does not get better
            raise DeliveryError(f"{self.label} refused: {type(exc).__name__}", retry=False) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DeliveryError(f"{self.label} unreachable: {type(reason).__name__}", retry=True) from None
