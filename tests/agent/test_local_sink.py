"""LocalDirSink: conditional, atomic puts; metadata; retention; sweep."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from logshield_agent.retention import sweep_expired
from logshield_agent.sinks.base import ObjectConflictError, ObjectLockedError, SinkError
from logshield_agent.sinks.local import LocalDirSink


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


class TestLocalDirSink:
    def test_put_get_head_list(self, tmp_path):
        """A stored object reads back with its metadata; sidecars are not listed."""
        sink = LocalDirSink(tmp_path)
        result = sink.put("a/b.ndjson", b"x\n", sha256=sha(b"x\n"), metadata={"logshield-lines": "1"})
        assert not result.already_existed
        assert sink.get("a/b.ndjson") == b"x\n"
        assert sink.head("a/b.ndjson").metadata == {"logshield-lines": "1"}
        assert [i.key for i in sink.list()] == ["a/b.ndjson"]
        assert sink.head("nope") is None
        with pytest.raises(KeyError):
            sink.get("nope")

    def test_same_bytes_is_success(self, tmp_path):
        """Putting identical content again reports already_existed."""
        sink = LocalDirSink(tmp_path)
        sink.put("k", b"1", sha256=sha(b"1"), metadata={})
        assert sink.put("k", b"1", sha256=sha(b"1"), metadata={}).already_existed

    def test_different_bytes_conflict_never_overwrite(self, tmp_path):
        """Different content under an existing key raises and leaves the object untouched."""
        sink = LocalDirSink(tmp_path)
        sink.put("k", b"1", sha256=sha(b"1"), metadata={})
        with pytest.raises(ObjectConflictError):
            sink.put("k", b"2", sha256=sha(b"2"), metadata={})
        assert sink.get("k") == b"1"

    def test_prefix(self, tmp_path):
        """Keys are relative to the sink's prefix."""
        sink = LocalDirSink(tmp_path, "logs/x")
        sink.put("k", b"1", sha256=sha(b"1"), metadata={})
        assert (tmp_path / "logs" / "x" / "k").read_bytes() == b"1"
        assert [i.key for i in sink.list()] == ["k"]

    def test_retention_blocks_delete_until_expiry(self, tmp_path):
        """An object under retention cannot be deleted; the sweep removes it once expired."""
        sink = LocalDirSink(tmp_path, retention_days=1)
        sink.put("k", b"1", sha256=sha(b"1"), metadata={})
        with pytest.raises(ObjectLockedError):
            sink.delete("k")
        assert sweep_expired(sink) == 0
        assert sweep_expired(sink, now=datetime.now(timezone.utc) + timedelta(days=2)) == 1
        assert sink.head("k") is None and list(tmp_path.iterdir()) == []

    def test_check_reports_unusable_dir(self, tmp_path):
        """check() fails with SinkError when the directory cannot be used."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        with pytest.raises(SinkError):
            LocalDirSink(blocker / "sub").check()
        LocalDirSink(tmp_path / "new").check()

    def test_put_into_unusable_dir_is_permanent_error(self, tmp_path):
        """A path that cannot be a directory is a configuration error, not a transient one."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        with pytest.raises(SinkError):
            LocalDirSink(blocker).put("a/k", b"1", sha256=sha(b"1"), metadata={})


class TestRotatedRetentionPlan:
    def test_policies(self):
        """delete removes every eligible file; keep honours days and bytes; grace protects recent files."""
        from logshield_agent.retention import RotatedFile, plan_rotated_deletions

        now = 100 * 86400.0
        files = [RotatedFile("old", 100, now - 10 * 86400), RotatedFile("mid", 100, now - 2 * 86400),
                 RotatedFile("new", 100, now - 10)]
        kw = {"grace": 60.0, "now": now, "keep_days": None, "keep_bytes": None}
        assert plan_rotated_deletions(files, mode="delete", **kw) == ["old", "mid"]
        assert plan_rotated_deletions(files, mode="keep", **kw) == []
        assert plan_rotated_deletions(files, mode="keep", **(kw | {"keep_days": 5})) == ["old"]
        assert plan_rotated_deletions(files, mode="keep", **(kw | {"keep_bytes": 150})) == ["old", "mid"]


class TestDurability:
    def test_every_created_directory_and_its_parent_is_fsynced(self, tmp_path, monkeypatch):
        """A put into new dt=/hour= directories fsyncs each new directory and its parent before it returns."""
        from logshield_agent import _durable

        synced = []
        real = _durable.fsync_dir
        monkeypatch.setattr(_durable, "fsync_dir", lambda path: (synced.append(Path(path)), real(path)))
        sink = LocalDirSink(tmp_path / "store")
        sink.put("service=a/host=h/dt=2026-01-01/hour=00/k", b"1", sha256=sha(b"1"), metadata={})
        created = [tmp_path / "store", tmp_path / "store/service=a", tmp_path / "store/service=a/host=h",
                   tmp_path / "store/service=a/host=h/dt=2026-01-01",
                   tmp_path / "store/service=a/host=h/dt=2026-01-01/hour=00"]
        for directory in created:
            assert directory in synced and directory.parent in synced, directory

    def test_stale_temp_files_removed_fresh_ones_kept(self, tmp_path):
        """Temp files of a killed put are removed once stale; a fresh one (a put in progress) is kept."""
        sink = LocalDirSink(tmp_path)
        sink.put("a/b/k", b"1", sha256=sha(b"1"), metadata={})
        old, fresh = tmp_path / "a/b/.tmp-0123", tmp_path / "a/b/.tmp-4567"
        old.write_bytes(b"partial")
        fresh.write_bytes(b"partial")
        os.utime(old, (time.time() - 3600, time.time() - 3600))
        assert sink.remove_stale_temporaries() == 1
        assert not old.exists() and fresh.exists() and sink.get("a/b/k") == b"1"

    def test_pipeline_start_cleans_the_local_store(self, tmp_path):
        """A (re)started agent removes the stale temp files its killed predecessor left."""
        from .conftest import make_pipeline

        leftover = tmp_path / "store/service=app/host=testhost/dt=2026-01-01/hour=00/.tmp-dead"
        leftover.parent.mkdir(parents=True)
        leftover.write_bytes(b"half an object")
        os.utime(leftover, (time.time() - 3600, time.time() - 3600))
        make_pipeline(tmp_path).run_once()
        assert not leftover.exists()


class CountingListSink(LocalDirSink):
    """Counts the walks begun and the objects they have produced so far."""

    walks = 0
    produced = 0

    def list(self, prefix=""):
        self.walks += 1
        for info in super().list(prefix):
            self.produced += 1
            yield info


class TestLocalSweeper:
    def test_a_walk_is_spread_over_steps_and_repeated_at_most_every_interval(self, tmp_path):
        """Each step looks at no more than per_step objects (the walk resumes where it stopped); expired objects
        are all deleted within one walk; the next walk waits for the interval."""
        from logshield_agent.retention import LocalSweeper

        sink = CountingListSink(tmp_path, retention_days=1)
        for i in range(30):
            sink.put(f"service=a/host=h/dt=2026-01-01/hour=00/{i:012x}-0-0.ndjson", b"x", sha256=sha(b"x"),
                     metadata={})
        clock = [0.0]
        sweeper = LocalSweeper(sink, per_step=7, every=3600.0, clock=lambda: clock[0])
        later = datetime.now(timezone.utc) + timedelta(days=2)
        deleted = []
        for _ in range(4):
            deleted.append(sweeper.step(now=later))
            assert sink.produced <= 7 * len(deleted)
        assert deleted == [7, 7, 7, 7] and sink.walks == 1
        assert sweeper.step(now=later) == 2  # the rest, and the walk ends
        assert [i.key for i in LocalDirSink(tmp_path).list()] == []
        assert sweeper.step(now=later) == 0 and sink.walks == 1  # not again before the interval
        clock[0] += 3600.0
        assert sweeper.step(now=later) == 0 and sink.walks == 2

    def test_objects_under_retention_are_kept(self, tmp_path):
        """The sweeper deletes nothing whose retain-until is still ahead."""
        from logshield_agent.retention import LocalSweeper

        sink = LocalDirSink(tmp_path, retention_days=1)
        sink.put("a/k", b"1", sha256=sha(b"1"), metadata={})
        assert LocalSweeper(sink).step() == 0 and sink.head("a/k") is not None
