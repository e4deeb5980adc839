"""The data path end to end with the real local sink: every line exactly once through rotation and crashes."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from logshield_agent.pipeline import Pipeline, ShipError
from logshield_agent.sinks.base import SinkError, SinkUnavailableError
from logshield_agent.sinks.local import LocalDirSink
from logshield_agent.sources.checkpoint import Checkpointer
from logshield_agent.sources.fingerprint import fingerprint_of
from logshield_agent.sources.fs import FileSystem
from logshield_agent.sources.lines import PIECE_MARKER
from logshield_agent.transforms.compress import compress
from logshield_agent.transforms.redact import RecordRedactor

from .conftest import SteppingPipeline, agent_config, assert_no_overlap, make_pipeline, stored_lines, stored_objects


def write(path: Path, *lines: str | bytes) -> list[bytes]:
    out = [(line if isinstance(line, bytes) else line.encode()) for line in lines]
    with open(path, "ab") as fh:
        fh.write(b"".join(out))
    return out


def numbered(prefix: str, n: int, start: int = 0) -> list[str]:
    return [f'{{"ts":"2026-11-23T15:00:00Z","msg":"{prefix}-{i:06d}"}}\n' for i in range(start, start + n)]


def numbered_bytes(prefix: str, n: int) -> list[bytes]:
    return [line.encode() for line in numbered(prefix, n)]


def write_version_1_checkpoint(tmp_path: Path, log: Path, offset: int) -> None:
    """The state an agent of checkpoint version 1 left: ``log``'s stream, known by its first 256 bytes, at
    ``offset``."""
    (tmp_path / "state" / "checkpoints.json").write_text(json.dumps({"version": 1, "streams": {
        fingerprint_of(log.read_bytes()[:256]): {"fp_len": 256, "offset": offset, "service": "app",
                                                 "path": str(log), "seen": 1.0, "intent": None}}}))


def exactly(expected: list[bytes]) -> Counter:
    return Counter(expected)


class TestShipping:
    def test_ships_each_line_once_across_runs(self, tmp_path):
        """Lines are shipped once; running again (or after a restart) ships nothing new."""
        log = tmp_path / "logs" / "app.log"
        make_pipeline(tmp_path)  # creates dirs
        expected = write(log, *numbered("a", 500))
        make_pipeline(tmp_path).run_once()
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)
        expected += write(log, *numbered("b", 10))
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)
        assert_no_overlap(tmp_path / "store")

    @pytest.mark.timeout(60)
    def test_once_finishes_while_a_writer_keeps_appending(self, tmp_path):
        """--once ships each file up to its size when first seen and exits, although a writer appends whole lines
        faster than it reads; the rest ships on the next run."""
        log = tmp_path / "logs" / "app.log"
        make_pipeline(tmp_path)
        before = write(log, *numbered("before", 2000))
        appended = []

        class BusyWriterFS(FileSystem):
            def pread(self, fd, size, offset):
                appended.extend(write(log, *numbered("during", 200, start=len(appended))))
                return super().pread(fd, size, offset)

        make_pipeline(tmp_path, fs=BusyWriterFS(), env={"batch_max_bytes": "16KiB",
                                                        "max_line_bytes": "1KiB"}).run_once()
        assert stored_lines(tmp_path / "store") == exactly(before)
        assert len(appended) > 2000
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(before + appended)

    def test_batches_bounded_by_size(self, tmp_path):
        """A backlog is cut into objects no bigger than the batch size plus one line."""
        make_pipeline(tmp_path)
        expected = write(tmp_path / "logs" / "app.log", *numbered("a", 5000))
        make_pipeline(tmp_path, env={"batch_max_bytes": "16KiB", "max_line_bytes": "1KiB"}).run_once()
        bodies = stored_objects(tmp_path / "store")
        assert len(bodies) > 10 and all(len(b) <= 16 * 1024 + 1024 for b in bodies.values())
        assert stored_lines(tmp_path / "store") == exactly(expected)

    def test_key_and_metadata(self, tmp_path):
        """Keys are partitioned by the first record's event time and carry source/range metadata."""
        make_pipeline(tmp_path, env={"service": "api"}).run_once()
        write(tmp_path / "logs" / "app.log", *numbered("a", 3))
        make_pipeline(tmp_path, env={"service": "api"}).run_once()
        (info,) = LocalDirSink(tmp_path / "store").list()
        assert info.key.startswith("service=api/host=testhost/dt=2026-11-23/hour=15/")
        assert info.metadata["logshield-lines"] == "3" and info.metadata["logshield-byte-start"] == "0"

    def test_timestamp_before_1970_partitions_by_file_mtime(self, tmp_path):
        """A first record claiming the year 99 gives a key that parses, partitioned by the file's mtime."""
        make_pipeline(tmp_path)
        log = tmp_path / "logs" / "app.log"
        expected = write(log, '{"timestamp":"0099-01-01T00:00:00Z","msg":"x"}\n', "next\n")
        os.utime(log, (1795446000, 1795446000))  # 2026-11-23T15:00Z
        make_pipeline(tmp_path).run_once()
        (key,) = stored_objects(tmp_path / "store")  # stored_objects asserts every key parses
        assert "/dt=2026-11-23/hour=15/" in key
        assert stored_lines(tmp_path / "store") == exactly(expected)

    def test_version_1_checkpoint_resumes(self, tmp_path):
        """After an upgrade the version-1 checkpoint is used: only lines after its offset ship, and the stream's
        check and origin are recorded in the version-2 file."""
        log = tmp_path / "logs" / "app.log"
        make_pipeline(tmp_path)
        shipped = write(log, *numbered("a", 20))
        offset = sum(map(len, shipped))
        write_version_1_checkpoint(tmp_path, log, offset)
        expected = write(log, *numbered("b", 5))
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)
        data = json.loads((tmp_path / "state" / "checkpoints.json").read_text())
        (state,) = data["streams"].values()
        assert data["version"] == 2 and state["check"] and state["origin"] == str(log)

    def test_version_1_checkpoint_with_a_longer_new_file_of_the_same_header(self, tmp_path):
        """Upgrade after a rotation whose new file starts with the same banner and is already longer than the
        version-1 offset: the new file ships whole and the rotated one from that offset (version 1 knew the stream
        by its head alone; the new file has no line end at the offset)."""
        log = tmp_path / "logs" / "app.log"
        make_pipeline(tmp_path)
        write(log, HEADER, *numbered("a", 20))
        offset = log.stat().st_size
        write_version_1_checkpoint(tmp_path, log, offset)
        expected = write(log, *numbered("late", 3))
        os.rename(log, tmp_path / "logs" / "app.log.1")
        expected += write(log, HEADER, *numbered("the-new-file", 40))
        assert log.read_bytes()[offset - 1:offset] != b"\n"
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)

    def test_version_1_stream_is_not_a_file_created_after_the_upgrade(self, tmp_path):
        """A version-1 stream whose file is not there when the upgraded agent starts is not resumed by a later file
        with the same head, even one with a line end at the old offset: that file ships whole."""
        log = tmp_path / "logs" / "app.log"
        make_pipeline(tmp_path)
        write(log, HEADER, *numbered("a", 20))
        offset = log.stat().st_size
        write_version_1_checkpoint(tmp_path, log, offset)
        log.unlink()
        p = make_pipeline(tmp_path)
        p.step()
        expected = write(log, HEADER, *numbered("b", 40))
        assert log.read_bytes()[offset - 1:offset] == b"\n"
        for _ in range(3):
            p.step()
        p.flush(deadline=float("inf"))
        assert stored_lines(tmp_path / "store") == exactly(expected)

    def test_version_1_stream_waits_for_a_scan_that_tried_every_file(self, tmp_path):
        """A rename racing the upgraded agent's first scan (its file is renamed between listing and opening) does
        not settle the version-1 states: the renamed file resumes its stream on the next scan, nothing twice."""
        log = tmp_path / "logs" / "app.log"
        make_pipeline(tmp_path)
        write(log, HEADER, *numbered("a", 20))
        write_version_1_checkpoint(tmp_path, log, log.stat().st_size)
        expected = []

        class RotateWhileOpening(FileSystem):
            rotated = False

            def open(self, path):
                if path.endswith("app.log") and not self.rotated:
                    self.rotated = True
                    os.rename(log, tmp_path / "logs" / "app.log.1")
                    expected.extend(write(log, *numbered("new", 2)))
                return super().open(path)

        p = make_pipeline(tmp_path, fs=RotateWhileOpening())
        for _ in range(3):
            p.step()
        p.flush(deadline=float("inf"))
        assert stored_lines(tmp_path / "store") == exactly(expected)

    def test_version_1_stream_that_two_files_could_be_resumes_neither(self, tmp_path):
        """Two files there at the upgrade start alike and both have a line end at a version-1 offset: which one
        version 1 read is unknown, so both ship from byte 0 (lines twice rather than lost)."""
        log = tmp_path / "logs" / "app.log"
        make_pipeline(tmp_path)
        expected = write(log, HEADER, *numbered("a", 20))
        offset = log.stat().st_size
        write_version_1_checkpoint(tmp_path, log, offset)
        os.rename(log, tmp_path / "logs" / "app.log.1")
        expected += write(log, HEADER, *numbered("b", 40))
        assert log.read_bytes()[offset - 1:offset] == b"\n"
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)

    def test_service_derived_from_file_name(self, tmp_path):
        """Without LOGSHIELD_SERVICE the service comes from the file name."""
        make_pipeline(tmp_path)
        write(tmp_path / "logs" / "billing.log", *numbered("a", 3))
        make_pipeline(tmp_path).run_once()
        assert next(iter(stored_objects(tmp_path / "store"))).startswith("service=billing/")


class TestRotation:
    def test_rename_rotation_while_writing(self, tmp_path):
        """Lines written to the old file after the rename and to the new file are all shipped once."""
        p = make_pipeline(tmp_path)
        log = tmp_path / "logs" / "app.log"
        expected = write(log, *numbered("a", 100))
        p.step()
        old = open(log, "ab")  # noqa: SIM115 - the app keeps writing through its old handle
        os.rename(log, tmp_path / "logs" / "app.log.1")
        for line in numbered("late", 50):
            old.write(line.encode())
            expected.append(line.encode())
        old.flush()
        expected += write(log, *numbered("b", 100))
        p.step()
        old.write(b"unterminated last line")
        old.close()
        expected.append(b"unterminated last line\n")
        for _ in range(3):
            p.step()
        p.flush(deadline=float("inf"))
        p.close()
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)
        assert_no_overlap(tmp_path / "store")

    def test_copytruncate_with_copy_matched(self, tmp_path):
        """copytruncate: the copy continues the old stream, the truncated file starts a new one; no loss."""
        p = make_pipeline(tmp_path, env={"batch_max_age": "3600"})
        log = tmp_path / "logs" / "app.log"
        expected = write(log, *numbered("a", 100))
        write(log, "half ")
        p.step()  # read, batch still open, "half " buffered
        write(log, "line\n")
        expected.append(b"half line\n")
        expected += write(log, *numbered("unread", 20))  # written before the copy, never read from app.log
        shutil.copyfile(log, tmp_path / "logs" / "app.log.1")
        os.truncate(log, 0)
        expected += write(log, *numbered("b", 30), "partial line in flight")
        for _ in range(3):
            p.step()
        p.flush(deadline=float("inf"))
        # Without a restart: the running agent followed the copy.
        assert stored_lines(tmp_path / "store") == exactly(expected[:-1])
        p.close()
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected[:-1])
        assert_no_overlap(tmp_path / "store")

    def test_copytruncate_racing_the_read(self, tmp_path):
        """Truncate + rewrite between the size check and the read: the new bytes are not taken for the old file."""
        log = tmp_path / "logs" / "app.log"
        make_pipeline(tmp_path)
        expected = write(log, *numbered("a", 10))
        new_content = numbered("new", 200)

        class RacingFS(FileSystem):
            armed = False

            def pread(self, fd, size, offset):
                if self.armed and offset > 0 and size > 256:
                    self.armed = False
                    shutil.copyfile(log, tmp_path / "logs" / "app.log.1")
                    os.truncate(log, 0)
                    expected.extend(write(log, *new_content))
                return super().pread(fd, size, offset)

        fs = RacingFS()
        p = make_pipeline(tmp_path, fs=fs, env={"batch_max_age": "3600"})
        p.step()
        expected += write(log, *numbered("b", 10))
        fs.armed = True
        for _ in range(4):
            p.step()
        p.flush(deadline=float("inf"))
        p.close()
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)
        assert_no_overlap(tmp_path / "store")

    def test_copytruncate_between_check_and_discovery(self, tmp_path):
        """The copy appears and the original is truncated after the scan checked the open files and before it
        globbed: the copy is not mistaken for a new file (that would ship its lines twice)."""
        log = tmp_path / "logs" / "app.log"
        expected = []

        class RotatingGlobFS(FileSystem):
            armed = False

            def glob(self, pattern):
                if self.armed:
                    self.armed = False
                    shutil.copyfile(log, tmp_path / "logs" / "app.log.1")
                    os.truncate(log, 0)
                    expected.extend(write(log, *numbered("new", 5)))
                return super().glob(pattern)

        fs = RotatingGlobFS()
        p = make_pipeline(tmp_path, fs=fs, env={"batch_max_age": "3600"})
        expected += write(log, *numbered("old", 50))
        p.step()
        expected += write(log, *numbered("unread", 5))
        fs.armed = True
        for _ in range(4):
            p.step()
        p.flush(deadline=float("inf"))
        assert stored_lines(tmp_path / "store") == exactly(expected)
        assert_no_overlap(tmp_path / "store")

    def test_copytruncate_copy_elsewhere(self, tmp_path):
        """With the copy outside the globs, lines read before the truncation still ship; new content too."""
        p = make_pipeline(tmp_path, env={"batch_max_age": "3600"})
        log = tmp_path / "logs" / "app.log"
        expected = write(log, *numbered("a", 100))
        p.step()
        shutil.copyfile(log, tmp_path / "elsewhere.log")
        os.truncate(log, 0)
        expected += write(log, *numbered("b", 30))
        for _ in range(2):
            p.step()
        p.flush(deadline=float("inf"))
        p.close()
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)

    def test_copytruncate_copy_elsewhere_reports_what_is_lost(self, tmp_path, caplog):
        """Bytes written after the last read of a file truncated in place, whose copy is not matched, are lost:
        said in a warning naming the file and counted (logshield_truncated_unread_bytes_total)."""
        p = make_pipeline(tmp_path, env={"batch_max_age": "3600"})
        log = tmp_path / "logs" / "app.log"
        expected = write(log, *numbered("a", 100))
        p.step()
        unread = write(log, *numbered("unread", 7))
        p.tailer._check_open_files(p.clock())  # the agent notices the growth (stat) but has not read it yet
        shutil.copyfile(log, tmp_path / "elsewhere.log")
        os.truncate(log, 0)
        expected += write(log, *numbered("b", 30))
        with caplog.at_level("WARNING", logger="logshield_agent"):
            for _ in range(3):
                p.step()
            p.flush(deadline=float("inf"))
            p.step()
        assert stored_lines(tmp_path / "store") == exactly(expected)
        (lost,) = [r for r in caplog.records if "are lost" in r.getMessage()]
        assert lost.path == str(log) and lost.lost_bytes == sum(map(len, unread))
        assert p.metrics.truncation_lost._value.get() == sum(map(len, unread))

    def test_copytruncate_across_restart(self, tmp_path):
        """Truncation while the agent is down: the copy resumes from the checkpoint, nothing twice."""
        log = tmp_path / "logs" / "app.log"
        make_pipeline(tmp_path)
        expected = write(log, *numbered("a", 100))
        make_pipeline(tmp_path).run_once()
        expected += write(log, *numbered("more", 10))
        shutil.copyfile(log, tmp_path / "logs" / "app.log.1")
        os.truncate(log, 0)
        expected += write(log, *numbered("b", 5))
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)
        assert_no_overlap(tmp_path / "store")

    @pytest.mark.parametrize("restart", [True, False])
    def test_inode_reuse(self, tmp_path, restart):
        """A new file under the same path, with the same inode number and the same header, is a new stream from
        byte 0 — not the old file resumed at its offset (which would skip the new file's first lines). The
        filesystem is made to recycle the inode, so the scenario does not depend on the machine's filesystem."""
        log = tmp_path / "logs" / "app.log"
        fs = RecyclingFS()
        make_pipeline(tmp_path)
        expected = write(log, HEADER, *numbered("a", 100))
        p = make_pipeline(tmp_path, fs=fs)
        p.step()
        if restart:
            p.flush(deadline=float("inf"))
            p.close()
        log.unlink()
        if not restart:
            for _ in range(5):  # the deleted file is drained and let go
                p.step()
            assert not p.tailer.streams
        expected += write(log, HEADER, *numbered("b", 10))  # short: resumed at the old offset it would all be lost
        if restart:
            p = make_pipeline(tmp_path, fs=fs)
        for _ in range(3):
            p.step()
        p.flush(deadline=float("inf"))
        assert stored_lines(tmp_path / "store") == exactly(expected)
        assert len({key.rsplit("/", 1)[1][:12] for key in stored_objects(tmp_path / "store")}) == 2

    def test_deleted_while_open_is_drained_and_released(self, tmp_path):
        """A file deleted mid-read is read to its end, shipped, and its descriptor closed."""
        p = make_pipeline(tmp_path, env={"batch_max_bytes": "8KiB", "max_line_bytes": "1KiB"})
        log = tmp_path / "logs" / "app.log"
        expected = write(log, *numbered("a", 2000))
        p.tailer.scan()
        assert p.tailer.streams
        log.unlink()
        for _ in range(200):
            p.step()
            if not p.tailer.streams:
                break
        assert not p.tailer.streams, "descriptor of the deleted file still open"
        assert stored_lines(tmp_path / "store") == exactly(expected)

    def test_new_files_found(self, tmp_path):
        """Files created later are discovered."""
        p = make_pipeline(tmp_path)
        expected = write(tmp_path / "logs" / "a.log", *numbered("a", 5))
        p.step()
        expected += write(tmp_path / "logs" / "b.log", *numbered("b", 5))
        p.step()
        p.flush(deadline=float("inf"))
        p.close()
        assert stored_lines(tmp_path / "store") == exactly(expected)


HEADER = "# service banner: " + "=" * 280 + "\n"  # 300 bytes, the same in every file: longer than the head


class TestSameFirstBytes:
    """Files that start alike (a constant header or first line) are distinct streams; real copies are not."""

    def test_constant_header_rename_rotation(self, tmp_path):
        """Rename rotation where every file starts with the same 300-byte header: every file ships completely."""
        p = make_pipeline(tmp_path)
        log = tmp_path / "logs" / "app.log"
        expected = []
        for generation in range(3):
            expected += write(log, HEADER, *numbered(f"g{generation}", 50))
            p.step()
            p.step()
            os.rename(log, tmp_path / "logs" / f"app.log.{generation + 1}")
        expected += write(log, HEADER, *numbered("last", 50))
        for _ in range(3):
            p.step()
        p.flush(deadline=float("inf"))
        assert stored_lines(tmp_path / "store") == exactly(expected)
        assert_no_overlap(tmp_path / "store")
        p.close()
        make_pipeline(tmp_path).run_once()  # a restart ships nothing again
        assert stored_lines(tmp_path / "store") == exactly(expected)

    def test_constant_header_copytruncate(self, tmp_path):
        """copytruncate where the new content, with the same header, is already longer than what was read: the
        truncation is noticed (the bytes before the read position changed), the copy continues, nothing twice."""
        p = make_pipeline(tmp_path)
        log = tmp_path / "logs" / "app.log"
        expected = write(log, HEADER, *numbered("old", 20))
        p.step()
        expected += write(log, *numbered("unread", 5))
        shutil.copyfile(log, tmp_path / "logs" / "app.log.1")
        os.truncate(log, 0)
        expected += write(log, HEADER, *numbered("new-content-with-longer-lines", 60))
        for _ in range(3):
            p.step()
        p.flush(deadline=float("inf"))
        assert stored_lines(tmp_path / "store") == exactly(expected)
        p.close()
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)
        assert_no_overlap(tmp_path / "store")

    def test_constant_short_first_line(self, tmp_path):
        """Every file starts with "starting", seen while it was the only line: after a rotation the new file's
        lines are not lost (before, the new file resumed the old one's offset); neither after a restart."""
        p = make_pipeline(tmp_path)
        log = tmp_path / "logs" / "app.log"
        expected = write(log, "starting\n")
        p.step()  # identified by these 9 bytes alone (settled)
        expected += write(log, *numbered("a", 30))
        p.step()
        os.rename(log, tmp_path / "logs" / "app.log.1")
        expected += write(log, "starting\n", *numbered("b", 3))
        for _ in range(3):
            p.step()
        p.flush(deadline=float("inf"))
        assert stored_lines(tmp_path / "store") == exactly(expected)
        assert stored_lines(tmp_path / "store")[b"starting\n"] == 2
        p.close()
        os.rename(log, tmp_path / "logs" / "app.log.2")
        expected += write(log, "starting\n", *numbered("c", 3))
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)

    def test_restart_after_short_file_deleted(self, tmp_path):
        """An old file that held only "starting" is replaced while the agent is down by a new one starting with
        that line: the new file's first line ships too (9 matching bytes in another inode are not enough to
        resume; the limit: a filesystem handing the new file the old inode number)."""
        log = tmp_path / "logs" / "app.log"
        make_pipeline(tmp_path)
        expected = write(log, "starting\n")
        make_pipeline(tmp_path).run_once()
        expected += write(tmp_path / "new", "starting\n", *numbered("b", 2))
        os.replace(tmp_path / "new", log)
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)

    @pytest.mark.parametrize("new_lines", [3, 500])
    def test_restart_after_old_file_deleted_new_one_same_header(self, tmp_path, new_lines):
        """While the agent is down the old file is deleted and a new one with the same header appears (shorter or
        longer than the old offset): it is a new stream from byte 0, not a continuation."""
        log = tmp_path / "logs" / "app.log"
        make_pipeline(tmp_path)
        expected = write(log, HEADER, *numbered("a", 100))
        make_pipeline(tmp_path).run_once()
        log.unlink()
        expected += write(log, HEADER, *numbered("b", new_lines))
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)
        assert len({key.rsplit("/", 1)[1][:12] for key in stored_objects(tmp_path / "store")}) == 2

    def test_real_copy_not_duplicated(self, tmp_path):
        """`cp app.log app.log.bak` while followed: the copy is not shipped again — also not after a restart
        once the original is deleted; what the copy gains later is shipped."""
        log = tmp_path / "logs" / "app.log"
        p = make_pipeline(tmp_path)
        expected = write(log, HEADER, *numbered("a", 100))
        p.step()
        shutil.copyfile(log, tmp_path / "logs" / "app.log.bak")
        expected += write(log, *numbered("after-copy", 10))
        for _ in range(3):
            p.step()
        p.flush(deadline=float("inf"))
        assert stored_lines(tmp_path / "store") == exactly(expected)
        p.close()
        log.unlink()
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)
        expected += write(tmp_path / "logs" / "app.log.bak", *numbered("appended-to-the-copy", 4))
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)
        assert_no_overlap(tmp_path / "store")

    def test_copy_taken_before_start_not_duplicated(self, tmp_path):
        """A file and an older copy of it, both there when the agent starts: the file ships once, the copy not."""
        log = tmp_path / "logs" / "b.log"
        make_pipeline(tmp_path)
        expected = write(log, HEADER, *numbered("a", 100))
        shutil.copyfile(log, tmp_path / "logs" / "a.log")  # sorts first, and is shorter
        expected += write(log, *numbered("b", 100))
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)

    def test_file_of_one_empty_line_waits_for_a_real_head(self, tmp_path):
        """A file holding just "\\n" is not identified by that one byte (which every such file shares)."""
        p = make_pipeline(tmp_path, settle=3600.0)
        log = tmp_path / "logs" / "app.log"
        write(log, "\n")
        os.utime(log)  # just written: not settled
        p.step()
        assert p.tailer.streams == {}
        expected = [b"\n"] + write(log, *numbered("a", 3))
        p.step()
        (stream,) = p.tailer.streams.values()
        assert stream.fp_len > 64
        p.flush(deadline=float("inf"))
        assert stored_lines(tmp_path / "store") == exactly(expected)


class TestSkippedFiles:
    def test_compressed_rotations_are_not_shipped_as_lines(self, tmp_path, caplog):
        """With the documented glob `*.log*`, logrotate's compressed files are not shipped: by name (the default
        LOGSHIELD_EXCLUDE) or, whatever the name, by their magic bytes (logged once per file, counted)."""
        import bz2
        import gzip
        import lzma

        from logshield_agent.transforms.compress import compress

        make_pipeline(tmp_path)
        logs = tmp_path / "logs"
        expected = write(logs / "app.log", *numbered("a", 10))
        body = b"".join(numbered_bytes("old", 50))
        (logs / "app.log.1.gz").write_bytes(gzip.compress(body))
        (logs / "app.log.2.xz").write_bytes(lzma.compress(body))
        (logs / "app.log.3").write_bytes(compress(body, "zstd"))  # compressed, under a name no glob excludes
        (logs / "app.log.4").write_bytes(bz2.compress(body))
        (logs / "app.log.5").write_bytes(gzip.compress(body))
        p = make_pipeline(tmp_path)
        with caplog.at_level("WARNING", logger="logshield_agent"):
            for _ in range(3):
                p.step()
            p.flush(deadline=float("inf"))
        assert stored_lines(tmp_path / "store") == exactly(expected)
        skipped = [r for r in caplog.records if "compressed file" in r.getMessage()]
        assert sorted(r.path.rsplit("/", 1)[1] for r in skipped) == ["app.log.3", "app.log.4", "app.log.5"]
        assert p.metrics.files_skipped.labels("compressed")._value.get() == 3

    def test_exclude_variable(self, tmp_path):
        """LOGSHIELD_EXCLUDE: names without / match the file name, with / the whole path; empty excludes nothing
        by name (compressed content is still skipped)."""
        make_pipeline(tmp_path)
        logs = tmp_path / "logs"
        kept = write(logs / "app.log", *numbered("a", 3))
        write(logs / "debug.log", *numbered("d", 3))
        write(logs / "app.log.old", *numbered("o", 3))
        make_pipeline(tmp_path, env={"exclude": f"debug.*,{logs}/*.old"}).run_once()
        assert stored_lines(tmp_path / "store") == exactly(kept)
        (tmp_path / "logs" / "plain.gz").write_bytes(b"".join(numbered_bytes("p", 3)))  # not compressed at all
        make_pipeline(tmp_path, env={"exclude": "", "paths": str(logs / "plain.gz")}).run_once()
        assert stored_lines(tmp_path / "store") == exactly(kept + numbered_bytes("p", 3))


class TestRotatedSettle:
    def test_late_write_to_rotated_file_completes_its_line(self, tmp_path):
        """An application finishes its last line through the old handle 3 s after the rename: with the default
        LOGSHIELD_ROTATED_SETTLE (5 s) it is one record; a line never finished ships once the file settled."""
        now = [1000.0]
        p = make_pipeline(tmp_path, settle=None, clock=lambda: now[0])
        assert p.tailer.settle == 5.0
        log = tmp_path / "logs" / "app.log"
        expected = write(log, *numbered("a", 5))
        old = open(log, "ab", buffering=0)  # noqa: SIM115 - the application's handle
        old.write(b"half of a rec")
        p.step()
        os.rename(log, tmp_path / "logs" / "app.log.1")
        write(log, *numbered("b", 2))
        for _ in range(3):
            now[0] += 1.0
            p.step()
        assert b"half of a rec\n" not in stored_lines(tmp_path / "store")
        old.write(b"ord\n")
        expected += [b"half of a record\n"] + numbered_bytes("b", 2)
        old.write(b"never finished")
        old.close()
        expected.append(b"never finished\n")
        for _ in range(3):
            now[0] += 1.0
            p.step()
        assert b"never finished\n" not in stored_lines(tmp_path / "store")
        now[0] += 5.0
        p.step()
        p.flush(deadline=float("inf"))
        assert stored_lines(tmp_path / "store") == exactly(expected)


class TestLines:
    def test_partial_line_waits_for_newline(self, tmp_path):
        """An unterminated line in the active file is shipped only once complete, as one line."""
        p = make_pipeline(tmp_path)
        log = tmp_path / "logs" / "app.log"
        write(log, *numbered("a", 5), "half a li")
        p.step()
        p.step()
        assert b"half a li\n" not in stored_lines(tmp_path / "store")
        write(log, "ne\n")
        p.step()
        p.flush(deadline=float("inf"))
        p.close()
        assert stored_lines(tmp_path / "store")[b"half a line\n"] == 1

    def test_ten_megabyte_line(self, tmp_path):
        """A 10 MB line ships in marked pieces that reassemble to the line; nothing hangs."""
        make_pipeline(tmp_path)
        big = os.urandom(5 * 1024 * 1024).hex().encode()[:-100]  # ~10 MB, no newline inside
        write(tmp_path / "logs" / "app.log", b"before\n", big + b"\n", b"after\n")
        make_pipeline(tmp_path, env={"batch_max_bytes": "4MiB"}).run_once()
        bodies = stored_objects(tmp_path / "store")
        data = b"".join(bodies[k] for k in sorted(bodies, key=lambda k: k.rsplit("-", 2)[1]))
        records = data.splitlines(keepends=True)
        assert records[0] == b"before\n" and records[-1] == b"after\n"
        pieces = records[1:-1]
        assert len(pieces) == 10
        assert all(p.endswith(PIECE_MARKER) for p in pieces[:-1])
        assert b"".join(p.removesuffix(PIECE_MARKER) for p in pieces) == big + b"\n"

    def test_invalid_utf8_shipped_verbatim(self, tmp_path):
        """The agent is byte-oriented: invalid UTF-8 arrives unchanged."""
        make_pipeline(tmp_path)
        raw = [b"\xff\xfe\xfd not utf8 \xc3\x28\n", b"ok\n", b"\x00\x01 binary\n"]
        write(tmp_path / "logs" / "app.log", *raw)
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == Counter(raw)


class _Renumbered:
    """A stat result with another inode number."""

    def __init__(self, st: os.stat_result, ino: int) -> None:
        self._st, self.st_ino = st, ino

    def __getattr__(self, name: str):
        return getattr(self._st, name)


class RecyclingFS(FileSystem):
    """Reports the same inode number for every file named app.log, like a filesystem recycling inodes."""

    INO = 4242

    def __init__(self) -> None:
        self.paths: dict[int, str] = {}

    def open(self, path):
        fd = super().open(path)
        self.paths[fd] = path
        return fd

    def close(self, fd):
        self.paths.pop(fd, None)
        super().close(fd)

    def _renumber(self, st, path):
        return _Renumbered(st, self.INO) if path.endswith("/app.log") else st

    def stat(self, path):
        return self._renumber(super().stat(path), path)

    def fstat(self, fd):
        return self._renumber(super().fstat(fd), self.paths.get(fd, ""))


class DenyingFS(FileSystem):
    def __init__(self, denied: str) -> None:
        self.denied = denied

    def open(self, path: str) -> int:
        if path.endswith(self.denied):
            raise PermissionError(13, "Permission denied", path)
        return super().open(path)


class TestPermissionDenied:
    def test_other_files_continue(self, tmp_path, caplog):
        """An unreadable file is reported by path once; the other files ship."""
        make_pipeline(tmp_path)
        write(tmp_path / "logs" / "secret.log", *numbered("s", 3))
        expected = write(tmp_path / "logs" / "app.log", *numbered("a", 3))
        with caplog.at_level("ERROR", logger="logshield_agent"):
            p = make_pipeline(tmp_path, fs=DenyingFS("secret.log"))
            p.step()
            p.step()
            p.flush(deadline=float("inf"))
            p.close()
        assert stored_lines(tmp_path / "store") == exactly(expected)
        denied = [r for r in caplog.records if "permission denied" in r.getMessage()]
        assert len(denied) == 1 and denied[0].path.endswith("secret.log")
        assert p.metrics.unreadable_files._value.get() == 1

    def test_once_fails_naming_the_unreadable_file(self, tmp_path):
        """--once ships the readable files, then fails (exit 1) with a message naming the unreadable one."""
        make_pipeline(tmp_path)
        write(tmp_path / "logs" / "secret.log", *numbered("s", 3))
        expected = write(tmp_path / "logs" / "app.log", *numbered("a", 3))
        with pytest.raises(ShipError, match=r"cannot read .*secret\.log: permission denied; everything else"):
            make_pipeline(tmp_path, fs=DenyingFS("secret.log")).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)


class Crash(BaseException):
    """Stands in for the process dying at an exact instruction."""


class CrashingSink(LocalDirSink):
    def __init__(self, root, *, before: bool = False) -> None:
        super().__init__(root)
        self.before = before

    def put(self, key, body, **kw):
        if self.before:
            raise Crash
        super().put(key, body, **kw)
        raise Crash  # upload succeeded, checkpoint not yet written


class TestCrashRecovery:
    @pytest.mark.parametrize("before", [False, True])
    def test_crash_between_upload_and_checkpoint(self, tmp_path, before):
        """After a crash around the upload, the restart re-uses the recorded range: no duplicate, no loss."""
        log = tmp_path / "logs" / "app.log"
        make_pipeline(tmp_path)
        expected = write(log, *numbered("a", 100))
        p = make_pipeline(tmp_path, sink=CrashingSink(tmp_path / "store", before=before))
        with pytest.raises(Crash):
            p.run_once()
        # More data arrives before the restart: without the intent the next batch would span both.
        expected += write(log, *numbered("b", 100))
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)
        assert_no_overlap(tmp_path / "store")
        keys = sorted(stored_objects(tmp_path / "store"))
        assert len(keys) == 2

    def test_crash_replay_uses_recorded_event_time(self, tmp_path):
        """A batch keyed by file mtime (no timestamp in the lines) replays under the same key."""
        log = tmp_path / "logs" / "app.log"
        make_pipeline(tmp_path)
        expected = write(log, *[f"plain line {i}\n" for i in range(50)])
        with pytest.raises(Crash):
            make_pipeline(tmp_path, sink=CrashingSink(tmp_path / "store")).run_once()
        os.utime(log, (0, 0))  # mtime moves back to 1970: a fresh decision would pick another partition
        expected += write(log, "next\n")
        os.utime(log, (0, 0))
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)
        assert len(stored_objects(tmp_path / "store")) == 2
        assert_no_overlap(tmp_path / "store")


class FlakySink(LocalDirSink):
    def __init__(self, root, failures: int) -> None:
        super().__init__(root)
        self.failures = failures
        self.calls = 0

    def put(self, key, body, **kw):
        self.calls += 1
        if self.calls <= self.failures:
            raise SinkUnavailableError("store down")
        return super().put(key, body, **kw)


class TestStoreDown:
    def test_retries_then_ships(self, tmp_path):
        """While the store is down data stays in the file, retries back off, then everything ships once."""
        sink = FlakySink(tmp_path / "store", failures=5)
        p = make_pipeline(tmp_path, sink=sink)
        expected = write(tmp_path / "logs" / "app.log", *numbered("a", 50))
        stop = threading.Event()
        t = threading.Thread(target=p.run, args=(stop,))
        t.start()
        try:
            for _ in range(200):
                if stored_lines(tmp_path / "store") == exactly(expected):
                    break
                threading.Event().wait(0.02)
        finally:
            stop.set()
            p.wake.set()
            t.join(5)
        assert stored_lines(tmp_path / "store") == exactly(expected)
        assert p.metrics.retries._value.get() >= 5
        assert sink.calls == 6  # backoff, not a busy loop

    def test_once_fails_clearly_when_store_stays_down(self, tmp_path):
        """--once gives up after its attempts with a message naming the store; the checkpoint does not move."""
        from logshield_agent.pipeline import ShipError

        sink = FlakySink(tmp_path / "store", failures=10**6)
        p = make_pipeline(tmp_path, sink=sink)
        write(tmp_path / "logs" / "app.log", *numbered("a", 5))
        with pytest.raises(ShipError, match="did not accept"):
            p.run_once()
        assert all(s.offset == 0 for s in p.checkpointer.streams.values())

    def test_unshipped_bytes_exposed(self, tmp_path):
        """The lag gauge shows bytes not yet acknowledged."""
        p = make_pipeline(tmp_path, env={"batch_max_age": "3600"})
        write(tmp_path / "logs" / "app.log", *numbered("a", 10))
        p.step()
        assert p.metrics.unshipped._value.get() > 0
        p.close()


class TestShutdown:
    def test_stop_flushes_open_batch(self, tmp_path):
        """On stop the open batch is shipped within the grace period."""
        p = make_pipeline(tmp_path, env={"batch_max_age": "3600"})
        expected = write(tmp_path / "logs" / "app.log", *numbered("a", 10))
        stop = threading.Event()
        t = threading.Thread(target=p.run, args=(stop,))
        t.start()
        threading.Event().wait(0.3)
        assert stored_lines(tmp_path / "store") == Counter()
        stop.set()
        p.wake.set()
        t.join(5)
        assert stored_lines(tmp_path / "store") == exactly(expected)


class ExhaustedFS(FileSystem):
    """Refuses to open a log file (EMFILE) while `limit` of them are open, like a process at its ulimit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open_now = 0
        self.peak = 0
        self.refused = 0

    def open(self, path):
        if self.open_now >= self.limit:
            self.refused += 1
            raise OSError(errno.EMFILE, "Too many open files", path)
        fd = super().open(path)
        self.open_now += 1
        self.peak = max(self.peak, self.open_now)
        return fd

    def close(self, fd):
        super().close(fd)
        self.open_now -= 1


class FailingCheckpointer(Checkpointer):
    """The checkpoint write fails with EMFILE the first `failures` times."""

    failures = 0

    def save(self):
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        super().save()


class TestOpenFiles:
    def test_many_files_with_few_descriptors(self, tmp_path):
        """120 files, at most 8 open: all ship; a closed (parked) file that grows, is renamed, deleted or copied
        later is handled like an open one."""
        make_pipeline(tmp_path)
        expected = []
        for n in range(120):
            expected += write(tmp_path / "logs" / f"f{n:03d}.log", *numbered(f"f{n}", 5))
        fs = ExhaustedFS(limit=1000)
        p = make_pipeline(tmp_path, fs=fs, max_open_files=8)
        for _ in range(200):
            p.step()
            p.flush(deadline=float("inf"))  # ship what was read without waiting for the batch age
            assert p.tailer.open_files <= 8
            if p.metrics.lines_shipped._value.get() == len(expected):
                break
        assert stored_lines(tmp_path / "store") == exactly(expected)
        assert fs.peak <= 8 + 1  # (+1: a parked file opened for a moment to compare a new file with it)
        parked = [s for s in p.tailer.streams.values() if s.parked]
        assert len(parked) >= 100
        grown, renamed, deleted, copied = parked[0], parked[1], parked[2], parked[3]
        shutil.copyfile(copied.path, tmp_path / "logs" / "copy.log")  # a copy of a parked file: not shipped again
        expected += write(Path(grown.path), *numbered("grown", 3))
        os.rename(renamed.path, renamed.path + ".1")
        expected += write(Path(renamed.path + ".1"), *numbered("renamed", 3))
        os.unlink(deleted.path)
        for _ in range(5):
            p.step()
        p.flush(deadline=float("inf"))
        assert stored_lines(tmp_path / "store") == exactly(expected)
        assert deleted.id not in p.tailer.streams
        assert_no_overlap(tmp_path / "store")

    @pytest.mark.timeout(60)
    def test_once_with_few_descriptors_while_files_grow(self, tmp_path):
        """--once with more growing files than descriptors: files at their snapshot size make room for the others
        (they are not waited on), and the run ends."""
        make_pipeline(tmp_path)
        logs = tmp_path / "logs"
        expected = []
        for n in range(12):
            expected += write(logs / f"f{n:02d}.log", *numbered(f"f{n}", 5))

        class GrowingFS(FileSystem):
            def pread(self, fd, size, offset):
                for n in range(12):
                    write(logs / f"f{n:02d}.log", "more\n")
                return super().pread(fd, size, offset)

        make_pipeline(tmp_path, fs=GrowingFS(), max_open_files=3).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)

    def test_emfile_lowers_the_limit_and_loses_nothing(self, tmp_path):
        """The system refuses descriptors below the agent's limit: no crash, the limit drops, every line ships."""
        make_pipeline(tmp_path)
        expected = []
        for n in range(40):
            expected += write(tmp_path / "logs" / f"f{n:02d}.log", *numbered(f"f{n}", 5))
        fs = ExhaustedFS(limit=6)
        p = make_pipeline(tmp_path, fs=fs, max_open_files=100)
        p.run_once()
        assert fs.refused and p.tailer.descriptors.limit < 6
        assert stored_lines(tmp_path / "store") == exactly(expected)

    def test_checkpoint_write_failing_is_retried(self, tmp_path):
        """EMFILE while writing the checkpoint: logged and retried, nothing uploaded before its intent is durable,
        nothing lost, no traceback."""
        make_pipeline(tmp_path)
        expected = write(tmp_path / "logs" / "app.log", *numbered("a", 50))
        config = agent_config(tmp_path)
        checkpointer = FailingCheckpointer.open(config.state_dir)
        checkpointer.failures = 3
        p = SteppingPipeline(config, LocalDirSink(tmp_path / "store"), checkpointer, settle=0.0, backoff_base=0.001,
                             backoff_cap=0.01)
        p.run_once()
        p.close()
        assert checkpointer.failures == 0 and p.metrics.failures.labels("checkpoint")._value.get() == 3
        assert stored_lines(tmp_path / "store") == exactly(expected)
        assert Checkpointer.open(tmp_path / "state").streams  # and it is on disk now

    def test_checkpoint_that_stays_broken_fails_once_clearly(self, tmp_path):
        """--once gives up with a message naming the state directory when the checkpoint cannot be written."""
        make_pipeline(tmp_path)
        write(tmp_path / "logs" / "app.log", *numbered("a", 5))
        config = agent_config(tmp_path)
        checkpointer = FailingCheckpointer.open(config.state_dir)
        checkpointer.failures = 10**6
        p = SteppingPipeline(config, LocalDirSink(tmp_path / "store"), checkpointer, settle=0.0, backoff_base=0.001,
                             backoff_cap=0.01)
        with pytest.raises(ShipError, match="cannot write the checkpoint in .*state"):
            p.run_once()
        assert stored_lines(tmp_path / "store") == Counter()


class HangingSink(LocalDirSink):
    """A store whose puts hang until released (a silent endpoint within the SDK's timeouts)."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.entered = threading.Event()
        self.release = threading.Event()

    def put(self, key, body, **kw):
        self.entered.set()
        self.release.wait(30)
        return super().put(key, body, **kw)


class TestShutdownBounded:
    def test_flush_against_a_failing_store_does_not_spin(self, tmp_path, caplog):
        """With the store failing, the shutdown flush backs off and gives up at the deadline: a handful of put
        attempts, not one per millisecond; the checkpoint stays where it was and the leftovers are logged."""
        sink = FlakySink(tmp_path / "store", failures=10**6)
        p = make_pipeline(tmp_path, sink=sink, backoff_base=0.1, backoff_cap=1.0, env={"batch_max_age": "3600"})
        write(tmp_path / "logs" / "app.log", *numbered("a", 20))
        p.step()
        assert sink.calls == 0
        with caplog.at_level("WARNING", logger="logshield_agent"):
            p.flush(deadline=p.clock() + 0.6)
        assert 1 <= sink.calls <= 5
        assert all(s.offset == 0 and s.intent is not None for s in p.checkpointer.streams.values())
        (left,) = [r for r in caplog.records if "not acknowledged" in r.getMessage()]
        assert left.batches == 1 and left.lines_in_batches == 20

    @pytest.mark.timeout(60)
    def test_run_returns_within_the_grace_while_a_put_hangs(self, tmp_path, caplog):
        """SIGTERM (stop) while an upload hangs in the store: run returns after the grace without waiting for it,
        the checkpoint is not advanced, and after a restart every line is stored once."""
        sink = HangingSink(tmp_path / "store")
        make_pipeline(tmp_path)
        config = agent_config(tmp_path, shutdown_grace="0.3")
        p = Pipeline(config, sink, Checkpointer.open(config.state_dir), settle=0.0)  # not stepping: real run loop
        expected = write(tmp_path / "logs" / "app.log", *numbered("a", 20))
        stop = threading.Event()
        runner = threading.Thread(target=p.run, args=(stop,))
        try:
            with caplog.at_level("WARNING", logger="logshield_agent"):
                runner.start()
                assert sink.entered.wait(10)
                stop.set()
                p.wake.set()
                runner.join(10)
                assert not runner.is_alive(), "run() waited for the hanging upload"
            assert all(s.offset == 0 for s in Checkpointer.open(tmp_path / "state").streams.values())
            assert any("abandoned" in r.getMessage() for r in caplog.records)
        finally:
            sink.release.set()
            runner.join(10)
            p.close()
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected)


class UpperRedactor:
    """Redacts the key ``password`` and the word ``secret``; lines without either are not its business."""

    def line_needs_redaction(self, text):
        return "password" in text or "secret" in text

    def redact_batch(self, values):
        out = []
        for v in values:
            if isinstance(v, dict):
                found = "password" in v
                out.append(({k: ("[REDACTED]" if k == "password" else val) for k, val in v.items()}, found))
            else:
                out.append((v.replace("secret", "[REDACTED]"), "secret" in v))
        return out


class TestRedaction:
    def test_redacts_json_and_text(self, tmp_path):
        """JSON records with findings are redacted as dicts and re-serialised compactly, text as text; every other
        line keeps its exact bytes."""
        make_pipeline(tmp_path)
        write(tmp_path / "logs" / "app.log", b'{"user": "x", "password": "hunter2"}\n', b"my secret here\n",
              b'{"user": "y",  "note": "nothing to hide"}\n', b'{"user": "z", "password_policy": "none"}\n')
        make_pipeline(tmp_path, redactor=RecordRedactor(UpperRedactor())).run_once()
        assert stored_lines(tmp_path / "store") == Counter(
            [b'{"user":"x","password":"[REDACTED]"}\n', b"my [REDACTED] here\n",
             b'{"user": "y",  "note": "nothing to hide"}\n',  # not a candidate: the original bytes
             b'{"user": "z", "password_policy": "none"}\n'])  # a candidate with no finding: the original bytes

    def test_off_does_not_import_presidio(self):
        """LOGSHIELD_REDACT=off builds no redactor and never imports Presidio or the library."""
        code = ("import sys, logshield_agent.cli, logshield_agent.pipeline\n"
                "from logshield_agent.transforms.redact import build_redactor\n"
                "assert build_redactor('off') is None\n"
                "print(sorted(m for m in sys.modules if m.startswith('presidio')))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=60).stdout
        assert out.strip() == b"[]"

    def test_real_library_patterns(self, tmp_path):
        """With the library's Redactor (patterns tier) secrets are gone and the output is deterministic."""
        pytest.importorskip("presidio_logshield.redactor")
        from logshield_agent.transforms.redact import build_redactor

        redactor = build_redactor("patterns")
        records = [b'{"user":"bob","password":"hunter2","msg":"mail bob@example.com"}\n', b"from 10.0.0.1\n",
                   b"\xff raw\n"]
        out = redactor(records)
        assert b"hunter2" not in out[0] and b"bob@example.com" not in out[0] and b"10.0.0.1" not in out[1]
        assert out == redactor(list(records)) and len(out) == 3 and all(r.endswith(b"\n") for r in out)


class TestRotatedRetention:
    def test_delete_shipped_rotated_file_not_active(self, tmp_path):
        """With delete, a fully shipped rotated file goes; the active file and unshipped data stay."""
        p = make_pipeline(tmp_path, env={"rotated_retention": "delete", "rotated_grace": "0"})
        log = tmp_path / "logs" / "app.log"
        write(log, *numbered("a", 10))
        p.step()
        os.rename(log, tmp_path / "logs" / "app.log.1")
        write(log, *numbered("b", 10))
        p.step()
        p.step()
        p.housekeeping()
        assert not (tmp_path / "logs" / "app.log.1").exists()
        assert log.exists()
        p.close()

    def test_rotation_between_scan_and_housekeeping(self, tmp_path):
        """logrotate shifts the files after the scan and before housekeeping: the file now under the shipped
        file's old name (with unshipped lines) is not deleted; each goes once it is shipped."""
        p = make_pipeline(tmp_path, env={"rotated_retention": "delete", "rotated_grace": "0",
                                         "batch_max_age": "3600"})
        logs = tmp_path / "logs"
        expected = write(logs / "app.log", *numbered("a", 10))
        p.step()
        os.rename(logs / "app.log", logs / "app.log.1")
        expected += write(logs / "app.log", *numbered("b", 10))
        p.step()
        p.step()  # app.log.1 fully shipped; app.log read, its batch still open
        os.rename(logs / "app.log.1", logs / "app.log.2")
        os.rename(logs / "app.log", logs / "app.log.1")
        p.housekeeping()
        assert sorted(os.listdir(logs)) == ["app.log.1", "app.log.2"]
        assert stored_lines(tmp_path / "store") == exactly(expected[:10])
        p.step()  # both rotated now: the b batch ships as final
        p.housekeeping()
        assert os.listdir(logs) == []
        assert stored_lines(tmp_path / "store") == exactly(expected)

    def test_rotated_after_restart(self, tmp_path):
        """A file rotated before a restart is still known as rotated afterwards (its origin path is persisted) and
        is deleted once shipped; the active file stays."""
        env = {"rotated_retention": "delete", "rotated_grace": "0"}
        p = make_pipeline(tmp_path, env=env)
        log = tmp_path / "logs" / "app.log"
        expected = write(log, *numbered("a", 10))
        p.step()
        os.rename(log, tmp_path / "logs" / "app.log-20261130")
        expected += write(log, *numbered("b", 10))
        p.step()
        p.step()
        p.close()  # restarted before housekeeping ran
        p = make_pipeline(tmp_path, env=env)
        for _ in range(3):
            p.step()
        p.housekeeping()
        assert sorted(os.listdir(tmp_path / "logs")) == ["app.log"]
        p.flush(deadline=float("inf"))
        assert stored_lines(tmp_path / "store") == exactly(expected)

    def test_file_found_already_rotated(self, tmp_path):
        """A file first seen under a rotated name next to its active file (agent installed after a rotation) is
        rotated from the start; a lone file with a number in its name is not."""
        make_pipeline(tmp_path)
        write(tmp_path / "logs" / "app.log.1", *numbered("a", 10))
        write(tmp_path / "logs" / "app.log", *numbered("b", 10))
        write(tmp_path / "logs" / "worker.log.1", *numbered("w", 10))
        p = make_pipeline(tmp_path, env={"rotated_retention": "delete", "rotated_grace": "0"})
        for _ in range(3):
            p.step()
        p.housekeeping()
        assert sorted(os.listdir(tmp_path / "logs")) == ["app.log", "worker.log.1"]


class RecordingObserver:
    """Collects what the pipeline tells observers; optionally fails like a full disk."""

    def __init__(self, *, critical: bool = False, fail_times: int = 0) -> None:
        self.critical = critical
        self.fail_times = fail_times
        self.batches = []
        self.ticks = 0
        self.closed = 0

    def batch_shipped(self, batch) -> None:
        if self.fail_times:
            self.fail_times -= 1
            raise OSError("No space left on device")
        self.batches.append(batch)

    def tick(self, wall: float) -> None:
        self.ticks += 1

    def close(self, wall: float) -> None:
        self.closed += 1


class TestObservers:
    def test_observer_sees_each_shipped_batch(self, tmp_path):
        """An observer gets the stored key, hash, range and the records as stored, then a tick and a close."""
        make_pipeline(tmp_path)
        expected = write(tmp_path / "logs" / "app.log", *numbered("a", 50))
        observer = RecordingObserver()
        make_pipeline(tmp_path, observers=[observer]).run_once()
        (batch,) = observer.batches
        assert list(batch.records) == expected and batch.lines == 50
        assert (batch.byte_start, batch.byte_end) == (0, sum(map(len, expected)))
        assert batch.key in stored_objects(tmp_path / "store") and not batch.already_existed
        assert observer.ticks == 1 and observer.closed == 1

    def test_failing_plain_observer_does_not_stop_shipping(self, tmp_path):
        """A non-critical observer's error is logged; the checkpoint still advances."""
        make_pipeline(tmp_path)
        expected = write(tmp_path / "logs" / "app.log", *numbered("a", 5))
        make_pipeline(tmp_path, observers=[RecordingObserver(fail_times=1)]).run_once()
        observer = RecordingObserver()
        make_pipeline(tmp_path, observers=[observer]).run_once()
        assert stored_lines(tmp_path / "store") == exactly(expected) and observer.batches == []

    def test_failing_critical_observer_holds_the_checkpoint(self, tmp_path):
        """A critical observer's error keeps the batch unacknowledged; the next run offers it again."""
        from logshield_agent.pipeline import ShipError

        make_pipeline(tmp_path)
        expected = write(tmp_path / "logs" / "app.log", *numbered("a", 5))
        with pytest.raises(ShipError, match="No space left"):
            make_pipeline(tmp_path, observers=[RecordingObserver(critical=True, fail_times=1)]).run_once()
        observer = RecordingObserver(critical=True)
        make_pipeline(tmp_path, observers=[observer]).run_once()
        (batch,) = observer.batches
        assert batch.already_existed and list(batch.records) == expected
        assert stored_lines(tmp_path / "store") == exactly(expected)


class RefusingSink(LocalDirSink):
    """A store that refuses every upload (like bad credentials)."""

    def put(self, key, body, **kwargs):
        raise SinkError("access denied")


class CountingSink(LocalDirSink):
    """A local sink that records how many puts run at once (each put is held briefly so they overlap)."""

    def __init__(self, root, hold: float = 0.05) -> None:
        super().__init__(root)
        self.hold = hold
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def put(self, key, body, **kwargs):
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            threading.Event().wait(self.hold)
            return super().put(key, body, **kwargs)
        finally:
            with self.lock:
                self.running -= 1


class TestConcurrentUploads:
    def test_files_ship_in_parallel_within_the_limit(self, tmp_path):
        """Several files upload at once, never more than LOGSHIELD_UPLOAD_CONCURRENCY; every line once."""
        make_pipeline(tmp_path)
        expected = []
        for n in range(6):
            expected += write(tmp_path / "logs" / f"f{n}.log", *numbered(f"f{n}", 300))
        sink = CountingSink(tmp_path / "store")
        make_pipeline(tmp_path, sink=sink, env={"upload_concurrency": "3", "batch_max_bytes": "4KiB",
                                                "max_line_bytes": "1KiB"}).run_once()
        assert sink.peak == 3
        assert stored_lines(tmp_path / "store") == exactly(expected)
        assert_no_overlap(tmp_path / "store")

    def test_read_ahead_is_bounded_by_the_upload_limit(self, tmp_path):
        """With a backlog in many files, batches are read ahead for the uploads in flight plus one, no more."""
        make_pipeline(tmp_path)
        for n in range(20):
            write(tmp_path / "logs" / f"f{n}.log", *numbered(f"f{n}", 200))
        p = make_pipeline(tmp_path, env={"upload_concurrency": "2", "batch_max_bytes": "4KiB",
                                         "max_line_bytes": "1KiB"})
        p.tailer.scan()
        pending = [s.pending.size for s in p.tailer.streams.values() if s.pending is not None]
        assert len(p.tailer.streams) == 20 and sum(pending) <= 3 * (4096 + 1024) and len(pending) <= 4

    @pytest.mark.timeout(60)
    @pytest.mark.parametrize(("concurrency", "line", "max_line", "tight"), [(2, 40, 1024, False),
                                                                         (1, 1000, 4096, True)])
    def test_memory_bounded_with_many_backlog_files(self, tmp_path, concurrency, line, max_line, tight):
        """60 files with a backlog: what is held in memory (read-ahead and batches) stays within the budget of
        UPLOAD_CONCURRENCY + 1 batches (each with a line or two of slack) at every scan; read-ahead left in idle
        files never blocks the others (it is dropped and re-read; `tight`: a budget of just two batches, where
        leftovers alone would fill it); every line ships once."""
        make_pipeline(tmp_path)
        expected = []
        for n in range(60):
            expected += write(tmp_path / "logs" / f"f{n:02d}.log",
                              *[f"f{n:02d} {i:05d} {'x' * line}\n" for i in range(16000 // line)])
        p = make_pipeline(tmp_path, env={"upload_concurrency": str(concurrency), "batch_max_bytes": "4KiB",
                                         "max_line_bytes": str(max_line)})
        assert p.tailer.max_pending_bytes == (concurrency + 1) * (4096 + 2 * max_line)
        if tight:
            p.tailer.max_pending_bytes = 2 * 4096
        budget = p.tailer.max_pending_bytes
        peak = 0
        scan = p.tailer.scan

        def measured_scan(**kwargs):
            nonlocal peak
            scan(**kwargs)
            streams = p.tailer.streams.values()
            peak = max(peak, sum(len(s.buf) + (s.pending.size if s.pending else 0) for s in streams))

        p.tailer.scan = measured_scan
        p.run_once()
        assert 0 < peak <= budget + (concurrency + 1) * 2 * max_line
        assert stored_lines(tmp_path / "store") == exactly(expected)

    def test_conflicting_object_holds_only_that_file(self, tmp_path):
        """An object already stored with other bytes under a batch's key is never overwritten nor acknowledged;
        that file is held (its data stays), the other files ship."""
        make_pipeline(tmp_path)
        held = write(tmp_path / "logs" / "held.log", *numbered("h", 10))
        other = write(tmp_path / "logs" / "other.log", *numbered("o", 10))
        with pytest.raises(ShipError):  # the intents are recorded, nothing is stored
            make_pipeline(tmp_path, sink=RefusingSink(tmp_path / "store")).run_once()
        (key,) = [s.intent.key for s in Checkpointer.open(tmp_path / "state").streams.values()
                  if s.path.endswith("held.log")]
        other_bytes = compress(b"someone else's line\n", "zstd")
        LocalDirSink(tmp_path / "store").put(key, other_bytes, sha256=hashlib.sha256(other_bytes).hexdigest(),
                                             metadata={})
        q = make_pipeline(tmp_path)
        for _ in range(3):
            q.step()
        fp = next(fp for fp, s in q.tailer.streams.items() if s.path.endswith("held.log"))
        assert q.tailer.streams[fp].stalled and q.checkpointer.streams[fp].offset == 0
        stored = stored_lines(tmp_path / "store")
        assert all(stored[line] == 1 for line in other) and not any(stored[line] for line in held)
