"""Concrete approvers: automatic, decided by job parameters, chained, and sticky.

Escalation. An approver may also have `async def review(request) -> Approval | None`; returning
None means "not mine to decide, ask the next one". `ApprovalChain` calls `review` when an
approver has it (else `approve`, where a None answer counts the same) and returns the first
answer; if nobody answers, the call is denied. `ParameterApprover` reviews with its YAML rules
(`decision: escalate`, or no matching rule under `default: escalate`), so a job can decide the
routine calls and pass the rest to a person:

    ApprovalChain([ParameterApprover("approvals.yaml"), widget_approver])
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from agentnb.core import ConfigError, UsageError
from agentnb.governance._approval import Approval, ApprovalRequest, Approver, StickyApprovals

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "ApprovalChain",
    "AutoApprove",
    "AutoDeny",
    "ParameterApprover",
    "StickyApprover",
    "headless_approver",
]

HEADLESS_MESSAGE = (
    "This tool call needs a person's approval, which cannot be given in a blocking run; it was "
    "denied and recorded. Use `await agent.arun(...)` or `agent.start(...)` for interactive "
    "approval, or `approvals=` (allow or a rules file) in a job."
)


async def _ask(approver: Any, request: ApprovalRequest) -> Approval | None:  # Any: duck-typed
    review = getattr(approver, "review", None)
    result = await (review(request) if review is not None else approver.approve(request))
    if result is not None and not isinstance(result, Approval):
        msg = f"Approver {approver!r} returned {result!r}, not an Approval."
        raise UsageError(msg, hint="Return `Approval(decision=..., approver=...)` (or None to "
                         "escalate inside an ApprovalChain).")
    return result


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AutoApprove:
    """Approve every call.

    Example:
        >>> import asyncio
        >>> from agentnb.governance import ApprovalRequest
        >>> req = ApprovalRequest(run_id="r", tool="t", call_id="c", arguments={}, rule="x")
        >>> asyncio.run(AutoApprove().approve(req)).decision
        'approve'
    """

    interactive: bool = dataclasses.field(default=False, init=False)
    """Never needs a person."""

    async def approve(self, request: ApprovalRequest) -> Approval:
        """Approve."""
        return Approval(decision="approve", approver="auto-approve")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AutoDeny:
    """Deny every call, telling the model `message`.

    Example:
        >>> import asyncio
        >>> from agentnb.governance import ApprovalRequest
        >>> req = ApprovalRequest(run_id="r", tool="t", call_id="c", arguments={}, rule="x")
        >>> asyncio.run(AutoDeny(message="Read-only today.").approve(req)).message
        'Read-only today.'
    """

    message: str = "This tool call was denied by policy; no approver allowed it."
    """What the model sees."""
    approver: str = "auto-deny"
    """Name recorded as the approver."""
    interactive: bool = dataclasses.field(default=False, init=False)
    """Never needs a person."""

    async def approve(self, request: ApprovalRequest) -> Approval:
        """Deny."""
        return Approval(decision="deny", message=self.message, approver=self.approver)


_Decision = Literal["approve", "allow", "deny", "terminate", "escalate"]


class _YamlRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tool: str | None = None
    effect: str | None = None
    when_args: dict[str, Any] | None = None
    decision: _Decision
    message: str | None = None

    def matches(self, request: ApprovalRequest) -> bool:
        if self.tool is not None and not fnmatch.fnmatchcase(request.tool, self.tool):
            return False
        if self.effect is not None and self.effect not in request.effects:
            return False
        for name, pattern in (self.when_args or {}).items():
            if name not in request.arguments:
                return False
            value = request.arguments[name]
            if isinstance(pattern, str):
                text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
                if not fnmatch.fnmatchcase(text, pattern):
                    return False
            elif value != pattern:
                return False
        return True


class _YamlFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default: Literal["approve", "allow", "deny", "escalate"] = "deny"
    rules: list[_YamlRule] = []


class ParameterApprover:
    """Decide approvals from a job parameter: `"deny"`, `"allow"`, or a YAML file of rules.

    The file holds a list of rules (or `{default: ..., rules: [...]}`); the first rule that
    matches decides, and no match means `default` (deny unless set). A rule matches on `tool`
    (a glob), `effect` (declared by the tool) and `when_args` (argument name -> glob over the
    value; non-string values are compared as JSON). `decision` is approve (or allow), deny,
    terminate or escalate (pass to the next approver in an `ApprovalChain`); `message` is what
    the model sees on deny.

    ```yaml
    - {tool: send_email, when_args: {to: "*@example.com"}, decision: approve}
    - {effect: money, decision: deny, message: "No purchases in batch jobs."}
    - {tool: write_file, when_args: {path: "*.txt"}, decision: approve}
    ```

    Raises:
        ConfigError: the spec is neither keyword nor a readable, valid rules file.

    Example:
        >>> import asyncio
        >>> from agentnb.governance import ApprovalRequest
        >>> req = ApprovalRequest(run_id="r", tool="t", call_id="c", arguments={}, rule="x")
        >>> asyncio.run(ParameterApprover("allow").approve(req)).approver
        'parameters:allow'
    """

    interactive: bool = False
    """Never needs a person."""

    def __init__(self, spec: str | Path = "deny") -> None:
        self.spec = str(spec)
        if not isinstance(spec, Path) and self.spec in ("deny", "allow", "approve"):
            keyword = "deny" if self.spec == "deny" else "approve"
            self._file = _YamlFile(default=keyword)
            self.name = f"parameters:{self.spec}"
        else:
            self._file = _load_rules(Path(spec))
            self.name = f"parameters:{Path(spec).name}"

    def __repr__(self) -> str:
        return f"ParameterApprover({self.spec!r})"

    async def review(self, request: ApprovalRequest) -> Approval | None:
        """Decide by the rules; None when the answer is `escalate`."""
        for index, rule in enumerate(self._file.rules):
            if rule.matches(request):
                return self._answer(rule.decision, rule.message, f"rule #{index}")
        return self._answer(self._file.default, None, "default")

    async def approve(self, request: ApprovalRequest) -> Approval:
        """Decide by the rules; an `escalate` with nobody to escalate to is a deny."""
        answer = await self.review(request)
        if answer is None:
            return Approval(
                decision="deny", approver=self.name,
                message=f"Approval rules in {self.spec!r} escalated this call and no other "
                "approver was available; denied.",
            )
        return answer

    def _answer(self, decision: str, message: str | None, which: str) -> Approval | None:
        if decision == "escalate":
            return None
        if decision in ("approve", "allow"):
            return Approval(decision="approve", approver=self.name, message=message)
        if message is None:
            message = (f"Denied by the job's approval parameter {self.spec!r} ({which})."
                       if decision == "deny" else f"Run terminated by {self.spec!r} ({which}).")
        return Approval(decision="deny" if decision == "deny" else "terminate",
                        approver=self.name, message=message)


def _load_rules(path: Path) -> _YamlFile:
    import yaml

    source = f"approvals file {str(path)!r}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = f"Approvals spec {str(path)!r} is not 'deny', 'allow' or an existing file."
        raise ConfigError(msg, source="approvals",
                          hint="Pass `approvals=deny`, `approvals=allow` or a YAML rules file.")\
            from None
    except (OSError, yaml.YAMLError) as exc:
        msg = f"Cannot read {source}: {exc}"
        raise ConfigError(msg, source="approvals") from None
    if data is None:
        data = []
    if isinstance(data, list):
        data = {"rules": data}
    try:
        return _YamlFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        msg = f"Invalid {source}: {problems}."
        raise ConfigError(
            msg, source="approvals",
            hint="Each rule has `decision` (approve|deny|terminate|escalate) and optional "
            "`tool`, `effect`, `when_args`, `message`.",
        ) from None


def _or_deny(answer: Approval | None, approver: str, message: str) -> Approval:
    """An escalation that reached nobody is a deny, recorded with who ended it and why."""
    return answer if answer is not None else Approval(decision="deny", approver=approver,
                                                      message=message)


class ApprovalChain:
    """Ask approvers in turn; the first that answers decides (None passes to the next).

    Example:
        >>> import asyncio
        >>> from agentnb.governance import ApprovalRequest
        >>> req = ApprovalRequest(run_id="r", tool="t", call_id="c", arguments={}, rule="x")
        >>> class Abstain:
        ...     interactive = False
        ...     async def approve(self, request):
        ...         return None
        >>> asyncio.run(ApprovalChain([Abstain(), AutoApprove()]).approve(req)).approver
        'auto-approve'
    """

    def __init__(self, approvers: Iterable[Any]) -> None:  # Any: approvers may return None
        self.approvers = tuple(approvers)
        if not self.approvers:
            msg = "ApprovalChain needs at least one approver."
            raise UsageError(msg, hint="e.g. `ApprovalChain([ParameterApprover(...), "
                             "AutoDeny()])`.")
        for approver in self.approvers:
            if not callable(getattr(approver, "approve", None)):
                msg = f"{approver!r} in ApprovalChain has no `approve` method."
                raise UsageError(msg, hint="Approvers implement `async def approve(request)`.")

    @property
    def interactive(self) -> bool:
        """Whether any approver in the chain needs a person."""
        return any(getattr(a, "interactive", False) for a in self.approvers)

    def __repr__(self) -> str:
        return f"ApprovalChain({list(self.approvers)!r})"

    async def review(self, request: ApprovalRequest) -> Approval | None:
        """The first answer in the chain, or None if every approver escalated."""
        for approver in self.approvers:
            answer = await _ask(approver, request)
            if answer is not None:
                return answer
        return None

    async def approve(self, request: ApprovalRequest) -> Approval:
        """The first answer in the chain; deny when every approver escalated."""
        return _or_deny(await self.review(request), "chain",
                        "No approver in the chain decided this call; denied.")


class StickyApprover:
    """Wrap an approver so "always approve/deny this tool" answers are reused.

    An answer with `sticky=True` (approve or deny) is stored in `state` under the tool's name;
    later calls of that tool get it back at once, with `approver="sticky:<original>"`.

    Example:
        >>> import asyncio
        >>> from agentnb.governance import ApprovalRequest
        >>> req = ApprovalRequest(run_id="r", tool="t", call_id="c", arguments={}, rule="x")
        >>> s = StickyApprover(AutoApprove())
        >>> s.state.remember("t", Approval(decision="deny", approver="ops", sticky=True))
        True
        >>> asyncio.run(s.approve(req)).approver
        'sticky:ops'
    """

    def __init__(self, inner: Any, state: StickyApprovals | None = None) -> None:  # Any: see chain
        self.inner = inner
        self.state = state if state is not None else StickyApprovals()

    @property
    def interactive(self) -> bool:
        """Whether the wrapped approver needs a person."""
        return bool(getattr(self.inner, "interactive", False))

    def __repr__(self) -> str:
        return f"StickyApprover({self.inner!r})"

    async def review(self, request: ApprovalRequest) -> Approval | None:
        """The remembered answer for the tool, else the inner approver's (remembered if sticky)."""
        remembered = self.state.get(request.tool)
        if remembered is not None:
            return remembered.model_copy(
                update={"approver": f"sticky:{remembered.approver.removeprefix('sticky:')}"}
            )
        answer = await _ask(self.inner, request)
        if answer is not None:
            self.state.remember(request.tool, answer)
        return answer

    async def approve(self, request: ApprovalRequest) -> Approval:
        """As `review`, with an escalation that reaches nobody denied."""
        return _or_deny(await self.review(request), "sticky",
                        "The approver escalated this call and nobody else was asked.")


def headless_approver(approver: Approver | None, message: str = HEADLESS_MESSAGE) -> Approver:
    """The approver to use where no person can answer (a sync run, a batch job).

    Non-interactive approvers are kept; an `ApprovalChain` keeps its non-interactive links and
    ends with a deny; anything else interactive (or None) becomes `AutoDeny(message)`.

    Example:
        >>> headless_approver(None).approve.__self__.approver
        'headless'
    """
    deny = AutoDeny(message=message, approver="headless")
    if approver is None:
        return deny
    if not getattr(approver, "interactive", False):
        return approver
    if isinstance(approver, ApprovalChain):
        keep = [a for a in approver.approvers if not getattr(a, "interactive", False)]
        return ApprovalChain([*keep, deny])
    if isinstance(approver, StickyApprover):
        return StickyApprover(headless_approver(approver.inner, message), approver.state)
    return deny
