"""The files the patterns match now, each with its ``stat`` (step 2 of the tailer's scan, see ``tailer.py``).

A rename rotation that shifts many files (``app.log.N`` → ``app.log.N+1``) while the glob's names are stat'ed can
hide a file from one listing: its old name is stat'ed after it moved, its new name before it got there. A copy of
that file seen in the same scan would then take its stream, and the file be shipped again as a stream of its own.
Such a listing shows it: a listed name that no longer exists, or one file under two names. Then the patterns are
listed again (a few times at most) and the files not seen yet are added.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from .fs import FileSystem

__all__ = ["MAX_RELISTS", "list_matched"]

log = logging.getLogger("logshield_agent.tailer")

#: How many times the patterns are listed again while renames are seen racing the listing.
MAX_RELISTS = 3


def _glob(fs: FileSystem, patterns: tuple[str, ...]) -> list[str]:
    paths: list[str] = []
    for pattern in patterns:
        try:
            paths.extend(sorted(fs.glob(pattern)))
        except OSError as exc:
            log.warning("glob failed", extra={"pattern": pattern, "error": type(exc).__name__})
    return list(dict.fromkeys(paths))


def list_matched(fs: FileSystem, patterns: tuple[str, ...],
                 excluded: Callable[[str], bool]) -> tuple[set[str], list[tuple[str, os.stat_result]]]:
    """``(every matched path, [(path, stat)])``: the files not excluded, each file once (under the name it was
    first found at)."""
    matched: set[str] = set()
    found: list[tuple[str, os.stat_result]] = []
    names: dict[tuple[int, int], str] = {}
    for listing in range(1 + MAX_RELISTS):
        raced = False
        paths = _glob(fs, patterns)
        matched.update(paths)
        for path in paths:
            if excluded(path):
                continue
            try:
                st = fs.stat(path)
            except FileNotFoundError:
                raced = True  # listed, then gone: renamed (or deleted) while listing
                continue
            except OSError:
                continue
            inode = (st.st_dev, st.st_ino)
            name = names.get(inode)
            if name is None:
                names[inode] = path
                found.append((path, st))
                raced = raced or listing > 0  # found only by listing again: look once more
            elif name != path and listing == 0:
                raced = True  # one file under two names: it moved while listing
        if not raced:
            break
    return matched, found
