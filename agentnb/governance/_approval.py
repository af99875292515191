"""Approval records and the `Approver` protocol (after inspect_ai's `approval` package).

A tool call that the policy marks `approve` becomes an `ApprovalRequest`; an `Approver` answers
with an `Approval`: approve, edit (run with changed arguments), deny (the model sees `message`)
or terminate (stop the run). Approvers are async so an interactive one can wait for a button
inside the run's task without blocking the notebook.

An approval may be `sticky` ("always approve/deny this tool"): `StickyApprovals` remembers it
for the rest of the run, and is a pydantic model so the run's checkpoint can hold it.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Approval",
    "ApprovalDecision",
    "ApprovalRequest",
    "Approver",
    "StickyApprovals",
]

ApprovalDecision = Literal["approve", "edit", "deny", "terminate"]
"""What an approver decided.

- `approve`: run the call as proposed.
- `edit`: run it with `Approval.arguments` instead.
- `deny`: do not run it; the model sees `Approval.message` as the tool's result.
- `terminate`: do not run it, and stop the run (`stop_reason="policy"`).
"""


class ApprovalRequest(BaseModel):
    """A tool call waiting for an approver.

    Example:
        >>> r = ApprovalRequest(run_id="run_1", tool="send_email", call_id="c1",
        ...                     arguments={"to": "a@example.com"}, effects=["network"],
        ...                     rule="approve:network")
        >>> r.tool
        'send_email'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    """The run that proposed the call (the outermost run's id for a delegate's call)."""
    tool: str
    """Tool name."""
    call_id: str
    """The model's tool-call id."""
    arguments: dict[str, Any]
    """Arguments as the model sent them (already redacted for display by the caller)."""
    effects: list[str] = Field(default_factory=list)
    """The tool's declared effects."""
    reason: str | None = None
    """Why the model chose the tool, when it said so."""
    rule: str
    """The policy rule that asked for approval."""


class Approval(BaseModel):
    """An approver's answer.

    Example:
        >>> Approval(decision="deny", message="Not on a Friday.", approver="ops").decision
        'deny'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision: ApprovalDecision
    """approve, edit, deny or terminate."""
    arguments: dict[str, Any] | None = None
    """The arguments to use instead (for `edit`)."""
    message: str | None = None
    """Shown to the model on deny, and recorded."""
    approver: str
    """Who decided: `auto-approve`, `parameters:<file>`, `widget`, `sticky:<approver>`, ..."""
    sticky: bool = False
    """Apply this decision to every later call of the same tool in this run."""


@runtime_checkable
class Approver(Protocol):
    """Decides tool calls that the policy sends for approval.

    `interactive` approvers need a person (a widget); a sync `agent.run()` replaces them with
    the non-interactive default (deny, recorded) because a click could never arrive.

    Example:
        >>> class Always:
        ...     interactive = False
        ...     async def approve(self, request: ApprovalRequest) -> Approval:
        ...         return Approval(decision="approve", approver="always")
        >>> isinstance(Always(), Approver)
        True
    """

    @property
    def interactive(self) -> bool:
        """Whether a person has to answer (a class attribute or field is fine)."""
        ...

    async def approve(self, request: ApprovalRequest) -> Approval:
        """Decide one request."""
        ...


class StickyApprovals(BaseModel):
    """The "always approve / always deny this tool" answers given so far in a run.

    Serialisable (`model_dump_json` / `model_validate_json`), so a checkpoint holds it and a
    resumed run keeps the answers.

    Example:
        >>> s = StickyApprovals()
        >>> s.remember("send_email", Approval(decision="approve", approver="ops", sticky=True))
        True
        >>> s.get("send_email").decision
        'approve'
        >>> StickyApprovals.model_validate_json(s.model_dump_json()) == s
        True
    """

    model_config = ConfigDict(extra="forbid")

    by_tool: dict[str, Approval] = Field(default_factory=dict)
    """Tool name -> the sticky approval that applies to it."""

    def get(self, tool: str) -> Approval | None:
        """The sticky approval for `tool`, if any."""
        return self.by_tool.get(tool)

    def remember(self, tool: str, approval: Approval) -> bool:
        """Keep `approval` for `tool` if it is sticky and an approve or deny; say whether kept.

        `edit` and `terminate` are never sticky: an edit is about one call's arguments, and a
        terminated run has no later calls.
        """
        if not approval.sticky or approval.decision not in ("approve", "deny"):
            return False
        self.by_tool[tool] = approval
        return True

    def forget(self, tool: str | None = None) -> None:
        """Drop the sticky answer for `tool`, or all of them."""
        if tool is None:
            self.by_tool.clear()
        else:
            self.by_tool.pop(tool, None)
