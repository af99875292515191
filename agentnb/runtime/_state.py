"""Helpers for a run's serialised state: outputs, the store's home, resumed budget limits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentnb.core import Usage
from agentnb.runtime._budget import Budget

if TYPE_CHECKING:
    from agentnb.runtime._agent import Agent

__all__ = ["default_home", "dump_output", "load_output", "remaining_limits"]


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
