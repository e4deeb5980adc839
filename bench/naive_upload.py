"""The baseline of ``bench.agent``: what a script would do without the agent — read each file in 16 MiB chunks,
zstd-compress each chunk, PutObject it. Run as its own process (like the agent) so both timings include start-up.

    python -m bench.naive_upload BUCKET PREFIX FILE...   (endpoint and credentials from the AWS_* variables)
"""

from __future__ import annotations

import sys
from pathlib import Path

CHUNK = 16 * 1024 * 1024


def main(argv: list[str]) -> int:
    import boto3
    import zstandard

    bucket, prefix, *files = argv
    client = boto3.client("s3")
    compressor = zstandard.ZstdCompressor(level=3)
    for name in files:
        path = Path(name)
        with open(path, "rb") as fh:
            index = 0
            while chunk := fh.read(CHUNK):
                client.put_object(Bucket=bucket, Key=f"{prefix}/{path.name}/{index}.zst",
                                  Body=compressor.compress(chunk))
                index += 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
