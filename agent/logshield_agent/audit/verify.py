"""``verify_archive``: from the archive alone, prove it complete and unaltered — or say exactly what is not.

1. Digests, per host (``digest_chains.py``): signatures (against pinned keys, else the keys published beside the
   digests — a warning), signing-key changes, names agreeing with contents, the sequence without holes, each
   ``previous`` link, the periods following one another, the predecessor of the oldest digest checked, freshness.
2. Objects listed in digests: present, same SHA-256 and size, same number of lines; per source file, byte ranges
   that follow one another (a hole is data that never reached the store).
3. Objects in the store that no digest lists: read too (their lines and record chains are checked like the others,
   so a copy shows as duplicated sequence numbers). Such an object is a finding when its bytes are those of a listed
   object (a copy), when a later part of the same file is listed, when it was stored (by the store's clock, five
   minutes' slack) before a digest that does not list it, when it was stored after its host's
   final digest, when its host has no digest chain at all, or when it has waited longer than ``max_digest_age``;
   otherwise it is *pending* (the next digest will list it).
4. Record chains inside and across objects (``chains.py``): gaps, duplicates, reorderings, edits, downgrades, lost
   tails before a restart — each stream by the kind of chain it declares.
5. Nothing to check is not a pass: an empty archive (wrong URL or prefix), or a window without a digest, is a
   finding; so is a host named with ``expected_hosts`` that has no digest.

What this proves, and what it does not:

- Every object a digest lists is there, unaltered, with all its lines, and nothing was inserted between them; each
  host's chain of digests is unbroken from its genesis (or from the digest before the window) to its newest digest.
- Objects stored after the newest digest are vouched for by no signature yet. They are checked for consistency
  (hashes cannot be compared; lines and record chains are), and a fabricated object with a self-consistent new
  unkeyed chain passes as pending until its host's next digest is due — then it is a finding.
- Deleting a host's newest digests (and their objects) is seen only once the next digest is overdue
  (``max_digest_age``, by default twice the digest interval plus five minutes); if the newest digest left is a
  final one, the chain looks like an agent that stopped, which is reported as a warning, not a failure. Deleting a
  whole host is seen only with ``expected_hosts``. S3 Object Lock / Azure immutability prevent all of these.
- Without pinned keys, a digest proves only that it is unchanged since it was signed: an attacker who replaces a
  chain's key *from its first digest on* is not seen (a change of key within a chain is).
- Unkeyed record chains (``sha256``) detect accidents, not forgery; HMAC chains need ``LOGSHIELD_CHAIN_KEY``.

Findings name objects, digests, sequence numbers and line numbers — never log content.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ..sinks.base import ObjectInfo, Sink
from ..sinks.keys import parse_key
from ..transforms.compress import decompress
from .chains import ChainJoiner, ObjectChains, object_segments
from .digest import DIGEST_PREFIX
from .digest_chains import HostChain, Keyring, check_digest_chains, expected_hosts, overdue_after

__all__ = ["Finding", "VerifyReport", "verify_archive"]

ALERTS_PREFIX = "_alerts/"
CHECK_PREFIX = "_check/"  # logshield-agent check's probe objects (commands/check.py)
_ALERT_ID = re.compile(r"/([^/]+?)(?:\.\d+)?\.json$")
#: An object stored this long before a digest that does not list it counts as added (stores stamp an object when
#: its upload starts or ends; the agent lists it once the store has acknowledged it).
ACK_SLACK = timedelta(seconds=300)


@dataclass(frozen=True)
class Finding:
    kind: str
    key: str
    detail: str


@dataclass
class VerifyReport:
    findings: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    #: Which key signed which digests: runs of consecutive digests per host and key.
    signers: list[dict[str, Any]] = field(default_factory=list)
    #: Per host: digests, the newest's seq, end and kind.
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, kind: str, key: str, detail: str) -> None:
        self.findings.append(Finding(kind, key, detail))

    def warn(self, kind: str, key: str, detail: str) -> None:
        self.warnings.append(Finding(kind, key, detail))

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    @property
    def findings_by_kind(self) -> dict[str, int]:
        by_kind: dict[str, int] = {}
        for finding in self.findings:
            by_kind[finding.kind] = by_kind.get(finding.kind, 0) + 1
        return by_kind

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "counts": dict(sorted(self.counts.items())), "findings_by_kind": self.findings_by_kind,
                "findings": [asdict(f) for f in self.findings], "warnings": [asdict(w) for w in self.warnings],
                "signers": self.signers, "hosts": self.hosts}


def verify_archive(sink: Sink, *, public_key: bytes | None = None, public_keys: Sequence[bytes] = (),
                   since: datetime | None = None, until: datetime | None = None, chain_key: bytes | None = None,
                   workers: int = 8, progress: Callable[[int, int], None] | None = None,
                   now: datetime | None = None, max_digest_age: float | None = None,
                   expect_hosts: Sequence[str] = (), require_keyed_chains: bool = False) -> VerifyReport:
    """Check the archive behind ``sink``; ``since``/``until`` limit it to digests whose period overlaps.

    ``public_key``/``public_keys``: the pinned signing keys (PEM), several for a rotation. ``max_digest_age``:
    seconds after which a host's newest digest is overdue (default 2 × its interval + 5 min; ``math.inf``: never).
    ``expect_hosts``: hosts that must have digests. ``now`` is for tests."""
    now = now or datetime.now(timezone.utc)
    windowed = since is not None or until is not None
    report = VerifyReport()
    listing: dict[str, ObjectInfo] = {info.key: info for info in sink.list("")}
    keyring = Keyring.load([*([public_key] if public_key is not None else []), *public_keys], sink, listing)
    chains = check_digest_chains(sink, listing, report, keyring, since=since, until=until, now=now,
                                 max_age=max_digest_age)
    expected_hosts(chains, report, expect_hosts, windowed=windowed)
    in_window = [d for chain in chains.values() for d in chain.in_window]
    entries = _digest_entries(in_window, report)
    _check_byte_ranges(entries, report, windowed=windowed)
    undigested = _check_undigested(listing, entries, chains, report, since, until, now, max_digest_age)
    joiner = ChainJoiner(chain_key, windowed=windowed, require_keyed=require_keyed_chains)
    _check_objects(sink, listing, entries, undigested, report, joiner, workers, progress)
    for issue in joiner.check():
        report.add(issue.kind, issue.key, f"stream {issue.stream}: {issue.detail}")
    if joiner.unverifiable:
        report.warn("chain-key-missing", "", f"{len(joiner.unverifiable)} stream(s) are HMAC chains whose links "
                    "were not checked (unverifiable without LOGSHIELD_CHAIN_KEY; sequence numbers were checked): "
                    + ", ".join(sorted(joiner.unverifiable)[:5]) + (" …" if len(joiner.unverifiable) > 5 else ""))
    if joiner.unkeyed and chain_key is not None and not require_keyed_chains:
        report.warn("chain-unkeyed", "", f"{len(joiner.unkeyed)} stream(s) declare unkeyed SHA-256 chains, which "
                    "anyone can recompute (only the digests protect them): " + ", ".join(sorted(joiner.unkeyed)[:5])
                    + (" …" if len(joiner.unkeyed) > 5 else ""))
    report.counts["streams_unverifiable"] = len(joiner.unverifiable)
    _nothing_checked(listing, chains, report, windowed=windowed, since=since, until=until)
    alerts = {m.group(1) for key in listing if key.startswith(ALERTS_PREFIX) and (m := _ALERT_ID.search(key))}
    report.counts["alerts"] = len(alerts)
    report.hosts = {host: {"digests": len(c.digests), "in_window": len(c.in_window), "newest_seq": c.newest.seq,
                           "newest_end": c.newest.end.isoformat(), "newest_kind": c.newest.kind}
                    for host, c in sorted(chains.items())}
    return report


def _nothing_checked(listing: dict[str, ObjectInfo], chains: dict[str, HostChain], report: VerifyReport, *,
                     windowed: bool, since: datetime | None, until: datetime | None) -> None:
    if not listing:
        report.add("archive-empty", "", "nothing to verify: the archive has no digest and no object (a wrong URL or "
                   "prefix?)")
    elif not chains and not any(parse_key(key) for key in listing):
        report.add("archive-empty", "", "nothing to verify: no digest and no log object under this URL (a wrong "
                   "prefix?)")
    elif windowed and chains and not any(c.in_window for c in chains.values()):
        span = f"{since:%Y-%m-%d %H:%M} UTC" if since else "the start"
        span += f" – {until:%Y-%m-%d %H:%M} UTC" if until else " on"
        report.add("no-digest-in-window", "", f"no digest covers {span}: nothing in that window is vouched for "
                   "(digests are written every interval even when idle, so an agent that ran then wrote some)")


def _digest_entries(digests: Iterable[Any], report: VerifyReport) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    for digest in digests:
        for entry in digest.doc.get("objects", ()):
            known = entries.get(entry["key"])
            if known is None:
                entries[entry["key"]] = entry | {"_digest": digest.key, "_host": digest.host}
            elif known["sha256"] != entry["sha256"]:
                report.add("digest-conflict", entry["key"], f"listed with two different hashes ({known['_digest']}, "
                           f"{digest.key})")
    return entries


def _check_byte_ranges(entries: dict[str, dict[str, Any]], report: VerifyReport, *, windowed: bool) -> None:
    by_source: dict[str, list[dict[str, Any]]] = {}
    for entry in entries.values():
        by_source.setdefault(entry["source"], []).append(entry)
    for source, items in by_source.items():
        items.sort(key=lambda e: (e["byte_start"], e["byte_end"]))
        if items[0]["byte_start"] != 0 and not windowed:
            report.add("byte-gap", items[0]["key"], f"source {source[:12]}: bytes 0..{items[0]['byte_start']} "
                       "were never stored")
        for before, after in zip(items, items[1:], strict=False):
            if after["byte_start"] > before["byte_end"]:
                report.add("byte-gap", after["key"], f"source {source[:12]}: bytes {before['byte_end']}.."
                           f"{after['byte_start']} missing between {before['key']} and this object")
            elif after["byte_start"] < before["byte_end"]:
                report.add("byte-overlap", after["key"], f"source {source[:12]}: overlaps {before['key']}")


def _check_undigested(listing: dict[str, ObjectInfo], entries: dict[str, dict[str, Any]],
                      chains: dict[str, HostChain], report: VerifyReport, since: datetime | None,
                      until: datetime | None, now: datetime, max_age: float | None) -> list[str]:
    """Objects no digest (of the window) lists: findings, or pending. Returns every such key, to be read."""
    ranges: dict[str, list[tuple[int, int, str]]] = {}
    for entry in entries.values():
        ranges.setdefault(entry["source"][:12], []).append((entry["byte_start"], entry["byte_end"], entry["key"]))
    listed_anywhere = {o["key"] for chain in chains.values() for d in chain.digests for o in d.doc.get("objects", ())}
    orphans: dict[str, int] = {}
    out: list[str] = []
    for key, info in sorted(listing.items()):
        parts = parse_key(key)
        if parts is None or key in entries:
            if parts is None and key.startswith(CHECK_PREFIX):
                report.warn("check-probe", key, "a probe object `logshield-agent check` could not delete")
            elif parts is None and not key.startswith((DIGEST_PREFIX, ALERTS_PREFIX)):
                report.warn("unknown-object", key, "not a log object, digest or alert")
            continue
        partition = datetime.fromisoformat(f"{parts.dt}T{parts.hour}:00:00+00:00")
        if (since is not None and partition < since - timedelta(hours=1)) or (until is not None and partition > until):
            continue
        if key in listed_anywhere:
            continue  # listed by a digest outside the window
        out.append(key)
        chain = chains.get(parts.host)
        modified = info.last_modified
        same_file = ranges.get(parts.fingerprint12, ())
        twin = next((k for start, end, k in same_file if parts.start < end and start < parts.end), None)
        # One file's batches are shipped one at a time, in order: a later part of the file in a digest means this
        # part was acknowledged before it, so that digest (or an earlier one) would list it.
        later = next((k for start, _, k in same_file if start >= parts.end), None)
        if chain is None:
            orphans[parts.host] = orphans.get(parts.host, 0) + 1
        elif twin is not None:
            report.add("object-added", key, f"in no digest, and its bytes are those of {twin} (a copy)")
        elif later is not None:
            report.add("object-added", key, f"in no digest, although a later part of the same file ({later}) is")
        elif modified is not None and modified + ACK_SLACK <= chain.newest.end:
            report.add("object-added", key, f"stored {modified:%Y-%m-%d %H:%M:%S} UTC, but the later digests of "
                       f"host {parts.host} (up to seq {chain.newest.seq}) do not list it")
        elif chain.newest.kind == "final":
            report.add("object-added", key, f"in no digest, and stored after host {parts.host}'s final digest "
                       f"(seq {chain.newest.seq}, its agent stopped {chain.newest.end:%Y-%m-%d %H:%M:%S} UTC)")
        elif modified is not None and (now - modified).total_seconds() > overdue_after(chain, max_age):
            report.add("object-undigested", key, f"stored {modified:%Y-%m-%d %H:%M:%S} UTC and still in no digest: "
                       "the digest that should list it is missing")
        else:
            report.count("pending")  # shipped after the newest digest: the next digest will list it
    for host, n in sorted(orphans.items()):
        report.add("no-digests", f"service=*/host={host}/", f"{n} log object(s) of host {host} but no digest of "
                   "it at all: nothing proves what they should contain (its digests were removed, or it ran with "
                   "LOGSHIELD_DIGEST=off)")
    return out


# -- objects ------------------------------------------------------------------------------------------------------
def _check_objects(sink: Sink, listing: dict[str, ObjectInfo], entries: dict[str, dict[str, Any]],
                   undigested: list[str], report: VerifyReport, joiner: ChainJoiner, workers: int,
                   progress: Callable[[int, int], None] | None) -> None:
    work: list[tuple[str, dict[str, Any] | None]] = [(key, entry) for key, entry in sorted(entries.items())
                                                     if key in listing]
    work += [(key, None) for key in undigested]
    for key in sorted(set(entries) - set(listing)):
        report.add("object-missing", key, f"listed in {entries[key]['_digest']} but not in the store")
    done = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="verify") as pool:
        for findings, chains, stats in pool.map(lambda item: _check_object(sink, *item, joiner.chain_key), work):
            report.findings.extend(findings)
            if chains is not None:
                joiner.add(chains)
            for name, n in stats.items():
                report.count(name, n)
            done += 1
            if progress is not None:
                progress(done, len(work))


def _check_object(sink: Sink, key: str, entry: dict[str, Any] | None, chain_key: bytes | None
                  ) -> tuple[list[Finding], ObjectChains | None, dict[str, int]]:
    """One object: against its digest entry when it has one (else only its own consistency)."""
    findings: list[Finding] = []
    try:
        data = sink.get(key)
    except KeyError:
        return ([Finding("object-missing", key, "deleted while verifying")] if entry else []), None, {}
    stats = {"objects": 1, "bytes": len(data)} if entry else {"objects_undigested": 1, "bytes": len(data)}
    if entry is not None:
        sha = hashlib.sha256(data).hexdigest()
        if sha != entry["sha256"] or len(data) != entry["size"]:
            findings.append(Finding("object-modified", key, f"sha256 {sha[:16]}… size {len(data)}, the digest says "
                                    f"{entry['sha256'][:16]}… size {entry['size']}"))
    parts = parse_key(key)
    try:
        body = decompress(data, parts.compression if parts else "none")
    except Exception as exc:  # noqa: BLE001 - a damaged object can make any codec raise anything
        findings.append(Finding("object-unreadable", key, f"cannot decompress ({type(exc).__name__})"))
        return findings, None, stats
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    stats["lines"] = len(lines)
    if entry is not None and len(lines) != entry["lines"]:
        kind = "lines-removed" if len(lines) < entry["lines"] else "lines-added"
        findings.append(Finding(kind, key, f"{len(lines)} lines, the digest says {entry['lines']}"))
    chains = object_segments(key, lines, chain_key)
    stats["sealed_records"] = chains.sealed
    findings.extend(Finding(issue.kind, issue.key, f"stream {issue.stream}: {issue.detail}")
                    for issue in chains.issues)
    return findings, chains, stats

