"""Detection tiers: secret key names, validated patterns and secrets, Presidio NER (spaCy, offline)."""

from ._base import SECRET_ENTITIES
from ._engine import SUPPORTED_ENTITIES, DetectionEngine, Finding
from ._keys import SecretKeyMatcher, normalise_key

__all__ = ["SECRET_ENTITIES", "SUPPORTED_ENTITIES", "DetectionEngine", "Finding", "SecretKeyMatcher", "normalise_key"]
