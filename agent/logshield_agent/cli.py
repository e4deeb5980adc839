"""``logshield-agent``: argparse front end. Sub-commands live in ``logshield_agent.commands`` (one module each)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from ._log import setup_logging
from ._memory import tune_allocator
from .commands import COMMANDS, load
from .commands._common import CommandError, print_err

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logshield-agent",
        description="Tail log files and ship every line exactly once to a directory, S3 or Azure Blob. "
        "Configured by LOGSHIELD_* environment variables (see agent/CONFIG.md).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--once", action="store_true",
                        help="ship everything readable now, wait for the store's acknowledgement, exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        command = load(name)
        child = sub.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(child)
        child.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    tune_allocator()
    setup_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "_run", None)
    if run is None:
        run = load("run").run
    elif args.once and args.command != "run":
        parser.error(f"--once applies to run, not to {args.command}")
    try:
        return run(args)
    except CommandError as exc:
        print_err(str(exc))
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
