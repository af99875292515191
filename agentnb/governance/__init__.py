"""Layer 3: policy, approvers, workspace confinement, network allow-list, audit log, redaction.

`http_client` and `http_client_sync` load httpx on first use, so importing this package stays
cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentnb.governance import audit
from agentnb.governance._approval import (
    Approval,
    ApprovalDecision,
    ApprovalRequest,
    Approver,
    StickyApprovals,
)
from agentnb.governance._approvers import (
    ApprovalChain,
    AutoApprove,
    AutoDeny,
    ParameterApprover,
    StickyApprover,
    headless_approver,
)
from agentnb.governance._audit import AuditLog, AuditReport
from agentnb.governance._audit_merge import merge_audit
from agentnb.governance._network import (
    NetworkDecision,
    NetworkScope,
    check_url,
    current_network_scope,
    network_scope,
)
from agentnb.governance._policy import Policy, PolicyDecision, PolicyVerdict, Rule
from agentnb.governance._redact import REDACTED, Redactor, default_redactor, register_secret
from agentnb.governance._workspace import check_workspace, path_params_of

if TYPE_CHECKING:
    from agentnb.governance._http import http_client, http_client_sync

__all__ = [
    "Approval",
    "ApprovalChain",
    "ApprovalDecision",
    "ApprovalRequest",
    "Approver",
    "audit",
    "AuditLog",
    "AuditReport",
    "AutoApprove",
    "AutoDeny",
    "check_url",
    "check_workspace",
    "current_network_scope",
    "default_redactor",
    "headless_approver",
    "http_client",
    "http_client_sync",
    "merge_audit",
    "network_scope",
    "NetworkDecision",
    "NetworkScope",
    "ParameterApprover",
    "path_params_of",
    "Policy",
    "PolicyDecision",
    "PolicyVerdict",
    "REDACTED",
    "Redactor",
    "register_secret",
    "Rule",
    "StickyApprovals",
    "StickyApprover",
]


def __getattr__(name: str) -> object:
    if name in ("http_client", "http_client_sync"):
        from agentnb.governance import _http

        value = getattr(_http, name)
        globals()[name] = value
        return value
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
