"""Session recording: every record of one session, actor or request, pulled out of JSON-lines logs in time order.

The ``session_id`` / ``actor`` / ``request_id`` fields come from :func:`~presidio_logshield.log_context` (and the
middleware), so one query over the archive replays what happened in a session. Pseudonymised actors are looked up by
their pseudonym (``logshield pseudonym alice@example.com``), so the query itself reveals no one.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SessionQuery", "matching_lines", "matching_records"]


@dataclass(frozen=True)
class SessionQuery:
    session_id: str | None = None
    actor: str | None = None
    request_id: str | None = None

    @property
    def empty(self) -> bool:
        return self.session_id is None and self.actor is None and self.request_id is None

    def matches(self, record: dict[str, Any]) -> bool:
        return all(record.get(name) == wanted for name, wanted in
                   (("session_id", self.session_id), ("actor", self.actor), ("request_id", self.request_id))
                   if wanted is not None)


def _lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as raw:
        if path.suffix == ".zst":
            import zstandard

            stream: io.BufferedIOBase = zstandard.ZstdDecompressor().stream_reader(raw)  # type: ignore[assignment]
        elif path.suffix == ".gz":
            stream = gzip.GzipFile(fileobj=raw)
        else:
            stream = raw
        yield from io.BufferedReader(stream)  # type: ignore[arg-type]


def matching_lines(lines: Iterable[bytes], query: SessionQuery) -> Iterator[dict[str, Any]]:
    """The JSON records among ``lines`` that match ``query``, in their order (other lines are skipped)."""
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and query.matches(record):
            yield record


def matching_records(files: Iterable[str | Path], query: SessionQuery) -> list[dict[str, Any]]:
    """The records of ``files`` that match ``query``, sorted by timestamp (then file order)."""
    found: list[tuple[str, int, dict[str, Any]]] = []
    for name in files:
        for record in matching_lines(_lines(Path(name)), query):
            found.append((str(record.get("timestamp", "")), len(found), record))
    found.sort(key=lambda item: (item[0], item[1]))
    return [record for _, _, record in found]
