"""``logshield-agent session URL --session-id X``: one session's (actor's, request's) records, from the archive.

``logshield session`` (the library's CLI) reads local files; this reads the archive itself — a directory, S3 or
Azure Blob — with the agent's credentials: every data object whose partition hour can hold records of the window is
fetched (several at once), decompressed and scanned; a line is parsed only when it contains the wanted value, and
the matching records are printed as JSON lines in time order (the count on stderr). Pseudonymised actors are looked
up by their pseudonym (``logshield pseudonym alice@example.com``), so the query itself names no one.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

from .._log import sanitize
from ..sinks import Sink, SinkError
from ._common import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, fail, print_err, sink_for_url, time_window

HELP = "every record of one session, actor or request, read from the archive, in time order"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the archive: file:///dir, s3://bucket/prefix or azure://container/prefix")
    parser.add_argument("--session-id")
    parser.add_argument("--actor", help="the actor as logged (a pseudonym when the library wrote one)")
    parser.add_argument("--request-id")
    parser.add_argument("--since", help="only objects that can hold records after this (7d, 24h, ISO date/time)")
    parser.add_argument("--until", help="only records before this")
    parser.add_argument("--workers", type=int, default=8, help="objects fetched at once (default 8)")


def _needles(query: Any) -> list[bytes]:
    """Byte strings a matching line must all contain: each wanted value as JSON writes it (quoted, escaped)."""
    return [json.dumps(v, ensure_ascii=False).encode("utf-8")
            for v in (query.session_id, query.actor, query.request_id) if v is not None]


def scan(sink: Sink, query: Any, *, since: datetime | None = None, until: datetime | None = None,
         workers: int = 8) -> list[dict[str, Any]]:
    """The archive's records matching ``query`` (``presidio_logshield.audit.SessionQuery``), in time order."""
    from presidio_logshield.audit.sessions import matching_lines

    from ..sinks.keys import parse_key
    from ..transforms.compress import decompress

    needles = _needles(query)
    keys = []
    for info in sink.list(""):
        parts = parse_key(info.key)
        if parts is None:
            continue
        partition = datetime.fromisoformat(f"{parts.dt}T{parts.hour}:00:00+00:00")
        # An object is partitioned by its first record's hour: later records may run past it, never before.
        if (until is not None and partition >= until) or (since is not None and partition < since - timedelta(days=1)):
            continue
        keys.append((info.key, parts.compression))

    def records(item: tuple[str, str]) -> list[tuple[str, dict[str, Any]]]:
        key, compression = item
        try:
            body = decompress(sink.get(key), compression)
        except KeyError:
            return []  # deleted since the listing (retention)
        found = []
        candidates = (line for line in body.split(b"\n") if all(needle in line for needle in needles))
        for record in matching_lines(candidates, query):
            when = str(record.get("timestamp", ""))
            if (since is None or when >= since.isoformat()[:19]) and (until is None or when < until.isoformat()[:19]):
                found.append((key, record))
        return found

    out: list[tuple[str, str, int, dict[str, Any]]] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="session") as pool:
        for found in pool.map(records, sorted(keys)):
            for key, record in found:
                out.append((str(record.get("timestamp", "")), key, len(out), record))
    out.sort(key=lambda item: item[:3])
    return [record for *_, record in out]


def run(args: argparse.Namespace) -> int:
    from presidio_logshield.audit.sessions import SessionQuery

    query = SessionQuery(session_id=args.session_id, actor=args.actor, request_id=args.request_id)
    if query.empty:
        fail("give --session-id, --actor or --request-id", EXIT_CONFIG)
    now = datetime.now(timezone.utc)
    since, until = time_window(args.since, args.until, now)
    sink = sink_for_url(args.url)
    with sink:
        try:
            found = scan(sink, query, since=since, until=until, workers=args.workers)
        except SinkError as exc:
            fail(f"cannot read {sink.display_url}: {sanitize(str(exc))}", EXIT_FAILED)
    for record in found:
        sys.stdout.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
    print_err(f"{len(found)} record(s)")
    return EXIT_OK
