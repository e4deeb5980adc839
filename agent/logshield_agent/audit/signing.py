"""Ed25519 keys for archive digests: load the agent's signing key, identify public keys, sign and check.

The private key comes from ``LOGSHIELD_DIGEST_KEY`` (PEM, or base64 of the raw 32 bytes) or
``LOGSHIELD_DIGEST_KEY_FILE``. Without either, the agent creates one in its state directory (mode 0600) on first
start and logs where the public key is: digests are signed from the first hour, and an operator can move to a
managed key later. Each digest names its key's fingerprint, and ``verify`` reports which key signed which digests
and treats a change of key within a host's chain as a finding unless both keys are pinned (``--public-key`` once
per key): a key change is visible, not silent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["GENERATED_KEY_FILE", "PUBLIC_KEY_FILE", "DigestKey", "KeyError_", "fingerprint", "load_public_key",
           "verify_signature"]

GENERATED_KEY_FILE = "digest-signing-key.pem"
PUBLIC_KEY_FILE = "digest-public-key.pem"


class KeyError_(ValueError):  # noqa: N801 - not the builtin KeyError
    """A key cannot be used; the message names where it came from, never its content."""


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """``ed25519:`` + hex SHA-256 of the raw 32-byte public key (what digests name and verify pins)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _parse_private(data: bytes, origin: str) -> Ed25519PrivateKey:
    text = data.strip()
    try:
        if text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(text, password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise KeyError_(f"{origin}: not an Ed25519 private key (PEM or base64 of 32 raw bytes): "
                        f"{type(exc).__name__}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyError_(f"{origin}: the key is not an Ed25519 key")
    return key


def load_public_key(data: bytes, origin: str) -> Ed25519PublicKey:
    """A public key from PEM (a private key PEM is accepted too: its public half is used)."""
    text = data.strip()
    try:
        if b"PRIVATE KEY" in text:
            return _parse_private(text, origin).public_key()
        if text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(text)
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise KeyError_(f"{origin}: not an Ed25519 public key: {type(exc).__name__}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyError_(f"{origin}: the key is not an Ed25519 key")
    return key


def verify_signature(public_key: Ed25519PublicKey, signature_b64: str, message: bytes) -> bool:
    try:
        public_key.verify(base64.b64decode(signature_b64, validate=True), message)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


@dataclass(frozen=True)
class DigestKey:
    """The agent's signing key and where it came from (``env``, ``file`` or ``generated``)."""

    private: Ed25519PrivateKey
    origin: str

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private.sign(message)).decode("ascii")

    @classmethod
    def load(cls, *, key: str | None, key_file: Path | None, state_dir: Path) -> DigestKey:
        """From ``LOGSHIELD_DIGEST_KEY``, else ``LOGSHIELD_DIGEST_KEY_FILE``, else the state dir (created once)."""
        if key:
            return cls(_parse_private(key.encode(), "LOGSHIELD_DIGEST_KEY"), "env")
        if key_file is not None:
            try:
                data = key_file.read_bytes()
            except OSError as exc:
                raise KeyError_(f"LOGSHIELD_DIGEST_KEY_FILE: cannot read {key_file}: {exc.strerror}") from None
            return cls(_parse_private(data, f"LOGSHIELD_DIGEST_KEY_FILE ({key_file})"), "file")
        path = state_dir / GENERATED_KEY_FILE
        try:
            found = cls(_parse_private(path.read_bytes(), str(path)), "generated")
        except FileNotFoundError:
            pass
        else:
            public = state_dir / PUBLIC_KEY_FILE
            if not public.exists():
                public.write_bytes(public_pem(found.public))
            return found
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        (state_dir / PUBLIC_KEY_FILE).write_bytes(public_pem(private.public_key()))
        return cls(private, "generated")
