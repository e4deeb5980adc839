"""``logshield-agent verify URL``: check an archive's digest chain, its objects and their record chains."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from .._log import sanitize
from ..sinks import SinkError
from ._common import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, fail, parse_when, sink_for_url

HELP = "verify an archive: digest signatures and chain, every object's hash and lines, record chains"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the archive: file:///dir, s3://bucket/prefix or azure://container/prefix")
    parser.add_argument("--public-key", type=Path, help="the digest signers' public key (PEM) to pin; without it "
                        "the key published in the archive is used and a warning says so")
    parser.add_argument("--since", help="only digests whose period ends after this (7d, 24h, ISO date/time)")
    parser.add_argument("--until", help="only digests whose period starts before this")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--workers", type=int, default=8, help="objects fetched and checked at once (default 8)")


def public_key_arg(path: Path | None) -> bytes | None:
    """The bytes of ``--public-key``, or a usage error naming it."""
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"--public-key: cannot read {path}: {exc.strerror}", EXIT_CONFIG)


def chain_key_from_env() -> bytes | None:
    """``LOGSHIELD_CHAIN_KEY[_FILE]``, decoded as the library does."""
    from presidio_logshield.config import ConfigError, load_handler_config

    try:
        key = load_handler_config().chain_key
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    return key.get_secret_value() if key is not None else None


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


def run(args: argparse.Namespace) -> int:
    from ..audit import verify_archive
    from ..audit.signing import KeyError_

    now = datetime.now(timezone.utc)
    try:
        since = parse_when(args.since, now) if args.since else None
        until = parse_when(args.until, now) if args.until else None
    except ValueError as exc:
        fail(str(exc), EXIT_CONFIG)
    public_key = public_key_arg(args.public_key)
    chain_key = chain_key_from_env()
    sink = sink_for_url(args.url)
    started = time.monotonic()
    with sink:
        try:
            report = verify_archive(sink, public_key=public_key, since=since, until=until, chain_key=chain_key,
                                    workers=args.workers, progress=_Progress())
        except KeyError_ as exc:
            fail(str(exc), EXIT_CONFIG)
        except SinkError as exc:
            fail(f"cannot read {sink.display_url}: {sanitize(str(exc))}", EXIT_FAILED)
    elapsed = time.monotonic() - started
    if args.json:
        print(json.dumps(report.to_json() | {"archive": sink.display_url, "seconds": round(elapsed, 3)}, indent=2))
        return EXIT_OK if report.ok else EXIT_FAILED
    counts = report.counts
    megabytes = counts.get("bytes", 0) / 1e6
    print(f"{sink.display_url}: {counts.get('digests', 0)} digests, {counts.get('objects', 0)} objects "
          f"({megabytes:,.1f} MB stored, {counts.get('lines', 0):,} lines, {counts.get('sealed_records', 0):,} "
          f"chained records) in {elapsed:.1f}s ({counts.get('objects', 0) / max(elapsed, 1e-9):,.0f} objects/s, "
          f"{megabytes / max(elapsed, 1e-9):,.1f} MB/s)")
    if counts.get("pending"):
        print(f"{counts['pending']} objects shipped after the newest digest (listed by the next one)")
    for warning in report.warnings:
        print(f"warning: {warning.kind}: {warning.key + ': ' if warning.key else ''}{warning.detail}")
    for finding in report.findings:
        print(f"FAIL {finding.kind}: {finding.key}: {finding.detail}")
    print("verdict: INTACT" if report.ok else f"verdict: {len(report.findings)} PROBLEM(S) FOUND")
    return EXIT_OK if report.ok else EXIT_FAILED
