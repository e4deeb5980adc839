"""Identify a file by its bytes, not by its path or inode (both are reused by rotation).

Two things are hashed (SHA-256, 32 hex digits):

- the *head*: the first ``FINGERPRINT_BYTES`` bytes (fewer while the file is shorter) — an index to find the
  candidates for a file quickly;
- a *check*: the ``CHECK_BYTES`` bytes just before an offset (fewer near the start) — evidence that a file still
  holds, at that offset, the bytes a stream read there. Files with equal heads (a constant banner, a CSV header,
  ``starting``) are told apart by their checks and by comparing their contents, never by the head alone.
"""

from __future__ import annotations

import hashlib

__all__ = ["CHECK_BYTES", "FINGERPRINT_BYTES", "MIN_FINGERPRINT_BYTES", "check_of", "fingerprint_of",
           "take_fingerprint"]

#: How many leading bytes identify a file once it has that many.
FINGERPRINT_BYTES = 256
#: A shorter file is identified only once it holds a complete line and this many bytes — or has stopped changing.
MIN_FINGERPRINT_BYTES = 64
#: How many bytes before an offset a check covers.
CHECK_BYTES = 256


def fingerprint_of(head: bytes) -> str:
    """SHA-256 of ``head`` as 32 hex digits (the object key uses the first 12 of a stream id)."""
    return hashlib.sha256(head).hexdigest()[:32]


def check_of(window: bytes) -> str:
    """The check of the bytes just before an offset (``window`` = at most ``CHECK_BYTES`` of them)."""
    return hashlib.sha256(b"check\0" + window[-CHECK_BYTES:]).hexdigest()[:32]


def take_fingerprint(head: bytes, *, settled: bool = False) -> tuple[str, int] | None:
    """``(fingerprint, length)`` for a file starting with ``head`` (up to ``FINGERPRINT_BYTES`` bytes read).

    A file shorter than ``FINGERPRINT_BYTES`` is identified by all its bytes once it holds a complete first line
    and at least ``MIN_FINGERPRINT_BYTES`` — or, when ``settled`` (the file stopped changing, or ``--once``), a
    complete line of any length. Returns None when the file must wait. Files are append-only, so the first
    ``length`` bytes never change and the head is stable.
    """
    head = head[:FINGERPRINT_BYTES]
    short = len(head) < FINGERPRINT_BYTES
    if short and (b"\n" not in head or (len(head) < MIN_FINGERPRINT_BYTES and not settled)):
        return None
    return fingerprint_of(head), len(head)
