"""Identify a file by its first bytes, not by its path or inode (both are reused by rotation)."""

from __future__ import annotations

import hashlib

__all__ = ["FINGERPRINT_BYTES", "fingerprint_of", "take_fingerprint"]

#: How many leading bytes identify a file once it has that many.
FINGERPRINT_BYTES = 256


def fingerprint_of(head: bytes) -> str:
    """SHA-256 of ``head`` as 32 hex digits (the object key uses the first 12)."""
    return hashlib.sha256(head).hexdigest()[:32]


def take_fingerprint(head: bytes) -> tuple[str, int] | None:
    """``(fingerprint, length)`` for a file starting with ``head`` (up to ``FINGERPRINT_BYTES`` bytes read).

    A file shorter than ``FINGERPRINT_BYTES`` is identified by all its bytes, but only once it holds a complete
    first line — a shorter identity would collide too easily. Returns None when the file must wait.
    Files are append-only, so the first ``length`` bytes never change and the identity is stable.
    """
    head = head[:FINGERPRINT_BYTES]
    if len(head) < FINGERPRINT_BYTES and b"\n" not in head:
        return None
    return fingerprint_of(head), len(head)
