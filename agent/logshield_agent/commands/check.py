"""``logshield-agent check``: validate the configuration and reach the store."""

from __future__ import annotations

import argparse

from .._log import sanitize
from ..sinks import SinkError
from ._common import EXIT_FAILED, EXIT_OK, config_or_exit, fail, sink_or_exit

HELP = "validate the configuration and check the store is reachable and writable"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def run(args: argparse.Namespace) -> int:
    config = config_or_exit()
    sink = sink_or_exit(config)
    with sink:
        try:
            sink.check()
        except SinkError as exc:
            fail(f"store check failed for {sink.display_url}: {sanitize(str(exc))}", EXIT_FAILED)
    print(f"ok: configuration valid, store {sink.display_url} reachable")
    return EXIT_OK
