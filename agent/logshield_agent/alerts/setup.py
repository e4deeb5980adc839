"""Build the alert observer from the agent's configuration (``LOGSHIELD_ALERT*``)."""

from __future__ import annotations

from pathlib import Path

from ..config import AgentConfig
from ..health import AgentMetrics
from ..sinks.base import Sink
from .delivery import BackgroundDelivery
from .destinations import Destination, FileDestination, StderrDestination, StoreDestination, WebhookDestination
from .detector import DetectorSettings, RateDetector
from .observer import AlertObserver

__all__ = ["alert_observers", "detector_settings"]


def detector_settings(config: AgentConfig) -> DetectorSettings:
    return DetectorSettings(window=config.alert_window, factor=config.alert_factor, floors=dict(config.alert_floor),
                            warmup=config.alert_warmup, baseline_windows=config.alert_baseline_windows,
                            lateness=config.alert_lateness if config.alert_lateness is not None
                            else max(120, int(2 * config.batch_max_age)), cooldown=config.alert_cooldown,
                            max_keys=config.alert_max_keys, dimensions=frozenset(config.alert_dimensions))


def _token(config: AgentConfig) -> str | None:
    if config.alert_webhook_token is not None:
        return config.alert_webhook_token.get_secret_value()
    if config.alert_webhook_token_file is not None:
        return config.alert_webhook_token_file.read_text().strip()
    return None


def alert_observers(config: AgentConfig, sink: Sink, metrics: AgentMetrics | None = None) -> list[AlertObserver]:
    """``[AlertObserver]``, or ``[]`` with ``LOGSHIELD_ALERTS=off``."""
    if config.alerts == "off":
        return []
    token = _token(config)
    destinations: list[Destination | BackgroundDelivery] = []
    for item in config.alert_destinations:
        if item == "stderr":
            destinations.append(StderrDestination())
        elif item.startswith("file://"):
            destinations.append(FileDestination(Path(item.removeprefix("file://"))))
        else:
            target: Destination = StoreDestination(sink) if item == "store" else WebhookDestination(item, token=token)

            def on_result(result: str, name: str = target.name) -> None:
                if metrics is not None:
                    metrics.alert_deliveries.labels(name, result).inc()

            destinations.append(BackgroundDelivery(target, on_result=on_result))
    return [AlertObserver(RateDetector(detector_settings(config)), destinations, host=config.host, metrics=metrics,
                          state_dir=config.state_dir)]
