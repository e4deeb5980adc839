"""``logshield-agent verify URL``: check an archive's digest chain, its objects and their record chains."""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._log import sanitize
from ..sinks import Sink, SinkError
from ._common import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, fail, sink_for_url, time_window

if TYPE_CHECKING:
    from ..audit import VerifyReport

HELP = "verify an archive: digest signatures and chain, every object's hash and lines, record chains"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def add_verify_options(parser: argparse.ArgumentParser) -> None:
    """The options ``verify`` and ``report`` share."""
    parser.add_argument("--public-key", type=Path, action="append", default=[], metavar="PEM",
                        help="a digest signer's public key to pin; repeat it for every key of a rotation (a change "
                        "of key within a chain is accepted only between pinned keys). Without it the keys published "
                        "in the archive are used and a warning says so")
    parser.add_argument("--expect-host", action="append", default=[], metavar="HOST",
                        help="a host that must have digests (repeatable, or comma-separated): a host whose digests "
                        "were all deleted is otherwise not seen")
    parser.add_argument("--max-digest-age", type=duration_arg, default=None, metavar="AGE",
                        help="a host's newest digest older than this (before --until, else now) is a finding unless "
                        "it is final: seconds or 90m/3h/2d, 'off' for no limit (default 2 × the digest interval + 5m)")
    parser.add_argument("--require-keyed-chains", action="store_true",
                        help="with LOGSHIELD_CHAIN_KEY: a stream with an unkeyed (sha256) record chain is a finding, "
                        "not a warning")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the archive: file:///dir, s3://bucket/prefix or azure://container/prefix")
    add_verify_options(parser)
    parser.add_argument("--since", help="only digests whose period ends after this (7d, 24h, ISO date/time)")
    parser.add_argument("--until", help="only digests whose period starts before this")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--workers", type=int, default=8, help="objects fetched and checked at once (default 8)")


def duration_arg(value: str) -> float:
    if value.strip().lower() in ("off", "none", "inf"):
        return math.inf
    match = _DURATION.match(value)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {value!r} (seconds, or e.g. 90m, 3h, 2d, or off)")
    return float(match.group(1)) * _SECONDS[match.group(2)]


def public_key_arg(paths: Path | list[Path] | None) -> list[bytes]:
    """The bytes of each ``--public-key``, or a usage error naming it."""
    out = []
    for path in [paths] if isinstance(paths, Path) else paths or []:
        try:
            out.append(path.read_bytes())
        except OSError as exc:
            fail(f"--public-key: cannot read {path}: {exc.strerror}", EXIT_CONFIG)
    return out


def expected_hosts_arg(values: list[str]) -> list[str]:
    return [host.strip() for value in values for host in value.split(",") if host.strip()]


def chain_key_from_env() -> bytes | None:
    """``LOGSHIELD_CHAIN_KEY[_FILE]``, decoded as the library does."""
    from presidio_logshield.config import ConfigError, load_handler_config

    try:
        key = load_handler_config().chain_key
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    return key.get_secret_value() if key is not None else None


def run_verification(sink: Sink, args: argparse.Namespace, *, since: datetime | None, until: datetime | None,
                     workers: int = 8, progress: Any = None) -> VerifyReport:
    """``verify_archive`` with the shared options; key problems are usage errors."""
    from ..audit import verify_archive
    from ..audit.signing import KeyError_

    try:
        return verify_archive(sink, public_keys=public_key_arg(args.public_key), since=since, until=until,
                              chain_key=chain_key_from_env(), workers=workers, progress=progress,
                              max_digest_age=args.max_digest_age, expect_hosts=expected_hosts_arg(args.expect_host),
                              require_keyed_chains=args.require_keyed_chains)
    except KeyError_ as exc:
        fail(str(exc), EXIT_CONFIG)


def reproduce_command(url: str, args: argparse.Namespace, *, since: datetime | None, until: datetime | None) -> str:
    """The ``logshield-agent verify …`` command line that checks what was checked (shell-quoted)."""
    words = ["logshield-agent", "verify", url]
    for path in args.public_key or []:
        words += ["--public-key", str(path)]
    for host in expected_hosts_arg(args.expect_host or []):
        words += ["--expect-host", host]
    if args.max_digest_age is not None:
        words += ["--max-digest-age", "off" if math.isinf(args.max_digest_age) else f"{args.max_digest_age:g}"]
    if args.require_keyed_chains:
        words.append("--require-keyed-chains")
    if since is not None:
        words += ["--since", since.strftime("%Y-%m-%dT%H:%M:%SZ")]
    if until is not None:
        words += ["--until", until.strftime("%Y-%m-%dT%H:%M:%SZ")]
    return " ".join(shlex.quote(w) for w in words)


class _Progress:
    """``verified 120/4000 objects`` on stderr, rewritten in place — only when stderr is a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.enabled and (now - self.last > 0.2 or done == total):
            self.last = now
            width = 30
            filled = width * done // max(total, 1)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} objects")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def _signer_lines(report: VerifyReport) -> list[str]:
    lines = []
    for run in report.signers:
        span = f"seq {run['first_seq']}" + (f"–{run['last_seq']}" if run["last_seq"] != run["first_seq"] else "")
        lines.append(f"signed: host {run['host']} digests {span} by {run['key']}"
                     f" ({'pinned' if run['pinned'] else 'NOT pinned'})")
    return lines


def run(args: argparse.Namespace) -> int:
    now = datetime.now(timezone.utc)
    since, until = time_window(args.since, args.until, now)
    sink = sink_for_url(args.url)
    started = time.monotonic()
    with sink:
        try:
            report = run_verification(sink, args, since=since, until=until, workers=args.workers,
                                      progress=_Progress())
        except SinkError as exc:
            fail(f"cannot read {sink.display_url}: {sanitize(str(exc))}", EXIT_FAILED)
    elapsed = time.monotonic() - started
    if args.json:
        print(json.dumps(report.to_json() | {"archive": sink.display_url, "seconds": round(elapsed, 3)}, indent=2))
        return EXIT_OK if report.ok else EXIT_FAILED
    counts = report.counts
    megabytes = counts.get("bytes", 0) / 1e6
    objects = counts.get("objects", 0) + counts.get("objects_undigested", 0)
    print(f"{sink.display_url}: {counts.get('digests', 0)} digests of {len(report.hosts)} host(s), "
          f"{counts.get('objects', 0)} listed objects"
          + (f" and {counts['objects_undigested']} in no digest" if counts.get("objects_undigested") else "")
          + f" ({megabytes:,.1f} MB stored, {counts.get('lines', 0):,} lines, {counts.get('sealed_records', 0):,} "
          f"chained records) in {elapsed:.1f}s ({objects / max(elapsed, 1e-9):,.0f} objects/s, "
          f"{megabytes / max(elapsed, 1e-9):,.1f} MB/s)")
    for line in _signer_lines(report):
        print(line)
    if counts.get("pending"):
        print(f"{counts['pending']} objects shipped after the newest digest (read and checked; the next digest will "
              "list them)")
    for warning in report.warnings:
        print(f"warning: {warning.kind}: {warning.key + ': ' if warning.key else ''}{warning.detail}")
    for finding in report.findings:
        print(f"FAIL {finding.kind}: {finding.key + ': ' if finding.key else ''}{finding.detail}")
    if not report.ok:
        print(f"verdict: {len(report.findings)} PROBLEM(S) FOUND")
    elif counts.get("streams_unverifiable"):
        print(f"verdict: INTACT, except that the links of {counts['streams_unverifiable']} HMAC record chain(s) "
              "were not checked (no LOGSHIELD_CHAIN_KEY)")
    else:
        print("verdict: INTACT")
    return EXIT_OK if report.ok else EXIT_FAILED
