"""File-change notifications wake the pipeline; the watcher thread is stopped and joined."""

from __future__ import annotations

import threading

from logshield_agent.sources.notify import ChangeNotifier, watch_dirs


class TestChangeNotifier:
    def test_wakes_on_write(self, tmp_path):
        """Writing a file in a watched directory sets the wake event."""
        wake = threading.Event()
        with ChangeNotifier((str(tmp_path / "*.log"),), wake):
            (tmp_path / "a.log").write_text("x\n")
            assert wake.wait(5)

    def test_watch_dirs(self, tmp_path):
        """Directories are taken from the fixed part of each pattern, wildcards expanded, missing ones skipped."""
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        dirs = watch_dirs((str(tmp_path / "*" / "x.log"), str(tmp_path / "missing" / "*.log")))
        assert dirs == [str(tmp_path / "a"), str(tmp_path / "b")]
