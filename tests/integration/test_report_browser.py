"""The compliance report renders in a real headless browser (Debian's Chromium driven by playwright-core)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from logshield_agent.report import VerificationView, collect, render_report

from tests.agent.report_archive import START, build

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCRIPT = REPO / "tests" / "browser" / "render_check.mjs"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path(CHROMIUM).exists() or shutil.which("node") is None
                       or not (REPO / "node_modules" / "playwright-core").is_dir(),
                       reason="needs Debian's chromium (make install installs it as root) and node_modules"),
]


def png_colours(path: Path) -> int:
    """Number of distinct colours in an 8-bit RGB(A) PNG (a blank page has one or two)."""
    data = path.read_bytes()
    pos, chunks, width, height, channels = 8, [], 0, 0, 4
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, _, colour_type = struct.unpack(">IIBB", body[:10])
            channels = {2: 3, 6: 4}[colour_type]
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels + 1
    colours = set()
    for row in range(0, height, 7):  # unfiltered bytes are enough to tell blank from drawn
        line = raw[row * stride + 1:(row + 1) * stride]
        colours.update(line[i:i + 3] for i in range(0, len(line), channels * 5))
    return len(colours)


class TestReportInBrowser:
    def test_charts_render_without_requests_or_errors(self, tmp_path):
        """Every chart has a drawn size and the expected visible bars; the page fetches nothing and logs no error."""
        sink = build(tmp_path / "archive")
        summary = collect(sink, START, START + timedelta(hours=4))
        page = tmp_path / "report.html"
        page.write_text(render_report(summary, VerificationView("intact", "ok"), archive="file:///archive"))
        shot = tmp_path / "report.png"
        done = subprocess.run(["node", str(SCRIPT), page.as_uri(), str(shot)], capture_output=True, text=True,
                              timeout=120, cwd=REPO, env=dict(os.environ, CHROMIUM=CHROMIUM))
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["errors"] == [] and result["requests"] == [page.as_uri()]
        charts = {c["label"]: c for c in result["charts"]}
        volume = charts["Records per hour (UTC)"]
        assert volume["width"] > 600 and volume["height"] > 150
        assert volume["bars"] == 3  # records in hours 0 and 2, errors in hour 0; the empty hour draws nothing
        assert volume["markers"] == 1  # the credit-card alert
        assert charts["Redactions by entity type"]["bars"] == 2
        assert charts["Audit events by actor and outcome"]["bars"] == 3  # alice ok; bob ok + failure
        assert "Archive intact" in result["text"] and "<script>bob</script>" in result["text"]
        assert png_colours(shot) > 20


def render(page: Path, shot: Path) -> dict:
    done = subprocess.run(["node", str(SCRIPT), page.as_uri(), str(shot)], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env=dict(os.environ, CHROMIUM=CHROMIUM))
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


class TestReportOfATamperedArchive:
    def test_verification_and_incidents_as_rendered(self, tmp_path):
        """`report` over a real digested archive with one object deleted and an incident stored as open and closed
        events: the page (exit 1) shows the failure, who signed, the warnings, one row and one marker for the
        incident with its final count and state, and the footer's command with the pinned key."""
        from logshield_agent.alerts import StoreDestination, alert_document
        from logshield_agent.alerts.detector import Alert
        from logshield_agent.alerts.document import encode_alert
        from logshield_agent.cli import main
        from logshield_agent.sinks.local import LocalDirSink

        from tests.agent.test_digests import T0, Clock, app_logs, digests_in, ship, writer

        (tmp_path / "logs").mkdir()
        app_logs(tmp_path / "logs", 120)
        ship(tmp_path, writer(tmp_path, Clock(T0 + 10)))
        store = tmp_path / "store"
        sink = LocalDirSink(store)
        for state, revision, count, windows in (("open", 1, 300, 1), ("closed", 2, 18000, 60)):
            alert = Alert("actor", "mallory@corp.example", T0 + 1800, T0 + 1800 + 60 * windows, 60, windows, count,
                          300, T0 + 1800, 0.0, 5.0, 100, {}, [], state=state, revision=revision,
                          end_reason="quiet" if state == "closed" else None)
            document = alert_document(alert, host="testhost", detected_at=T0 + 2000)
            StoreDestination(sink).send(document, encode_alert(document))
        middle = sorted((o for _, d in digests_in(store) for o in d["objects"]), key=lambda o: o["first_record"]["seq"])[2]
        (store / middle["key"]).unlink()  # from the middle of the stream: a gap, not a lost tail
        pem = tmp_path / "state" / "digest-public-key.pem"
        out = tmp_path / "report.html"
        since = datetime.fromtimestamp(T0 - 3600, timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
        assert main(["report", f"file://{store}", "--since", since, "--out", str(out), "--public-key", str(pem)]) == 1
        result = render(out, tmp_path / "report.png")
        text = result["text"]
        assert result["errors"] == [] and result["requests"] == [out.as_uri()]
        assert "Integrity problems found" in text and "object-missing" in text and "chain-gap" in text
        assert "Signed by" in text and "host-stopped" in text
        assert text.count("actor=sha256:") == 1 and "mallory" not in text  # one row, the key hashed
        assert "18000" in text and "closed" in text
        volume = next(c for c in result["charts"] if c["label"].startswith("Records per"))
        assert volume["markers"] == 1
        assert f"--public-key {pem}" in text
