"""``logshield-agent retention apply``: install the store's lifecycle rule for ``LOGSHIELD_RETENTION_DAYS``."""

from __future__ import annotations

import argparse

from .._log import sanitize
from ..sinks import SinkError
from ._common import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, config_or_exit, fail, sink_or_exit

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
                   "deletes expired ones (a slice each minute, the whole archive at least hourly)." if days else
                   "LOGSHIELD_RETENTION_DAYS is unset, so objects are kept forever.")
            )
            return EXIT_OK
        if not config.retention_days:
            fail(f"LOGSHIELD_RETENTION_DAYS is not set: there is no retention to apply on {sink.display_url}; set it "
                 "to the number of days objects must be kept (e.g. LOGSHIELD_RETENTION_DAYS=365)", EXIT_CONFIG)
        try:
            print(apply(config.retention_days))
        except SinkError as exc:
            fail(f"cannot apply retention on {sink.display_url}: {sanitize(str(exc))}", EXIT_FAILED)
    return EXIT_OK
