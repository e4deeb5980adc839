"""Copies and look-alikes of followed files: a copy is never shipped twice, a file that merely starts like another
is never taken for its copy (its lines would be lost)."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

from logshield_agent.sources.fs import FileSystem

from .conftest import assert_no_overlap, make_pipeline, stored_lines

HEADER = "# service banner: " + "=" * 280 + "\n"  # 300 bytes: longer than the head fingerprint


def write(path: Path, *lines: str | bytes) -> list[bytes]:
    out = [(line if isinstance(line, bytes) else line.encode()) for line in lines]
    with open(path, "ab") as fh:
        fh.write(b"".join(out))
    return out


def numbered(prefix: str, n: int) -> list[str]:
    return [f'{{"ts":"2026-11-23T15:00:00Z","msg":"{prefix}-{i:06d}"}}\n' for i in range(n)]


def copy_in_parts(source: Path, target: Path, parts: int, between) -> None:
    """Copy ``source`` to ``target`` the way a slow ``cp`` (or logrotate's copytruncate) does: chunk by chunk,
    calling ``between()`` after each chunk but the last."""
    data = source.read_bytes()
    step = len(data) // parts + 1
    for start in range(0, len(data), step):
        with open(target, "ab") as fh:
            fh.write(data[start:start + step])
        if start + step < len(data):
            between()


def steps(pipeline, n: int = 3) -> None:
    for _ in range(n):
        pipeline.step()
    pipeline.flush(deadline=float("inf"))


class TestCopyInProgress:
    """A copy seen while it is still being written is a copy all along, not a stream resumed where it was seen."""

    def test_slow_copytruncate_ships_nothing_twice(self, tmp_path):
        """copytruncate of a file already shipped, with a copy seen at several partial sizes: every line once."""
        p = make_pipeline(tmp_path)
        log = tmp_path / "logs" / "app.log"
        expected = write(log, *numbered("a", 600))
        steps(p)
        copy_in_parts(log, tmp_path / "logs" / "app.log.1", 4, lambda: steps(p))
        steps(p)
        os.truncate(log, 0)
        expected += write(log, *numbered("b", 20))
        steps(p)
        assert stored_lines(tmp_path / "store") == Counter(expected)
        assert_no_overlap(tmp_path / "store")

    def test_slow_copy_kept_beside_the_original_is_not_shipped(self, tmp_path):
        """A plain cp of a followed file, seen mid-copy, is not shipped at all — neither after a restart."""
        p = make_pipeline(tmp_path)
        log = tmp_path / "logs" / "app.log"
        expected = write(log, *numbered("a", 600))
        steps(p)
        copy_in_parts(log, tmp_path / "logs" / "app.log.bak", 4, lambda: steps(p))
        steps(p)
        assert stored_lines(tmp_path / "store") == Counter(expected)
        p.close()
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == Counter(expected)

    def test_slow_copytruncate_across_a_restart(self, tmp_path):
        """The agent stops while the copy is half written; the copy is finished and the original truncated before
        it starts again: nothing twice, nothing lost."""
        p = make_pipeline(tmp_path)
        log = tmp_path / "logs" / "app.log"
        expected = write(log, *numbered("a", 600))
        steps(p)
        copy = tmp_path / "logs" / "app.log.1"
        data = log.read_bytes()
        write(copy, data[:len(data) // 3])
        steps(p)
        p.close()
        write(copy, data[len(data) // 3:])
        os.truncate(log, 0)
        expected += write(log, *numbered("b", 20))
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == Counter(expected)


class TestLookAlikeNewFile:
    """A new active file holding so far only what the previous file started with is not that file's copy."""

    def _rotate(self, tmp_path, first: list[str], *, delete: bool = False, restart: bool = False) -> Counter:
        p = make_pipeline(tmp_path)
        log = tmp_path / "logs" / "app.log"
        expected = write(log, *first, *numbered("old", 50))
        steps(p)
        if delete:
            log.unlink()
        else:
            os.rename(log, tmp_path / "logs" / "app.log.1")
        expected += write(log, *first)  # the application reopens its log and writes its banner
        steps(p)
        if restart:
            p.close()
            p = make_pipeline(tmp_path)
        expected += write(log, *numbered("new", 5))
        steps(p)
        p.close()
        return Counter(expected)

    def test_constant_header_after_rename(self, tmp_path):
        """The banner of the new file ships, although it was all the file held when first seen."""
        expected = self._rotate(tmp_path, [HEADER])
        assert stored_lines(tmp_path / "store") == expected

    def test_constant_first_line_after_rename(self, tmp_path):
        """Likewise for a short constant first line ("starting")."""
        expected = self._rotate(tmp_path, ["starting\n"])
        assert stored_lines(tmp_path / "store") == expected

    def test_constant_first_line_after_delete(self, tmp_path):
        """Delete rotation: the new file starting like the deleted (still open) one ships whole."""
        expected = self._rotate(tmp_path, ["starting\n"], delete=True)
        assert stored_lines(tmp_path / "store") == expected

    def test_constant_header_across_a_restart(self, tmp_path):
        """The agent restarts while the new file holds only the banner: the banner still ships."""
        expected = self._rotate(tmp_path, [HEADER], restart=True)
        assert stored_lines(tmp_path / "store") == expected


class TestCopiesAtRestart:
    """Copies found when the agent starts do not take the stream of the file they copy."""

    def test_copy_of_an_unshipped_file_sorting_first(self, tmp_path):
        """A stream recorded but not shipped yet, and a copy of its file that sorts before it: shipped once."""
        log1 = tmp_path / "logs" / "app.log.1"
        p = make_pipeline(tmp_path)
        expected = write(log1, *numbered("b", 300))
        p.tailer.scan()
        p.checkpointer.save()  # recorded at offset 0, as when the agent is killed before its first upload
        p.close()
        shutil.copyfile(log1, tmp_path / "logs" / "app.log.0.bak")
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == Counter(expected)

    def test_recorded_copy_does_not_claim_a_later_copy(self, tmp_path):
        """A copy recorded as shipped, then a longer copy taken while the agent is down: nothing ships twice."""
        log = tmp_path / "logs" / "app.log"
        p = make_pipeline(tmp_path)
        expected = write(log, *numbered("a", 100))
        steps(p)
        shutil.copyfile(log, tmp_path / "logs" / "app.log.bak1")
        steps(p)
        expected += write(log, *numbered("b", 50))
        steps(p)
        p.close()
        shutil.copyfile(log, tmp_path / "logs" / "app.log.bak2")
        make_pipeline(tmp_path).run_once()
        assert stored_lines(tmp_path / "store") == Counter(expected)

    def test_copy_of_a_renamed_file_does_not_take_its_stream(self, tmp_path):
        """While the agent is down a shipped file is renamed and copied (the copy sorts first): when the original
        gets its late lines, only those ship."""
        log = tmp_path / "logs" / "app.log"
        make_pipeline(tmp_path)
        expected = write(log, *numbered("a", 100))
        make_pipeline(tmp_path).run_once()
        os.rename(log, tmp_path / "logs" / "app.log.1")
        shutil.copyfile(tmp_path / "logs" / "app.log.1", tmp_path / "logs" / "app.log.0.bak")
        p = make_pipeline(tmp_path)
        steps(p)
        expected += write(tmp_path / "logs" / "app.log.1", *numbered("late", 3))
        steps(p)
        assert stored_lines(tmp_path / "store") == Counter(expected)

    def test_file_renamed_while_listed_is_not_shipped_again(self, tmp_path):
        """At start-up the original is renamed between the listing and its stat, and a copy of it (taken while the
        agent was down, before the original grew) is listed: the copy does not take the stream, the original's
        new lines ship once."""
        logs = tmp_path / "logs"
        make_pipeline(tmp_path)
        expected = write(logs / "a.log", *numbered("a", 100))
        make_pipeline(tmp_path).run_once()
        shutil.copyfile(logs / "a.log", logs / "b.log")
        expected += write(logs / "a.log", *numbered("grown", 10))

        class RenameWhileListing(FileSystem):
            renamed = False

            def stat(self, path):
                if path.endswith("a.log") and not self.renamed:
                    self.renamed = True
                    os.rename(logs / "a.log", logs / "c.log")  # a rename rotation racing the listing
                return super().stat(path)

        p = make_pipeline(tmp_path, fs=RenameWhileListing())
        steps(p)
        assert stored_lines(tmp_path / "store") == Counter(expected)

    def test_file_renamed_between_listing_and_opening_is_not_shipped_again(self, tmp_path):
        """A rename rotation between the listing and the opening of the active file (the name then leads to the
        new, nearly empty file) does not let a copy of it, listed in the same scan, become its stream."""
        logs = tmp_path / "logs"
        make_pipeline(tmp_path)
        expected = write(logs / "app.log", *numbered("a", 100))
        shutil.copyfile(logs / "app.log", logs / "app.log.bak")
        expected += write(logs / "app.log", *numbered("grown", 10))

        class RotateWhileOpening(FileSystem):
            rotated = False

            def open(self, path):
                if path.endswith("app.log") and not self.rotated:
                    self.rotated = True
                    os.rename(logs / "app.log", logs / "app.log.1")
                    expected.extend(write(logs / "app.log", "x\n"))  # the application's new file
                return super().open(path)

        p = make_pipeline(tmp_path, fs=RotateWhileOpening())
        steps(p)
        assert stored_lines(tmp_path / "store") == Counter(expected)


class TestTruncatedWhileIdentifying:
    def test_unfinished_line_waits_for_the_copy_identified_a_scan_later(self, tmp_path):
        """copytruncate while a rename races the scan that would identify the copy: the line the agent saw only
        half of (it was being written) is not shipped torn; the copy, identified on the next scan, finishes it."""
        logs = tmp_path / "logs"
        expected: list[bytes] = []

        class RotateWhileOpeningTheCopy(FileSystem):
            armed = False

            def open(self, path):
                if self.armed and path.endswith("app.log.1"):
                    self.armed = False  # the copy moves on (app.log.1 -> app.log.2) as the agent opens it
                    os.rename(logs / "app.log.1", logs / "app.log.2")
                    expected.extend(write(logs / "app.log.1", "another rotation\n"))
                return super().open(path)

        fs = RotateWhileOpeningTheCopy()
        p = make_pipeline(tmp_path, fs=fs)
        expected += write(logs / "app.log", *numbered("a", 50))
        write(logs / "app.log", b'{"ts":"2026-11-23T15:00:00Z","msg":"unfin')  # read while still being written
        steps(p)
        write(logs / "app.log", b'ished"}\n')
        expected.append(b'{"ts":"2026-11-23T15:00:00Z","msg":"unfinished"}\n')
        shutil.copyfile(logs / "app.log", logs / "app.log.1")
        os.truncate(logs / "app.log", 0)
        fs.armed = True
        steps(p)
        assert stored_lines(tmp_path / "store") == Counter(expected)
