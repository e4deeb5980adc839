"""Record chains written by the handler: verifiable, and every kind of tampering is caught."""

from __future__ import annotations

import json
import logging

import pytest

from presidio_logshield import PIIRedactingHandler
from presidio_logshield.audit import RecordChain, verify_chain
from tests.lib.fakes import FakeRedactor

KEY = b"k" * 32


@pytest.fixture
def chained_lines(tmp_path) -> list[str]:
    path = tmp_path / "app.log"
    handler = PIIRedactingHandler(filename=path, redactor=FakeRedactor(), chain_key=KEY)
    logger = logging.getLogger("test.chain")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for i in range(20):
        logger.info("event %d for a%d@example.com", i, i)
    logger.removeHandler(handler)
    handler.close()
    return path.read_text().splitlines()


class TestRecordChain:
    def test_handler_output_verifies(self, chained_lines):
        """Records carry stream, seq 1..n and a chain value that verifies with the key."""
        docs = [json.loads(line) for line in chained_lines]
        assert [d["seq"] for d in docs] == list(range(1, 21))
        assert docs[0]["stream_start"]["chain"] == "hmac-sha256"
        assert verify_chain(chained_lines, KEY) == []

    def test_wrong_key_fails(self, chained_lines):
        """Without the right key the keyed chain does not verify."""
        assert verify_chain(chained_lines, b"x" * 32)

    @pytest.mark.parametrize("tamper, kind", [
        (lambda ls: ls[:5] + ls[6:], "gap"),
        (lambda ls: ls[:5] + [ls[6], ls[5]] + ls[7:], "reorder"),
        (lambda ls: ls[:5] + [ls[5].replace("event 5", "event 9")] + ls[6:], "mismatch"),
    ])
    def test_tampering_is_reported(self, chained_lines, tamper, kind):
        """Dropping, swapping or editing one line is reported with its kind."""
        problems = verify_chain(tamper(list(chained_lines)), KEY)
        assert kind in {p.kind for p in problems}

    def test_unkeyed_chain_says_what_it_proves(self):
        """Without a key the first record states the chain detects accidents, not forgery."""
        chain = RecordChain()
        first = chain.seal({"message": "a"})
        assert first["stream_start"]["chain"] == "sha256" and "not forgery" in first["stream_start"]["note"]
        second = chain.seal({"message": "b"})
        lines = [json.dumps(first), json.dumps(second)]
        assert verify_chain(lines) == []
        assert verify_chain([lines[1]])[0].kind == "gap"

    def test_fork_starts_a_stream_naming_the_previous(self):
        """After a fork the child's chain is a new stream whose first record names the parent's."""
        chain = RecordChain()
        chain.seal({"message": "parent"})
        parent = chain.stream
        chain.restart_after_fork()
        doc = chain.seal({"message": "child"})
        assert doc["seq"] == 1 and doc["stream"] != parent and doc["stream_start"]["previous"] == parent
