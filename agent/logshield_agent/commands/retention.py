"""``logshield-agent retention apply``: install the store's lifecycle rule for ``LOGSHIELD_RETENTION_DAYS``."""

from __future__ import annotations

import argparse

from .._log import sanitize
from ..sinks import SinkError
from ._common import EXIT_FAILED, EXIT_OK, config_or_exit, fail, sink_or_exit

HELP = "apply remote retention (lifecycle rules) for LOGSHIELD_RETENTION_DAYS"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("apply", help="install/update the lifecycle rule on the bucket/container")


def run(args: argparse.Namespace) -> int:
    config = config_or_exit()
    sink = sink_or_exit(config)
    with sink:
        apply = getattr(sink, "apply_lifecycle", None)
        if apply is None:
            days = config.retention_days
            print(
                f"{sink.display_url} is a local directory: there is no lifecycle rule to install. "
                + (f"Objects are kept at least {days} days (retain-until in each .meta.json) and the running agent "
                   "deletes expired ones (checked every minute)." if days else
                   "LOGSHIELD_RETENTION_DAYS is unset, so objects are kept forever.")
            )
            return EXIT_OK
        try:
            print(apply(config.retention_days))
        except SinkError as exc:
            fail(f"cannot apply retention on {sink.display_url}: {sanitize(str(exc))}", EXIT_FAILED)
    return EXIT_OK
