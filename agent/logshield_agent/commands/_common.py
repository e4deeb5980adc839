"""What every command needs: configuration and sink, with errors turned into a message and an exit code."""

from __future__ import annotations

import os
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from ..config import AgentConfig, ConfigError, load_config
from ..sinks import Sink, SinkError, sink_from_config

if TYPE_CHECKING:
    from ..sources.checkpoint import Checkpointer

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


def probe_writable(directory: Path) -> None:
    """Create, fsync and remove a file in ``directory`` (``OSError`` when the agent could not keep state there)."""
    path = directory / f".write-probe.{os.getpid()}.tmp"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, b"probe\n")
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(path)


def state_or_exit(config: AgentConfig) -> Checkpointer:
    """The checkpoints, from a state directory the agent can write to; exit 2 naming LOGSHIELD_STATE_DIR if not."""
    from ..sources.checkpoint import Checkpointer, CheckpointError

    if config.state_dir.exists() and not config.state_dir.is_dir():
        fail(f"LOGSHIELD_STATE_DIR: {config.state_dir} is not a directory", EXIT_CONFIG)
    try:
        checkpointer = Checkpointer.open(config.state_dir)
    except CheckpointError as exc:
        fail(f"LOGSHIELD_STATE_DIR: {exc}", EXIT_CONFIG)
    except OSError as exc:
        fail(f"LOGSHIELD_STATE_DIR: cannot use {config.state_dir} as the state directory: "
             f"{exc.strerror or type(exc).__name__}", EXIT_CONFIG)
    try:
        probe_writable(config.state_dir)
    except OSError as exc:
        fail(f"LOGSHIELD_STATE_DIR: {config.state_dir} is not writable: {exc.strerror or type(exc).__name__}",
             EXIT_CONFIG)
    return checkpointer


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


def time_window(since: str | None, until: str | None, now: datetime,
                default_until: datetime | None = None) -> tuple[datetime | None, datetime | None]:
    """``--since`` and ``--until`` parsed (a bad value or an empty window is a configuration error)."""
    try:
        start = parse_when(since, now) if since else None
        end = parse_when(until, now) if until else default_until
    except ValueError as exc:
        fail(str(exc), EXIT_CONFIG)
    if start is not None and end is not None and start >= end:
        fail(f"--since ({start:%Y-%m-%d %H:%M}) must be before --until ({end:%Y-%m-%d %H:%M})", EXIT_CONFIG)
    return start, end
