"""``logshield-agent [run] [--once]``: tail and ship until SIGTERM/SIGINT, or ship what is there and exit.

Start-up does nothing that waits on the network in the thread that handles signals: the store is checked by a
background ``StoreProber`` while the pipeline already runs, so SIGTERM during start-up stops the agent at once.
After SIGTERM/SIGINT the pipeline flushes within ``LOGSHIELD_SHUTDOWN_GRACE``; if the store keeps it waiting longer
(a request blocked on a silent store, the final digest), the agent exits ``GRACE_MARGIN`` seconds after the grace
anyway — safe by construction: checkpoints only ever move after the store acknowledged, so whatever was not
acknowledged is shipped again after the restart.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from ..config import AgentConfig, config_warnings, unknown_variables
from ..sinks import Sink
from ._common import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, config_or_exit, fail, sink_or_exit, state_or_exit

if TYPE_CHECKING:
    from ..health import AgentMetrics, Liveness

HELP = "tail the files and ship them (the default command)"

log = logging.getLogger("logshield_agent")

#: Seconds after LOGSHIELD_SHUTDOWN_GRACE at which the agent exits even if the store still holds it up.
GRACE_MARGIN = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: absent here, the top-level flag stays as given (``--once run`` and ``run --once`` both mean once).
    parser.add_argument("--once", action="store_true", default=argparse.SUPPRESS,
                        help="ship everything readable now, wait for the store's acknowledgement, exit")


def digest_key(config: AgentConfig, *, create: bool = True) -> Any:
    """The digest signing key as the agent uses it (exit 2 when unusable); None when ``create`` is False and the
    agent would generate one on first start."""
    from ..audit import DigestKey
    from ..audit.signing import GENERATED_KEY_FILE, KeyError_

    if not create and not (config.digest_key or config.digest_key_file or
                           (config.state_dir / GENERATED_KEY_FILE).exists()):
        return None
    try:
        return DigestKey.load(key=config.digest_key.get_secret_value() if config.digest_key else None,
                              key_file=config.digest_key_file, state_dir=config.state_dir)
    except KeyError_ as exc:
        fail(str(exc), EXIT_CONFIG)
    except OSError as exc:  # the state dir, where a key is generated
        fail(f"LOGSHIELD_STATE_DIR: cannot keep the digest key in {config.state_dir}: {exc.strerror}", EXIT_CONFIG)


def observers(config: AgentConfig, sink: Sink, metrics: AgentMetrics, *, key: Any = None,
              quiet: bool = False) -> list[Any]:
    """What follows the data path, each when enabled: the digest writer (evidence), then anomaly alerts."""
    from ..alerts import alert_observers

    found: list[Any] = []
    try:
        if config.digest == "on":
            from ..audit import DigestWriter

            key = key or digest_key(config)
            if key.origin == "generated" and not quiet:
                log.warning("digests are signed with a key generated in the state directory; set "
                            "LOGSHIELD_DIGEST_KEY_FILE to a managed key and give auditors its public key",
                            extra={"public_key": str(config.state_dir / "digest-public-key.pem"),
                                   "fingerprint": key.fingerprint})
            found.append(DigestWriter(sink, config.state_dir, host=config.host, key=key,
                                      interval=config.digest_interval))
        found.extend(alert_observers(config, sink, metrics))
    except (OSError, ValueError) as exc:  # their state files in the state directory: unreadable, unknown version
        fail(f"LOGSHIELD_STATE_DIR: {exc}", EXIT_CONFIG)
    return found


def heartbeat(liveness: Liveness) -> Any:
    """An observer that beats ``liveness`` on every iteration of the pipeline loop (what /healthz reports)."""
    from ..pipeline import PipelineObserver

    class Heartbeat(PipelineObserver):
        def tick(self, wall: float) -> None:
            liveness.beat()

    return Heartbeat()


def _exit_after_grace() -> None:
    log.error("shutdown grace period exceeded: the store did not answer in time; exiting now (unacknowledged "
              "data stays in the files and is shipped after the restart)")
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(EXIT_FAILED)


def redactor_or_exit(config: AgentConfig) -> Any:
    from ..transforms.redact import build_redactor

    try:
        return build_redactor(config.redact)
    except RuntimeError as exc:
        fail(str(exc), EXIT_CONFIG)


def run(args: argparse.Namespace) -> int:
    from ..health import AgentMetrics, HealthServer, Liveness, Readiness, StoreProber
    from ..pipeline import Pipeline, ShipError
    from ..sources.notify import ChangeNotifier

    config = config_or_exit()
    for warning in config_warnings(config) + unknown_variables(os.environ):
        log.warning(warning)
    checkpointer = state_or_exit(config)
    sink = sink_or_exit(config)
    redactor = redactor_or_exit(config)
    metrics = AgentMetrics()
    readiness = Readiness(stale_after=max(3 * config.batch_max_age, 60.0), store_ok=None)
    liveness = Liveness(stall_after=config.liveness_after)
    pipeline = Pipeline(config, sink, checkpointer, metrics=metrics, readiness=readiness, redactor=redactor,
                        observers=[heartbeat(liveness), *observers(config, sink, metrics)])
    with sink:
        if getattr(args, "once", False):
            try:
                pipeline.run_once()
            except ShipError as exc:
                fail(str(exc), EXIT_FAILED)
            log.info("shipped everything readable", extra={"batches": pipeline.shipped_batches})
            return EXIT_OK
        stop = threading.Event()
        watchdog = threading.Timer(config.shutdown_grace + GRACE_MARGIN, _exit_after_grace)
        watchdog.daemon = True

        def on_signal(signum: int, _frame: Any) -> None:
            log.info("stopping", extra={"signal": signal.Signals(signum).name})
            if not stop.is_set():
                watchdog.start()
            stop.set()
            pipeline.wake.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            with contextlib.ExitStack() as stack:
                if config.http_bind is not None:
                    try:
                        stack.enter_context(HealthServer(config.http_bind, metrics, readiness, liveness))
                    except OSError as exc:
                        fail(f"LOGSHIELD_HTTP_ADDR: cannot listen on {config.http_addr}: {exc.strerror}", EXIT_CONFIG)
                stack.enter_context(ChangeNotifier(config.paths, pipeline.wake))
                # Keep running when the store fails: data stays in the files, uploads retry with backoff, /readyz
                # says why and the prober checks again while nothing else would.
                stack.enter_context(StoreProber(sink.check, readiness, name=sink.display_url))
                log.info("started", extra={"sink": sink.display_url, "paths": list(config.paths)})
                pipeline.run(stop)
        finally:
            watchdog.cancel()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("stopped")
        return EXIT_OK
