"""Request context for web apps: WSGI and ASGI middleware that put ``request_id``, ``session_id`` and ``actor`` on
every record logged while a request is handled (and in every thread or task it starts with a copied context).

    app = LogContextMiddleware(app, actor=lambda environ: environ.get("REMOTE_USER"))          # Flask, Django WSGI
    app = ASGILogContextMiddleware(app, actor=lambda scope: scope.get("user_id"))             # Starlette, FastAPI

The request id is taken from ``X-Request-ID`` when it is a plausible id (letters, digits, ``._-:``, at most 128
characters) — a header is never trusted to inject anything else — else generated; it is echoed in the response.
A W3C ``traceparent`` header gives ``trace_id`` when OpenTelemetry is not installed (with OpenTelemetry, the active
span's ids are added to every record anyway). Actor and session values may be personal data: write them as keyed
pseudonyms with ``pseudonym_fields="actor,session_id"``.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from .context import bind_context, unbind_context

__all__ = ["ASGILogContextMiddleware", "LogContextMiddleware", "request_fields"]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
Extractor = Callable[[Any], Any]


def request_fields(headers: Mapping[str, str], scope_or_environ: Any, *, actor: Extractor | None,
                   session: Extractor | None, header: str) -> dict[str, Any]:
    """The context fields of one request (``headers``: lower-case names)."""
    incoming = headers.get(header.lower(), "")
    fields: dict[str, Any] = {
        "request_id": incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex,
    }
    trace = _TRACEPARENT.fullmatch(headers.get("traceparent", "").strip())
    if trace and trace.group(1) != "0" * 32:
        fields["trace_id"] = trace.group(1)
    for name, extract in (("actor", actor), ("session_id", session)):
        if extract is None:
            continue
        try:
            value = extract(scope_or_environ)
        except Exception:  # a failing extractor must not fail the request
            value = None
        if value is not None:
            fields[name] = value
    return fields


class _InContext(Iterable[bytes]):
    """A WSGI response body whose iteration and ``close`` run inside the request's context (the server consumes
    the body after the app returned, outside any ``with`` block)."""

    def __init__(self, body: Iterable[bytes], context: contextvars.Context) -> None:
        self._body = body
        self._context = context

    def __iter__(self) -> Iterator[bytes]:
        iterator = self._context.run(iter, self._body)
        while True:
            try:
                yield self._context.run(next, iterator)
            except StopIteration:
                return

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            self._context.run(close)


class _ContextMiddleware:
    def __init__(self, app: Callable[..., Any], *, actor: Extractor | None = None, session: Extractor | None = None,
                 header: str = "X-Request-ID") -> None:
        self.app = app
        self.actor = actor  # callable(environ or scope) -> actor id or None
        self.session = session  # callable(environ or scope) -> session id or None
        self.header = header


class LogContextMiddleware(_ContextMiddleware):
    """WSGI middleware: ``request_id`` (+ ``actor``, ``session_id``, ``trace_id``) on every record of a request."""

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
                   if key.startswith("HTTP_") and isinstance(value, str)}
        fields = request_fields(headers, environ, actor=self.actor, session=self.session, header=self.header)
        token = bind_context(**fields)
        try:
            context = contextvars.copy_context()
        finally:
            unbind_context(token)

        def start(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            response_headers.append((self.header, fields["request_id"]))
            return start_response(status, response_headers, exc_info)

        return _InContext(context.run(self.app, environ, start), context)


class ASGILogContextMiddleware(_ContextMiddleware):
    """ASGI middleware (HTTP and WebSocket): the same fields, for every record of the connection's task."""

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1")
                   for name, value in scope.get("headers", ())}
        fields = request_fields(headers, scope, actor=self.actor, session=self.session, header=self.header)
        echo = (self.header.lower().encode("latin-1"), fields["request_id"].encode("latin-1"))

        async def send_with_id(message: dict[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), echo]}
            await send(message)

        token = bind_context(**fields)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            unbind_context(token)
