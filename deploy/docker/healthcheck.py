"""Container health check for the logshield agent: exit 0 when /healthz answers 200.

Used by the image's HEALTHCHECK (the slim base has no curl). Standard library only, and run
with ``python -I`` so no environment variable can change what it imports. The port comes from
LOGSHIELD_HTTP_PORT, else from the port of LOGSHIELD_HTTP_ADDR (``host:port``), else 9870. The
request always goes to the loopback address, which the agent listens on whether it binds
127.0.0.1 (its default) or 0.0.0.0.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

__all__ = ["health_url", "main"]

DEFAULT_PORT = 9870


def health_url(environ: Mapping[str, str]) -> str:
    """Return the health endpoint's URL for the agent configured by ``environ``."""
    port = environ.get("LOGSHIELD_HTTP_PORT", "").strip()
    if not port:
        addr = environ.get("LOGSHIELD_HTTP_ADDR", "").strip()
        port = addr.rpartition(":")[2] if ":" in addr else ""
    if not port.isdigit() or not 0 < int(port) < 65536:
        port = str(DEFAULT_PORT)
    return f"http://127.0.0.1:{int(port)}/healthz"


def main(environ: Mapping[str, str] = os.environ, timeout: float = 3.0) -> int:
    """Request the health endpoint; return 0 on HTTP 200 and 1 on anything else."""
    url = health_url(environ)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed http URL
            ok = response.status == 200
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if not ok:
        print(f"unhealthy: {url}: HTTP {response.status}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
