"""Helpers for a run's serialised state: outputs, the store's home, resumed budget limits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentnb.core import Message, ToolCallPart, Usage
from agentnb.runtime._budget import Budget
from agentnb.runtime._killswitch import LoopDetector
from agentnb.runtime._step import Step

if TYPE_CHECKING:
    from agentnb.runtime._agent import Agent
    from agentnb.runtime._run import Run

__all__ = ["default_home", "dump_output", "load_output", "remaining_limits", "restore_fields"]


def dump_output(output: Any) -> Any:
    """A run's output as JSON-able data (pydantic objects dumped)."""
    dump = getattr(output, "model_dump", None)
    return dump(mode="json") if dump is not None else output


def load_output(agent: Agent, data: Any) -> Any:
    """Rebuild a run's output from `dump_output` data, validating it as the `output_type`."""
    if data is None or agent.output_type is None:
        return data
    from pydantic import TypeAdapter

    return TypeAdapter(agent.output_type).validate_python(data)


def default_home(agent: Agent | None) -> Any:
    """The store's home: the agent's settings, else resolved from the environment."""
    if agent is not None:
        return agent.resolved_settings.home
    from agentnb.core import resolve

    return resolve().home


def remaining_limits(limits: Budget | None, prior: dict[str, Any] | None, elapsed: float,
                      steps: int, retries: int) -> Budget | None:
    """A resumed run's limits: what the original budget leaves after the usage so far."""
    if limits is None or prior is None:
        return limits
    u = Usage.model_validate(prior)

    def left(limit: Any, used: Any) -> Any:
        return None if limit is None else max(limit - used, 0)

    return Budget(usd=left(limits.usd, u.usd or 0),
                  tokens=left(limits.tokens, u.total_tokens),
                  model_calls=left(limits.model_calls, u.model_calls),
                  tool_calls=left(limits.tool_calls, u.tool_calls),
                  steps=left(limits.steps, steps), retries=left(limits.retries, retries),
                  wall_s=left(limits.wall_s, elapsed), wrap_up_at=limits.wrap_up_at)


def restore_fields(run: Run, agent: Agent, state: dict[str, Any]) -> None:
    """Set a freshly made run's fields from `Run.state_dict()` data (what `Run.from_state`
    does after checking the version and making the run)."""
    run._state = state["state"]
    run._messages = [Message.model_validate(m) for m in state["messages"]]
    run._message_dumps = list(state["messages"])
    run._encoded = {"messages": [], "steps": []}  # encoded at the first checkpoint
    run._chain = list(state["chain"])
    run._steps = [Step.model_validate(s) for s in state["steps"]]
    run._step_dumps = list(state["steps"])
    run.pending = [ToolCallPart.model_validate(c) for c in state["pending"]]
    run.decisions = dict(state["decisions"])
    run.sticky = dict(state["sticky"])
    run.usage = Usage.model_validate(state["usage"])
    run._prior_usage = state["usage"]
    run.retries = int(state["retries"])
    run.occurrences = dict(state["occurrences"])
    run.loop = LoopDetector.from_dict(state["loop"])
    run.output = load_output(agent, state.get("output"))
    run.stop_reason = state.get("stop_reason")
    run.error = state.get("error")
    run._elapsed_prior = float(state.get("elapsed_s") or 0.0)
    wrap = state.get("wrap_note")
    run.wrap_note = (int(wrap[0]), str(wrap[1])) if wrap else None
    run.model_mark = int(state.get("model_mark", 0))
    forked = state.get("forked_from")
    run.forked_from = (str(forked[0]), int(forked[1])) if forked else None
