"""The records a run leaves: `Step` (one transition), `ToolCallRecord` and `RunResult`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentnb.core import Message, StopReason, Usage

__all__ = ["RunResult", "RunState", "RunStatus", "Step", "StepKind", "StepStatus",
           "ToolCallRecord"]

RunState = Literal["ready", "awaiting_approval", "done", "failed", "stopped"]
"""Where a run is: ready for its next step, waiting for an approval, or finished."""

RunStatus = Literal["done", "failed", "stopped"]
"""How a finished run ended."""

StepKind = Literal["model", "approval", "tools"]
"""What one step did: a model call, an approval, or a batch of tool calls."""

StepStatus = Literal["ok", "retry", "stopped", "failed"]
"""How a step ended: ok, ok but a retry prompt was sent, stopped by a kill switch, or failed."""


class ToolCallRecord(BaseModel):
    """One tool call of a `tools` step (or a decision of an `approval` step), with its result."""

    model_config = ConfigDict(frozen=True)
    id: str
    """The model's call id."""
    name: str
    """The tool's name."""
    arguments: str
    """The arguments as the model sent them (JSON text)."""
    reason: str | None = None
    """The model's stated reason for the call."""
    result: str | None = None
    """What the model saw as the result."""
    status: Literal["ok", "error", "retry", "denied", "pending", "approved", "edited"] = "pending"
    """How the call ended (or the approval decision, in an approval step)."""
    decision: str | None = None
    """The policy decision (`allow`, `deny`, `approve`) and who approved, when a policy applies."""
    duration_s: float = 0.0
    """How long the call took."""
    replayed: bool = False
    """True when the result came from the run's recordings instead of running the tool."""

    def json_dict(self) -> dict[str, Any]:
        """`model_dump(mode="json")`, made by hand (every step's dump holds its calls).

        Example:
            >>> c = ToolCallRecord(id="c1", name="lookup", arguments="{}", status="ok")
            >>> c.json_dict() == c.model_dump(mode="json")
            True
        """
        return {"id": self.id, "name": self.name, "arguments": self.arguments,
                "reason": self.reason, "result": self.result, "status": self.status,
                "decision": self.decision, "duration_s": self.duration_s,
                "replayed": self.replayed}


class Step(BaseModel):
    """One transition of a run: a model call, an approval, or a batch of tool calls.

    Example:
        >>> from agentnb.models import FunctionModel
        >>> import agentnb as anb
        >>> run = anb.Agent(model=FunctionModel(lambda m, i: "hi")).start("say hi")
        >>> step = run.step()
        >>> step.kind, step.index, step.status, run.state
        ('model', 1, 'ok', 'done')
    """

    model_config = ConfigDict(frozen=True)
    kind: StepKind
    """What the step did."""
    index: int
    """1 for the first step of a run."""
    status: StepStatus = "ok"
    """How it ended."""
    usage: Usage = Field(default_factory=Usage)
    """What it consumed."""
    messages: tuple[Message, ...] = ()
    """The messages it added to the conversation."""
    tool_calls: tuple[ToolCallRecord, ...] = ()
    """Tool calls proposed (model step), decided (approval step) or executed (tools step)."""
    reason: str | None = None
    """The model's stated reason for its tool choice, when it gave one."""
    started_at: datetime
    """When the step began (UTC)."""
    duration_s: float = 0.0
    """How long it took."""
    cache_hit: bool = False
    """True when the model response came from the cache or the run's recordings."""
    stop_reason: StopReason | None = None
    """Why the run stopped at this step."""
    error: str | None = None
    """What went wrong, for a stopped or failed step."""


class RunResult(BaseModel):
    """What a finished run returns.

    Example:
        >>> from agentnb.models import FunctionModel
        >>> import agentnb as anb
        >>> result = anb.Agent(model=FunctionModel(lambda m, i: "42")).run("answer")
        >>> result.output, result.status, result.stop_reason
        ('42', 'done', None)
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    output: Any = None
    """The final text, or the validated object when the agent has an `output_type`."""
    status: RunStatus
    """done, failed or stopped."""
    stop_reason: StopReason | None = None
    """Which kill switch stopped the run."""
    usage: Usage = Field(default_factory=Usage)
    """Tokens, calls and USD (None when any call was unpriced)."""
    run_id: str
    """The key for traces, checkpoints and replay."""
    steps: tuple[Step, ...] = ()
    """Every step, in order."""
    error: str | None = None
    """What went wrong, for a failed or stopped run."""

    @property
    def ok(self) -> bool:
        """True when the run finished normally."""
        return self.status == "done"
