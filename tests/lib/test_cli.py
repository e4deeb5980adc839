"""``logshield`` console script: reveal decrypts with the configured key (refusing without), scan counts."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

from presidio_logshield import cli
from presidio_logshield.config import RedactionConfig
from presidio_logshield.redactor import Redactor

KEY = b"r" * 32


class TestReveal:
    def test_refuses_without_key(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """Without LOGSHIELD_ENCRYPTION_KEY(_FILE) reveal exits 2 naming the variable."""
        monkeypatch.delenv("LOGSHIELD_ENCRYPTION_KEY", raising=False)
        monkeypatch.delenv("LOGSHIELD_ENCRYPTION_KEY_FILE", raising=False)
        (tmp_path / "f").write_text("x\n")
        err = io.StringIO()
        assert cli.main(["reveal", str(tmp_path / "f")], stdout=io.StringIO(), stderr=err) == 2
        assert "LOGSHIELD_ENCRYPTION_KEY" in err.getvalue()

    def test_decrypts_json_lines(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """Encrypted tokens in a JSON-lines file come back as the original values."""
        config = RedactionConfig(detection="patterns", default_operator="encrypt", encryption_key=KEY)
        (record, _), = Redactor(config).redact_batch([{"msg": "mail bob@x.com"}])
        path = tmp_path / "app.log"
        path.write_text(json.dumps(record) + "\n")
        monkeypatch.setenv("LOGSHIELD_ENCRYPTION_KEY", "base64:" + base64.b64encode(KEY).decode())
        out = io.StringIO()
        assert cli.main(["reveal", str(path)], stdout=out, stderr=io.StringIO()) == 0
        assert json.loads(out.getvalue()) == {"msg": "mail bob@x.com"}


class TestScan:
    def test_counts_without_values(self, tmp_path: Path) -> None:
        """scan prints counts per entity and never the values."""
        path = tmp_path / "app.log"
        path.write_text('{"m": "bob@x.com"}\nplain 10.0.0.1\nnothing here\n')
        out = io.StringIO()
        assert cli.main(["scan", "--mode", "patterns", str(path)], stdout=out, stderr=io.StringIO()) == 0
        report = json.loads(out.getvalue())
        assert report["lines"] == 3 and report["lines_with_findings"] == 2
        assert report["entities"] == {"EMAIL_ADDRESS": 1, "IP_ADDRESS": 1}
        assert "bob@x.com" not in out.getvalue()
