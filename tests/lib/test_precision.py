"""Precision on real, PII-free log lines: at most 2% of the corpus lines may change, in either mode.

Remaining changes, inspected line by line (2026-11-23, 4 of 2,261 lines = 0.18% in full mode, 2 in patterns):
- two ``mDNS_RegisterInterface ... (FE80:0000:...)`` lines: link-local IPv6 addresses. Every IP is redacted by
  policy (personal data under GDPR); the corpus was filtered for IPv4 only. True positives.
- ``Linux agpgart interface v0.100 (c) Dave Jones`` and ``... Support v0.97 (c) Adam Belay`` (full mode): real
  person names in kernel copyright banners. True positives.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from presidio_logshield.config import RedactionConfig
from presidio_logshield.redactor import Redactor

CORPUS = Path("/work/shared/corpus/loghub_clean_lines.txt")
MAX_CHANGED = 0.02

pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason="shared corpus not present")


class TestCorpusPrecision:
    @pytest.mark.parametrize("mode", ["patterns", "full"])
    def test_at_most_two_percent_of_clean_lines_change(self, mode: str) -> None:
        """Timestamps, ids, versions, paths, host names and plain URLs stay; ≤ 2% of lines change."""
        lines = CORPUS.read_text(encoding="utf-8").splitlines()
        redactor = Redactor(RedactionConfig(detection=mode))
        outputs = redactor.redact_batch(lines)
        changed = [(line, out) for line, (out, _) in zip(lines, outputs, strict=True) if out != line]
        rate = len(changed) / len(lines)
        print(f"{mode}: {len(changed)}/{len(lines)} lines changed ({rate:.2%})")
        assert rate <= MAX_CHANGED, "\n".join(f"{a!r}\n  -> {b!r}" for a, b in changed)
