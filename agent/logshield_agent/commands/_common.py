"""What every command needs: configuration and sink, with errors turned into a message and an exit code."""

from __future__ import annotations

import sys
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
