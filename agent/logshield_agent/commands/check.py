"""``logshield-agent check``: everything ``run`` would refuse, and a real write to the store, without running.

In the order the agent starts: the configuration (and its warnings), the state directory (writable; checkpoints,
digest and alert state readable by this version), the digest signing key, the redaction pass, then the store:
reachable, bucket/container and its retention settings as configured, and a conditional write, read-back and
delete of a probe object under ``<prefix>/_check/<host>-<random>`` — which is what proves the credentials may write.

``check`` is safe next to a running agent: the state files are validated on a copy (opening them in place could
tidy up what the agent is in the middle of writing), and the write test in the state directory uses its own name.
Exit codes are those of ``run``: 2 for configuration and state, 1 for the store; with ``--strict`` warnings
(e.g. retention days without Object Lock) exit 1 too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._log import sanitize
from ..config import AgentConfig, config_warnings, unknown_variables
from ..sinks import Sink, SinkError
from ._common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    CommandError,
    config_or_exit,
    fail,
    print_err,
    probe_writable,
    sink_or_exit,
    state_or_exit,
)

HELP = "validate the configuration and state, and check the store is reachable and writable"

#: Where the write probe goes, relative to the sink's prefix.
PROBE_PREFIX = "_check/"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strict", action="store_true", help="exit 1 when there are warnings")


def run(args: argparse.Namespace) -> int:
    from .run import digest_key, observers, redactor_or_exit

    config = config_or_exit()
    warnings = config_warnings(config) + unknown_variables(os.environ)
    for warning in warnings:
        print_err(f"warning: {warning}")
    report = ["configuration valid"]
    state = config.state_dir
    if state.exists() and not state.is_dir():
        fail(f"LOGSHIELD_STATE_DIR: {state} is not a directory", EXIT_CONFIG)
    try:
        state.mkdir(parents=True, exist_ok=True)
        probe_writable(state)
    except OSError as exc:
        fail(f"LOGSHIELD_STATE_DIR: {state} is not writable: {exc.strerror or type(exc).__name__}", EXIT_CONFIG)
    sink = sink_or_exit(config)
    with _state_copy(config) as copy:
        checkpointer = state_or_exit(copy)
        report.append(f"state directory {state} writable ({len(checkpointer.streams)} stream(s) in checkpoints)")
        if config.digest == "on":
            key = digest_key(copy, create=False)
            if key is None:
                warnings.append("no LOGSHIELD_DIGEST_KEY(_FILE): the agent will generate a digest signing key in "
                                f"{state} on first start; give auditors a managed key's public half instead")
                print_err(f"warning: {warnings[-1]}")
                from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

                from ..audit import DigestKey

                key = DigestKey(Ed25519PrivateKey.generate(), "generated")  # for the state checks only
            else:
                report.append(f"digest signing key from {_origin(key.origin)} ({key.fingerprint[:23]}…)")
        else:
            key = None
        from ..health import AgentMetrics

        observers(copy, sink, AgentMetrics(), key=key, quiet=True)
    if config.redact != "off":
        redactor_or_exit(config)
        report.append(f"redaction pass ({config.redact}) loads")
    with sink:
        try:
            sink.check()
            notes = _probe(sink, config)
        except SinkError as exc:
            fail(f"store check failed for {sink.display_url}: {sanitize(str(exc))}", EXIT_FAILED)
    what = "a test file written and removed" if notes is None else "a probe object written, read back" + (
        " and deleted" if not notes else "")
    report.append(f"store {sink.display_url} reachable and writable ({what})")
    for line in report:
        print(f"ok: {line}")
    for note in notes or ():
        print(f"note: {sanitize(note)}")
    return EXIT_FAILED if warnings and args.strict else EXIT_OK


def _probe(sink: Sink, config: AgentConfig) -> list[str] | None:
    probe = getattr(sink, "probe", None)
    if probe is None:  # the local directory sink's check() already writes and removes a file
        return None
    return list(probe(f"{PROBE_PREFIX}{config.host}-{secrets.token_hex(6)}"))


def _origin(origin: str) -> str:
    return {"env": "LOGSHIELD_DIGEST_KEY", "file": "LOGSHIELD_DIGEST_KEY_FILE"}.get(origin, "the state directory")


@contextlib.contextmanager
def _state_copy(config: AgentConfig) -> Iterator[AgentConfig]:
    """The configuration pointed at a private copy of the state directory's files; messages name the real one."""
    with tempfile.TemporaryDirectory(prefix="logshield-check-") as tmp:
        for path in config.state_dir.iterdir():
            if path.is_file() and not path.name.startswith("."):
                with contextlib.suppress(FileNotFoundError):  # the running agent replaced it meanwhile
                    shutil.copy2(path, Path(tmp) / path.name)
        copy: Any = config.model_copy(update={"state_dir": Path(tmp)})
        try:
            yield copy
        except CommandError as exc:
            raise CommandError(str(exc).replace(tmp, str(config.state_dir)), exc.code) from None
