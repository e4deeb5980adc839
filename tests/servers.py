"""Real object stores on loopback for tests, ``make bench`` and ``make demo``: SeaweedFS (S3) and Azurite (Blob).

Each launcher is a context manager that starts the server in its own process group on free 127.0.0.1 ports,
waits until the store really answers (an S3 bucket round trip, an Azure HTTP response), and on ``stop()`` kills
the whole group. Servers still running at interpreter exit are stopped by an ``atexit`` hook, and on Linux the
server also gets SIGKILL if the starting thread dies (``PR_SET_PDEATHSIG``) — so start servers from a thread that
outlives them (the main thread, a pytest session fixture).

No pytest here: ``bench`` and ``demo`` import this module too.

    with SeaweedFS(tmpdir) as s3:
        s3.client().create_bucket(Bucket="logs")
        sink = S3Sink("logs", endpoint_url=s3.endpoint_url, ...)
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["Azurite", "SeaweedFS", "ServerStartError"]

LOOPBACK = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent

# Azurite's fixed development account (public, documented by Microsoft; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

_running: set[_Server] = set()
_running_lock = threading.Lock()
_reserved_ports: set[int] = set()


class ServerStartError(RuntimeError):
    """A test server did not come up; the message carries the tail of its log."""


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _free_ports(count: int, *, grpc_offset: int | None = None) -> list[int]:
    """``count`` consecutive free loopback ports (and, with ``grpc_offset``, each port + offset free too)."""
    rng = random.Random()  # noqa: S311 - port choice, not crypto
    for _ in range(500):
        base = rng.randrange(20000, 65535 - (grpc_offset or 0) - count)
        ports = list(range(base, base + count))
        wanted = ports + ([p + grpc_offset for p in ports] if grpc_offset else [])
        if any(p in _reserved_ports for p in wanted):
            continue
        if all(_port_free(p) for p in wanted):
            _reserved_ports.update(wanted)
            return ports
    raise ServerStartError(f"no {count} free loopback ports found")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class _Server:
    """A child process in its own session, logged to a file, stopped with its whole process group."""

    name = "server"

    def __init__(self, tmpdir: str | os.PathLike[str], *, startup_timeout: float = 30.0) -> None:
        self.dir = Path(tmpdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / f"{self.name}.log"
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    # -- subclass hooks
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _probe(self) -> bool:
        """True once the service answers real requests."""
        raise NotImplementedError

    # -- lifecycle
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> _Server:
        if self._proc is not None:
            raise RuntimeError(f"{self.name} already started")
        cmd = self._command()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.dir,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        with _running_lock:
            _running.add(self)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self.stop()
                raise ServerStartError(
                    f"{self.name} exited with status {code} during start-up; log {self.log_path}:\n"
                    f"{_tail(self.log_path)}"
                )
            if self._probe():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(
                    f"{self.name} did not answer within {self.startup_timeout:.0f}s; log {self.log_path}:\n"
                    f"{_tail(self.log_path)}"
                )
            time.sleep(0.2)

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds; idempotent. ``start()`` may follow
        (same ports, same data directory: an outage and a recovery)."""
        proc = self._proc
        if proc is None:
            return
        with _running_lock:
            _running.discard(self)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace)
        # The leader may be gone while other members of its group live on: always sweep the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        self._proc = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    with _running_lock:
        servers = list(_running)
    for server in servers:
        server.stop(grace=2.0)


def _find_weed() -> str:
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if found:
        return found
    raise ServerStartError("SeaweedFS 'weed' binary not found next to the interpreter: run `make install`")


class SeaweedFS(_Server):
    """``weed server`` with master, volume, filer and S3 gateway on loopback, credentials enforced.

    One admin identity (``access_key`` / ``secret_key``); ``-s3.autoCreateBucket=false`` so a missing bucket is an
    error as on AWS; SSE-S3 (``AES256``) enabled through a random ``WEED_S3_SSE_KEY``; SSE-KMS is not configured
    (SeaweedFS answers 500). Telemetry, Iceberg and Lance endpoints are off.
    """

    name = "seaweedfs"

    def __init__(
        self,
        tmpdir: str | os.PathLike[str],
        *,
        access_key: str = "logshield-test",
        secret_key: str | None = None,
        startup_timeout: float = 40.0,
    ) -> None:
        super().__init__(tmpdir, startup_timeout=startup_timeout)
        self.access_key = access_key
        self.secret_key = secret_key or base64.urlsafe_b64encode(os.urandom(24)).decode()
        self._sse_key = base64.b64encode(os.urandom(32)).decode()
        self.master_port, self.volume_port, self.filer_port, self.s3_port = _free_ports(4, grpc_offset=10000)
        self.endpoint_url = f"http://{LOOPBACK}:{self.s3_port}"
        self.region = "us-east-1"

    def _command(self) -> list[str]:
        data = self.dir / "data"
        data.mkdir(exist_ok=True)
        config = self.dir / "s3-identities.json"
        identities = {
            "identities": [
                {
                    "name": "admin",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config.write_text(json.dumps(identities))
        config.chmod(0o600)
        g = 10000
        return [
            _find_weed(),
            "server",
            f"-dir={data}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-master.port={self.master_port}",
            f"-master.port.grpc={self.master_port + g}",
            f"-volume.port={self.volume_port}",
            f"-volume.port.grpc={self.volume_port + g}",
            f"-filer.port={self.filer_port}",
            f"-filer.port.grpc={self.filer_port + g}",
            "-s3",
            f"-s3.port={self.s3_port}",
            f"-s3.port.grpc={self.s3_port + g}",
            f"-s3.config={config}",
            "-s3.autoCreateBucket=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=2000",  # every bucket is a collection with volumes of its own; tests make many buckets
            "-volume.preStopSeconds=0",
        ]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WEED_", "AWS_"))}
        env["WEED_S3_SSE_KEY"] = self._sse_key
        # master.toml's volume growth, as an environment setting: a new collection (bucket) starts with 2 volumes,
        # not 7, so a test session's many small buckets do not run out of volume slots ("no free volumes left").
        env["WEED_MASTER_VOLUME_GROWTH_COPY_1"] = "2"
        return env

    def stop(self, grace: float = 3.0) -> None:
        super().stop(grace)
        # weed makes Unix sockets named after its ports in /tmp and leaves them when killed.
        ports = (self.master_port, self.volume_port, self.filer_port, self.s3_port)
        for port in (*ports, *(p + 10000 for p in ports)):
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):  # noqa: S108 - weed's fixed location
                with contextlib.suppress(OSError):
                    sock.unlink()

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server (``config`` goes to ``botocore.config.Config``)."""
        import boto3
        from botocore.config import Config

        config.setdefault("retries", {"mode": "standard", "max_attempts": 3})
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(**config),
        )

    def create_bucket(self, name: str, *, object_lock: bool = False) -> str:
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
        return name

    def _probe(self) -> bool:
        # A full round trip: the S3 gateway, the filer (bucket entry) and a volume (object data) all answer.
        if not _tcp_open(self.s3_port):
            return False
        try:
            c = self.client(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5)
            probe = "logshield-readiness-probe"
            with contextlib.suppress(c.exceptions.BucketAlreadyOwnedByYou, c.exceptions.BucketAlreadyExists):
                c.create_bucket(Bucket=probe)
            c.put_object(Bucket=probe, Key="probe", Body=b"ok")
            c.delete_object(Bucket=probe, Key="probe")
            c.delete_bucket(Bucket=probe)
        except Exception:
            return False
        return True


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def _find_azurite_blob() -> str:
    script = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"
    if not script.exists():
        raise ServerStartError(f"{script} not found: run `make install` (npm install)")
    return str(script)


class Azurite(_Server):
    """``azurite-blob`` on loopback with the well-known ``devstoreaccount1`` account; telemetry off.

    Azurite does not implement per-blob immutability policies (``set_immutability_policy`` answers 501) and,
    in ``--loose`` mode, silently ignores an immutability header sent with an upload.
    """

    name = "azurite"

    def __init__(self, tmpdir: str | os.PathLike[str], *, startup_timeout: float = 30.0) -> None:
        super().__init__(tmpdir, startup_timeout=startup_timeout)
        (self.port,) = _free_ports(1)
        self.account_name = AZURITE_ACCOUNT
        self.account_key = AZURITE_KEY
        self.account_url = f"http://{LOOPBACK}:{self.port}/{AZURITE_ACCOUNT}"
        self.connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.account_url};"
        )

    def _command(self) -> list[str]:
        node = shutil.which("node")
        if node is None:
            raise ServerStartError("node not found on PATH: Azurite needs Node.js")
        location = self.dir / "data"
        location.mkdir(exist_ok=True)
        return [
            node,
            _find_azurite_blob(),
            "--blobHost",
            LOOPBACK,
            "--blobPort",
            str(self.port),
            "--location",
            str(location),
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ]

    def client(self, **kwargs: Any) -> Any:
        """An ``azure.storage.blob.BlobServiceClient`` for this server."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string, **kwargs)

    def create_container(self, name: str) -> str:
        self.client().create_container(name)
        return name

    def _probe(self) -> bool:
        try:
            conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=1)
            try:
                conn.request("GET", f"/{AZURITE_ACCOUNT}?comp=list")
                return conn.getresponse().status > 0
            finally:
                conn.close()
        except OSError:
            return False
