"""The compliance report as one self-contained HTML page: summary cards, charts, tables. No script, no fetches."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from typing import Any

from .charts import PALETTE, hbar_chart, stacked_hbar_chart, time_bar_chart
from .collect import ArchiveSummary

__all__ = ["VerificationView", "render_report"]

_OUTCOME_COLOURS = {"success": PALETTE[2], "failure": PALETTE[3], "denied": PALETTE[1]}


@dataclass(frozen=True)
class VerificationView:
    """What the report says about integrity: ``status`` is ``intact``, ``problems`` or ``not run``."""

    status: str
    summary: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    #: Which key signed which digests (``verify``'s ``signers``: host, key, first_seq, last_seq, digests, pinned).
    signers: list[dict[str, Any]] = field(default_factory=list)
    #: The ``logshield-agent verify …`` command that checks the same thing.
    reproduce: str = ""


_CSS = """
body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b;background:#f6f7f9}
header{background:#12263a;color:#fff;padding:20px 32px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:2px 0;opacity:.85;font-size:13px}main{padding:20px 32px;max-width:1100px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:12px;margin-bottom:20px}
.card{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.card .n{font-size:24px;font-weight:600}.card .l{font-size:12px;color:#555;text-transform:uppercase}
.ok{color:#00734d}.bad{color:#b3261e}.warn{color:#8a5a00}
section{background:#fff;border-radius:8px;padding:14px 18px;margin-bottom:18px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
section h2{font-size:16px;margin:0 0 8px}section p.note{font-size:12px;color:#555;margin:4px 0 8px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 8px;
border-bottom:1px solid #eee;vertical-align:top}th{color:#555;font-weight:600}td.num{text-align:right}
code{font-size:12px}footer{font-size:12px;color:#555;padding:0 32px 24px}
@media print{body{background:#fff}section,.card{box-shadow:none;border:1px solid #ddd}}
"""


def _card(value: str, label: str, css: str = "") -> str:
    return f'<div class="card"><div class="n {css}">{escape(value)}</div><div class="l">{escape(label)}</div></div>'


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{escape(str(cell))}</td>'
                         for i, cell in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _alert_time(alert: dict[str, Any]) -> datetime | None:
    value = alert.get("window_start") or alert.get("time")
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _alert_label(alert: dict[str, Any]) -> str:
    dimension = alert.get("dimension")
    key = alert.get("key")
    if isinstance(dimension, dict):
        dimension, key = dimension.get("kind"), dimension.get("value", key)
    return f"{dimension or alert.get('kind', 'alert')}={key}" if key is not None else str(dimension or "alert")


def _alert_span(alert: dict[str, Any]) -> str:
    start, end = _alert_time(alert), _parse(alert.get("window_end"))
    if start is None:
        return ""
    return f"{start:%Y-%m-%d %H:%M}" + (f"–{end:%H:%M}" if end is not None and end > start else "")


def _alert_state(alert: dict[str, Any]) -> str:
    state = str(alert.get("state") or "closed")
    if state == "closed" and alert.get("learned"):
        return "closed (level learned)"
    if state == "closed" and alert.get("end_reason") == "shutdown":
        return "closed at shutdown"
    return state


def _parse(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _verification_section(view: VerificationView) -> str:
    css = {"intact": "ok", "problems": "bad"}.get(view.status, "warn")
    headline = {"intact": "Archive intact", "problems": "Integrity problems found"}.get(view.status, "Not verified")
    parts = [f'<section id="verification"><h2>Verification: <span class="{css}">{escape(headline)}</span></h2>']
    if view.summary:
        parts.append(f'<p class="note">{escape(view.summary)}</p>')
    if view.counts:
        parts.append(_table(["finding", "count"], [[k, v] for k, v in sorted(view.counts.items())], {1}))
    if view.signers:
        rows = [[s.get("host", ""), f"{s.get('first_seq')}–{s.get('last_seq')}", s.get("digests", ""),
                 s.get("key", ""), "pinned" if s.get("pinned") else "not pinned"] for s in view.signers[:50]]
        parts.append("<h3>Signed by</h3>" + _table(["host", "digests (seq)", "count", "key", "pinned"], rows, {2}))
    if view.warnings:
        parts.append("<h3>Warnings</h3>" + _table(["kind", "where", "detail"],
                                                  [[w.get("kind", ""), w.get("key", ""), w.get("detail", "")]
                                                   for w in view.warnings[:50]]))
    if view.findings:
        rows = [[f.get("kind", ""), f.get("key") or f.get("object") or "", f.get("detail", "")]
                for f in view.findings[:100]]
        parts.append("<h3>Findings</h3>" + _table(["kind", "object", "detail"], rows))
        if len(view.findings) > 100:
            parts.append(f'<p class="note">… and {len(view.findings) - 100} more (run verify --json).</p>')
    parts.append("</section>")
    return "".join(parts)


def render_report(summary: ArchiveSummary, verification: VerificationView, *, archive: str,
                  generated: datetime | None = None) -> str:
    """The whole page. ``archive`` is a display URL (no secrets)."""
    generated = generated or datetime.now(timezone.utc)
    buckets = summary.buckets()
    step = summary.bucket_hours()
    alert_marks = [(t, _alert_label(a)) for a in summary.alerts if (t := _alert_time(a)) is not None]
    redacted_total = sum(summary.redactions.values())
    ver_css = {"intact": "ok", "problems": "bad"}.get(verification.status, "warn")
    cards = "".join([
        _card(f"{summary.records:,}", "records"),
        _card(f"{summary.objects:,}", "objects"),
        _card(f"{redacted_total:,}", "values redacted"),
        _card(f"{summary.withheld:,}", "records withheld (fail-closed)", "warn" if summary.withheld else ""),
        _card(f"{summary.audit_events:,}", "audit events"),
        _card(f"{len(summary.alerts):,}", "anomaly alerts", "bad" if summary.alerts else "ok"),
        _card(verification.status, "verification", ver_css),
        _card(f"{summary.sealed / summary.records:.0%}" if summary.records else "–", "records chain-sealed"),
    ])
    volume = time_bar_chart(buckets, [("records", summary.per_bucket(summary.records_by_hour)),
                                      ("errors", summary.per_bucket(summary.errors_by_hour))],
                            markers=alert_marks, step_hours=step,
                            title=f"Records per {'hour' if step == 1 else f'{step} hours'} (UTC)")
    entities = hbar_chart(summary.redactions.most_common(), title="Redactions by entity type")
    outcomes = sorted({o for _, counts in summary.audit_by_actor.items() for o in counts},
                      key=lambda o: (o != "success", o))
    colours = {o: _OUTCOME_COLOURS.get(o, PALETTE[(i + 4) % len(PALETTE)]) for i, o in enumerate(outcomes)}
    actors = stacked_hbar_chart([(name, dict(c)) for name, c in summary.top_actors()], keys=outcomes or ["success"],
                                colours=colours, title="Audit events by actor and outcome")
    alert_rows = [[_alert_span(a), _alert_label(a), a.get("count", ""), a.get("baseline", ""),
                   _alert_state(a), a.get("id", "")] for a in summary.alerts]
    services: Counter[str] = summary.services
    body = [
        f"<header><h1>Compliance report</h1><p>Archive <code>{escape(archive)}</code></p>"
        f"<p>Period {summary.since:%Y-%m-%d %H:%M} – {summary.until:%Y-%m-%d %H:%M} UTC · generated "
        f"{generated:%Y-%m-%d %H:%M:%S} UTC</p></header><main>",
        f'<div class="cards">{cards}</div>',
        _verification_section(verification),
        f'<section id="volume"><h2>Log volume</h2><p class="note">Every period is shown; an empty bar is time '
        f"without records in the archive.</p>{volume}</section>",
        f'<section id="redactions"><h2>What was redacted</h2><p class="note">{summary.records_redacted:,} records '
        f"carried personal data or secrets that were replaced before they were written; counts only, never values."
        f"</p>{entities}</section>",
        f'<section id="audit"><h2>Audit events</h2>{actors}'
        + (("<h3>Failed or denied</h3>" + _table(["time", "actor", "action", "resource", "outcome"],
                                                  [[f["time"], f["actor"], f["action"], f["resource"], f["outcome"]]
                                                   for f in summary.audit_failures]))
           if summary.audit_failures else "") + "</section>",
        '<section id="anomalies"><h2>Anomalies</h2>'
        + ('<p class="note">One row per incident, as its latest event left it (an incident still open when the '
           "agent last reported it says so).</p>"
           + _table(["window (UTC)", "what", "count", "baseline", "state", "alert id"], alert_rows, {2, 3})
           if alert_rows else '<p class="note">No anomaly alert in this period.</p>') + "</section>",
        '<section id="sources"><h2>Sources</h2>'
        + _table(["service", "records"], [[s, n] for s, n in services.most_common()], {1})
        + _table(["level", "records"], [[lv, n] for lv, n in summary.levels.most_common()], {1})
        + (f'<p class="note">{summary.non_json_records:,} records were not JSON (counted in volume only).</p>'
           if summary.non_json_records else "")
        + (f'<p class="note bad">{len(summary.unreadable_objects)} objects could not be read: '
           f'{escape(", ".join(summary.unreadable_objects[:5]))}</p>' if summary.unreadable_objects else "")
        + "</section></main>",
        f"<footer>Reproduce the verification with <code>"
        f"{escape(verification.reproduce or 'logshield-agent verify ' + archive)}</code>. "
        "This page contains counts, keys and actor identifiers only — no log content.</footer>",
    ]
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Compliance report — {escape(archive)}</title><style>{_CSS}</style></head><body>"
            + "".join(body) + "</body></html>\n")
