"""Container health check for the logshield agent: exit 0 when /healthz answers 200.

Used by the image's HEALTHCHECK (the slim base has no curl). Standard library only, and run
with ``python -I`` so no environment variable can change what it imports. It reads the one
variable the agent reads for its health server, LOGSHIELD_HTTP_ADDR (default 127.0.0.1:9870),
and requests /healthz where the agent listens: an all-interfaces address (``0.0.0.0``, empty,
``[::]``) is probed on the matching loopback address, any other host as it is. With the server
turned off (``off``) there is nothing to ask: the check passes (the container's state is then
the process's own).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

__all__ = ["OFF_VALUES", "health_url", "main"]

DEFAULT_ADDR = "127.0.0.1:9870"
#: Values of LOGSHIELD_HTTP_ADDR that turn the server off (the agent's config.OFF_VALUES; a test keeps them equal).
OFF_VALUES = ("off", "", "none", "false", "0")


def health_url(environ: Mapping[str, str]) -> str | None:
    """The health endpoint's URL for the agent configured by ``environ``; None when its server is off."""
    addr = environ.get("LOGSHIELD_HTTP_ADDR", DEFAULT_ADDR).strip()
    if addr.lower() in OFF_VALUES:
        return None
    host, _, port = addr.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        host, _, port = DEFAULT_ADDR.rpartition(":")
    if host in ("", "0.0.0.0"):  # noqa: S104 - all interfaces: ask over loopback
        host = "127.0.0.1"
    elif host == "[::]":
        host = "[::1]"
    return f"http://{host}:{int(port)}/healthz"


def main(environ: Mapping[str, str] = os.environ, timeout: float = 3.0) -> int:
    """Request the health endpoint; return 0 on HTTP 200 (or with the server off) and 1 on anything else."""
    url = health_url(environ)
    if url is None:
        print("healthy: LOGSHIELD_HTTP_ADDR is off, no health endpoint to ask", file=sys.stderr)
        return 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed http URL
            ok = response.status == 200
    except urllib.error.HTTPError as exc:
        print(f"unhealthy: {url}: HTTP {exc.code}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if not ok:
        print(f"unhealthy: {url}: HTTP {response.status}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
