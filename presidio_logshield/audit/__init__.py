"""Audit evidence: tamper-evident record chains (more to come: access auditing)."""

from .chain import ChainProblem, ChainTip, ChainVerifier, RecordChain, last_chain_tip, split_sealed, verify_chain

__all__ = ["ChainProblem", "ChainTip", "ChainVerifier", "RecordChain", "last_chain_tip", "split_sealed",
           "verify_chain"]
