"""One :class:`~presidio_logshield.redactor.Redactor` per distinct configuration, shared by every handler,
filter and formatter in the process (loading a spaCy pipeline twice would cost seconds and hundreds of MB).

A shared redactor that a hung call has been holding for a long time is replaced (:func:`replace_shared`): whoever
asks next gets a healthy one, and the hung one is left to its caller.

Fork: a child forked while another thread was loading a redactor (importing Presidio and spaCy, or building the
engine) would inherit that thread's locks — this module's and the import system's per-module locks — with no thread
left to release them, and block forever on its first record. So ``fork`` first waits (at most :data:`LOAD_WAIT`
seconds) for a load in progress on another thread to finish, and the child gets fresh locks here.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import threading
from collections.abc import Sequence
from typing import Any

from .config import RedactionConfig, load_handler_config

__all__ = ["BoundedRedactor", "ReentrantRedaction", "config_fingerprint", "detection_timeout", "new_redactor",
           "replace_shared", "shared_redactor"]

_lock = threading.Lock()
_redactors: dict[str, Any] = {}
#: Threads (idents) loading a redactor right now, for the fork hook.
_loading: set[int] = set()
_loading_changed = threading.Condition(threading.Lock())
#: Seconds ``fork`` waits for another thread's redactor load to finish.
LOAD_WAIT = 60.0


def config_fingerprint(config: RedactionConfig) -> str:
    """A key that differs whenever any option differs, secrets included (hashed, never stored in clear)."""
    digest = hashlib.sha256(config.model_dump_json().encode())
    for key in (config.pseudonym_key, config.encryption_key):
        digest.update(b"\x00" + (key.get_secret_value() if key is not None else b""))
    return digest.hexdigest()


class _Loading:
    """Marks the current thread as loading a redactor (imports included) while the block runs."""

    def __enter__(self) -> None:
        with _loading_changed:
            _loading.add(threading.get_ident())

    def __exit__(self, *exc: object) -> None:
        with _loading_changed:
            _loading.discard(threading.get_ident())
            _loading_changed.notify_all()


def _build(config: RedactionConfig) -> Any:
    with _Loading():
        from .redactor import Redactor  # Presidio and spaCy load only when a record is first redacted

        return Redactor(config)


def shared_redactor(config: RedactionConfig) -> Any:
    key = config_fingerprint(config)
    redactor = _redactors.get(key)
    if redactor is not None:
        return redactor
    with _Loading():
        from .redactor import Redactor

        with _lock:
            redactor = _redactors.get(key)
            if redactor is None:
                redactor = _redactors[key] = Redactor(config)
            return redactor


def new_redactor(config: RedactionConfig) -> Any:
    """A redactor of its own (not shared): for a handler whose shared redactor is held by a stuck detection call."""
    return _build(config)


def replace_shared(config: RedactionConfig, stuck: Any) -> None:
    """Forget ``stuck`` as the shared redactor of ``config`` (a hung call holds it): the next
    :func:`shared_redactor` builds a new one. Does nothing when another has replaced it already."""
    key = config_fingerprint(config)
    if _redactors.get(key) is stuck:
        with _lock:
            if _redactors.get(key) is stuck:
                del _redactors[key]


def detection_timeout(value: float | None) -> float:
    """``detection_timeout`` for a filter or formatter: the keyword, else ``LOGSHIELD_DETECTION_TIMEOUT``, else the
    handler's default — validated like the handler's option."""
    name = "LOGSHIELD_DETECTION_TIMEOUT"
    environ = {name: os.environ[name]} if name in os.environ else {}
    options = {} if value is None else {"detection_timeout": value}
    return load_handler_config(environ, **options).detection_timeout


_inside = threading.local()


class ReentrantRedaction(Exception):
    """A record reached a filter or formatter on a thread already inside one's redaction (a signal handler logged)."""


class BoundedRedactor:
    """The redactor as ``RedactingFilter`` and ``JsonFormatter`` use it on the application's thread.

    A call waits at most ``timeout`` for the (shared, serialised) redactor: when another call has held it that long
    — a hung detection another component abandoned — it raises :class:`~presidio_logshield.redactor.RedactorBusy`
    (the caller fails closed) and the held redactor is replaced for everyone, so the next record gets a healthy one.
    A call from a thread already inside one (a signal handler logging while the thread redacts) raises
    :class:`ReentrantRedaction` at once instead of waiting on a lock its own thread holds.
    """

    def __init__(self, config: RedactionConfig, timeout: float, redactor: Any = None) -> None:
        self.config = config
        self.timeout = timeout
        self._redactor: Any = redactor
        self._injected = redactor is not None
        self._takes_timeout: bool | None = None

    @property
    def redactor(self) -> Any:
        redactor = self._redactor
        if redactor is None:
            redactor = self._redactor = shared_redactor(self.config)
        return redactor

    def redact_batch(self, values: Sequence[Any]) -> list[tuple[Any, Any]]:
        if getattr(_inside, "active", False):
            raise ReentrantRedaction("logged while this thread was redacting")
        redactor = self.redactor
        if self._takes_timeout is None:
            try:
                self._takes_timeout = "timeout" in inspect.signature(redactor.redact_batch).parameters
            except (TypeError, ValueError):
                self._takes_timeout = False
        _inside.active = True
        try:
            if self._takes_timeout:
                return redactor.redact_batch(values, timeout=self.timeout)  # type: ignore[no-any-return]
            return redactor.redact_batch(values)  # type: ignore[no-any-return]
        except TimeoutError:
            if not self._injected:
                replace_shared(self.config, redactor)
                self._redactor = None
            raise
        finally:
            _inside.active = False

    def redact_text(self, text: str) -> tuple[str, Any]:
        return self.redact_batch([text])[0]  # type: ignore[return-value]


def _before_fork() -> None:
    me = threading.get_ident()
    with _loading_changed:
        _loading_changed.wait_for(lambda: not (_loading - {me}), LOAD_WAIT)


def _after_fork_in_child() -> None:
    global _lock, _loading_changed
    _lock = threading.Lock()
    _loading_changed = threading.Condition(threading.Lock())
    _loading.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
    # ``filelock`` (imported by Presidio's e-mail recognizer, through tldextract) registers fork hooks when imported:
    # imported by a load while ``fork`` waits above, its after-fork hook would run without its before-fork hook and
    # print a traceback in the parent. Imported now, its hooks are in place before any fork waits for a load.
    with contextlib.suppress(ImportError):
        import filelock  # noqa: F401
