"""Files the patterns match but that are not logs to tail: excluded names (``LOGSHIELD_EXCLUDE``) and compressed
content. With the documented glob ``/var/log/app/*.log*`` logrotate's ``app.log.1.gz`` matches too; shipping it
"as lines" would store gzip bytes as an NDJSON object. Names are checked before a file is opened, content (the
magic bytes at its start) once it is opened, whatever its name."""

from __future__ import annotations

import fnmatch
import os

__all__ = ["Exclusions", "compressed_format"]

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),  # an empty archive
)


def compressed_format(head: bytes) -> str | None:
    """The compression format a file starting with ``head`` is in, or None for anything else."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    # bzip2: "BZh", the block size 1-9, then a block (pi) or the end-of-stream marker (sqrt pi)
    if head[:3] == b"BZh" and head[3:4] in b"123456789" and len(head) >= 10 \
            and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
        return "bzip2"
    return None


class Exclusions:
    """``LOGSHIELD_EXCLUDE``: a glob without ``/`` is matched against the file name, one with ``/`` against the
    whole path (case-sensitive, like the patterns)."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.names = tuple(p for p in patterns if "/" not in p)
        self.paths = tuple(p for p in patterns if "/" in p)

    def __call__(self, path: str) -> bool:
        name = os.path.basename(path)
        return (any(fnmatch.fnmatchcase(name, p) for p in self.names)
                or any(fnmatch.fnmatchcase(path, p) for p in self.paths))
