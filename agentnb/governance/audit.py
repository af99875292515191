"""The audit log, as a public module: `agentnb.governance.audit.verify(path)` (`anb.audit.verify`).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> log = AuditLog(Path(tempfile.mkdtemp()) / "audit.jsonl")
    >>> _ = log.append(POLICY_DECISION, tool="lookup", decision="allow", rule="allow:read")
    >>> verify(log.path).records
    1
"""

from agentnb.governance._audit import (
    APPROVAL,
    BUDGET_STOP,
    GENESIS,
    NETWORK_BLOCKED,
    POLICY_DECISION,
    TOOL_CALL_REQUESTED,
    TOOL_RESULT,
    WORKSPACE_VIOLATION,
    AuditLog,
    AuditReport,
    iter_records,
    record_hash,
    verify,
)
from agentnb.governance._audit_merge import AUDIT_MERGE_PROBLEM, merge_audit

__all__ = [
    "APPROVAL",
    "AUDIT_MERGE_PROBLEM",
    "AuditLog",
    "AuditReport",
    "BUDGET_STOP",
    "GENESIS",
    "iter_records",
    "merge_audit",
    "NETWORK_BLOCKED",
    "POLICY_DECISION",
    "record_hash",
    "TOOL_CALL_REQUESTED",
    "TOOL_RESULT",
    "verify",
    "WORKSPACE_VIOLATION",
]
