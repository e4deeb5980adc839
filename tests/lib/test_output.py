"""The format step: timestamps formatted once per second and one reused JSON encoder, byte-identical to the stdlib."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from presidio_logshield.output import encode, rfc3339


def _reference(created: float) -> str:
    return datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class TestRfc3339:
    def test_rounding_edges_match_datetime(self) -> None:
        """Microseconds round half to even like datetime, carrying into the next second (x.9999996 -> x+1)."""
        rng = random.Random(3)
        edges = [1764000000.9999996, 1764000000.9999994, 1764000000.0000005, 1764000000.0000015, 0.0, 1.5e-7]
        edges += [k + 0.9999995 for k in range(0, 10**6, 997)] + [math.nextafter(k + 5e-7, 0) for k in range(500)]
        edges += [rng.uniform(0, 4e9) for _ in range(20_000)]
        assert [rfc3339(t) for t in edges] == [_reference(t) for t in edges]

    @given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
    def test_any_time_matches_datetime(self, created: float) -> None:
        """Any timestamp formats exactly as datetime formats it."""
        assert rfc3339(created) == _reference(created)

    def test_same_second_twice_then_another(self) -> None:
        """The per-second cache is replaced when the second changes."""
        assert rfc3339(1764000000.25) == "2025-11-24T16:00:00.250000Z"
        assert rfc3339(1764000000.5) == "2025-11-24T16:00:00.500000Z"
        assert rfc3339(1764000001.0) == "2025-11-24T16:00:01.000000Z"


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


class TestEncode:
    @given(st.dictionaries(st.text(max_size=8), _json_values, max_size=6))
    def test_same_bytes_as_json_dumps(self, doc: dict) -> None:
        """A document encodes to the bytes ``json.dumps(..., ensure_ascii=False, compact)`` gives (NaN, surrogates
        and all), so chained lines stay verifiable by any JSON tool."""
        expected = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str)
        assert encode(doc) == expected.encode("utf-8", "backslashreplace")

    def test_other_objects_become_their_text(self) -> None:
        """Values JSON has no type for are written as ``str(value)``, tuples as lists, int keys as strings."""
        assert encode({"t": (1, 2), 5: "k", "d": Decimal("1.5")}) == b'{"t":[1,2],"5":"k","d":"1.5"}'
