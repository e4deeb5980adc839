"""``logshield`` console script: reveal decrypts with the configured key (refusing without), scan counts."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pytest

from presidio_logshield import cli
from presidio_logshield.audit import verify_chain
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

    @pytest.fixture
    def encrypted(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
        config = RedactionConfig(detection="patterns", default_operator="encrypt", encryption_key=KEY)
        (record, _), = Redactor(config).redact_batch([{"msg": "mail bob@x.com"}])
        path = tmp_path / "app.log"
        path.write_text(json.dumps(record) + "\n")
        monkeypatch.setenv("LOGSHIELD_ENCRYPTION_KEY", "base64:" + base64.b64encode(KEY).decode())
        monkeypatch.delenv("LOGSHIELD_AUDIT_FILE", raising=False)
        return path

    def test_decrypts_json_lines_after_an_audit_record(self, encrypted: Path, tmp_path: Path) -> None:
        """Encrypted tokens come back as the original values; the audit file says who, what, why and how many."""
        out, audit = io.StringIO(), tmp_path / "audit.log"
        code = cli.main(["reveal", str(encrypted), "--audit-file", str(audit), "--actor", "dpo@corp",
                         "--reason", "case 7"], stdout=out, stderr=io.StringIO())
        assert code == 0 and json.loads(out.getvalue()) == {"msg": "mail bob@x.com"}
        started, done = (json.loads(line) for line in audit.read_text().splitlines())
        assert started["actor"] == "dpo@corp" and started["audit"]["action"] == "logshield.reveal"
        assert started["audit"]["outcome"] == "started" and started["audit"]["details"]["reason"] == "case 7"
        assert done["audit"]["details"]["values_revealed"] == 1 and "bob@x.com" not in audit.read_text()
        assert verify_chain(audit.read_text().splitlines()) == []

    NASTY = ['pa"ss\\word\n2', "tab\tquote' \u00e9 \u2713 </script> \\u0041", "\x00\x1f end"]

    def test_json_lines_stay_json_with_nasty_values(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """Decrypted values with quotes, backslashes, newlines and control characters go into JSON lines escaped:
        every line still parses, to exactly the original values; the rest of the line keeps its bytes."""
        config = RedactionConfig(detection="patterns", operators={"SECRET": "encrypt"}, encryption_key=KEY)
        original = {"password": self.NASTY[0], "token": self.NASTY[1], "secret": self.NASTY[2], "note": "kept as is",
                    "n": 1}
        (record, _), = Redactor(config).redact_batch([original])
        assert all(":enc:" in record[k] for k in ("password", "token", "secret"))
        path = tmp_path / "app.log"
        line = json.dumps(record, separators=(", ", ": "))  # python-json-logger's spacing: not what reveal would write
        path.write_text(line + "\n")
        monkeypatch.setenv("LOGSHIELD_ENCRYPTION_KEY", "base64:" + base64.b64encode(KEY).decode())
        out = io.StringIO()
        assert cli.main(["reveal", str(path), "--audit-file", str(tmp_path / "audit.log")], stdout=out,
                        stderr=io.StringIO()) == 0
        [revealed] = out.getvalue().splitlines()
        assert json.loads(revealed) == original
        assert revealed.endswith(', "note": "kept as is", "n": 1}')

    def test_text_lines_get_the_plain_value(self, encrypted: Path, tmp_path: Path) -> None:
        """A line that is not JSON gets the decrypted text as it is."""
        token = json.loads(encrypted.read_text())["msg"].split("mail ")[1]
        text = tmp_path / "text.log"
        text.write_text(f"plain line for {token} here\n")
        out = io.StringIO()
        cli.main(["reveal", str(text), "--audit-file", str(tmp_path / "audit.log")], stdout=out, stderr=io.StringIO())
        assert out.getvalue() == "plain line for bob@x.com here\n"

    def test_reason_is_redacted_and_the_os_user_recorded(self, encrypted: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
        """The --reason is redacted before it is stored; the OS user and uid are recorded beside the claimed actor,
        and LOGSHIELD_AUDIT_FILE is the audit file when --audit-file is not given."""
        import pwd
        audit = tmp_path / "audit.log"
        monkeypatch.setenv("LOGSHIELD_AUDIT_FILE", str(audit))
        monkeypatch.setenv("LOGSHIELD_DETECTION", "patterns")
        monkeypatch.setenv("USER", "someone-else")  # what getpass would believe
        assert cli.main(["reveal", str(encrypted), "--actor", "dpo@corp", "--reason", "case 7 bob@example.com"],
                        stdout=io.StringIO(), stderr=io.StringIO()) == 0
        started = json.loads(audit.read_text().splitlines()[0])
        assert started["audit"]["details"]["reason"] == "case 7 <EMAIL_ADDRESS>" and "bob@" not in audit.read_text()
        assert started["actor"] == "dpo@corp"
        assert started["os_user"] == pwd.getpwuid(os.getuid()).pw_name and started["os_uid"] == os.getuid()

    def test_refuses_without_an_audit_file(self, encrypted: Path) -> None:
        """No audit destination: exit 2 naming LOGSHIELD_AUDIT_FILE, nothing decrypted."""
        out, err = io.StringIO(), io.StringIO()
        assert cli.main(["reveal", str(encrypted)], stdout=out, stderr=err) == 2
        assert "LOGSHIELD_AUDIT_FILE" in err.getvalue() and out.getvalue() == ""

    def test_refuses_when_the_audit_record_cannot_be_written(self, encrypted: Path, tmp_path: Path) -> None:
        """An audit file that cannot be written (here: a directory): exit 1, nothing decrypted."""
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(["reveal", str(encrypted), "--audit-file", str(tmp_path)], stdout=out, stderr=err)
        assert code == 1 and out.getvalue() == "" and "refused" in err.getvalue()


class TestPseudonymAndSession:
    def test_pseudonym_matches_what_the_handler_writes(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """`logshield pseudonym VALUE` prints the token the handler writes for that actor (to search the archive)."""
        import logging

        from presidio_logshield import PIIRedactingHandler, log_context

        monkeypatch.setenv("LOGSHIELD_PSEUDONYM_KEY", "base64:" + base64.b64encode(b"p" * 32).decode())
        handler = PIIRedactingHandler(tmp_path / "app.log", asynchronous=False, detection="patterns",
                                      pseudonym_fields="actor,session_id")
        logger = logging.getLogger("test.cli.pseudonym")
        logger.handlers[:] = [handler]
        logger.propagate = False
        with log_context(actor="alice@example.com", session_id="s-1"):
            logger.warning("hello")
        handler.close()
        out = io.StringIO()
        assert cli.main(["pseudonym", "alice@example.com"], stdout=out, stderr=io.StringIO()) == 0
        record = json.loads((tmp_path / "app.log").read_text())
        assert record["actor"] == out.getvalue().strip() and "alice" not in json.dumps(record)
        assert record["session_id"].startswith("<SESSION_ID:ps:")

    def test_session_pulls_records_in_time_order(self, tmp_path: Path) -> None:
        """`logshield session FILES --session-id` prints that session's records, sorted by time, from all files."""
        (tmp_path / "a.log").write_text('{"timestamp":"2026-11-24T10:00:02Z","session_id":"s1","n":2}\n'
                                        '{"timestamp":"2026-11-24T10:00:00Z","session_id":"s2","n":9}\n')
        (tmp_path / "b.log").write_text('{"timestamp":"2026-11-24T10:00:01Z","session_id":"s1","n":1}\nnot json\n')
        out = io.StringIO()
        assert cli.main(["session", str(tmp_path / "a.log"), str(tmp_path / "b.log"), "--session-id", "s1"],
                        stdout=out, stderr=io.StringIO()) == 0
        assert [json.loads(line)["n"] for line in out.getvalue().splitlines()] == [1, 2]


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
