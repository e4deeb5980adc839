"""Audit evidence: tamper-evident record chains, access auditing (audit records, audited Presidio engines), session
recording."""

from .access import AUDIT_LOGGER, AuditRecordFilter, audit_event, audited, is_audit_record
from .chain import ChainProblem, ChainTip, ChainVerifier, RecordChain, last_chain_tip, split_sealed, verify_chain
from .presidio import AuditedAnalyzerEngine, AuditedAnonymizerEngine
from .sessions import SessionQuery, matching_records

__all__ = [
    "AUDIT_LOGGER",
    "AuditRecordFilter",
    "AuditedAnalyzerEngine",
    "AuditedAnonymizerEngine",
    "ChainProblem",
    "ChainTip",
    "ChainVerifier",
    "RecordChain",
    "SessionQuery",
    "audit_event",
    "audited",
    "is_audit_record",
    "last_chain_tip",
    "matching_records",
    "split_sealed",
    "verify_chain",
]
