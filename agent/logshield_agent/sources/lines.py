"""Cut a byte stream into records: a pure function of the bytes, so a replayed range gives the same records.

A record is a line including its ``\\n``. A line longer than ``max_line`` bytes (newline included) is shipped in
pieces of ``max_line`` bytes; every non-final piece gets ``PIECE_MARKER`` appended, so nothing hangs and nothing
is dropped. Bytes are never decoded: invalid UTF-8 is shipped verbatim.

Because pieces are cut at fixed distances from where the line (or the previous piece) started, and batches always
end on a record boundary, splitting a stored range ``[start, end)`` again yields exactly the records that went
into that batch — the property the crash-replay relies on.
"""

from __future__ import annotations

__all__ = ["PIECE_MARKER", "split_records"]

PIECE_MARKER = "…[logshield: line continues]\n".encode()


def split_records(data: bytes | memoryview, max_line: int, *, final: bool) -> tuple[list[bytes], list[int]]:
    """Return ``(records, ends)``: the records found in ``data`` and the offset (in ``data``) after each.

    Without ``final`` an unterminated remainder shorter than ``max_line`` stays unconsumed (wait for more).
    With ``final`` (rotated file drained, or replay of a range that was shipped with its partial tail) the
    remainder is one more record, terminated with ``\\n`` so the object stays valid NDJSON.
    """
    buf = bytes(data)
    records: list[bytes] = []
    ends: list[int] = []
    pos = 0
    size = len(buf)
    while pos < size:
        newline = buf.find(b"\n", pos, pos + max_line)
        if newline >= 0:
            records.append(buf[pos : newline + 1])
            pos = newline + 1
        elif size - pos >= max_line:
            records.append(buf[pos : pos + max_line] + PIECE_MARKER)
            pos += max_line
        elif final:
            records.append(buf[pos:] + b"\n")
            pos = size
        else:
            break
        ends.append(pos)
    return records, ends
