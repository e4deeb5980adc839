"""Cut a byte stream into records: a pure function of the bytes, so a replayed range gives the same records.

A record is a line including its ``\\n``. A line longer than ``max_line`` bytes (newline included) is shipped in
pieces of ``max_line`` bytes; every non-final piece gets ``PIECE_MARKER`` appended, so nothing hangs and nothing
is dropped. Bytes are never decoded: invalid UTF-8 is shipped verbatim.

Because pieces are cut at fixed distances from where the line (or the previous piece) started, and batches always
end on a record boundary, splitting a stored range ``[start, end)`` again yields exactly the records that went
into that batch — the property the crash-replay relies on.
"""

from __future__ import annotations

__all__ = ["PIECE_MARKER", "split_lines", "split_records", "take_records"]

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


def take_records(data: bytes | bytearray | memoryview, max_line: int, limit: int, *,
                 first_always: bool) -> tuple[bytes, int, int]:
    """``(body, records, consumed)``: the records at the start of ``data`` that fit in ``limit`` bytes, joined.

    Exactly the records ``split_records(data, max_line, final=False)`` would give, taken in order while their total
    stays within ``limit`` (the first one always, when ``first_always``). The common case — every line shorter than
    ``max_line`` — is a few C-level calls (``rfind``, ``split``) instead of a Python step per line.
    """
    buf = bytes(data)
    end = buf.rfind(b"\n", 0, max(0, min(len(buf), limit)))
    if end >= 0 and len(buf) - end - 1 < max_line:  # (a long unterminated rest would give pieces: exact path)
        body = buf[:end + 1]
        lines = body.split(b"\n")
        if max(map(len, lines)) < max_line:
            return body, len(lines) - 1, end + 1
    records, ends = split_records(buf[:max(limit, 0) + max_line], max_line, final=False)
    taken = size = 0
    for record in records:
        if (taken or not first_always) and size + len(record) > limit:
            break
        size += len(record)
        taken += 1
    if not taken:
        return b"", 0, 0
    return b"".join(records[:taken]), taken, ends[taken - 1]


def split_lines(body: bytes) -> list[bytes]:
    """The newline-terminated records of a batch body (only ``\\n`` separates records)."""
    return [line + b"\n" for line in body.split(b"\n")[:-1]]
