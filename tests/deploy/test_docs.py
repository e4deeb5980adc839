"""The deployment documentation: every agent setting it shows is one the agent accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", REPO / "deploy" / "README.md"]
SETTING = re.compile(r"LOGSHIELD_([A-Z0-9_]+)=(?:'([^']*)'|\"([^\"]*)\"|([^\s`'\")\],|]*))")


def settings(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), next(g for g in m.groups()[1:] if g is not None)) for m in SETTING.finditer(text)]


class TestDocumentedSettings:
    @pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
    def test_every_agent_setting_shown_is_valid(self, path: Path) -> None:
        """Each `LOGSHIELD_NAME=value` the docs show for an agent variable passes the agent's validation."""
        from logshield_agent.config import VARIABLES, ConfigError, load_config

        found = [(name, value) for name, value in settings(path.read_text()) if name in VARIABLES and value]
        assert found
        invalid = []
        for name, value in found:
            environ = {"LOGSHIELD_PATHS": "/var/log/app/*.log", f"LOGSHIELD_{name}": value}
            try:
                load_config(environ)
            except ConfigError as exc:
                invalid.append(str(exc))
        assert invalid == []

    def test_checker_catches_an_invalid_value(self) -> None:
        """The check above refuses what the deploy README once said (LOGSHIELD_REDACT=on)."""
        from logshield_agent.config import ConfigError, load_config

        ((name, value),) = settings("With `LOGSHIELD_REDACT=on` the agent loads spaCy")
        with pytest.raises(ConfigError, match="LOGSHIELD_REDACT"):
            load_config({"LOGSHIELD_PATHS": "x", f"LOGSHIELD_{name}": value})
        assert settings("-e LOGSHIELD_PATHS='/var/log/app/*.log*' -e") == [("PATHS", "/var/log/app/*.log*")]


def readme_sidecar() -> dict:
    """The agent container shown in README.md's Kubernetes snippet."""
    import yaml

    text = (REPO / "README.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if b.startswith("- name: logshield-agent"))
    (container,) = yaml.safe_load(block)
    return container


class TestReadmeSidecar:
    def test_snippet_is_the_manifests_agent(self) -> None:
        """Copied as it is, the README's container has what the full manifest's agent has: an address the kubelet
        can reach, the same probes, resources, lifecycle and securityContext, and the same mounts."""
        from tests.deploy.test_manifests import BASE, agent_container, agent_env, render

        snippet, objects = readme_sidecar(), render(BASE)
        manifest = agent_container(objects)
        env = {e["name"]: e["value"] for e in snippet["env"]}
        assert env["LOGSHIELD_HTTP_ADDR"] == agent_env(objects)["LOGSHIELD_HTTP_ADDR"] == "0.0.0.0:9870"
        for key in ("startupProbe", "livenessProbe", "readinessProbe", "lifecycle", "resources", "securityContext",
                    "ports", "volumeMounts"):
            assert snippet[key] == manifest[key], key
        assert {k: v for k, v in env.items() if k != "LOGSHIELD_HTTP_ADDR"}.items() <= agent_env(objects).items()

    def test_snippet_is_a_valid_container(self) -> None:
        """The snippet validates strictly as a container of a Pod (with the volumes it mounts)."""
        import kubernetes_validate

        snippet = readme_sidecar()
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
               "spec": {"containers": [snippet],
                        "volumes": [{"name": m["name"], "emptyDir": {}} for m in snippet["volumeMounts"]]}}
        kubernetes_validate.validate(pod, "1.30.0", strict=True)
