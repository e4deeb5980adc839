"""LOGSHIELD_ALERT* variables: defaults, parsing, and errors that name the variable."""

from __future__ import annotations

import pytest
from logshield_agent.alerts import BackgroundDelivery, FileDestination, StderrDestination, alert_observers
from logshield_agent.alerts.setup import detector_settings
from logshield_agent.config import ConfigError, load_config
from logshield_agent.sinks.local import LocalDirSink


def config(**env: str):
    return load_config({"LOGSHIELD_PATHS": "/x/*.log", **{f"LOGSHIELD_{k.upper()}": v for k, v in env.items()}})


class TestAlertConfig:
    def test_defaults(self, tmp_path):
        """On by default: stderr and the store, 60 s windows, 5x over the baseline and at least 100."""
        c = config(state_dir=str(tmp_path))
        assert c.alerts == "on" and c.alert_destinations == ("stderr", "store")
        s = detector_settings(c)
        assert (s.window, s.factor, s.floor("actor"), s.warmup, s.cooldown) == (60, 5.0, 100, 600, 120)
        assert s.lateness == 120 and s.dimensions == {"volume", "logger", "event", "actor", "entity", "action",
                                                      "actor_action"}
        (observer,) = alert_observers(c, LocalDirSink(tmp_path / "store"))
        stderr, store = observer.destinations
        assert isinstance(stderr, StderrDestination) and isinstance(store, BackgroundDelivery)
        assert store.name == "store"
        observer.close(0.0)

    def test_lateness_follows_batch_age(self):
        """Without LOGSHIELD_ALERT_LATENESS, windows wait twice the batch age."""
        assert detector_settings(config(batch_max_age="300")).lateness == 600
        assert detector_settings(config(batch_max_age="300", alert_lateness="90")).lateness == 90

    def test_destinations_and_floors(self, tmp_path):
        """Destinations are a list (duplicates once); floors take per-dimension overrides."""
        c = config(alert_destinations=f" stderr, file://{tmp_path}/a.jsonl ,https://hooks.example/x,stderr",
                   alert_floor="50,entity=20,actor=300", alert_dimensions="entity, actor", state_dir=str(tmp_path))
        assert c.alert_destinations == ("stderr", f"file://{tmp_path}/a.jsonl", "https://hooks.example/x")
        s = detector_settings(c)
        assert (s.floor("entity"), s.floor("actor"), s.floor("logger")) == (20, 300, 50)
        assert s.dimensions == {"entity", "actor"}
        (observer,) = alert_observers(c, LocalDirSink(tmp_path / "store"))
        assert isinstance(observer.destinations[1], FileDestination)
        assert observer.destinations[2].name == "webhook"
        observer.close(0.0)

    def test_token_file(self, tmp_path):
        """The webhook token can come from a file."""
        token = tmp_path / "token"
        token.write_text("t0k3n\n")
        c = config(alert_destinations="http://127.0.0.1:9/hook", alert_webhook_token_file=str(token),
                   state_dir=str(tmp_path))
        (observer,) = alert_observers(c, LocalDirSink(tmp_path / "store"))
        assert observer.destinations[0].destination._token == "t0k3n"
        observer.close(0.0)

    @pytest.mark.parametrize(
        ("env", "variable", "hint"),
        [
            ({"alerts": "maybe"}, "LOGSHIELD_ALERTS", "on"),
            ({"alert_destinations": "slack"}, "LOGSHIELD_ALERT_DESTINATIONS", "unknown destination"),
            ({"alert_destinations": "ftp://u:pw@host/x"}, "LOGSHIELD_ALERT_DESTINATIONS", "ftp://…"),
            ({"alert_destinations": "file://relative.jsonl"}, "LOGSHIELD_ALERT_DESTINATIONS", "absolute"),
            ({"alert_destinations": "https:///nohost"}, "LOGSHIELD_ALERT_DESTINATIONS", "host"),
            ({"alert_destinations": "https://u:pw@hooks.example/x"}, "LOGSHIELD_ALERT_DESTINATIONS", "TOKEN"),
            ({"alert_destinations": " , "}, "LOGSHIELD_ALERT_DESTINATIONS", "LOGSHIELD_ALERTS=off"),
            ({"alert_window": "0"}, "LOGSHIELD_ALERT_WINDOW", ""),
            ({"alert_factor": "1"}, "LOGSHIELD_ALERT_FACTOR", ""),
            ({"alert_floor": "lots"}, "LOGSHIELD_ALERT_FLOOR", "positive count"),
            ({"alert_floor": "100,cards=5"}, "LOGSHIELD_ALERT_FLOOR", "unknown dimension"),
            ({"alert_dimensions": "actor,ip"}, "LOGSHIELD_ALERT_DIMENSIONS", "'ip'"),
            ({"alert_warmup": "-5"}, "LOGSHIELD_ALERT_WARMUP", ""),
            ({"alert_lateness": "soon"}, "LOGSHIELD_ALERT_LATENESS", ""),
            ({"alert_max_keys": "3"}, "LOGSHIELD_ALERT_MAX_KEYS", ""),
            ({"alert_webhook_token": "x"}, "LOGSHIELD_ALERT_WEBHOOK_TOKEN", "no http(s)://"),
            ({"alert_webhook_token_file": "/nonexistent/token"}, "LOGSHIELD_ALERT_WEBHOOK_TOKEN_FILE", "cannot read"),
        ],
    )
    def test_invalid_value_names_variable(self, env, variable, hint):
        """Every invalid alert setting raises ConfigError naming the variable and what to do."""
        with pytest.raises(ConfigError, match=variable) as raised:
            config(**env)
        assert hint in str(raised.value)
        assert "pw@" not in str(raised.value)  # a URL's credentials are never echoed
