"""``logshield-agent [run] [--once]``: tail and ship until SIGTERM/SIGINT, or ship what is there and exit."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading
from typing import TYPE_CHECKING, Any

from .._log import sanitize
from ..config import AgentConfig
from ..sinks import Sink, SinkError
from ..sources.checkpoint import Checkpointer, CheckpointError
from ._common import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, config_or_exit, fail, sink_or_exit

if TYPE_CHECKING:
    from ..health import AgentMetrics

HELP = "tail the files and ship them (the default command)"

log = logging.getLogger("logshield_agent")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: absent here, the top-level flag stays as given (``--once run`` and ``run --once`` both mean once).
    parser.add_argument("--once", action="store_true", default=argparse.SUPPRESS,
                        help="ship everything readable now, wait for the store's acknowledgement, exit")


def observers(config: AgentConfig, sink: Sink, metrics: AgentMetrics) -> list[Any]:
    """What follows the data path, each when enabled: the digest writer (evidence), then anomaly alerts."""
    from ..alerts import alert_observers

    found: list[Any] = []
    if config.digest == "on":
        from ..audit import DigestKey, DigestWriter
        from ..audit.signing import KeyError_

        try:
            key = DigestKey.load(key=config.digest_key.get_secret_value() if config.digest_key else None,
                                 key_file=config.digest_key_file, state_dir=config.state_dir)
        except KeyError_ as exc:
            fail(str(exc), EXIT_CONFIG)
        if key.origin == "generated":
            log.warning("digests are signed with a key generated in the state directory; set LOGSHIELD_DIGEST_KEY"
                        "_FILE to a managed key and give auditors its public key",
                        extra={"public_key": str(config.state_dir / "digest-public-key.pem"),
                               "fingerprint": key.fingerprint})
        found.append(DigestWriter(sink, config.state_dir, host=config.host, key=key,
                                  interval=config.digest_interval))
    found.extend(alert_observers(config, sink, metrics))
    return found


def run(args: argparse.Namespace) -> int:
    from ..health import AgentMetrics, HealthServer, Readiness
    from ..pipeline import Pipeline, ShipError
    from ..sources.notify import ChangeNotifier
    from ..transforms.redact import build_redactor

    config = config_or_exit()
    try:
        checkpointer = Checkpointer.open(config.state_dir)
    except (CheckpointError, OSError) as exc:
        fail(f"LOGSHIELD_STATE_DIR: {exc}", EXIT_CONFIG)
    sink = sink_or_exit(config)
    try:
        redactor = build_redactor(config.redact)
    except RuntimeError as exc:
        fail(str(exc), EXIT_CONFIG)
    metrics = AgentMetrics()
    readiness = Readiness(stale_after=max(3 * config.batch_max_age, 60.0))
    pipeline = Pipeline(config, sink, checkpointer, metrics=metrics, readiness=readiness, redactor=redactor,
                        observers=observers(config, sink, metrics))
    with sink:
        if getattr(args, "once", False):
            try:
                pipeline.run_once()
            except ShipError as exc:
                fail(str(exc), EXIT_FAILED)
            log.info("shipped everything readable", extra={"batches": pipeline.shipped_batches})
            return EXIT_OK
        stop = threading.Event()

        def on_signal(signum: int, _frame: Any) -> None:
            log.info("stopping", extra={"signal": signal.Signals(signum).name})
            stop.set()
            pipeline.wake.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            with contextlib.ExitStack() as stack:
                if config.http_bind is not None:
                    try:
                        stack.enter_context(HealthServer(config.http_bind, metrics, readiness))
                    except OSError as exc:
                        fail(f"LOGSHIELD_HTTP_ADDR: cannot listen on {config.http_addr}: {exc.strerror}", EXIT_CONFIG)
                stack.enter_context(ChangeNotifier(config.paths, pipeline.wake))
                try:
                    sink.check()
                except SinkError as exc:
                    # Keep running: data stays in the files and uploads retry with backoff; /readyz says why.
                    readiness.update(store_ok=False)
                    log.error("store check failed; will keep retrying",
                              extra={"sink": sink.display_url, "error": sanitize(str(exc))})
                log.info("started", extra={"sink": sink.display_url, "paths": list(config.paths)})
                pipeline.run(stop)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("stopped")
        return EXIT_OK
