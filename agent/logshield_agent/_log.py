"""The agent's own logs: one JSON object per line on stderr. Never log content; sanitise exception text."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

__all__ = ["JsonFormatter", "sanitize", "setup_logging"]

_STANDARD = set(vars(logging.makeLogRecord({})))
_SECRETS = [
    (re.compile(r"(?i)(AccountKey|SharedAccessSignature|SharedAccessKey|sig|se|sp|sv|skoid|sktid|password|pwd|"
                r"secret|token|aws_secret_access_key|x-amz-security-token|x-amz-signature|x-amz-credential)"
                r"=[^;&\s'\"]+"), r"\1=***"),
    (re.compile(r"(?i)(https?://[^\s'\"?]+)\?[^\s'\"]*"), r"\1?***"),
    (re.compile(r"(?i)(Authorization:?\s*)(Bearer|Basic|SharedKey|AWS4-HMAC-SHA256)\s+[^\s'\"]+"), r"\1\2 ***"),
    (re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), "***"),
]


def sanitize(text: str, limit: int = 500) -> str:
    """Strip credentials (connection-string keys, SAS query strings, signatures) from an SDK message."""
    for pattern, repl in _SECRETS:
        text = pattern.sub(repl, text)
    return text[:limit]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": sanitize(record.getMessage(), 2000),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = sanitize(value) if isinstance(value, str) else value
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            out["error"] = f"{type(exc).__name__}: {sanitize(str(exc))}"
        return json.dumps(out, default=str, ensure_ascii=False)


def setup_logging(level: int = logging.INFO) -> None:
    """The agent's loggers at ``level``; the libraries' (watchdog, the cloud SDKs) at WARNING, as JSON too — without
    a handler of their own, logging's last resort would print their messages as bare text among the JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    own = logging.getLogger("logshield_agent")
    own.handlers[:] = [handler]
    own.setLevel(level)
    own.propagate = False
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "logshield_agent", False)] + [handler]
    handler.logshield_agent = True  # type: ignore[attr-defined]  # replaced, not added twice, on a second call
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
