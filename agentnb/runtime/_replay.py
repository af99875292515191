"""`replay(run_id)`: re-execute a recorded run from its recordings only.

No model is called and no tool runs: each model request must match a recorded one (by request
hash and occurrence) and each tool call a recorded call, or `ReplayDiverged` names the step and
shows a diff of what was recorded against what was asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentnb.core import UsageError, run_sync
from agentnb.runtime._budget import BudgetScope
from agentnb.runtime._checkpoint import run_store

if TYPE_CHECKING:
    from agentnb.runtime._agent import Agent
    from agentnb.runtime._run import Run

__all__ = ["areplay", "replay"]


async def areplay(run_id: str, *, agent: Agent | None = None, home: Any = None) -> Run:
    """Async twin of `replay`."""
    from agentnb.runtime._agent import registered_agent
    from agentnb.runtime._run import Run
    from agentnb.runtime._state import default_home

    store = run_store(home if home is not None else default_home(agent))
    last = await store.aload_checkpoint(run_id)
    found = agent or registered_agent(last.agent)
    if found is None:
        msg = f"Run {run_id!r} belongs to agent {last.agent!r}, which is not defined."
        raise UsageError(msg, hint="Define the agent again (run its cell) or pass `agent=`.")
    state = last.state
    replayed = Run(found, state["task"], deps=found.deps, parent_run_id=run_id,
                   parent_scope=BudgetScope(name="replay"))
    replayed.replay_source = run_id
    wrap = state.get("wrap_note")
    replayed.replay_plan = {"steps": len(state["steps"]), "stop_reason": state.get("stop_reason"),
                            "wrap_note": wrap}
    await replayed.arun_to_end()
    return replayed


def replay(run_id: str, *, agent: Agent | None = None, home: Any = None) -> Run:
    """Re-execute a recorded run from its recordings; returns the replayed `Run`.

    The agent is found by name among the agents defined in this process, or passed.

    Raises:
        ReplayDiverged: a model request or tool call differs from the recording (for example a
            tool's description or the instructions changed); the message holds a diff.
        StoreError: nothing was recorded under `run_id`.

    Example:
        >>> from agentnb.models import FunctionModel
        >>> from agentnb.runtime import Agent
        >>> agent = Agent(model=FunctionModel(lambda m, i: "hi"), name="replay-doc")
        >>> first = agent.run("greet")
        >>> [s.kind for s in replay(first.run_id).steps]
        ['model']
    """
    return run_sync(areplay(run_id, agent=agent, home=home))
