"""The ``logshield-agent`` command line: exit codes and messages."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from logshield_agent.cli import build_parser, main
from logshield_agent.commands import COMMANDS

from .conftest import stored_lines


@pytest.fixture
def env(tmp_path, monkeypatch):
    for key in list(os.environ):
        if key.startswith("LOGSHIELD_"):
            monkeypatch.delenv(key)
    (tmp_path / "logs").mkdir()
    values = {
        "LOGSHIELD_PATHS": str(tmp_path / "logs" / "*.log"),
        "LOGSHIELD_STATE_DIR": str(tmp_path / "state"),
        "LOGSHIELD_SINK": f"file://{tmp_path / 'store'}",
        "LOGSHIELD_HTTP_ADDR": "off",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


class TestCli:
    def test_once_ships_and_exits_zero(self, tmp_path, env):
        """--once ships what is there and returns 0."""
        (tmp_path / "logs" / "a.log").write_bytes(b"one\ntwo\n")
        assert main(["--once"]) == 0
        assert sorted(stored_lines(tmp_path / "store")) == [b"one\n", b"two\n"]
        assert main(["run", "--once"]) == 0

    @pytest.mark.parametrize(("argv", "once"), [
        (["--once"], True), (["run", "--once"], True), (["--once", "run"], True), (["--once", "run", "--once"], True),
        (["run"], False), ([], False),
    ])
    def test_once_in_every_position(self, argv, once):
        """--once before or after the run sub-command means once; without it the agent keeps running."""
        assert getattr(build_parser().parse_args(argv), "once", False) is once

    def test_once_before_run_ships_and_returns(self, tmp_path, env):
        """``logshield-agent --once run`` ships what is there and exits instead of tailing forever."""
        (tmp_path / "logs" / "a.log").write_bytes(b"one\n")
        assert main(["--once", "run"]) == 0
        assert sorted(stored_lines(tmp_path / "store")) == [b"one\n"]

    def test_once_with_another_command_is_refused(self, env, capsys):
        """--once only means something for run: with check it is a usage error (exit 2), not silently ignored."""
        with pytest.raises(SystemExit) as exc:
            main(["--once", "check"])
        assert exc.value.code == 2 and "--once applies to run" in capsys.readouterr().err

    def test_once_fails_when_store_unusable(self, tmp_path, env, monkeypatch, capsys):
        """--once exits non-zero with a message naming the store when it cannot write."""
        (tmp_path / "blocker").write_text("")
        monkeypatch.setenv("LOGSHIELD_SINK", f"file://{tmp_path / 'blocker'}")
        (tmp_path / "logs" / "a.log").write_bytes(b"one\n")
        assert main(["--once"]) == 1
        err = capsys.readouterr().err
        assert "blocker" in err and "Traceback" not in err

    def test_config_error_exit_2_names_variable(self, env, monkeypatch, capsys):
        """An invalid variable gives exit code 2 and names it, without a traceback."""
        monkeypatch.setenv("LOGSHIELD_BATCH_MAX_AGE", "soon")
        assert main(["--once"]) == 2
        err = capsys.readouterr().err
        assert "LOGSHIELD_BATCH_MAX_AGE" in err and "Traceback" not in err

    def test_missing_paths(self, env, monkeypatch, capsys):
        """Without LOGSHIELD_PATHS: exit 2 naming it."""
        monkeypatch.delenv("LOGSHIELD_PATHS")
        assert main(["check"]) == 2
        assert "LOGSHIELD_PATHS" in capsys.readouterr().err

    def test_future_checkpoint_refused(self, tmp_path, env, capsys):
        """A checkpoint from a newer agent stops start-up with exit 2 and a clear message."""
        (tmp_path / "state").mkdir()
        (tmp_path / "state" / "checkpoints.json").write_text('{"version": 7, "streams": {}}')
        assert main(["--once"]) == 2
        assert "newer than this agent" in capsys.readouterr().err

    def test_check(self, tmp_path, env, monkeypatch, capsys):
        """check validates config and reaches the store."""
        assert main(["check"]) == 0
        assert "ok" in capsys.readouterr().out
        (tmp_path / "blocker").write_text("")
        monkeypatch.setenv("LOGSHIELD_SINK", f"file://{tmp_path / 'blocker' / 'x'}")
        assert main(["check"]) == 1

    def test_state_dir_that_is_a_file(self, tmp_path, env, monkeypatch, capsys):
        """A state directory that is a file: check and --once both exit 2 naming LOGSHIELD_STATE_DIR."""
        (tmp_path / "file").write_text("")
        monkeypatch.setenv("LOGSHIELD_STATE_DIR", str(tmp_path / "file"))
        for argv in (["check"], ["--once"]):
            assert main(argv) == 2, argv
            err = capsys.readouterr().err
            assert "LOGSHIELD_STATE_DIR" in err and "not a directory" in err and "Traceback" not in err

    @pytest.mark.parametrize("argv", [["check"], ["--once"]])
    def test_state_of_a_newer_agent(self, tmp_path, env, capsys, argv):
        """Checkpoints of a newer version stop check like they stop run, naming the real file (not check's copy)."""
        (tmp_path / "state").mkdir()
        (tmp_path / "state" / "checkpoints.json").write_text('{"version": 7, "streams": {}}')
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "newer than this agent" in err and str(tmp_path / "state" / "checkpoints.json") in err

    @pytest.mark.parametrize("argv", [["check"], ["--once"]])
    def test_digest_state_of_a_newer_agent(self, tmp_path, env, capsys, argv):
        """An unknown digest-state version is a configuration error (exit 2) in check and run, not a traceback."""
        from logshield_agent.audit.ledger import STATE_FILE

        (tmp_path / "state").mkdir()
        (tmp_path / "state" / STATE_FILE).write_text('{"version": 99}')
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "LOGSHIELD_STATE_DIR" in err and "unknown version" in err and "Traceback" not in err

    @pytest.mark.parametrize("argv", [["check"], ["--once"]])
    def test_garbage_digest_key(self, env, monkeypatch, capsys, argv):
        """A digest key that is not an Ed25519 key fails check as it fails run, without echoing the value."""
        monkeypatch.setenv("LOGSHIELD_DIGEST_KEY", "not-a-key-c2VjcmV0")
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "LOGSHIELD_DIGEST_KEY" in err and "not-a-key-c2VjcmV0" not in err

    def test_check_leaves_the_state_alone(self, tmp_path, env, capsys):
        """check generates no key and removes nothing in the state directory (safe next to a running agent)."""
        state = tmp_path / "state"
        state.mkdir()
        (state / ".checkpoints.json.4242.tmp").write_text("{}")  # a running agent's save in progress
        (state / "checkpoints.json").write_text('{"version": 1, "streams": {}}')
        assert main(["check"]) == 0
        out, err = capsys.readouterr()
        assert sorted(p.name for p in state.iterdir()) == [".checkpoints.json.4242.tmp", "checkpoints.json"]
        assert "ok: state directory" in out and "will generate a digest signing key" in err

    def test_check_reports_a_configured_key(self, tmp_path, env, monkeypatch, capsys):
        """With a key file, check names where the key comes from and its fingerprint."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption())
        (tmp_path / "key.pem").write_bytes(pem)
        monkeypatch.setenv("LOGSHIELD_DIGEST_KEY_FILE", str(tmp_path / "key.pem"))
        assert main(["check"]) == 0
        assert "ok: digest signing key from LOGSHIELD_DIGEST_KEY_FILE (ed25519:" in capsys.readouterr().out

    def test_unwritable_state_dir(self, tmp_path, env):
        """A read-only state directory fails check and --once with exit 2 (a read-only bind mount, so even root
        cannot write)."""
        state = tmp_path / "state"
        state.mkdir()
        base_env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        trial = subprocess.run(["unshare", "--mount", "sh", "-c", f"mount --bind -o ro {state} {state}"],
                               capture_output=True, timeout=30)
        if trial.returncode != 0:
            pytest.skip(f"no mount namespace here: {trial.stderr.decode()[:200]}")
        for args in (["check"], ["--once"]):
            script = f"mount --bind -o ro {state} {state} && exec {sys.executable} -m logshield_agent {' '.join(args)}"
            proc = subprocess.run(["unshare", "--mount", "sh", "-c", script], env=base_env, capture_output=True,
                                  timeout=120)
            assert proc.returncode == 2, (args, proc.stderr.decode()[-1000:])
            assert b"LOGSHIELD_STATE_DIR" in proc.stderr and b"not writable" in proc.stderr

    def test_check_strict_fails_on_warnings(self, env, monkeypatch, capsys):
        """Warnings keep check at exit 0 unless --strict (the local sink has no warning; no key is one)."""
        assert main(["check", "--strict"]) == 1
        assert "warning: no LOGSHIELD_DIGEST_KEY" in capsys.readouterr().err
        monkeypatch.setenv("LOGSHIELD_DIGEST", "off")
        assert main(["check", "--strict"]) == 0

    def test_retention_apply_local(self, env, monkeypatch, capsys):
        """retention apply on a local sink explains the sweep."""
        monkeypatch.setenv("LOGSHIELD_RETENTION_DAYS", "30")
        assert main(["retention", "apply"]) == 0
        assert "deletes expired" in capsys.readouterr().out

    @pytest.mark.parametrize("sink", ["s3://bkt/logs", "azure://container/logs"])
    def test_retention_apply_without_days_names_the_variable(self, env, monkeypatch, capsys, sink):
        """retention apply on a cloud sink without LOGSHIELD_RETENTION_DAYS exits 2 naming it (no traceback, no
        request to the store)."""
        monkeypatch.setenv("LOGSHIELD_SINK", sink)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: a request would fail
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "DefaultEndpointsProtocol=http;AccountName=a;"
                           "AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:9/a;")
        assert main(["retention", "apply"]) == 2
        err = capsys.readouterr().err
        assert "LOGSHIELD_RETENTION_DAYS is not set" in err and "Traceback" not in err

    def test_commands_registry(self):
        """Sub-commands come from the registry, so verify/report can be added by listing a module."""
        parser = build_parser()
        assert set(COMMANDS) >= {"run", "check", "retention"}
        assert parser.parse_args(["check"]).command == "check"

    def test_console_entry_point_process(self, tmp_path, env):
        """python -m logshield_agent with a bad variable exits 2 with a one-line message."""
        proc = subprocess.run([sys.executable, "-m", "logshield_agent", "--once"],
                              env={**os.environ, "LOGSHIELD_COMPRESSION": "rar"}, capture_output=True, timeout=60)
        assert proc.returncode == 2
        assert b"LOGSHIELD_COMPRESSION" in proc.stderr and b"Traceback" not in proc.stderr


@pytest.fixture
def silent_store():
    """An endpoint that accepts TCP connections and never answers (the kernel completes the handshakes)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


class TestSignals:
    def start(self, tmp_path, endpoint, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGSHIELD_", "AWS_"))}
        env.update({
            "LOGSHIELD_PATHS": str(tmp_path / "logs" / "*.log"), "LOGSHIELD_STATE_DIR": str(tmp_path / "state"),
            "LOGSHIELD_SINK": "s3://bkt/p", "LOGSHIELD_HTTP_ADDR": "off", "LOGSHIELD_SHUTDOWN_GRACE": "1",
            "LOGSHIELD_STORE_READ_TIMEOUT": "20", "LOGSHIELD_STORE_MAX_ATTEMPTS": "3", "LOGSHIELD_ALERTS": "off",
            "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "example",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            **extra,
        })
        (tmp_path / "logs").mkdir(exist_ok=True)
        proc = subprocess.Popen([sys.executable, "-m", "logshield_agent"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        # Until the store check has begun (it logs nothing before it gives up): a fixed wait past start-up.
        time.sleep(2.0)
        return proc

    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
    def test_signal_during_store_check_stops_at_once(self, tmp_path, silent_store, signum):
        """While the start-up store check waits on a store that never answers, SIGTERM/SIGINT still stop the agent
        well within the shutdown grace (no digest to write: nothing else waits on the store)."""
        proc = self.start(tmp_path, silent_store, LOGSHIELD_DIGEST="off")
        sent = time.monotonic()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
        assert proc.returncode == 0, err.decode()[-2000:]
        assert took < 1.0, (took, err.decode()[-2000:])
        assert b'"stopped"' in err

    def test_a_silent_store_cannot_stretch_the_shutdown(self, tmp_path, silent_store):
        """With the final digest waiting on a store that never answers, the agent exits 1 s after the grace,
        saying why, instead of after the SDK's timeouts (3 attempts x 20 s here)."""
        proc = self.start(tmp_path, silent_store)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
        assert proc.returncode == 1, err.decode()[-2000:]
        assert 1.0 <= took < 3.0, (took, err.decode()[-2000:])
        assert b"shutdown grace period exceeded" in err


class TestSinkFactory:
    def test_local_default(self, tmp_path):
        """Without LOGSHIELD_SINK the archive lives under the state directory."""
        from logshield_agent.config import load_config
        from logshield_agent.sinks import sink_from_config
        from logshield_agent.sinks.local import LocalDirSink

        sink = sink_from_config(load_config({"LOGSHIELD_PATHS": "x", "LOGSHIELD_STATE_DIR": str(tmp_path)}))
        assert isinstance(sink, LocalDirSink) and sink.root == tmp_path.absolute() / "archive"

    def test_s3_options_passed(self, monkeypatch):
        """s3:// builds an S3Sink with the store options from the config."""
        from logshield_agent.config import load_config
        from logshield_agent.sinks import s3, sink_from_config

        seen = {}

        class FakeS3(s3.S3Sink):
            def __init__(self, bucket, prefix="", **kw):
                seen.update(kw, bucket=bucket, prefix=prefix)

        monkeypatch.setattr(s3, "S3Sink", FakeS3)
        sink_from_config(load_config({"LOGSHIELD_PATHS": "x", "LOGSHIELD_SINK": "s3://bkt/a/b",
                                      "LOGSHIELD_S3_SSE": "aws:kms", "LOGSHIELD_S3_KMS_KEY_ID": "k",
                                      "LOGSHIELD_RETENTION_DAYS": "7", "LOGSHIELD_MULTIPART_PART_SIZE": "8MiB",
                                      "LOGSHIELD_STORE_MAX_ATTEMPTS": "3", "LOGSHIELD_STORE_READ_TIMEOUT": "9"}))
        assert seen["bucket"] == "bkt" and seen["prefix"] == "a/b"
        assert seen["sse"] == "aws:kms" and seen["kms_key_id"] == "k" and seen["retention_days"] == 7
        assert seen["part_size"] == 8 * 1024 * 1024
        assert (seen["options"].max_attempts, seen["options"].read_timeout) == (3, 9.0)

    def test_azure_options_passed(self, monkeypatch):
        """azure:// builds an AzureBlobSink with the store options from the config."""
        from logshield_agent.config import load_config
        from logshield_agent.sinks import azure_blob, sink_from_config

        seen = {}

        class FakeAzure(azure_blob.AzureBlobSink):
            def __init__(self, container, prefix="", **kw):
                seen.update(kw, container=container, prefix=prefix)

        monkeypatch.setattr(azure_blob, "AzureBlobSink", FakeAzure)
        sink_from_config(load_config({"LOGSHIELD_PATHS": "x", "LOGSHIELD_SINK": "azure://logs/p",
                                      "LOGSHIELD_AZURE_IMMUTABILITY": "locked",
                                      "LOGSHIELD_AZURE_ACCESS_TIER": "Cool"}))
        assert seen["container"] == "logs" and seen["prefix"] == "p"
        assert seen["immutability"] == "locked" and seen["access_tier"] == "Cool"
        assert seen["max_block_size"] == 8 * 1024 * 1024 and seen["options"].max_attempts == 5


class TestAllocator:
    def test_glibc_settings_accepted(self):
        """On glibc the agent fixes the mmap threshold and caps arenas (the benchmark's peak RSS depends on it)."""
        import platform

        from logshield_agent._memory import tune_allocator

        if platform.libc_ver()[0] != "glibc":
            pytest.skip("not glibc")
        assert tune_allocator() is True


class TestOwnLogs:
    def test_library_warnings_are_json_lines_too(self, tmp_path):
        """A library's warning (watchdog's, an SDK's) is written as a JSON line, not as logging's bare last-resort
        text among the agent's JSON lines; the agent's own loggers keep their level."""
        code = ("import logging; from logshield_agent._log import setup_logging; setup_logging(); "
                "logging.getLogger('watchdog.observers.inotify').warning('queue_events() called when inactive'); "
                "logging.getLogger('botocore').info('not shown'); "
                "logging.getLogger('logshield_agent.x').info('own info')")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        lines = [json.loads(line) for line in done.stderr.splitlines()]
        assert [(d["logger"], d["message"]) for d in lines] == [
            ("watchdog.observers.inotify", "queue_events() called when inactive"), ("logshield_agent.x", "own info")]
