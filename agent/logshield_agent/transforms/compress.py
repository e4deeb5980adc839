"""Deterministic compression: the same bytes in always give the same bytes out (and the same SHA-256)."""

from __future__ import annotations

import gzip

__all__ = ["CONTENT_ENCODING", "compress", "decompress"]

ZSTD_LEVEL = 3
GZIP_LEVEL = 6
CONTENT_ENCODING = {"zstd": "zstd", "gzip": "gzip", "none": None}


def compress(data: bytes, compression: str) -> bytes:
    if compression == "zstd":
        import zstandard

        # One-shot compress with a fixed level, content size written, no threads: deterministic for a given input.
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True, threads=0).compress(data)
    if compression == "gzip":
        # mtime=0 and no file name in the header, so the output depends on the data only.
        return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
    if compression == "none":
        return data
    raise ValueError(f"unknown compression {compression!r}")


def decompress(data: bytes, compression: str) -> bytes:
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if compression == "gzip":
        return gzip.decompress(data)
    return data
