"""The digest writer: a critical pipeline observer that turns acknowledged objects into signed, chained digests.

State in the state directory:

- ``digest-ledger.jsonl``: one line per acknowledged object since the last digest, appended and fsynced before
  the checkpoint advances (a crash replay may append a key twice; digests list it once);
- ``digests.json``: ``{"version": 1, "seq", "previous": {"key", "sha256"}, "period_start", "pending"}``, replaced
  atomically. ``pending`` is a digest decided but not yet known to be stored: after a crash it is rebuilt from the
  same ledger lines, byte for byte, and put again (an identical existing object counts as stored).

A digest is written when the writer starts (``kind: start``, before the pipeline ships anything — or, when the store
cannot be reached then, at the first tick or batch after), when the period ends (``period``; the interval is
``LOGSHIELD_DIGEST_INTERVAL``, aligned to the clock) and at shutdown or the end of ``--once`` (``final``). So every
object of a run is stored after a digest of that run, and an object stored after a ``final`` digest with no digest
after it was not shipped by this host's agent. If the state directory is lost, the chain continues from the newest
digest of this host in the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._durable import fsync_dir, write_synced
from ..pipeline import PipelineObserver, ShippedBatch
from ..sinks.base import Sink, SinkError
from .digest import (
    DIGEST_FORMAT,
    DIGEST_KINDS,
    DIGEST_PREFIX,
    PUBLIC_KEYS_PREFIX,
    DigestEntry,
    digest_key,
    encode_digest,
    parse_digest,
    parse_digest_key,
    record_position,
)
from .signing import DigestKey, public_pem

__all__ = ["LEDGER_FILE", "STATE_FILE", "DigestWriter"]

log = logging.getLogger("logshield_agent.digest")

LEDGER_FILE = "digest-ledger.jsonl"
STATE_FILE = "digests.json"
STATE_VERSION = 1


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat()


class DigestWriter(PipelineObserver):
    critical = True

    def __init__(self, sink: Sink, state_dir: Path, *, host: str, key: DigestKey, interval: float = 3600.0,
                 wall: Callable[[], float] = time.time) -> None:
        self.sink = sink
        self.state_dir = Path(state_dir)
        self.host = host
        self.key = key
        self.interval = interval
        self.wall = wall
        self.agent_start = wall()
        self.ledger_path = self.state_dir / LEDGER_FILE
        self.state_path = self.state_dir / STATE_FILE
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state = self._load_state()
        self._key_published = False
        self._repair_ledger()
        self._started = False  # the start digest is written by open(), not here: making a writer touches no store

    def _start(self) -> None:
        """The ``start`` digest (after finishing one a crash left pending). A store that cannot be reached now is
        tried again at the next tick or batch; the digest lists what was acknowledged until then."""
        try:
            pending = self.state.get("pending")
            if pending and not (pending.get("kind") == "start" and pending["agent_start"] == self.agent_start):
                self._finish_pending()  # a crash's, then ours
                pending = None
            if pending:
                self._finish_pending()
            else:
                self.write_digest(self.wall(), kind="start")
        except (SinkError, OSError) as exc:
            log.warning("cannot write the start digest yet; trying again", extra={"error": type(exc).__name__})
            return
        self._started = True

    # -- observer hooks
    def open(self, wall: float) -> None:
        if not self._started:
            self._start()

    def batch_shipped(self, batch: ShippedBatch) -> None:
        if not self._started:
            self._start()
        body = batch.body
        first = body[:body.find(b"\n") + 1]
        last = body[body.rfind(b"\n", 0, len(body) - 1) + 1:]
        entry = DigestEntry(key=batch.key, sha256=batch.sha256, size=batch.size, lines=batch.lines,
                            source=batch.source, byte_start=batch.byte_start, byte_end=batch.byte_end,
                            first_event=batch.first_event, last_event=batch.last_event,
                            first_record=record_position(first), last_record=record_position(last))
        line = json.dumps(entry.to_json(), separators=(",", ":")).encode() + b"\n"
        fd = os.open(self.ledger_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def tick(self, wall: float) -> None:
        if not self._started:
            self._start()
        if self.state.get("pending"):
            self._finish_pending()
        boundary = (self.state["period_start"] // self.interval + 1) * self.interval
        if wall >= boundary:
            self.write_digest(wall // self.interval * self.interval)

    def close(self, wall: float) -> None:
        if self.state.get("pending"):
            self._finish_pending()
        self.write_digest(wall, kind="final")

    # -- digests
    def write_digest(self, period_end: float, *, kind: str = "period") -> str:
        """Decide the next digest (durably), store it, then advance the chain. Returns its key."""
        if kind not in DIGEST_KINDS:
            raise ValueError(f"unknown digest kind {kind!r}")
        if self.state.get("previous") is None and self.state["seq"] == 0:
            self._continue_chain_from_store()
        lines = self._ledger_lines()
        period_end = float(max(int(period_end), self.state["period_start"]))  # whole seconds, as in the key
        seq = self.state["seq"] + 1
        self.state["pending"] = {
            "seq": seq, "key": digest_key(self.host, datetime.fromtimestamp(period_end, timezone.utc), seq),
            "period_start": self.state["period_start"], "period_end": period_end, "agent_start": self.agent_start,
            "previous": self.state.get("previous"), "count": len(lines), "kind": kind,
            "interval": int(self.interval) if float(self.interval).is_integer() else self.interval,
        }
        self._save_state()
        return self._finish_pending()

    def _finish_pending(self) -> str:
        pending = self.state["pending"]
        lines = self._ledger_lines()[:pending["count"]]
        entries: dict[str, dict[str, Any]] = {}
        for line in lines:
            entry = json.loads(line)
            entries.setdefault(entry["key"], entry)  # a crash replay acknowledges a batch twice
        doc: dict[str, Any] = {"format": DIGEST_FORMAT, "host": self.host, "seq": pending["seq"]}
        if "kind" in pending:  # (a digest decided by an older agent is rebuilt as it was)
            doc.update(kind=pending["kind"], interval=pending["interval"])
        doc.update({
            "period_start": _iso(pending["period_start"]), "period_end": _iso(pending["period_end"]),
            "agent_start": _iso(pending["agent_start"]), "previous": pending["previous"],
            "public_key": self.key.fingerprint, "objects": list(entries.values()),
        })
        data = encode_digest(doc, self.key.sign)
        sha = hashlib.sha256(data).hexdigest()
        self._publish_public_key()
        self.sink.put(pending["key"], data, sha256=sha, metadata={"logshield-digest-seq": str(pending["seq"])},
                      content_type="application/json")
        log.info("digest written", extra={"key": pending["key"], "objects": len(entries)})
        self.state.update(seq=pending["seq"], previous={"key": pending["key"], "sha256": sha},
                          period_start=pending["period_end"], pending=None)
        self._save_state()
        self._drop_ledger_lines(pending["count"])
        return pending["key"]

    def _publish_public_key(self) -> None:
        """The public key next to the digests, for convenience: verification should pin it (--public-key)."""
        if self._key_published:
            return
        pem = public_pem(self.key.public)
        name = self.key.fingerprint.split(":", 1)[1]
        self.sink.put(f"{PUBLIC_KEYS_PREFIX}{name}.pem", pem, sha256=hashlib.sha256(pem).hexdigest(), metadata={},
                      content_type="application/x-pem-file")
        self._key_published = True

    def _continue_chain_from_store(self) -> None:
        """No local state: find this host's newest digest in the store, so the chain does not restart."""
        newest: tuple[int, str] | None = None
        for info in self.sink.list(f"{DIGEST_PREFIX}host={self.host}/"):
            parsed = parse_digest_key(info.key)
            if parsed is not None and parsed[0] == self.host and (newest is None or parsed[2] > newest[0]):
                newest = (parsed[2], info.key)
        if newest is None:
            return
        data = self.sink.get(newest[1])
        doc = parse_digest(data).doc
        end = datetime.fromisoformat(doc["period_end"]).timestamp()
        self.state.update(seq=newest[0], previous={"key": newest[1], "sha256": hashlib.sha256(data).hexdigest()},
                          period_start=min(end, self.state["period_start"]))
        log.warning("digest state not found locally; continuing the chain from the store",
                    extra={"previous": newest[1]})

    # -- files
    def _load_state(self) -> dict[str, Any]:
        with contextlib.suppress(FileNotFoundError):
            data = json.loads(self.state_path.read_bytes())
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"{self.state_path}: unknown version {data.get('version')!r}")
            return data
        return {"version": STATE_VERSION, "seq": 0, "previous": None, "period_start": float(int(self.agent_start)),
                "pending": None}

    def _save_state(self) -> None:
        tmp = self.state_dir / f".{STATE_FILE}.{os.getpid()}.tmp"
        write_synced(tmp, json.dumps(self.state, separators=(",", ":")).encode(), flags=os.O_TRUNC, mode=0o600)
        os.replace(tmp, self.state_path)
        fsync_dir(self.state_dir)

    def _ledger_lines(self) -> list[bytes]:
        try:
            data = self.ledger_path.read_bytes()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        return [line for line in lines[:-1] if line.strip()]  # a torn last line (crash mid-append) is ignored

    def _repair_ledger(self) -> None:
        """A crash mid-append leaves a torn last line; its batch was not acknowledged and will be offered again."""
        with contextlib.suppress(FileNotFoundError):
            data = self.ledger_path.read_bytes()
            if data and not data.endswith(b"\n"):
                self._drop_ledger_lines(0)

    def _drop_ledger_lines(self, count: int) -> None:
        rest = self._ledger_lines()[count:]
        tmp = self.state_dir / f".{LEDGER_FILE}.{os.getpid()}.tmp"
        write_synced(tmp, b"".join(line + b"\n" for line in rest), flags=os.O_TRUNC, mode=0o600)
        os.replace(tmp, self.ledger_path)
        fsync_dir(self.state_dir)
