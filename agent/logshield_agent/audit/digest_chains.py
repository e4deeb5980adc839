"""The digests of an archive, host by host: signatures, signers, links, the window's predecessor and freshness.

Per host the digests must form one chain: ``seq`` without holes, each ``previous`` naming the digest before it by
key and SHA-256, each period starting where the previous one ended, each name agreeing with the content. Then:

- **Signatures and signers.** With pinned keys (``--public-key``, several for a rotation) every digest must be
  signed by one of them. Without, each digest is checked against the key published in the archive under its
  fingerprint — which proves the digest is unchanged since it was signed, not who signed it — and a change of
  signing key inside a chain is a finding (``digest-key-change``): an attacker who rewrites the newest digests signs
  them with a key of their own. A key change is accepted only when both keys are pinned. Which key signed which
  digests is reported (``signers``: runs of consecutive digests per key).
- **The predecessor of the first digest checked.** Unless it is the genesis digest (seq 1, no ``previous``), the
  digest before it must be there with the hash it names — also with ``--since`` when the window's first digest is
  the oldest one left (deleting a window's first digests and their objects is not a way to hide them).
- **Freshness.** A host's newest digest must be recent: a digest is written every ``interval`` seconds (the digest
  says which), so by default one older than 2 × interval + 5 minutes (``max_age``) before the end of the window (or
  now) means the agent stopped without its final digest — or that newer digests were deleted. A ``final`` digest
  (written at shutdown) ends a chain: then the host's silence is reported as a warning, and any object stored after
  it that no digest lists is a finding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ..sinks.base import ObjectInfo, Sink
from .digest import DIGEST_PREFIX, PUBLIC_KEYS_PREFIX, parse_digest, parse_digest_key
from .signing import KeyError_, fingerprint, load_public_key, verify_signature

if TYPE_CHECKING:
    from .verify import VerifyReport

__all__ = ["DEFAULT_INTERVAL", "MARGIN", "ChainDigest", "HostChain", "Keyring", "check_digest_chains"]

DEFAULT_INTERVAL = 3600.0  # digests written before they named their interval: the agent's default
MARGIN = 300.0  # seconds added to 2 × interval before the newest digest is overdue


def when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _short(key_id: str | None) -> str:
    return f"{key_id[:24]}…" if key_id and len(key_id) > 24 else str(key_id)


@dataclass
class ChainDigest:
    key: str
    host: str
    seq: int
    end: datetime
    sha256: str
    doc: dict[str, Any]

    @property
    def start(self) -> datetime:
        value = self.doc.get("period_start")
        return when(value) if isinstance(value, str) else self.end

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind") or "period")

    @property
    def signer(self) -> str:
        return str(self.doc.get("public_key") or "")

    @property
    def interval(self) -> float:
        value = self.doc.get("interval")
        return float(value) if isinstance(value, (int, float)) and value > 0 else DEFAULT_INTERVAL

    def overlaps(self, since: datetime | None, until: datetime | None) -> bool:
        return (since is None or self.end >= since) and (until is None or self.start <= until)


@dataclass
class HostChain:
    host: str
    digests: list[ChainDigest] = field(default_factory=list)  # by seq
    in_window: list[ChainDigest] = field(default_factory=list)

    @property
    def newest(self) -> ChainDigest:
        return self.digests[-1]


@dataclass(frozen=True)
class Keyring:
    """Pinned public keys (fingerprint → key) and the ones published in the archive."""

    pinned: Mapping[str, Any]
    published: Mapping[str, Any]

    @classmethod
    def load(cls, pinned: Iterable[bytes], sink: Sink, listing: Mapping[str, ObjectInfo]) -> Keyring:
        keys = {}
        for n, data in enumerate(pinned, 1):
            public = load_public_key(data, f"--public-key #{n}")
            keys[fingerprint(public)] = public
        published = {}
        for key in listing:
            if key.startswith(PUBLIC_KEYS_PREFIX):
                try:
                    public = load_public_key(sink.get(key), key)
                except (KeyError_, KeyError):
                    continue
                published[fingerprint(public)] = public
        return cls(keys, published)

    def signer(self, key_id: str) -> Any:
        return self.pinned.get(key_id) if self.pinned else self.published.get(key_id)


def check_digest_chains(sink: Sink, listing: Mapping[str, ObjectInfo], report: VerifyReport, keyring: Keyring, *,
                        since: datetime | None, until: datetime | None, now: datetime,
                        max_age: float | None) -> dict[str, HostChain]:
    """Every digest of every host, checked; the chains by host. ``max_age``: seconds after which a host's newest
    digest is overdue (None: 2 × its interval + 5 minutes; ``math.inf``: no freshness rule)."""
    chains: dict[str, HostChain] = {}
    for key in sorted(listing):
        if not key.startswith(DIGEST_PREFIX) or key.startswith(PUBLIC_KEYS_PREFIX):
            continue
        digest = _read_digest(sink, key, report, keyring)
        if digest is not None:
            chains.setdefault(digest.host, HostChain(digest.host)).digests.append(digest)
    for chain in chains.values():
        chain.digests.sort(key=lambda d: d.seq)
        chain.in_window = [d for d in chain.digests if d.overlaps(since, until)]
        _check_links(chain, report)
        _check_predecessor(chain, report, windowed=since is not None or until is not None)
        _check_signers(chain, report, keyring)
        _check_fresh(chain, report, reference=min(now, until) if until is not None else now, max_age=max_age)
        report.count("digests", len(chain.digests))
        report.count("digests_in_window", len(chain.in_window))
    if not keyring.pinned and chains:
        keys = sorted({d.signer for chain in chains.values() for d in chain.digests})
        report.warn("key-not-pinned", "", "no --public-key given: digests were checked against the key(s) published "
                    f"in the archive ({', '.join(_short(k) for k in keys)}), which proves they are unchanged since "
                    "they were signed, not who signed them")
    return chains


def _read_digest(sink: Sink, key: str, report: VerifyReport, keyring: Keyring) -> ChainDigest | None:
    named = parse_digest_key(key)
    if named is None:
        report.add("digest-unreadable", key, "not a digest name")
        return None
    host, end, seq = named
    data = sink.get(key)
    try:
        parsed = parse_digest(data)
    except ValueError:
        report.add("digest-unreadable", key, "not a logshield digest")
        return None
    doc = parsed.doc
    key_id = str(doc.get("public_key") or "")
    signer = keyring.signer(key_id)
    if keyring.pinned and signer is None:
        report.add("digest-signature", key, f"signed by {_short(key_id)}, which is not a pinned key")
    elif signer is None:
        report.add("digest-signature", key, f"its public key ({_short(key_id)}) is not in the archive; give "
                   "--public-key")
    elif parsed.signature is None or not verify_signature(signer, parsed.signature, parsed.signed):
        report.add("digest-signature", key, "the signature does not match the content")
    try:
        content_end = when(str(doc.get("period_end")))
    except ValueError:
        content_end = None
    if doc.get("seq") != seq or doc.get("host") != host or content_end != end:
        report.add("digest-order", key, f"the name says host {host} seq {seq} ending {end.isoformat()}, the "
                   f"content says host {doc.get('host')} seq {doc.get('seq')} ending {doc.get('period_end')}")
    return ChainDigest(key, host, seq, end, hashlib.sha256(data).hexdigest(), doc)


def _check_links(chain: HostChain, report: VerifyReport) -> None:
    for before, after in zip(chain.digests, chain.digests[1:], strict=False):
        if after.seq != before.seq + 1:
            report.add("digest-missing", after.key, f"digests {before.seq + 1}..{after.seq - 1} of host "
                       f"{chain.host} are missing")
        previous = after.doc.get("previous") or {}
        if previous.get("key") != before.key or previous.get("sha256") != before.sha256:
            report.add("digest-chain", after.key, f"does not point to {before.key} as it is now (missing, changed "
                       "or reordered digest)")
        if after.doc.get("period_start") != before.doc.get("period_end"):
            report.add("digest-gap", after.key, f"period starts {after.doc.get('period_start')}, the previous "
                       f"ended {before.doc.get('period_end')}")


def _check_predecessor(chain: HostChain, report: VerifyReport, *, windowed: bool) -> None:
    """The oldest digest left must be the genesis digest — or, with a window, lie before the window (then the
    digests before it are outside what was asked for)."""
    first = chain.digests[0]
    previous = first.doc.get("previous")
    if first.seq == 1 and previous is None:
        return
    if windowed and chain.in_window and first is not chain.in_window[0]:
        return  # the window's first digest has its predecessor here, checked as a link
    if windowed and not chain.in_window:
        return
    if not isinstance(previous, dict) or not previous.get("key"):
        report.add("digest-chain", first.key, f"seq {first.seq} names no previous digest: the chain of host "
                   f"{chain.host} was started again")
        return
    report.add("digest-missing", first.key, f"the digest before it ({previous.get('key')}) is missing"
               + (" (the first digest of the window must follow one that is there)" if windowed else ""))


def _check_signers(chain: HostChain, report: VerifyReport, keyring: Keyring) -> None:
    runs: list[dict[str, Any]] = []
    for before, digest in zip([None, *chain.digests], chain.digests, strict=False):
        if runs and runs[-1]["key"] == digest.signer:
            runs[-1].update(last_seq=digest.seq, digests=runs[-1]["digests"] + 1)
        else:
            runs.append({"host": chain.host, "key": digest.signer, "first_seq": digest.seq, "last_seq": digest.seq,
                         "digests": 1, "pinned": digest.signer in keyring.pinned})
        if before is not None and before.signer != digest.signer and not (
                before.signer in keyring.pinned and digest.signer in keyring.pinned):
            report.add("digest-key-change", digest.key, f"signed by {_short(digest.signer)}, the digest before it "
                       f"(seq {before.seq}) by {_short(before.signer)}: a change of signing key is accepted only "
                       "when both keys are pinned (--public-key, once per key)")
    report.signers.extend(runs)


def overdue_after(chain: HostChain, max_age: float | None) -> float:
    """Seconds after which the newest digest of ``chain`` is overdue."""
    return max_age if max_age is not None else 2 * chain.newest.interval + MARGIN


def _check_fresh(chain: HostChain, report: VerifyReport, *, reference: datetime, max_age: float | None) -> None:
    newest = chain.newest
    if newest.kind == "final":
        _note_stopped(chain, report)
        return
    limit = overdue_after(chain, max_age)
    age = (reference - newest.end).total_seconds()
    if age > limit:
        report.add("digest-stale", newest.key, f"the newest digest of host {chain.host} ends "
                   f"{newest.end:%Y-%m-%d %H:%M:%S} UTC, {_duration(age)} before {reference:%Y-%m-%d %H:%M} UTC, "
                   "and is not final; a "
                   f"digest is due every {_duration(newest.interval)}: the agent stopped without its final digest, "
                   f"or newer digests were deleted (--max-digest-age, now {_duration(limit)})")


def _note_stopped(chain: HostChain, report: VerifyReport) -> None:
    newest = chain.newest
    report.warn("host-stopped", newest.key, f"host {chain.host}'s newest digest (seq {newest.seq}, "
                f"{newest.end:%Y-%m-%d %H:%M:%S} UTC) was written when its agent stopped; nothing after it is "
                "vouched for (if the host still ships logs, its later digests are missing)")


def _duration(seconds: float) -> str:
    delta = timedelta(seconds=round(seconds))
    if delta >= timedelta(days=2):
        return f"{delta.days} days"
    if delta >= timedelta(hours=2):
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def expected_hosts(chains: Mapping[str, HostChain], report: VerifyReport, expected: Sequence[str],
                   *, windowed: bool) -> None:
    for host in expected:
        chain = chains.get(host)
        if chain is None:
            report.add("host-missing", f"{DIGEST_PREFIX}host={host}/", f"no digest of host {host} in the archive "
                       "(--expect-host): its digests, and perhaps its logs, were removed — or it never shipped here")
        elif windowed and not chain.in_window:
            report.add("host-missing", f"{DIGEST_PREFIX}host={host}/", f"no digest of host {host} in the window "
                       f"(its newest ends {chain.newest.end:%Y-%m-%d %H:%M} UTC)")
    for host in sorted(set(chains) - set(expected)) if expected else ():
        report.warn("host-unexpected", f"{DIGEST_PREFIX}host={host}/", f"host {host} has digests but was not named "
                    "with --expect-host")
