"""``verify_archive``: from the archive alone, prove it complete and unaltered — or say exactly what is not.

1. Digests, per host: each signature (against a pinned public key, else the key published beside the digests — a
   warning), each key matching its content (seq, period end), the sequence without holes, each ``previous`` link
   equal to the previous digest's key and SHA-256, and the periods following one another.
2. Objects listed in digests: present, same SHA-256 and size, same number of lines; per source file, byte ranges
   that follow one another (a hole is data that never reached the store).
3. Objects in the store that no digest lists although a later digest exists: added.
4. Record chains inside and across objects (``chains.py``): gaps, reorderings, edits, lost tails before a restart.

Findings name objects, digests, sequence numbers and line numbers — never log content.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..sinks.base import ObjectInfo, Sink
from ..sinks.keys import parse_key
from ..transforms.compress import decompress
from .chains import ChainJoiner, ObjectChains, object_segments
from .digest import DIGEST_PREFIX, PUBLIC_KEYS_PREFIX, parse_digest, parse_digest_key
from .signing import KeyError_, fingerprint, load_public_key, verify_signature

__all__ = ["Finding", "VerifyReport", "verify_archive"]

ALERTS_PREFIX = "_alerts/"


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

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, kind: str, key: str, detail: str) -> None:
        self.findings.append(Finding(kind, key, detail))

    def warn(self, kind: str, key: str, detail: str) -> None:
        self.warnings.append(Finding(kind, key, detail))

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def to_json(self) -> dict[str, Any]:
        by_kind: dict[str, int] = {}
        for finding in self.findings:
            by_kind[finding.kind] = by_kind.get(finding.kind, 0) + 1
        return {"ok": self.ok, "counts": dict(sorted(self.counts.items())), "findings_by_kind": by_kind,
                "findings": [asdict(f) for f in self.findings], "warnings": [asdict(w) for w in self.warnings]}


@dataclass
class _Digest:
    key: str
    host: str
    seq: int
    end: datetime
    sha256: str
    doc: dict[str, Any]


def _when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def verify_archive(sink: Sink, *, public_key: bytes | None = None, since: datetime | None = None,
                   until: datetime | None = None, chain_key: bytes | None = None, workers: int = 8,
                   progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Check the archive behind ``sink``; ``since``/``until`` limit it to digests whose period overlaps."""
    report = VerifyReport()
    listing: dict[str, ObjectInfo] = {info.key: info for info in sink.list("")}
    pinned = load_public_key(public_key, "--public-key") if public_key is not None else None
    if pinned is None:
        report.warn("key-not-pinned", "", "no --public-key given: digests are checked against the key published "
                    "in the archive itself, which proves integrity but not who signed")
    digests = _check_digests(sink, listing, report, pinned, since, until)
    if not report.counts.get("digests") and any(parse_key(key) for key in listing):
        report.add("no-digests", "", "the archive holds log objects but no digest: nothing proves what it should "
                   "contain (was LOGSHIELD_DIGEST off?)")
    entries = _digest_entries(digests, report)
    _check_byte_ranges(entries, report, windowed=since is not None)
    _check_undigested(listing, entries, digests, report, since, until)
    joiner = ChainJoiner(chain_key, windowed=since is not None)
    _check_objects(sink, listing, entries, report, joiner, workers, progress)
    for issue in joiner.check():
        report.add(issue.kind, issue.key, f"stream {issue.stream}: {issue.detail}")
    for stream in sorted(joiner.unverifiable):
        report.warn("chain-key-missing", "", f"stream {stream} is an HMAC chain: give LOGSHIELD_CHAIN_KEY to check "
                    "its links (sequence numbers were checked)")
    report.counts["alerts"] = sum(1 for key in listing if key.startswith(ALERTS_PREFIX))
    return report


# -- digests ------------------------------------------------------------------------------------------------------
def _check_digests(sink: Sink, listing: dict[str, ObjectInfo], report: VerifyReport, pinned: Any,
                   since: datetime | None, until: datetime | None) -> list[_Digest]:
    published: dict[str, Any] = {}
    for key in listing:
        if key.startswith(PUBLIC_KEYS_PREFIX):
            try:
                public = load_public_key(sink.get(key), key)
            except (KeyError_, KeyError):
                continue
            published[fingerprint(public)] = public
    by_host: dict[str, list[_Digest]] = {}
    for key in sorted(listing):
        if not key.startswith(DIGEST_PREFIX) or key.startswith(PUBLIC_KEYS_PREFIX):
            continue
        parsed_key = parse_digest_key(key)
        if parsed_key is None:
            report.add("digest-unreadable", key, "not a digest name")
            continue
        host, end, seq = parsed_key
        data = sink.get(key)
        try:
            parsed = parse_digest(data)
        except ValueError:
            report.add("digest-unreadable", key, "not a logshield digest")
            continue
        doc = parsed.doc
        signer = pinned if pinned is not None else published.get(doc.get("public_key", ""))
        if pinned is not None and doc.get("public_key") != fingerprint(pinned):
            report.add("digest-signature", key, f"signed by {doc.get('public_key')}, not the pinned key")
        elif signer is None:
            report.add("digest-signature", key, "its public key is not in the archive; give --public-key")
        elif parsed.signature is None or not verify_signature(signer, parsed.signature, parsed.signed):
            report.add("digest-signature", key, "the signature does not match the content")
        if doc.get("seq") != seq or doc.get("host") != host or _when(doc["period_end"]) != end:
            report.add("digest-order", key, f"the name says host {host} seq {seq} ending {end.isoformat()}, the "
                       f"content says host {doc.get('host')} seq {doc.get('seq')} ending {doc.get('period_end')}")
        by_host.setdefault(host, []).append(_Digest(key, host, seq, end, hashlib.sha256(data).hexdigest(), doc))
    kept: list[_Digest] = []
    for host, chain in by_host.items():
        chain.sort(key=lambda d: d.seq)
        for before, after in zip(chain, chain[1:], strict=False):
            if after.seq != before.seq + 1:
                report.add("digest-missing", after.key, f"digests {before.seq + 1}..{after.seq - 1} of host {host} "
                           "are missing")
            previous = after.doc.get("previous") or {}
            if previous.get("key") != before.key or previous.get("sha256") != before.sha256:
                report.add("digest-chain", after.key, f"does not point to {before.key} as it is now (missing, "
                           "changed or reordered digest)")
            if after.doc.get("period_start") != before.doc.get("period_end"):
                report.add("digest-gap", after.key, f"period starts {after.doc.get('period_start')}, the previous "
                           f"ended {before.doc.get('period_end')}")
        if chain and chain[0].seq != 1 and chain[0].doc.get("previous") and since is None:
            first = chain[0]
            if first.doc["previous"].get("key") not in listing:
                report.add("digest-missing", first.key, f"the digest before it ({first.doc['previous'].get('key')}) "
                           "is missing")
        report.count("digests", len(chain))
        kept.extend(d for d in chain if _overlaps(d, since, until))
    return kept


def _overlaps(digest: _Digest, since: datetime | None, until: datetime | None) -> bool:
    start = _when(digest.doc.get("period_start", digest.end.isoformat()))
    return (since is None or digest.end >= since) and (until is None or start <= until)


def _digest_entries(digests: list[_Digest], report: VerifyReport) -> dict[str, dict[str, Any]]:
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


def _check_undigested(listing: dict[str, ObjectInfo], entries: dict[str, dict[str, Any]], digests: list[_Digest],
                      report: VerifyReport, since: datetime | None, until: datetime | None) -> None:
    newest: dict[str, datetime] = {}
    for digest in digests:
        newest[digest.host] = max(newest.get(digest.host, digest.end), digest.end)
    ranges: dict[str, list[tuple[int, int, str]]] = {}
    for entry in entries.values():
        ranges.setdefault(entry["source"][:12], []).append((entry["byte_start"], entry["byte_end"], entry["key"]))
    for key, info in listing.items():
        parts = parse_key(key)
        if parts is None or key in entries:
            if parts is None and not key.startswith((DIGEST_PREFIX, ALERTS_PREFIX)):
                report.warn("unknown-object", key, "not a log object, digest or alert")
            continue
        partition = datetime.fromisoformat(f"{parts.dt}T{parts.hour}:00:00+00:00")
        if (since is not None and partition < since) or (until is not None and partition > until):
            continue
        covered = newest.get(parts.host)
        modified = info.last_modified
        twin = next((k for start, end, k in ranges.get(parts.fingerprint12, ())
                     if parts.start < end and start < parts.end), None)
        if twin is not None:
            report.add("object-added", key, f"in no digest, and its bytes are those of {twin} (a copy)")
        elif covered is not None and (modified is None or modified <= covered):
            report.add("object-added", key, "in the store but in no digest, although a later digest exists")
        else:
            report.count("pending")  # shipped after the newest digest: the next digest will list it


# -- objects ------------------------------------------------------------------------------------------------------
def _check_objects(sink: Sink, listing: dict[str, ObjectInfo], entries: dict[str, dict[str, Any]],
                   report: VerifyReport, joiner: ChainJoiner, workers: int,
                   progress: Callable[[int, int], None] | None) -> None:
    present = [entry for key, entry in sorted(entries.items()) if key in listing]
    for key in sorted(set(entries) - set(listing)):
        report.add("object-missing", key, f"listed in {entries[key]['_digest']} but not in the store")
    done = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="verify") as pool:
        for result in pool.map(lambda e: _check_object(sink, e, joiner.chain_key), present):
            findings, chains, stats = result
            report.findings.extend(findings)
            if chains is not None:
                joiner.add(chains)
            for name, n in stats.items():
                report.count(name, n)
            done += 1
            if progress is not None:
                progress(done, len(present))


def _check_object(sink: Sink, entry: dict[str, Any], chain_key: bytes | None
                  ) -> tuple[list[Finding], ObjectChains | None, dict[str, int]]:
    key = entry["key"]
    findings: list[Finding] = []
    try:
        data = sink.get(key)
    except KeyError:
        return [Finding("object-missing", key, "deleted while verifying")], None, {}
    stats = {"objects": 1, "bytes": len(data)}
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
    if len(lines) != entry["lines"]:
        kind = "lines-removed" if len(lines) < entry["lines"] else "lines-added"
        findings.append(Finding(kind, key, f"{len(lines)} lines, the digest says {entry['lines']}"))
    chains = object_segments(key, lines, chain_key)
    stats["sealed_records"] = chains.sealed
    findings.extend(Finding(issue.kind, issue.key, f"stream {issue.stream}: {issue.detail}")
                    for issue in chains.issues)
    return findings, chains, stats
