"""Layer 4: tools, agents, the run state machine, budgets, cache, checkpoints, record/replay."""

from agentnb.runtime._agent import Agent
from agentnb.runtime._budget import (
    Budget,
    BudgetScope,
    BudgetSnapshot,
    Reservation,
    ScopeKind,
    Settlement,
    Spent,
)
from agentnb.runtime._cache import CacheStats, ResponseCache, cache_key, response_cache
from agentnb.runtime._checkpoint import (
    Checkpoint,
    Recording,
    RecordKind,
    RunInfo,
    RunStore,
    run_store,
)
from agentnb.runtime._context import RunContext
from agentnb.runtime._hooks import register_display
from agentnb.runtime._killswitch import LoopDetector
from agentnb.runtime._replay import areplay, replay
from agentnb.runtime._run import Run
from agentnb.runtime._scopes import budget, current_scope, open_scopes, spent, use_scope
from agentnb.runtime._step import (
    RunResult,
    RunState,
    RunStatus,
    Step,
    StepKind,
    StepStatus,
    ToolCallRecord,
)
from agentnb.runtime._tool import Tool, ToolOutcome, ToolStatus, tool

__all__ = [
    "Agent",
    "areplay",
    "Budget",
    "budget",
    "BudgetScope",
    "BudgetSnapshot",
    "cache_key",
    "CacheStats",
    "Checkpoint",
    "current_scope",
    "LoopDetector",
    "open_scopes",
    "Recording",
    "RecordKind",
    "register_display",
    "replay",
    "Reservation",
    "response_cache",
    "ResponseCache",
    "Run",
    "run_store",
    "RunContext",
    "RunInfo",
    "RunResult",
    "RunState",
    "RunStatus",
    "RunStore",
    "ScopeKind",
    "Settlement",
    "Spent",
    "spent",
    "Step",
    "StepKind",
    "StepStatus",
    "tool",
    "Tool",
    "ToolCallRecord",
    "ToolOutcome",
    "ToolStatus",
    "use_scope",
]
