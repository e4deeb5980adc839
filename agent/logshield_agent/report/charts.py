"""Inline SVG charts: no script, no external file, readable when printed. Every label is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape

__all__ = ["PALETTE", "hbar_chart", "stacked_hbar_chart", "time_bar_chart"]

#: Colour-blind-safe (Okabe-Ito) colours.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
_FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10.0 * magnitude


def _fmt(n: float) -> str:
    return f"{n:,.0f}" if n >= 10 or n == int(n) else f"{n:.1f}"


def time_bar_chart(hours: Sequence[datetime], series: Sequence[tuple[str, dict[datetime, int]]], *,
                   markers: Sequence[tuple[datetime, str]] = (), title: str, step_hours: int = 1, width: int = 900,
                   height: int = 240) -> str:
    """One bar per time bucket of ``step_hours`` (series overlaid, first is the total), with vertical markers
    (e.g. alerts) placed in the bucket they fall in."""
    left, right, top, bottom = 56, 12, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(hours))
    peak = _nice_max(max((max(values.values(), default=0) for _, values in series), default=0))
    slot = plot_w / n
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
             f'width="100%" {_FONT} data-chart="time">', f"<title>{escape(title)}</title>"]
    for i in range(5):
        y = top + plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">'
                     f"{_fmt(peak * (4 - i) / 4)}</text>")
    for s, (name, values) in enumerate(series):
        colour = PALETTE[s % len(PALETTE)]
        for i, hour in enumerate(hours):
            count = values.get(hour, 0)
            if not count:
                continue
            h = plot_h * count / peak
            x = left + i * slot + slot * 0.1
            parts.append(f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{max(slot * 0.8, 1):.1f}" '
                         f'height="{h:.1f}" fill="{colour}"><title>{escape(name)} {hour:%Y-%m-%d %H}:00 UTC: '
                         f"{count:,}</title></rect>")
    label_every = max(1, n // 8)
    for i, hour in enumerate(hours):
        if i % label_every == 0 and i < n - label_every / 2:
            x = left + i * slot + slot / 2
            parts.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle" fill="#555">'
                         f"{hour:%m-%d %H}h</text>")
    index = {hour: i for i, hour in enumerate(hours)}
    for when, label in markers:
        hour = when.replace(minute=0, second=0, microsecond=0)
        i = index.get(hour - timedelta(hours=hour.hour % step_hours))
        if i is None:
            continue
        x = left + i * slot + slot / 2
        parts.append(f'<line class="marker" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" '
                     f'stroke="{PALETTE[3]}" stroke-width="2" stroke-dasharray="4 3"><title>{escape(label)}</title>'
                     "</line>")
    legend_x = left
    for s, (name, _) in enumerate(series):
        parts.append(f'<rect x="{legend_x}" y="{height - 14}" width="10" height="10" '
                     f'fill="{PALETTE[s % len(PALETTE)]}"/><text x="{legend_x + 14}" y="{height - 5}">'
                     f"{escape(name)}</text>")
        legend_x += 24 + 7 * len(name)
    if markers:
        parts.append(f'<line x1="{legend_x}" x2="{legend_x + 12}" y1="{height - 9}" y2="{height - 9}" '
                     f'stroke="{PALETTE[3]}" stroke-width="2" stroke-dasharray="4 3"/>'
                     f'<text x="{legend_x + 16}" y="{height - 5}">anomaly alert</text>')
    parts.append("</svg>")
    return "".join(parts)


def hbar_chart(items: Sequence[tuple[str, int]], *, title: str, width: int = 900, colour: str = PALETTE[0]) -> str:
    """Horizontal bars, largest first, each labelled with its name and count."""
    return stacked_hbar_chart([(name, {"": count}) for name, count in items], keys=[""], title=title,
                              width=width, colours={"": colour})


def stacked_hbar_chart(items: Sequence[tuple[str, dict[str, int]]], *, keys: Sequence[str], title: str,
                       width: int = 900, colours: dict[str, str] | None = None) -> str:
    """One horizontal bar per item, split into ``keys`` (e.g. outcomes), with a legend when there are several."""
    label_w, right, row_h, top = 290, 70, 26, 8
    legend = bool(items) and (len(keys) > 1 or bool(keys and keys[0]))
    height = top + row_h * max(1, len(items)) + (26 if legend else 6)
    peak = _nice_max(max((sum(parts.values()) for _, parts in items), default=0))
    plot_w = width - label_w - right
    colours = colours or {key: PALETTE[i % len(PALETTE)] for i, key in enumerate(keys)}
    out = [f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
           f'width="100%" {_FONT} data-chart="bars">', f"<title>{escape(title)}</title>"]
    if not items:
        out.append(f'<text x="{label_w}" y="{top + 16}" fill="#555">none in this period</text>')
    for row, (name, parts) in enumerate(items):
        y = top + row * row_h
        shown = name if len(name) <= 36 else name[:14] + "…" + name[-21:]  # pseudonyms differ at the end
        out.append(f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end"><title>{escape(name)}</title>'
                   f"{escape(shown)}</text>")
        x = float(label_w)
        for key in keys:
            count = parts.get(key, 0)
            if not count:
                continue
            w = max(plot_w * count / peak, 1.0)
            label = f"{name}: {key + ' ' if key else ''}{count:,}"
            out.append(f'<rect class="bar" x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" '
                       f'fill="{colours.get(key, PALETTE[0])}"><title>{escape(label)}</title></rect>')
            x += w
        out.append(f'<text x="{x + 6:.1f}" y="{y + 16}" fill="#333">{sum(parts.values()):,}</text>')
    if legend:
        lx, ly = label_w, height - 8
        for key in keys:
            out.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{colours.get(key, PALETTE[0])}"/>'
                       f'<text x="{lx + 14}" y="{ly}">{escape(key)}</text>')
            lx += 30 + 7 * len(key)
    out.append("</svg>")
    return "".join(out)
