"""Wake the pipeline early when a watched directory changes (watchdog); polling remains the fallback."""

from __future__ import annotations

import glob
import logging
import os
import threading
from typing import Any

__all__ = ["ChangeNotifier", "watch_dirs"]

log = logging.getLogger("logshield_agent.notify")


def watch_dirs(patterns: tuple[str, ...]) -> list[str]:
    """The existing directories holding the files the patterns can match (the part before the first wildcard)."""
    dirs: set[str] = set()
    for pattern in patterns:
        parts = pattern.split(os.sep)
        fixed = []
        for part in parts[:-1]:
            if glob.has_magic(part):
                break
            fixed.append(part)
        else:
            directory = os.sep.join(fixed) or "."
            if os.path.isdir(directory):
                dirs.add(os.path.abspath(directory))
            continue
        for match in glob.glob(os.sep.join(parts[:-1])):
            if os.path.isdir(match):
                dirs.add(os.path.abspath(match))
    return sorted(dirs)


class ChangeNotifier:
    """Sets ``wake`` on any file event under the watched directories. Context-managed; its thread is joined."""

    def __init__(self, patterns: tuple[str, ...], wake: threading.Event) -> None:
        self.patterns = patterns
        self.wake = wake
        self._observer: Any = None

    def start(self) -> ChangeNotifier:
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # pragma: no cover - watchdog is a dependency
            return self
        wake = self.wake

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                wake.set()

        try:
            observer = Observer()
            for directory in watch_dirs(self.patterns):
                observer.schedule(Handler(), directory, recursive=False)
            observer.start()
        except Exception as exc:  # noqa: BLE001 - inotify limits etc.: polling still works
            log.warning("file notifications unavailable; polling only", extra={"error": type(exc).__name__})
            return self
        self._observer = observer
        return self

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None

    def __enter__(self) -> ChangeNotifier:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
