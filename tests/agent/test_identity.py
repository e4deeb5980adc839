"""Which stream a file is: heads index, checks and content comparisons decide (sources/fingerprint, identity)."""

from __future__ import annotations

import os

import pytest
from logshield_agent.sources.checkpoint import Intent, StreamState
from logshield_agent.sources.fingerprint import FINGERPRINT_BYTES, check_of, take_fingerprint
from logshield_agent.sources.fs import FileSystem
from logshield_agent.sources.identity import COMPARE_BYTES, is_copy, state_matches

FS = FileSystem()


@pytest.fixture
def opened(tmp_path):
    fds = []

    def open_with(name: str, data: bytes) -> tuple[int, int]:
        path = tmp_path / name
        path.write_bytes(data)
        fd = FS.open(str(path))
        fds.append(fd)
        return fd, len(data)

    yield open_with
    for fd in fds:
        os.close(fd)


class TestTakeFingerprint:
    def test_lengths(self):
        """256 bytes identify a long file; a short one needs a complete line and 64 bytes, or to have settled."""
        assert take_fingerprint(b"x" * 300)[1] == FINGERPRINT_BYTES
        assert take_fingerprint(b"a" * 99 + b"\n")[1] == 100
        assert take_fingerprint(b"a" * 99) is None  # no complete line yet
        assert take_fingerprint(b"\n") is None and take_fingerprint(b"starting\n") is None
        assert take_fingerprint(b"starting\n", settled=True)[1] == 9


class TestIsCopy:
    def test_prefix_is_a_copy_divergence_is_not(self, opened):
        """A file whose content is the other's beginning is a copy; a longer or different one is not."""
        original = opened("a", b"header\n" + b"".join(b"line %d\n" % i for i in range(1000)))
        copy = opened("b", b"header\n" + b"".join(b"line %d\n" % i for i in range(500)))
        other = opened("c", b"header\n" + b"".join(b"other %d\n" % i for i in range(10)))
        assert is_copy(FS, *copy, *original) is True
        assert is_copy(FS, *original, *copy) is False
        assert is_copy(FS, *other, *original) is False

    def test_difference_after_the_compared_beginning(self, opened):
        """Equal first COMPARE_BYTES but a different end: not a copy (its last bytes are compared too)."""
        common = b"z" * (COMPARE_BYTES + 10)
        original = opened("a", common + b"original end\n" + b"more\n")
        other = opened("b", common + b"another end!\n")
        assert is_copy(FS, *other, *original) is False


class TestStateMatches:
    def test_check_before_the_offset_decides(self, opened):
        """A file is a checkpointed stream only if it holds the checked bytes before the offset."""
        data = b"".join(b"line %d\n" % i for i in range(100))
        state = StreamState(fp_len=256, head="h", offset=500, check=check_of(data[244:500]), inode="1:2")
        same = opened("a", data)
        shorter = opened("b", data[:400])
        rewritten = opened("c", data[:256] + b"X" * 300)
        assert state_matches(FS, *same, state, "9:9") is True
        assert state_matches(FS, *shorter, state, "1:2") is False
        assert state_matches(FS, *rewritten, state, "1:2") is False

    def test_nothing_acknowledged_yet_checks_the_recorded_batch(self, opened):
        """With offset 0 but a batch recorded, the bytes before the batch's end are the evidence."""
        data = b"x" * 100 + b"\n"
        intent = Intent(start=0, end=101, final=False, key="k", compression="none", first_event="",
                        check=check_of(data))
        state = StreamState(fp_len=101, head="h", offset=0, check=check_of(b""), intent=intent)
        assert state_matches(FS, *opened("a", data), state, "1:1") is True
        assert state_matches(FS, *opened("b", b"x" * 100 + b"y"), state, "1:1") is False

    def test_few_verified_bytes_need_the_same_inode(self, opened):
        """Under 64 verified bytes (a file holding only "starting"), another inode is another file."""
        state = StreamState(fp_len=9, head="h", offset=9, check=check_of(b"starting\n"), inode="1:2")
        grown = opened("a", b"starting\nmore\n")
        assert state_matches(FS, *grown, state, "1:2") is True
        assert state_matches(FS, *grown, state, "1:3") is False

    def test_migrated_state_trusted_by_head_at_a_line_end(self, opened):
        """A version-1 state has no check: its head decides, if a line (or the file) ends at its offset."""
        state = StreamState(fp_len=5, head="h", offset=9, check=None)
        assert state_matches(FS, *opened("a", b"anything\nmore\n"), state, "1:1") is True
        assert state_matches(FS, *opened("b", b"anything\n"), state, "1:1") is True
        assert state_matches(FS, *opened("c", b"anything else\n"), state, "1:1") is False  # mid-line: another file
        assert state_matches(FS, *opened("d", b"an"), state, "1:1") is False  # shorter than what was shipped
