"""Keys and compression: pure functions of the input."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest
from logshield_agent.sinks.keys import object_key, parse_key
from logshield_agent.transforms.compress import compress, decompress
from logshield_agent.transforms.events import event_time


class TestObjectKey:
    def test_layout_and_parse(self):
        """The key has the documented layout and parses back."""
        key = object_key(service="api", host="h1", event_time=datetime(2026, 11, 23, 15, 4, tzinfo=timezone.utc),
                         fingerprint="0123456789abcdef", start=0, end=4096, compression="zstd")
        assert key == ("service=api/host=h1/dt=2026-11-23/hour=15/"
                       "0123456789ab-0000000000000000-0000000000001000.ndjson.zst")
        parts = parse_key("prefix/" + key)
        assert (parts.start, parts.end, parts.compression, parts.fingerprint12) == (0, 4096, "zstd", "0123456789ab")


class TestCompression:
    @pytest.mark.parametrize("kind", ["zstd", "gzip", "none"])
    def test_deterministic_round_trip(self, kind):
        """Same input, same output bytes; decompresses to the input."""
        data = os.urandom(1000) + b"line\n" * 1000
        assert compress(data, kind) == compress(bytes(data), kind)
        assert decompress(compress(data, kind), kind) == data


class TestEventTime:
    @pytest.mark.parametrize(
        ("record", "expected"),
        [
            (b'{"timestamp":"2026-11-23T15:00:00Z"}\n', "2026-11-23T15:00:00+00:00"),
            (b'{"@timestamp":"2026-11-23T15:00:00.123456789+01:00"}\n', "2026-11-23T14:00:00.123456+00:00"),
            (b'{"ts":1795446000}\n', "2026-11-23T15:00:00+00:00"),
            (b'{"time":1795446000000}\n', "2026-11-23T15:00:00+00:00"),
            (b"2026-11-23 15:00:00,250 INFO started\n", "2026-11-23T15:00:00.250000+00:00"),
            (b"[2026-11-23T15:00:00Z] x\n", "2026-11-23T15:00:00+00:00"),
        ],
    )
    def test_found(self, record, expected):
        """JSON fields and leading ISO timestamps give the event time in UTC."""
        assert event_time(record).isoformat() == expected

    @pytest.mark.parametrize("record", [b"hello\n", b'{"msg":"x"}\n', b"\xff\xfe\n", b"{broken\n"])
    def test_absent(self, record):
        """Records without a timestamp give None (the pipeline falls back to the file's mtime)."""
        assert event_time(record) is None
