"""``logshield-agent session URL``: one session's records pulled straight from an archive."""

from __future__ import annotations

import json
import logging

from logshield_agent.cli import main

from presidio_logshield import PIIRedactingHandler, log_context
from tests.lib.fakes import FakeRedactor

from .conftest import make_pipeline


def shop_logs(tmp_path) -> None:
    """Three sessions interleaved over rotating files, as the library writes them, shipped by the agent."""
    (tmp_path / "logs").mkdir()
    handler = PIIRedactingHandler(filename=tmp_path / "logs" / "app.log", redactor=FakeRedactor(), asynchronous=False,
                                  max_bytes=6000, backup_count=50)
    logger = logging.getLogger("test.session")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for i in range(90):
        with log_context(session_id=f"s{i % 3}", actor=f"user{i % 2}", request_id=f"r{i}"):
            logger.info("step %d", i)
    logger.removeHandler(handler)
    handler.close()
    make_pipeline(tmp_path, env={"batch_max_bytes": "4KiB", "max_line_bytes": "1KiB"}).run_once()


class TestSessionCommand:
    def test_one_session_in_time_order(self, tmp_path, capsys):
        """Every record of session s1 — across several objects — and nothing else, in time order."""
        shop_logs(tmp_path)
        assert len(list((tmp_path / "store").rglob("*.ndjson.zst"))) > 2
        assert main(["session", f"file://{tmp_path / 'store'}", "--session-id", "s1"]) == 0
        captured = capsys.readouterr()
        records = [json.loads(line) for line in captured.out.splitlines()]
        assert [r["message"] for r in records] == [f"step {i}" for i in range(1, 90, 3)]
        assert "30 record(s)" in captured.err

    def test_fields_combine(self, tmp_path, capsys):
        """--session-id and --actor together: records that have both."""
        shop_logs(tmp_path)
        assert main(["session", f"file://{tmp_path / 'store'}", "--session-id", "s1", "--actor", "user0"]) == 0
        records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert records and all(r["session_id"] == "s1" and r["actor"] == "user0" for r in records)
        assert len(records) == 15

    def test_needs_a_field(self, tmp_path, capsys):
        """Without a field to look for it is a usage error."""
        assert main(["session", f"file://{tmp_path}"]) == 2
        assert "--session-id" in capsys.readouterr().err
