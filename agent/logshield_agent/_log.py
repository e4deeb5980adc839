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
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("logshield_agent")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
