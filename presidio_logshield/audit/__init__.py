"""Audit evidence: tamper-evident record chains (more to come: access auditing)."""

from .chain import ChainProblem, RecordChain, canonical_json, verify_chain

__all__ = ["ChainProblem", "RecordChain", "canonical_json", "verify_chain"]
