"""`anb.checks`: what a scenario's run must satisfy (public namespace over `_checks`).

Example:
    >>> from agentnb.evals import checks
    >>> [c.name for c in (checks.contains("refund"), checks.tool_called("refund"))]
    ["contains('refund')", "tool_called('refund')"]
"""

from __future__ import annotations

from agentnb.evals._checks import (
    Check,
    CheckResult,
    call_order,
    contains,
    custom,
    env_check,
    exact,
    field,
    judge,
    max_cost,
    max_latency,
    max_steps,
    no_denied,
    no_retries,
    regex,
    spans,
    status,
    tool_called,
    tool_not_called,
)

__all__ = [
    "call_order",
    "Check",
    "CheckResult",
    "contains",
    "custom",
    "env_check",
    "exact",
    "field",
    "judge",
    "max_cost",
    "max_latency",
    "max_steps",
    "no_denied",
    "no_retries",
    "regex",
    "spans",
    "status",
    "tool_called",
    "tool_not_called",
]
