"""One :class:`~presidio_logshield.redactor.Redactor` per distinct configuration, shared by every handler,
filter and formatter in the process (loading a spaCy pipeline twice would cost seconds and hundreds of MB).
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from .config import RedactionConfig

__all__ = ["config_fingerprint", "new_redactor", "shared_redactor"]

_lock = threading.Lock()
_redactors: dict[str, Any] = {}


def config_fingerprint(config: RedactionConfig) -> str:
    """A key that differs whenever any option differs, secrets included (hashed, never stored in clear)."""
    digest = hashlib.sha256(config.model_dump_json().encode())
    for key in (config.pseudonym_key, config.encryption_key):
        digest.update(b"\x00" + (key.get_secret_value() if key is not None else b""))
    return digest.hexdigest()


def shared_redactor(config: RedactionConfig) -> Any:
    from .redactor import Redactor  # Presidio and spaCy load only when a record is first redacted

    key = config_fingerprint(config)
    with _lock:
        redactor = _redactors.get(key)
        if redactor is None:
            redactor = _redactors[key] = Redactor(config)
        return redactor


def new_redactor(config: RedactionConfig) -> Any:
    """A redactor of its own (not shared): for a handler whose shared redactor is held by a stuck detection call."""
    from .redactor import Redactor

    return Redactor(config)
