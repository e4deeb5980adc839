"""CLI sub-commands. Each is a module with ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.

To add one (``verify``, ``report``…), write ``commands/<name>.py`` and list it in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["COMMANDS", "Command", "load"]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


#: sub-command name → module under logshield_agent.commands
COMMANDS: dict[str, str] = {
    "run": "run",
    "check": "check",
    "retention": "retention",
    "report": "report",
    "verify": "verify",
    "session": "session",
}


def load(name: str) -> Command:
    module = importlib.import_module(f"{__name__}.{COMMANDS[name]}")
    return Command(name, module.HELP, module.add_arguments, module.run)
