"""agentnb: LLM agents from a Jupyter prototype to a budget-limited production batch job.

Only the names a notebook user types live here; each is loaded on first use, so
`import agentnb` stays fast and pandas, matplotlib or httpx load only when needed.

Example:
    >>> import agentnb as anb
    >>> anb.Budget(usd=0.5).usd
    Decimal('0.5')
"""


import importlib
import sys
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it. Sorted by casefold, like __all__ (STYLE B2).
_LAZY: dict[str, str] = {
    "Agent": "agentnb.runtime",
    "AgentnbError": "agentnb.core",
    "AgentnbWarning": "agentnb.core",
    "annotate": "agentnb.tracing",
    "annotations": "agentnb.tracing",
    "audit": "agentnb.governance",
    "AuditChainBroken": "agentnb.core",
    "Budget": "agentnb.runtime",
    "budget": "agentnb.runtime",
    "BudgetExceeded": "agentnb.core",
    "calibrate": "agentnb.evals",
    "checks": "agentnb.evals",
    "collect": "agentnb.notebook",
    "ConfigError": "agentnb.core",
    "CostUnknownWarning": "agentnb.core",
    "diff": "agentnb.tracing",
    "envs": "agentnb.evals",
    "export_otlp": "agentnb.tracing",
    "http_client": "agentnb.governance",
    "Judge": "agentnb.evals",
    "LoopDetected": "agentnb.core",
    "Message": "agentnb.core",
    "ModelError": "agentnb.core",
    "ModelHTTPError": "agentnb.core",
    "ModelRetry": "agentnb.core",
    "ModelTimeout": "agentnb.core",
    "NetworkBlocked": "agentnb.core",
    "plot_cost_quality": "agentnb.notebook",
    "Policy": "agentnb.governance",
    "PolicyDenied": "agentnb.core",
    "record": "agentnb.notebook",
    "RegressionDetected": "agentnb.evals",
    "replay": "agentnb.runtime",
    "ReplayDiverged": "agentnb.core",
    "RetriesExhausted": "agentnb.core",
    "Rule": "agentnb.governance",
    "Run": "agentnb.runtime",
    "RunContext": "agentnb.runtime",
    "RunResult": "agentnb.runtime",
    "RunStopped": "agentnb.core",
    "Scenario": "agentnb.evals",
    "set_price": "agentnb.models",
    "show": "agentnb.notebook",
    "spans": "agentnb.tracing",
    "spent": "agentnb.runtime",
    "Step": "agentnb.runtime",
    "StopRequested": "agentnb.core",
    "Suite": "agentnb.evals",
    "SuiteReport": "agentnb.evals",
    "tool": "agentnb.runtime",
    "Tool": "agentnb.runtime",
    "ToolFailed": "agentnb.core",
    "traces": "agentnb.tracing",
    "Usage": "agentnb.core",
    "UsageError": "agentnb.core",
    "WallTimeExceeded": "agentnb.core",
    "WorkspaceViolation": "agentnb.core",
}

# Layer packages a user reaches as attributes: `anb.models.list_sim()`, `anb.jobs.run_notebook()`.
_SUBMODULES = ("core", "evals", "governance", "jobs", "models", "notebook", "runtime", "testing",
               "tracing")

__all__ = [
    "Agent",
    "AgentnbError",
    "AgentnbWarning",
    "annotate",
    "annotations",
    "audit",
    "AuditChainBroken",
    "Budget",
    "budget",
    "BudgetExceeded",
    "calibrate",
    "checks",
    "collect",
    "ConfigError",
    "CostUnknownWarning",
    "diff",
    "envs",
    "export_otlp",
    "http_client",
    "Judge",
    "LoopDetected",
    "Message",
    "ModelError",
    "ModelHTTPError",
    "ModelRetry",
    "ModelTimeout",
    "NetworkBlocked",
    "plot_cost_quality",
    "Policy",
    "PolicyDenied",
    "record",
    "RegressionDetected",
    "replay",
    "ReplayDiverged",
    "RetriesExhausted",
    "Rule",
    "Run",
    "RunContext",
    "RunResult",
    "RunStopped",
    "Scenario",
    "set_price",
    "show",
    "spans",
    "spent",
    "Step",
    "StopRequested",
    "Suite",
    "SuiteReport",
    "tool",
    "Tool",
    "ToolFailed",
    "traces",
    "Usage",
    "UsageError",
    "WallTimeExceeded",
    "WorkspaceViolation",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = _LAZY[name]
        value = getattr(importlib.import_module(module), name)
        if module == "agentnb.runtime" and "IPython" in sys.modules:
            # In a notebook, runs display as widgets: load the layer that draws them.
            importlib.import_module("agentnb.notebook")
        if isinstance(value, type) and value.__module__.startswith("agentnb."):
            # Reprs and tracebacks read `agentnb.Agent` (httpx does the same).
            value.__module__ = "agentnb"
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"agentnb.{name}")
        globals()[name] = module
        return module
    msg = f"module 'agentnb' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBMODULES})
