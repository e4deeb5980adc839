"""SIGKILL the real ``logshield-agent`` process at random moments while an app writes and rotates its log.

The writer rotates both by rename (keeps writing to the old handle briefly, like an app that reopens late) and by
copytruncate. Honesty note: copytruncate has an inherent window — lines written between the copy and the truncate
exist in neither file. Real logrotate has it too; no tailer can close it. This writer is the only writer and does
the copy+truncate itself between two complete, flushed lines, so the window is empty and *every* line must arrive
exactly once. Lines are flushed whole (one write per line).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from .conftest import assert_no_overlap, stored_lines, stored_objects

pytestmark = pytest.mark.slow


class RotatingWriter(threading.Thread):
    def __init__(self, directory: Path, seed: int) -> None:
        super().__init__(name="test-writer")
        self.directory = directory
        self.log = directory / "app.log"
        self.lines: list[bytes] = []
        self.stop = threading.Event()
        self.rng = random.Random(seed)

    def _shift(self) -> None:
        existing = sorted((int(p.name.rsplit(".", 1)[1]) for p in self.directory.glob("app.log.*")), reverse=True)
        for n in existing:
            os.rename(self.directory / f"app.log.{n}", self.directory / f"app.log.{n + 1}")

    def _write(self, fh, n: int) -> None:
        for _ in range(n):
            i = len(self.lines)
            line = f'{{"ts":"2026-11-23T15:{i // 600 % 60:02d}:00Z","seq":{i},"pad":"{"x" * self.rng.randint(0, 80)}"}}\n'
            fh.write(line.encode())
            fh.flush()
            self.lines.append(line.encode())

    def run(self) -> None:
        fh = open(self.log, "ab", buffering=0)  # noqa: SIM115
        rotation = 0
        while not self.stop.is_set():
            self._write(fh, self.rng.randint(20, 120))
            time.sleep(self.rng.uniform(0, 0.03))
            if self.rng.random() < 0.25:
                rotation += 1
                self._shift()
                if rotation % 2:
                    os.rename(self.log, self.directory / "app.log.1")
                    self._write(fh, self.rng.randint(0, 10))  # late writes through the old handle
                    fh.close()
                    fh = open(self.log, "ab", buffering=0)  # noqa: SIM115
                else:
                    shutil.copyfile(self.log, self.directory / "app.log.1")
                    os.truncate(self.log, 0)
        fh.close()


def agent_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSHIELD_")}
    env.update({
        "LOGSHIELD_PATHS": str(tmp_path / "logs" / "app.log*"),
        "LOGSHIELD_STATE_DIR": str(tmp_path / "state"),
        "LOGSHIELD_SINK": f"file://{tmp_path / 'store'}",
        "LOGSHIELD_HTTP_ADDR": "off",
        "LOGSHIELD_POLL_INTERVAL": "0.05",
        "LOGSHIELD_BATCH_MAX_AGE": "0.1",
        "LOGSHIELD_BATCH_MAX_BYTES": "4KiB",
        "LOGSHIELD_MAX_LINE_BYTES": "1KiB",
        "LOGSHIELD_SHUTDOWN_GRACE": "1",
        "LOGSHIELD_HOST": "faulthost",
    })
    return env


def start_agent(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "logshield_agent", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_while_rotating(directory: Path, env: dict[str, str], *, kills: int = 4,
                        alive: tuple[float, float] = (0.6, 1.6)) -> tuple[RotatingWriter, int]:
    """Run the agent and SIGKILL it ``kills`` times at random moments while an app writes and rotates.
    Returns the writer (its ``lines``) and the seed (``LOGSHIELD_FAULT_SEED`` replays a failure)."""
    seed = int(os.environ.get("LOGSHIELD_FAULT_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    writer = RotatingWriter(directory, seed)
    writer.start()
    try:
        for _ in range(kills):
            agent = start_agent(env)
            time.sleep(rng.uniform(*alive))
            agent.send_signal(signal.SIGKILL)
            agent.wait(10)
            agent.stderr.close()
    finally:
        writer.stop.set()
        writer.join(10)
    return writer, seed


class TestSigkill:
    @pytest.mark.timeout(120)
    def test_no_loss_no_duplicates_under_sigkill(self, tmp_path):
        """Kill -9 at random moments during rename and copytruncate rotation: every line stored exactly once."""
        (tmp_path / "logs").mkdir()
        env = agent_env(tmp_path)
        writer, seed = kill_while_rotating(tmp_path / "logs", env)
        once = start_agent(env, "--once")
        _, err = once.communicate(timeout=60)
        assert once.returncode == 0, err.decode(errors="replace")[-2000:]
        stored = stored_lines(tmp_path / "store")
        expected = Counter(writer.lines)
        missing = expected - stored
        extra = stored - expected
        assert not missing and not extra, (
            f"seed={seed}: {sum(missing.values())} lost, {sum(extra.values())} duplicated/unexpected "
            f"(of {len(writer.lines)}); e.g. lost {list(missing)[:3]}, extra {list(extra)[:3]}")
        assert_no_overlap(tmp_path / "store")
        sources = {key.rsplit("/", 1)[1].split("-")[0] for key in stored_objects(tmp_path / "store")}
        assert len(writer.lines) > 300 and len(sources) > 2, "the scenario did not rotate enough to mean anything"

    def test_sigterm_flushes_and_exits_zero(self, tmp_path):
        """SIGTERM: health endpoints served while running; the open batch ships in the grace period; exit 0."""
        (tmp_path / "logs").mkdir()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = agent_env(tmp_path) | {"LOGSHIELD_BATCH_MAX_AGE": "3600", "LOGSHIELD_HTTP_ADDR": f"127.0.0.1:{port}"}
        lines = [f"line {i}\n".encode() for i in range(100)]
        (tmp_path / "logs" / "app.log").write_bytes(b"".join(lines))
        agent = start_agent(env)
        try:
            deadline = time.monotonic() + 30
            metrics = ""
            while time.monotonic() < deadline and "logshield_lines_read_total 100.0" not in metrics:
                time.sleep(0.1)
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:  # noqa: S310
                        metrics = resp.read().decode()
                except OSError:
                    continue
            assert "logshield_lines_read_total 100.0" in metrics
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:  # noqa: S310
                assert resp.status == 200
            assert stored_lines(tmp_path / "store") == Counter()  # batch still open (max age 1 h)
        finally:
            agent.send_signal(signal.SIGTERM)
            _, err = agent.communicate(timeout=20)
        assert agent.returncode == 0, err.decode(errors="replace")
        assert stored_lines(tmp_path / "store") == Counter(lines)
        for line in err.decode().splitlines():
            json.loads(line)  # the agent's own logs are JSON lines
        assert b"line 1" not in err  # and never contain log content


class TestOneAgentPerStateDir:
    def test_second_agent_exits_2_naming_the_state_dir(self, tmp_path):
        """A second agent on a state directory in use exits 2 naming LOGSHIELD_STATE_DIR; nothing is shipped twice."""
        (tmp_path / "logs").mkdir()
        lines = [f"line {i}\n".encode() for i in range(3000)]
        (tmp_path / "logs" / "app.log").write_bytes(b"".join(lines))
        env = agent_env(tmp_path)
        first = start_agent(env)
        try:
            for _ in range(20):  # the agent logs "started" once it holds the state directory
                if b'"started"' in first.stderr.readline():
                    break
            else:
                raise AssertionError("the first agent did not start")
            second = start_agent(env, "--once")
            _, err = second.communicate(timeout=60)
            assert second.returncode == 2, err.decode(errors="replace")
            assert b"LOGSHIELD_STATE_DIR" in err and str(first.pid).encode() in err
        finally:
            first.send_signal(signal.SIGTERM)
            first.communicate(timeout=20)
        assert first.returncode == 0
        assert stored_lines(tmp_path / "store") == Counter(lines)


class TestFewDescriptors:
    def test_ulimit_64_with_120_files(self, tmp_path):
        """With `ulimit -n 64` and 120 files (digests and alerts on), --once exits 0 and stores every line once:
        the agent keeps few files open instead of failing with EMFILE."""
        (tmp_path / "logs").mkdir()
        lines = []
        for n in range(120):
            mine = [f'{{"ts":"2026-11-23T15:00:00Z","file":{n},"seq":{i}}}\n'.encode() for i in range(30)]
            (tmp_path / "logs" / f"f{n:03d}.log").write_bytes(b"".join(mine))
            lines += mine
        env = agent_env(tmp_path) | {"LOGSHIELD_PATHS": str(tmp_path / "logs" / "*.log")}
        done = subprocess.run(["sh", "-c", 'ulimit -n 64 && exec "$0" -m logshield_agent --once', sys.executable],
                              env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
        assert b"Traceback" not in done.stderr
        assert stored_lines(tmp_path / "store") == Counter(lines)


class TestShutdownWithAHangingStore:
    def test_upload_hanging_at_sigterm_does_not_hold_the_exit(self, tmp_path):
        """A batch upload waits on a store that never answers when SIGTERM comes: the agent exits 0 within the
        grace (not when the SDK times out, nor through the grace watchdog), saying what it leaves in the files."""
        with socket.socket() as listener:  # accepts connections (kernel backlog), never answers
            listener.bind(("127.0.0.1", 0))
            listener.listen(64)
            (tmp_path / "logs").mkdir()
            (tmp_path / "logs" / "app.log").write_bytes(b"".join(b"line %d\n" % i for i in range(100)))
            env = agent_env(tmp_path) | {
                "LOGSHIELD_PATHS": str(tmp_path / "logs" / "*.log"), "LOGSHIELD_SINK": "s3://bkt/p",
                "LOGSHIELD_SHUTDOWN_GRACE": "1", "LOGSHIELD_STORE_READ_TIMEOUT": "30", "LOGSHIELD_DIGEST": "off",
                "LOGSHIELD_ALERTS": "off", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{listener.getsockname()[1]}",
                "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "example",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
            agent = start_agent(env)
            time.sleep(2.5)  # started, batch read and its upload waiting on the silent store
            sent = time.monotonic()
            agent.send_signal(signal.SIGTERM)
            _, err = agent.communicate(timeout=60)
            took = time.monotonic() - sent
        assert agent.returncode == 0, err.decode(errors="replace")[-2000:]
        assert took < 1.9, (took, err.decode(errors="replace")[-2000:])
        assert b"not acknowledged by the store" in err and b'"batches_in_flight": 1' in err
        assert b"grace period exceeded" not in err
        state = json.loads((tmp_path / "state" / "checkpoints.json").read_text())
        assert [s["offset"] for s in state["streams"].values()] == [0]
