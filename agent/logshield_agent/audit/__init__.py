"""Archive evidence: signed, chained digests of every shipped object, and the verifier that checks them."""

from .digest import DIGEST_PREFIX, DigestEntry, parse_digest
from .ledger import DigestWriter
from .signing import DigestKey
from .verify import Finding, VerifyReport, verify_archive

__all__ = ["DIGEST_PREFIX", "DigestEntry", "DigestKey", "DigestWriter", "Finding", "VerifyReport", "parse_digest",
           "verify_archive"]
