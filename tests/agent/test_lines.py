"""Record splitting: deterministic, lossless, and identical when a shipped range is split again."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from logshield_agent.sources.lines import PIECE_MARKER, split_lines, split_records, take_records


def strip(records):
    return b"".join(r[: -len(PIECE_MARKER)] if r.endswith(PIECE_MARKER) else r for r in records)


class TestSplitRecords:
    def test_lines_and_wait_for_newline(self):
        """Complete lines are records; an unterminated remainder waits."""
        records, ends = split_records(b"a\nbb\ncc", 16, final=False)
        assert records == [b"a\n", b"bb\n"] and ends == [2, 5]

    def test_final_ships_partial_line(self):
        """With final, the unterminated remainder becomes a newline-terminated record."""
        records, _ = split_records(b"a\ncc", 16, final=True)
        assert records == [b"a\n", b"cc\n"]

    def test_long_line_in_marked_pieces(self):
        """A line longer than the cap is shipped in marked pieces, nothing dropped."""
        records, ends = split_records(b"x" * 10 + b"\n", 4, final=False)
        assert records[0] == b"xxxx" + PIECE_MARKER and records[1] == b"xxxx" + PIECE_MARKER
        assert records[2] == b"xx\n" and ends[-1] == 11

    def test_invalid_utf8_verbatim(self):
        """Bytes are never decoded: invalid UTF-8 passes through unchanged."""
        data = b"\xff\xfe bad \xc3\x28\n"
        assert split_records(data, 64, final=False)[0] == [data]

    @settings(max_examples=200, deadline=None)
    @given(
        data=st.binary(max_size=300).map(lambda b: b.replace(b"\x00", b"\n")),
        cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=6),
        max_line=st.integers(min_value=2, max_value=20),
        batch=st.integers(min_value=1, max_value=5),
    )
    def test_replay_of_any_batch_gives_same_records(self, data, cuts, max_line, batch):
        """Reading in arbitrary chunks, then re-splitting each batch's range alone, yields the same records."""
        points = sorted({c for c in cuts if c < len(data)} | {len(data)})
        buf = b""
        offset = 0
        consumed = 0
        live: list[tuple[int, int, list[bytes], bool]] = []  # (start, end, records, final) batches
        prev = 0
        for point in points:
            buf += data[prev:point]
            prev = point
            records, ends = split_records(buf, max_line, final=False)
            # cut batches of `batch` records
            i = 0
            while i < len(records):
                chunk = records[i : i + batch]
                end_rel = ends[i + len(chunk) - 1]
                start_rel = ends[i - 1] if i else 0
                live.append((offset + start_rel, offset + end_rel, chunk, False))
                i += len(chunk)
            used = ends[-1] if ends else 0
            buf = buf[used:]
            offset += used
            consumed = offset
        tail_records, _ = split_records(buf, max_line, final=True)
        if tail_records:
            live.append((consumed, len(data), tail_records, True))
        # lossless
        assert strip([r for _, _, rs, _ in live for r in rs]).replace(b"\n", b"") == data.replace(b"\n", b"")
        for start, end, records, final in live:
            again, again_ends = split_records(data[start:end], max_line, final=final)
            assert again == records
            assert again_ends[-1] == end - start


class TestTakeRecords:
    @settings(max_examples=300, deadline=None)
    @given(
        data=st.binary(max_size=400).map(lambda b: b.replace(b"\x00", b"\n")),
        max_line=st.integers(min_value=2, max_value=40),
        limit=st.integers(min_value=-5, max_value=200),
        first_always=st.booleans(),
    )
    def test_same_records_as_split_records(self, data, max_line, limit, first_always):
        """The fast path takes exactly the records split_records gives, in order, while they fit in the limit."""
        records, ends = split_records(data, max_line, final=False)
        taken, size = [], 0
        for record in records:
            if (taken or not first_always) and size + len(record) > limit:
                break
            taken.append(record)
            size += len(record)
        body, lines, consumed = take_records(bytearray(data), max_line, limit, first_always=first_always)
        assert (body, lines) == (b"".join(taken), len(taken))
        assert consumed == (ends[len(taken) - 1] if taken else 0)

    def test_long_line_takes_the_exact_path(self):
        """A line over the cap in the window is cut in marked pieces, as split_records does."""
        body, lines, consumed = take_records(b"ab\n" + b"x" * 9 + b"\n", 4, 100, first_always=True)
        assert body == b"ab\n" + (b"xxxx" + PIECE_MARKER) * 2 + b"x\n" and lines == 4 and consumed == 13

    def test_split_lines_only_on_newline(self):
        """Records are separated by \\n only; \\r and other line breaks stay inside a record."""
        assert split_lines(b"a\rb\n\x0bc\n") == [b"a\rb\n", b"\x0bc\n"]
