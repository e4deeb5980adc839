"""Keys and compression: pure functions of the input."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest
from logshield_agent.sinks.keys import object_key, parse_key
from logshield_agent.transforms.compress import compress, decompress
from logshield_agent.transforms.events import EARLIEST, LATEST, event_time, file_time


class TestObjectKey:
    def test_layout_and_parse(self):
        """The key has the documented layout and parses back."""
        key = object_key(service="api", host="h1", event_time=datetime(2026, 11, 23, 15, 4, tzinfo=timezone.utc),
                         fingerprint="0123456789abcdef", start=0, end=4096, compression="zstd")
        assert key == ("service=api/host=h1/dt=2026-11-23/hour=15/"
                       "0123456789ab-0000000000000000-0000000000001000.ndjson.zst")
        parts = parse_key("prefix/" + key)
        assert (parts.start, parts.end, parts.compression, parts.fingerprint12) == (0, 4096, "zstd", "0123456789ab")

    @pytest.mark.parametrize("year", [1, 99, 999, 1970, 9999])
    def test_every_year_gives_a_key_that_parses(self, year):
        """Years are zero-padded to four digits, so even a nonsense time gives a key parse_key reads."""
        key = object_key(service="api", host="h1", event_time=datetime(year, 1, 2, 3, tzinfo=timezone.utc),
                         fingerprint="0123456789abcdef", start=0, end=1, compression="none")
        parts = parse_key(key)
        assert parts is not None and parts.dt == f"{year:04d}-01-02" and parts.hour == "03"


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

    @pytest.mark.parametrize("record", [b"hello\n", b'{"msg":"x"}\n', b"\xff\xfe\n", b"{broken\n",
                                        b'{"timestamp":"0099-01-01T00:00:00Z"}\n', b"0999-12-31T23:00:00Z boot\n",
                                        b'{"ts":-86400}\n', b'{"timestamp":"1969-12-31T23:59:59Z"}\n'])
    def test_absent(self, record):
        """Records without a timestamp, or with one before 1970, give None (the pipeline falls back to the file's
        mtime)."""
        assert event_time(record) is None

    def test_file_time_is_clamped(self):
        """A file mtime outside 1970–9999 (negative, absurdly large) is clamped into the range."""
        assert file_time(-5e9) == EARLIEST and file_time(1e300) == LATEST
        assert file_time(1795446000).isoformat() == "2026-11-23T15:00:00+00:00"
