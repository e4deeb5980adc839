"""The agent's redaction pass: raw lines gated in one scan, the same bytes out whatever the batch split or engine."""

from __future__ import annotations

import json
import random

import pytest
from logshield_agent.transforms.redact import RecordRedactor

from presidio_logshield.config import RedactionConfig
from presidio_logshield.redactor import Redactor


def _records(count: int) -> list[bytes]:
    rng = random.Random(11)
    out = []
    for i in range(count):
        doc = {"timestamp": f"2026-11-23T10:00:{i % 60:02d}.{rng.randrange(10**6):06d}Z", "level": "INFO",
               "message": rng.choice(["GET /api/v1/orders 200 in 3.1 ms", "cache warm", "retry 2 of 5"]),
               "request_id": f"req-{rng.getrandbits(64):016x}"}
        if i % 7 == 0:
            doc["user"] = f"user{i}@example.com"
        if i % 11 == 0:
            doc["p_w_d"] = "hunter2"
        if i % 13 == 0:
            doc["message"] = "caf\u00e9 login from 10.1.2.3"
        line = json.dumps(doc, ensure_ascii=i % 2 == 0).encode()
        out.append(line + b"\n")
    out += [b"plain text from 10.0.0.1\n", b"\xff\xfe not utf-8 10.0.0.2\n", b'{"msg": "a\\u0040b.co"}\n', b"\n"]
    return out


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor(RedactionConfig(detection="patterns"))


class TestRecordRedactor:
    def test_untouched_lines_keep_their_bytes(self, redactor: Redactor) -> None:
        """A line nothing could match comes out as the very same bytes; one with PII is rewritten without it."""
        records = _records(200)
        out = RecordRedactor(redactor)(records)
        assert len(out) == len(records)
        for before, after in zip(records, out, strict=True):
            if b"@example.com" in before or b"hunter2" in before or b"10." in before:
                assert b"@example.com" not in after and b"hunter2" not in after
                assert b"10.0.0" not in after and b"10.1.2.3" not in after
            elif b"\\u0040" not in before:
                assert after == before
        assert b"a\\u0040b.co" not in out[-2]  # an escaped "@" is decoded and found

    def test_same_bytes_for_any_batch_split_and_fresh_engine(self, redactor: Redactor) -> None:
        """A crash replay may cut batches elsewhere and start with an empty cache: the bytes are the same."""
        records = _records(300)
        whole = RecordRedactor(redactor)(records)
        fresh = Redactor(RedactionConfig(detection="patterns"))
        pieces: list[bytes] = []
        for start in range(0, len(records), 37):
            pieces += RecordRedactor(fresh)(records[start:start + 37])
        assert pieces == whole

    def test_same_bytes_without_hyperscan(self) -> None:
        """With the re pre-filter instead of the Hyperscan scan (a platform without its wheel) nothing changes."""
        records = _records(300)
        with_scan = RecordRedactor(Redactor(RedactionConfig(detection="patterns")))(records)
        plain = Redactor(RedactionConfig(detection="patterns"))
        plain._engine._scanner = None
        assert RecordRedactor(plain)(records) == with_scan

    def test_key_names_on_raw_lines(self, redactor: Redactor) -> None:
        """Personal and secret key names are redacted on raw lines too (JSON keys, key=value text, cookies); a line with
        only look-alike keys (hostname, pod_name) keeps its bytes."""
        records = [b'{"first_name": "Alice", "msg": "ok"}\n', b"login pw=hunter2 city=Berlin\n",
                   b'{"msg": "Cookie: _ga=GA1.2.3; sid=s%3Aabcdef1234"}\n', b'{"hostname": "web-1", "pod_name": "api-7"}\n',
                   b'{"msg": "body={\\"name\\":\\"Alice Johnson\\"}"}\n']
        out = RecordRedactor(redactor)(records)
        assert out[0] == b'{"first_name":"<PERSON>","msg":"ok"}\n'
        assert out[1] == b"login pw=<SECRET> city=<LOCATION>\n"
        assert b"abcdef1234" not in out[2] and b"GA1.2.3" not in out[2]
        assert out[3] == records[3]
        assert b"Alice" not in out[4]

    def test_library_records_keep_their_summary(self, redactor: Redactor) -> None:
        """A record the library wrote (placeholders, a redaction summary keyed by entity type, key:<name> rules) goes
        through the agent's pass byte for byte: counts are not taken for personal fields."""
        line = (b'{"message":"mail <EMAIL_ADDRESS> from <PHONE_NUMBER>","first_name":"<PERSON>","redaction":'
                b'{"entities":{"EMAIL_ADDRESS":1,"PERSON":1,"PHONE_NUMBER":2},'
                b'"rules":["key:firstname","key:password","presidio:EmailRecognizer"]}}\n')
        assert RecordRedactor(redactor)([line]) == [line]
