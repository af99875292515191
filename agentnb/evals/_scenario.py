"""`Scenario` (a task plus the checks its run must pass) and `Outcome` (what the checks see)."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from agentnb.core import UsageError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agentnb.evals._checks import Check
    from agentnb.evals._environments import Environment
    from agentnb.runtime import Budget

__all__ = ["Outcome", "Scenario"]


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    """One eval case: a task, the checks its run must pass, and where it runs.

    Args:
        name: a short unique name (rows of the report, pytest ids).
        task: what the agent is asked.
        checks: `anb.checks.*` the run must pass; with none, `expected` (when given) must be
            contained in the output, else the run must end `done`.
        environment: the synthetic world for this scenario (overrides the suite's); every run
            gets a fresh copy.
        budget: limits for each run of this scenario (replaces the agent's budget).
        tags: free labels for filtering (`suite.select(tags=...)`).
        expected: a reference answer, shown to judges and used when there are no checks.

    Example:
        >>> from agentnb.evals import checks
        >>> s = Scenario("status", "Look up order 42.", checks=[checks.tool_called("lookup_order")])
        >>> s.name, [c.name for c in s.all_checks()]
        ('status', ["tool_called('lookup_order')"])
    """

    name: str
    """Short unique name."""
    task: str
    """What the agent is asked."""
    _: dataclasses.KW_ONLY
    checks: Sequence[Check] = ()
    """What the run must pass."""
    environment: Environment | None = None
    """The world the run acts in (a fresh copy per run)."""
    budget: Budget | None = None
    """Per-run limits."""
    tags: tuple[str, ...] = ()
    """Free labels."""
    expected: Any = None
    """A reference answer."""

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            msg = f"A Scenario needs a non-empty name, got {self.name!r}."
            raise UsageError(msg, hint='Pass `anb.Scenario("refund", task="...")`.')
        if not isinstance(self.task, str) or not self.task.strip():
            msg = f"Scenario {self.name!r} needs a task (text), got {self.task!r}."
            raise UsageError(msg)
        object.__setattr__(self, "checks", tuple(self.checks))
        object.__setattr__(self, "tags", tuple(self.tags))
        from agentnb.evals._checks import Check

        for check in self.checks:
            if not isinstance(check, Check):
                msg = f"Scenario {self.name!r} got {check!r} as a check, which is not a `Check`."
                raise UsageError(msg, hint="Use `anb.checks.contains(...)`, "
                                           "`anb.checks.custom(fn)`, ...")

    def all_checks(self) -> tuple[Check, ...]:
        """The checks to run: the given ones, or the default described in the class docstring."""
        if self.checks:
            return tuple(self.checks)
        from agentnb.evals import _checks

        if self.expected is not None:
            return (_checks.contains(str(self.expected)),)
        return (_checks.status("done"),)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """What a check sees: the run's result, its world afterwards, its latency.

    `result` is a `RunResult` or anything shaped like one (`output`, `status`, `usage`,
    `steps` with `tool_calls`), so checks are testable without an agent.
    """

    scenario: Scenario
    """The scenario that ran."""
    result: Any
    """The `RunResult` (or a result-like object)."""
    environment: Any = None
    """The run's world, after the run."""
    model: str = ""
    """The model id the run used."""
    latency_s: float = 0.0
    """Wall time of the run."""
    repeat: int = 0
    """Which repeat this is."""

    @property
    def output(self) -> Any:
        """The run's final output."""
        return getattr(self.result, "output", None)

    @property
    def text(self) -> str:
        """The output as text (JSON for structured outputs)."""
        out = self.output
        if out is None:
            return ""
        if isinstance(out, str):
            return out
        dump = getattr(out, "model_dump", None)
        if callable(dump):
            return json.dumps(dump(mode="json"))
        try:
            return json.dumps(out)
        except (TypeError, ValueError):
            return str(out)

    @property
    def steps(self) -> tuple[Any, ...]:
        """The run's steps."""
        return tuple(getattr(self.result, "steps", ()) or ())

    def tool_calls(self, *, executed: bool = True) -> list[Any]:
        """Tool calls in order: executed ones (in `tools` steps), or as proposed by the model."""
        kind = "tools" if executed else "model"
        return [c for s in self.steps if getattr(s, "kind", kind) == kind
                for c in getattr(s, "tool_calls", ())]

    def trajectory(self) -> str:
        """A readable account of the run: each step, its tool calls and results."""
        lines = [f"task: {self.scenario.task}",
                 f"model: {self.model}  status: {getattr(self.result, 'status', '?')}"
                 f"  stop_reason: {getattr(self.result, 'stop_reason', None)}"]
        for step in self.steps:
            kind = getattr(step, "kind", "?")
            lines.append(f"  step {getattr(step, 'index', '?')} {kind} "
                         f"[{getattr(step, 'status', '?')}]")
            for call in getattr(step, "tool_calls", ()):
                result = getattr(call, "result", None)
                tail = "" if result is None else f" -> {_short(result)}"
                lines.append(f"    {call.name}({_short(call.arguments, 120)}) "
                             f"[{getattr(call, 'status', '?')}]{tail}")
            if kind == "model" and not getattr(step, "tool_calls", ()):
                texts = [m.text for m in getattr(step, "messages", ()) if getattr(m, "text", "")]
                if texts:
                    lines.append(f"    answer: {_short(texts[-1], 200)}")
        error = getattr(self.result, "error", None)
        if error:
            lines.append(f"  error: {error}")
        return "\n".join(lines)


def _short(text: Any, limit: int = 100) -> str:
    s = str(text).replace("\n", " ")
    return s if len(s) <= limit else s[: limit - 3] + "..."
