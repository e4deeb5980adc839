"""`make demo` end to end: the story it prints holds — every line shipped, nothing raw in the bucket, the archive
verifies, the burst raises an alert and the report is written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_tells_the_whole_story() -> None:
    done = subprocess.run([sys.executable, "-m", "demo"], cwd=REPO, capture_output=True, text=True, timeout=300)
    out = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    shipped = re.search(r"the agent shipped (\d+) of (\d+) lines .* exit status 0", out)
    assert shipped and shipped.group(1) == shipped.group(2) and int(shipped.group(1)) > 0, out
    assert "raw secrets, e-mails or card numbers in the bucket: 0" in out
    assert "verdict: INTACT" in out
    alerts = re.search(r"(\d+) alert\(s\) in s3://", out)
    assert alerts and int(alerts.group(1)) >= 1, out[out.find("8. anomaly"):]
    assert re.search(r"audit\s+\d+ in \d+s", out), "the burst of invoice reads is the alert"
    assert "report written to" in out and "verification: intact" in out
