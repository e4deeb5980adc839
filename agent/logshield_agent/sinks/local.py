"""A directory as an object store: same key layout as the cloud sinks, atomic no-overwrite puts, sidecar metadata.

``put`` creates missing directories durably (each new directory and its parent fsynced), writes a temp file,
fsyncs it, links it to the final name with ``os.link`` (fails if the name exists: no overwrite, ever), fsyncs the
directory. The object's existence is the commit point; its metadata (incl. ``retain_until``) lives in
``<key>.meta.json``, written atomically just before the link. Temp files (``.tmp-*``) left by a process killed
mid-put are removed by ``remove_stale_temporaries`` (the pipeline calls it at start).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from .._durable import fsync_dir, make_dirs, write_synced
from ._cloud import resolve_retain_until
from .base import ObjectConflictError, ObjectInfo, ObjectLockedError, PutResult, Sink, SinkError, SinkUnavailableError

__all__ = ["LocalDirSink"]

META_SUFFIX = ".meta.json"
TMP_PREFIX = ".tmp-"
#: A temp file older than this is a leftover of a killed process (a put writes one batch and links it at once).
STALE_TEMP_AFTER = 900.0


class LocalDirSink(Sink):
    def __init__(self, root: str | os.PathLike[str], prefix: str = "", *, retention_days: int | None = None,
                 create: bool = True) -> None:
        self.root = Path(root)
        self.prefix = prefix.strip("/")
        self.retention_days = retention_days
        self.create = create
        self.display_url = f"file://{self.root}" + (f"/{self.prefix}" if self.prefix else "")

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or ".." in key.split("/") or key.endswith(META_SUFFIX):
            raise ValueError(f"invalid object key {key!r}")
        return self.root / self.prefix / key if self.prefix else self.root / key

    def put(self, key: str, body: bytes, *, sha256: str, metadata: dict[str, str],
            content_type: str = "application/x-ndjson", content_encoding: str | None = None,
            retain_until: datetime | None = None) -> PutResult:
        if hashlib.sha256(body).hexdigest() != sha256.lower():
            raise ValueError("sha256 does not match the body")
        path = self._path(key)
        existing = self._existing(path, key, sha256, len(body))
        if existing is not None:
            return existing
        until = resolve_retain_until(retain_until, self.retention_days)
        meta = {"metadata": dict(metadata), "content_type": content_type, "content_encoding": content_encoding,
                "sha256": sha256, "size": len(body), "retain_until": until.isoformat() if until else None}
        try:
            if not self.create and not self.root.is_dir():
                raise SinkError(f"local sink directory {self.root} does not exist")
            make_dirs(path.parent)
            meta_path = Path(str(path) + META_SUFFIX)
            meta_tmp = _write_temp(path.parent, json.dumps(meta, sort_keys=True).encode())
            os.replace(meta_tmp, meta_path)
            tmp = _write_temp(path.parent, body)
            try:
                os.link(tmp, path)
            except FileExistsError:
                found = self._existing(path, key, sha256, len(body))
                if found is None:  # pragma: no cover - vanished between link and check
                    raise SinkUnavailableError(f"object {key} changed while writing; retry") from None
                return found
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            fsync_dir(path.parent)
        except (PermissionError, NotADirectoryError, FileExistsError) as exc:
            raise SinkError(f"cannot write to {path.parent}: {exc.strerror or type(exc).__name__}") from exc
        except OSError as exc:
            # Disk full, I/O error, read-only remount: retry later, keep data in the source files.
            raise SinkUnavailableError(f"cannot write to {path.parent}: {exc.strerror or type(exc).__name__}") from exc
        return PutResult(key=key, size=len(body), sha256=sha256)

    def _existing(self, path: Path, key: str, sha256: str, size: int) -> PutResult | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except (PermissionError, NotADirectoryError, IsADirectoryError) as exc:
            raise SinkError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
        except OSError as exc:
            raise SinkUnavailableError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
        if hashlib.sha256(data).hexdigest() == sha256.lower():
            return PutResult(key=key, size=size, sha256=sha256, already_existed=True)
        raise ObjectConflictError(f"object {key} exists with different content; not overwritten")

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return self._info(key, path, st)

    def _info(self, key: str, path: Path, st: os.stat_result) -> ObjectInfo:
        meta: dict = {}
        with contextlib.suppress(FileNotFoundError, ValueError):
            meta = json.loads(Path(str(path) + META_SUFFIX).read_bytes())
        until = meta.get("retain_until")
        return ObjectInfo(key=key, size=st.st_size,
                          last_modified=datetime.fromtimestamp(st.st_mtime, tz=timezone.utc),
                          metadata=dict(meta.get("metadata") or {}),
                          retain_until=datetime.fromisoformat(until) if until else None)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self.root / self.prefix if self.prefix else self.root
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith(META_SUFFIX) or name.startswith(TMP_PREFIX):
                    continue
                path = Path(dirpath) / name
                key = path.relative_to(base).as_posix()
                if not key.startswith(prefix):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    yield self._info(key, path, path.stat())

    def remove_stale_temporaries(self, *, older_than: float = STALE_TEMP_AFTER, now: float | None = None) -> int:
        """Delete ``.tmp-*`` files not modified for ``older_than`` seconds (left by a process killed mid-put).
        Lists names only (no metadata is read). Returns how many were removed."""
        base = self.root / self.prefix if self.prefix else self.root
        now = time.time() if now is None else now
        removed = 0
        for dirpath, _dirnames, filenames in os.walk(base):
            for name in filenames:
                if not name.startswith(TMP_PREFIX):
                    continue
                path = Path(dirpath) / name
                try:
                    if now - path.stat().st_mtime >= older_than:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed

    def delete(self, key: str, *, now: datetime | None = None) -> None:
        path = self._path(key)
        info = self.head(key)
        if info is None:
            return
        now = now or datetime.now(timezone.utc)
        if info.retain_until is not None and info.retain_until > now:
            raise ObjectLockedError(f"object {key} is retained until {info.retain_until.isoformat()}")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(FileNotFoundError):
            Path(str(path) + META_SUFFIX).unlink()
        fsync_dir(path.parent)

    def check(self) -> None:
        try:
            if self.create:
                self.root.mkdir(parents=True, exist_ok=True)
            if not self.root.is_dir():
                raise SinkError(f"local sink directory {self.root} does not exist")
            probe = _write_temp(self.root, b"")
            os.unlink(probe)
        except SinkError:
            raise
        except OSError as exc:
            raise SinkError(f"local sink directory {self.root} is not writable ({exc.strerror})") from None


def _write_temp(directory: Path, data: bytes) -> Path:
    tmp = directory / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    write_synced(tmp, data, flags=os.O_EXCL, mode=0o644)
    return tmp
