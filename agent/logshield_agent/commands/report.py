"""``logshield-agent report URL --since 7d --out report.html``: the compliance report as one HTML page."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from .._log import sanitize
from ..sinks import Sink, SinkError
from ._common import EXIT_FAILED, EXIT_OK, fail, sink_for_url, time_window

if TYPE_CHECKING:
    from ..report import VerificationView

HELP = "write a self-contained HTML compliance report (volume, redactions, audit events, anomalies, verification)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .verify import add_verify_options

    parser.add_argument("url", help="the archive: file:///dir, s3://bucket/prefix or azure://container/prefix")
    parser.add_argument("--since", default="7d", help="start of the period: 7d, 24h, 30m, 2w or an ISO date/time "
                        "(default 7d)")
    parser.add_argument("--until", default=None, help="end of the period (default now)")
    parser.add_argument("--out", default="report.html", help="output file (default report.html; '-' for stdout)")
    add_verify_options(parser)
    parser.add_argument("--no-verify", action="store_true", help="leave out the integrity check (faster)")


def verification(sink: Sink, args: argparse.Namespace, since: datetime, until: datetime) -> VerificationView:
    """Run ``verify`` over the period and keep what the page shows."""
    from ..report import VerificationView
    from .verify import reproduce_command, run_verification

    if args.no_verify:
        return VerificationView("not run", "verification left out (--no-verify)")
    report = run_verification(sink, args, since=since, until=until)
    counts = report.counts
    summary = (f"{counts.get('digests_in_window', 0)} digests of {len(report.hosts)} host(s) and "
               f"{counts.get('objects', 0)} listed objects ({counts.get('sealed_records', 0):,} chained records) "
               "checked")
    if counts.get("objects_undigested"):
        summary += f", and {counts['objects_undigested']} objects no digest lists yet"
    return VerificationView("intact" if report.ok else "problems", summary, report.findings_by_kind,
                            [{"kind": f.kind, "key": f.key, "detail": f.detail} for f in report.findings],
                            warnings=[{"kind": w.kind, "key": w.key, "detail": w.detail} for w in report.warnings],
                            signers=list(report.signers),
                            reproduce=reproduce_command(sink.display_url, args, since=since, until=until))


def run(args: argparse.Namespace) -> int:
    from ..report import collect, render_report

    now = datetime.now(timezone.utc)
    since, until = time_window(args.since, args.until, now, default_until=now)
    assert since is not None and until is not None  # --since has a default
    sink = sink_for_url(args.url)
    with sink:
        try:
            summary = collect(sink, since, until)
        except SinkError as exc:
            fail(f"cannot read {sink.display_url}: {sanitize(str(exc))}", EXIT_FAILED)
        try:
            checked = verification(sink, args, since, until)
        except SinkError as exc:
            fail(f"cannot verify {sink.display_url}: {sanitize(str(exc))}", EXIT_FAILED)
        page = render_report(summary, checked, archive=sink.display_url, generated=now)
    if args.out == "-":
        sys.stdout.write(page)
        return EXIT_FAILED if checked.status == "problems" else EXIT_OK
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    print(f"report written to {out} ({summary.records:,} records, {summary.objects:,} objects, "
              f"{len(summary.alerts)} alerts, verification: {checked.status})")
    # The page is written either way; the exit status says whether the archive verified (as `verify` does).
    return EXIT_FAILED if checked.status == "problems" else EXIT_OK
