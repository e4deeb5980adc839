"""What every command needs: configuration and sink, with errors turned into a message and an exit code."""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta, timezone
from typing import NoReturn

from ..config import AgentConfig, ConfigError, load_config
from ..sinks import Sink, SinkError, sink_from_config

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


class CommandError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int) -> NoReturn:
    raise CommandError(message, code)


def config_or_exit() -> AgentConfig:
    try:
        return load_config()
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)


def sink_or_exit(config: AgentConfig) -> Sink:
    try:
        return sink_from_config(config)
    except (ValueError, SinkError) as exc:
        from .._log import sanitize

        fail(f"LOGSHIELD_SINK: cannot use {config.sink_url.split('?')[0]}: {sanitize(str(exc))}", EXIT_CONFIG)


def print_err(message: str) -> None:
    print(f"logshield-agent: {message}", file=sys.stderr)


def sink_for_url(url: str) -> Sink:
    """A sink for an archive named on the command line (verify, report); credentials as for the agent."""
    try:
        config = load_config(paths="-", sink=url)
    except ConfigError as exc:
        fail(str(exc).replace("LOGSHIELD_SINK", "URL"), EXIT_CONFIG)
    return sink_or_exit(config)


_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")
_UNIT = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str, now: datetime) -> datetime:
    """``7d`` / ``24h`` / ``30m`` / ``2w`` before ``now``, or an ISO date or date-time (UTC unless it says)."""
    match = _AGO.match(value)
    if match:
        return now - timedelta(**{_UNIT[match.group(2)]: float(match.group(1))})
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {value!r} (use e.g. 7d, 24h, 30m, 2026-11-01 or 2026-11-01T12:00Z)") from None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)
