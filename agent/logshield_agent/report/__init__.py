"""The compliance report: one self-contained HTML page built from an archive (and its verification)."""

from .collect import ArchiveSummary, collect
from .render import VerificationView, render_report

__all__ = ["ArchiveSummary", "VerificationView", "collect", "render_report"]
