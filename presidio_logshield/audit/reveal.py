"""Audit records written synchronously by command-line tools (``logshield reveal``), before they act.

Revealing encrypted values is the one operation that turns redacted logs back into personal data, so it is never
silent: the record is appended — sealed into a chain like the handler's records, and fsynced — to the audit file
(``LOGSHIELD_AUDIT_FILE`` or ``--audit-file``) *before* anything is decrypted, and the command refuses to run when
that fails. A second record says how many values were revealed. ``actor`` is who the caller says they are (``--actor``,
default the OS user); ``os_user`` and ``os_uid`` are who the operating system says ran the command.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from pathlib import Path
from typing import Any

from ..output import rfc3339
from ..writer import FileWriter
from .chain import RecordChain, last_chain_tip, registry_for, stream_paths

__all__ = ["AuditFileError", "AuditTrail"]


class AuditFileError(Exception):
    """The audit record could not be written; the message names the file and the reason, never record content."""


def _os_uid() -> int | None:
    getuid = getattr(os, "getuid", None)
    return getuid() if getuid is not None else None


def _os_user() -> str:
    """The name of the real user id (not the LOGNAME/USER variables getpass reads first, which anyone can set)."""
    uid = _os_uid()
    if uid is not None:
        try:
            import pwd

            return pwd.getpwuid(uid).pw_name
        except (ImportError, KeyError):  # no passwd entry (container running as an arbitrary uid)
            return f"uid:{uid}"
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


class AuditTrail:
    """Appends sealed audit records to one file, each flushed to disk before ``write`` returns."""

    def __init__(self, path: str | os.PathLike[str], *, chain_key: bytes | None = None, service: str = "logshield",
                 actor: str | None = None) -> None:
        self.template = Path(path)
        self.path = Path(FileWriter(path).path)  # {pid} expanded
        self.service = service
        self.os_user = _os_user()
        self.os_uid = _os_uid()
        self.actor = actor or self.os_user
        self.chain = RecordChain(chain_key, registry=registry_for(self.template), path=str(self.path),
                                 guess_previous=last_chain_tip(*stream_paths(self.path)))

    def write(self, action: str, resource: str | None, outcome: str, **details: Any) -> None:
        doc = {
            "timestamp": rfc3339(time.time()), "level": "INFO", "logger": "presidio_logshield.audit",
            "message": f"audit {action} {outcome}", "service": self.service, "host": socket.gethostname(),
            "pid": os.getpid(), "thread": "main", "actor": self.actor, "os_user": self.os_user, "os_uid": self.os_uid,
            "audit": {"action": action, "resource": resource, "outcome": outcome, "duration_ms": None,
                      "details": details},
        }
        writer = FileWriter(self.path)
        written = False
        try:
            writer.write(self.chain.seal(doc) + b"\n")
            writer.sync()
            written = True
        except OSError as exc:
            raise AuditFileError(f"cannot write the audit record to {self.path}: {exc.strerror}") from None
        finally:
            writer.close()
            self.chain.settle(written)

    def close(self) -> None:
        """Record where this trail's stream ended, for the next command's."""
        self.chain.close()
