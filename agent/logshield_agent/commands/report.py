"""``logshield-agent report URL --since 7d --out report.html``: the compliance report as one HTML page."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from .._log import sanitize
from ..sinks import SinkError
from ._common import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, fail, parse_when, sink_for_url

HELP = "write a self-contained HTML compliance report (volume, redactions, audit events, anomalies, verification)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the archive: file:///dir, s3://bucket/prefix or azure://container/prefix")
    parser.add_argument("--since", default="7d", help="start of the period: 7d, 24h, 30m, 2w or an ISO date/time "
                        "(default 7d)")
    parser.add_argument("--until", default=None, help="end of the period (default now)")
    parser.add_argument("--out", default="report.html", help="output file (default report.html; '-' for stdout)")


def run(args: argparse.Namespace) -> int:
    from ..report import VerificationView, collect, render_report

    now = datetime.now(timezone.utc)
    try:
        until = parse_when(args.until, now) if args.until else now
        since = parse_when(args.since, now)
    except ValueError as exc:
        fail(str(exc), EXIT_CONFIG)
    if since >= until:
        fail(f"--since ({since:%Y-%m-%d %H:%M}) must be before --until ({until:%Y-%m-%d %H:%M})", EXIT_CONFIG)
    sink = sink_for_url(args.url)
    with sink:
        try:
            summary = collect(sink, since, until)
        except SinkError as exc:
            fail(f"cannot read {sink.display_url}: {sanitize(str(exc))}", EXIT_FAILED)
        verification = VerificationView("not run", "verification is not available in this build")
        page = render_report(summary, verification, archive=sink.display_url, generated=now)
    if args.out == "-":
        sys.stdout.write(page)
    else:
        out = Path(args.out)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, out)
        print(f"report written to {out} ({summary.records:,} records, {summary.objects:,} objects, "
              f"{len(summary.alerts)} alerts, verification: {verification.status})")
    return EXIT_OK
