"""Checkpointer: atomic, versioned, crash-tolerant."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from logshield_agent.sources.checkpoint import CHECKPOINT_VERSION, Checkpointer, CheckpointError, Intent, StreamState


class TestCheckpointer:
    def test_round_trip(self, tmp_path):
        """States and intents survive a save and a fresh load."""
        cp = Checkpointer.open(tmp_path)
        cp.update("fp1", StreamState(fp_len=256, offset=10, service="api", path="/x"))
        intent = Intent(start=10, end=20, final=False, key="k", compression="zstd", first_event="2026-01-01T00:00:00")
        cp.record_intent("fp1", intent)
        again = Checkpointer.open(tmp_path)
        assert again.get("fp1").intent == intent and again.get("fp1").offset == 10
        again.acknowledge("fp1", 20)
        final = Checkpointer.open(tmp_path).get("fp1")
        assert final.offset == 20 and final.intent is None

    def test_file_is_versioned_json(self, tmp_path):
        """The file carries the version number."""
        cp = Checkpointer.open(tmp_path)
        cp.update("a", StreamState(fp_len=5))
        assert json.loads(cp.path.read_text())["version"] == CHECKPOINT_VERSION

    def test_leftover_temp_file_is_ignored_and_removed(self, tmp_path):
        """A crash before the rename leaves a temp file; the previous state is used and the temp removed."""
        cp = Checkpointer.open(tmp_path)
        cp.update("a", StreamState(fp_len=5, offset=3))
        leftover = tmp_path / ".checkpoints.json.999.tmp"
        leftover.write_text('{"version": 1, "streams": {"a": {"fp_len": 5, "off')
        assert Checkpointer.open(tmp_path).get("a").offset == 3
        assert not leftover.exists()

    def test_future_version_refused(self, tmp_path):
        """A checkpoint from a newer agent is refused with a clear message, not guessed at."""
        (tmp_path / "checkpoints.json").write_text(json.dumps({"version": 99, "streams": {}}))
        with pytest.raises(CheckpointError, match="newer than this agent"):
            Checkpointer.open(tmp_path)

    def test_corrupt_refused(self, tmp_path):
        """Garbage is reported, not silently replaced (that would re-ship everything)."""
        (tmp_path / "checkpoints.json").write_text("{nope")
        with pytest.raises(CheckpointError, match="not a logshield checkpoint"):
            Checkpointer.open(tmp_path)

    def test_version_1_is_migrated(self, tmp_path):
        """A version-1 file loads: ids and heads are the old fingerprints, checks unknown; saving writes version 2."""
        intent = {"start": 10, "end": 20, "final": False, "key": "k", "compression": "zstd",
                  "first_event": "2026-01-01T00:00:00"}
        (tmp_path / "checkpoints.json").write_text(json.dumps({"version": 1, "streams": {
            "fp1": {"fp_len": 256, "offset": 10, "service": "api", "path": "/x", "seen": 5.0, "intent": intent}}}))
        cp = Checkpointer.open(tmp_path)
        state = cp.get("fp1")
        assert (state.head, state.offset, state.check, state.origin, state.path) == ("fp1", 10, None, None, "/x")
        assert state.intent == Intent(**intent) and state.intent.check is None
        cp.save()
        assert json.loads(cp.path.read_text())["version"] == 2
        assert Checkpointer.open(tmp_path).get("fp1") == state

    def test_acknowledge_takes_the_intents_check(self, tmp_path):
        """The check recorded with a batch becomes the stream's check once the batch is acknowledged."""
        cp = Checkpointer.open(tmp_path)
        cp.update("s", StreamState(fp_len=5, head="h", check="c0"))
        cp.record_intent("s", Intent(start=0, end=9, final=False, key="k", compression="none", first_event="",
                                     check="c9"))
        cp.acknowledge("s", 9)
        assert (cp.get("s").offset, cp.get("s").check, cp.get("s").intent) == (9, "c9", None)
        assert cp.with_head("h", 5) == [("s", cp.get("s"))] and cp.with_head("h", 6) == []

    def test_no_temp_files_after_save(self, tmp_path):
        """Saving leaves exactly the checkpoint file."""
        cp = Checkpointer.open(tmp_path)
        for i in range(5):
            cp.update("a", StreamState(fp_len=5, offset=i))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.lock", "checkpoints.json"]


HOLD = ("import sys\n"
        "from logshield_agent.sources.checkpoint import Checkpointer\n"
        "cp = Checkpointer.open(sys.argv[1])\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n")


class TestStateDirLock:
    def test_second_process_is_refused_until_the_first_ends(self, tmp_path):
        """While another process holds the state directory, open fails naming LOGSHIELD_STATE_DIR and the holder's
        pid, and leaves the holder's temp files alone; once the holder ends, the directory can be opened."""
        holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE)
        try:
            assert holder.stdout.readline() == b"locked\n"
            theirs = tmp_path / f".checkpoints.json.{holder.pid}.tmp"
            theirs.write_text("{}")
            with pytest.raises(CheckpointError, match="LOGSHIELD_STATE_DIR") as refused:
                Checkpointer.open(tmp_path)
            assert f"pid {holder.pid}" in str(refused.value)
            assert theirs.exists()
        finally:
            holder.stdin.close()
            holder.wait(30)
            holder.stdout.close()
        with Checkpointer.open(tmp_path) as cp:
            assert cp.streams == {}
        assert not theirs.exists()  # now a leftover of a dead process

    def test_same_process_may_reopen(self, tmp_path):
        """The lock is per process: a second handle in the same process works, and the lock outlives the first."""
        first = Checkpointer.open(tmp_path)
        second = Checkpointer.open(tmp_path)
        first.close()
        first.close()  # idempotent
        holder = subprocess.run([sys.executable, "-c", HOLD, str(tmp_path)], input=b"", capture_output=True,
                                timeout=60)
        assert holder.returncode != 0 and b"LOGSHIELD_STATE_DIR" in holder.stderr
        second.close()
