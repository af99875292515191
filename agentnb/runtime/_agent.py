"""`Agent`: a frozen definition (model, instructions, tools, delegates, budget, policy).

Everything that executes lives in `Run`; an agent only starts runs.
"""

from __future__ import annotations

import dataclasses
import json
import re
import weakref
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from agentnb.core import UNSET, Settings, ToolDefinition, Unset, UsageError, resolve, run_sync
from agentnb.runtime._budget import Budget
from agentnb.runtime._context import RunContext
from agentnb.runtime._tool import Tool, render_result

if TYPE_CHECKING:
    from agentnb.models import Model, ModelSettings
    from agentnb.runtime._run import Run
    from agentnb.runtime._step import RunResult

__all__ = ["Agent"]

_REGISTRY: weakref.WeakValueDictionary[str, Agent] = weakref.WeakValueDictionary()
"""Agents by name, so that `Run.load(run_id)` and `replay(run_id)` find the definition again."""


def registered_agent(name: str) -> Agent | None:
    """The most recently defined agent with this name, if it is still alive."""
    return _REGISTRY.get(name)


def _delegate_tool(agent: Agent) -> Tool:
    async def delegate(ctx: RunContext, task: str) -> str:
        return await run_delegate(agent, task, ctx)

    description = (f"Delegate a sub-task to the agent {agent.agent_name!r}"
                   + (f": {agent.description}" if agent.description else ".")
                   + " It works on its own and returns its answer.")
    name = agent.agent_name
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        name = "agent"
    return Tool(delegate, name=f"delegate_{name}"[:64], description=description)


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Agent:
    """An agent definition: which model, told what, with which tools, within which limits.

    Args:
        model: `"provider:model"`, a `Model`, or UNSET for `settings.default_model`
            (`sim:careful` unless configured).
        instructions: the system prompt.
        tools: the `Tool`s (or plain functions, made into tools) the model may call.
        budget: limits for each run (carved out of any enclosing `anb.budget(...)` scope).
        policy: the governance `Policy` every tool call passes; None allows every call.
        delegates: agents offered to the model as tools; each call is a child run.
        max_concurrency: parallel tool calls / delegates per step.
        output_type: a pydantic model the final answer must validate against.
        name: the agent's name (traces, delegation, `Run.load`).
        description: what the agent does, shown to a parent that delegates to it.
        approver: who decides calls the policy sends for approval.
        max_tokens: output cap per model call (budgets reserve it).
        model_settings: other per-call settings.
        loop_threshold: repeats of the same call or output that count as a loop (0: off).
        cache: use the response cache (UNSET: `settings.cache`).
        wrap_up_at: fraction of a limit after which the model is asked to wrap up (None: never).
        deps: passed to tools as `ctx.deps`.
        settings: resolved settings (UNSET: resolved now from the environment).

    Example:
        >>> from agentnb.models import FunctionModel
        >>> agent = Agent(model=FunctionModel(lambda messages, info: "hello"), name="greeter")
        >>> agent.run("greet").output
        'hello'
    """

    model: Any = UNSET
    """The model as given; the resolved one is `agent.resolved_model`."""
    instructions: str = ""
    tools: Sequence[Any] = ()
    budget: Budget | None = None
    policy: Any = None
    delegates: Sequence[Agent] = ()
    max_concurrency: int = 8
    output_type: type[Any] | None = None
    name: str | None = None
    description: str = ""
    approver: Any = None
    max_tokens: int | None = None
    model_settings: ModelSettings | None = None
    loop_threshold: int = 3
    cache: bool | Unset = UNSET
    wrap_up_at: float | Unset | None = UNSET
    deps: Any = None
    settings: Settings | Unset = UNSET
    _resolved: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, init=False,
                                                compare=False)

    def __post_init__(self) -> None:
        from agentnb.models._registry import get_model

        settings = self.settings if isinstance(self.settings, Settings) else resolve()
        model = get_model(settings.default_model if self.model is UNSET else self.model,
                          settings=settings)
        name = self.name or "agent"
        tools: dict[str, Tool] = {}
        for item in (*self.tools, *(_delegate_tool(d) for d in self.delegates)):
            t = item if isinstance(item, Tool) else Tool(item)
            if t.name in tools:
                msg = f"Agent {name!r} has two tools named {t.name!r}."
                raise UsageError(msg, hint="Pass `name=` to `@tool(...)` to tell them apart.")
            tools[t.name] = t
        if self.max_concurrency < 1:
            msg = f"max_concurrency must be >= 1, got {self.max_concurrency!r}."
            raise UsageError(msg)
        if self.budget is not None and not isinstance(self.budget, Budget):
            msg = f"budget= must be an `anb.Budget`, got {type(self.budget).__name__}."
            raise UsageError(msg, hint="Pass `budget=anb.Budget(usd=0.50, ...)`.")
        wrap = self.wrap_up_at
        if isinstance(wrap, Unset):
            wrap = self.budget.wrap_up_at if self.budget is not None else 0.8
        instructions = self.instructions
        if self.output_type is not None:
            instructions = _with_schema(instructions, self.output_type)
        from agentnb.models import ModelSettings

        base = self.model_settings or ModelSettings()
        if self.max_tokens is not None:
            base = base.model_copy(update={"max_tokens": self.max_tokens})
        self._resolved.update(
            settings=settings, model=model, name=name, tools=tools,
            definitions=tuple(t.definition for t in tools.values()),
            cache=settings.cache if isinstance(self.cache, Unset) else bool(self.cache),
            wrap_up_at=wrap, system=instructions, model_settings=base,
        )
        _REGISTRY[name] = self

    # -- resolved views ------------------------------------------------------------------

    @property
    def agent_name(self) -> str:
        """The name used in traces and checkpoints."""
        return self._resolved["name"]

    @property
    def resolved_model(self) -> Model:
        """The model every run of this agent calls."""
        return self._resolved["model"]

    @property
    def resolved_settings(self) -> Settings:
        """The settings resolved at construction."""
        return self._resolved["settings"]

    @property
    def tool_map(self) -> dict[str, Tool]:
        """Tools (delegates included) by name."""
        return self._resolved["tools"]

    @property
    def tool_definitions(self) -> tuple[ToolDefinition, ...]:
        """What the model is shown."""
        return self._resolved["definitions"]

    @property
    def system_prompt(self) -> str:
        """The instructions, plus the output schema when there is an `output_type`."""
        return self._resolved["system"]

    # -- running -------------------------------------------------------------------------

    def start(self, task: str, *, deps: Any = UNSET, environment: Any = None) -> Run:
        """Create a `Run` for `task` without executing anything.

        Example:
            >>> from agentnb.models import FunctionModel
            >>> run = Agent(model=FunctionModel(lambda m, i: "ok")).start("task")
            >>> run.state, run.steps
            ('ready', [])
        """
        from agentnb.runtime._run import Run

        return Run(self, task, deps=self.deps if deps is UNSET else deps,
                   environment=environment)

    async def arun(self, task: str, *, raise_on_stop: bool = False, deps: Any = UNSET,
                   environment: Any = None) -> RunResult:
        """Run `task` to the end (async twin of `run`)."""
        run = self.start(task, deps=deps, environment=environment)
        return await run.arun_to_end(raise_on_stop=raise_on_stop)

    def run(self, task: str, *, raise_on_stop: bool = False, deps: Any = UNSET,
            environment: Any = None) -> RunResult:
        """Run `task` to the end; works inside Jupyter's running loop.

        Args:
            task: what to do.
            raise_on_stop: raise the kill switch's error (`BudgetExceeded`, ...) instead of
                returning a stopped result.
            deps: overrides the agent's `deps` for this run.
            environment: the synthetic environment of an eval scenario.

        Raises:
            RunStopped: a kill switch stopped the run and `raise_on_stop` is True.
            UsageError: called from agentnb's own loop (a sync tool calling `agent.run`).
        """
        return run_sync(self.arun(task, raise_on_stop=raise_on_stop, deps=deps,
                                  environment=environment))

    async def amap(self, tasks: Iterable[str], *, concurrency: int = 50,
                   budget: Budget | None = None) -> list[RunResult]:
        """Run many tasks under one shared budget scope (async twin of `map`)."""
        from agentnb.runtime._map import amap

        return await amap(self, tasks, concurrency=concurrency, budget=budget)

    def map(self, tasks: Iterable[str], *, concurrency: int = 50,
            budget: Budget | None = None) -> list[RunResult]:
        """Run many tasks concurrently under one shared budget scope; results in input order.

        One run failing does not stop the others; its result says `failed` and why.

        Example:
            >>> from agentnb.models import FunctionModel
            >>> agent = Agent(model=FunctionModel(lambda m, i: m[-1].text.upper()))
            >>> [r.output for r in agent.map(["a", "b"])]
            ['A', 'B']
        """
        return run_sync(self.amap(tasks, concurrency=concurrency, budget=budget))

    def __repr__(self) -> str:
        return (f"Agent(name={self.agent_name!r}, model={self.resolved_model.info.id!r}, "
                f"tools={sorted(self.tool_map)!r})")


def _with_schema(instructions: str, output_type: type[Any]) -> str:
    from pydantic import TypeAdapter

    schema = TypeAdapter(output_type).json_schema()
    note = ("Give your final answer as a single JSON object, with no other text, that matches "
            f"this JSON schema:\n{json.dumps(schema)}")
    return f"{instructions}\n\n{note}" if instructions else note


async def run_delegate(agent: Agent, task: str, ctx: RunContext) -> str:
    """Run a delegate agent as a child run of the calling run; its answer is the tool result.

    The child's budget scope is carved out of the parent run's scope (the current one while a
    tool runs). A stop caused by an ancestor's limit is fatal to the parent step; any other
    stop or failure is a tool error the parent model sees.
    """
    from agentnb.core import ToolFailed
    from agentnb.runtime._run import CURRENT_RUN, Run
    from agentnb.runtime._state import dump_output

    parent = CURRENT_RUN.get()
    child = Run(agent, task, deps=agent.deps if agent.deps is not None else ctx.deps,
                environment=ctx.environment, parent_run_id=ctx.run_id)
    if parent is not None:
        parent.children.append(child)
        if parent.stopping:
            child.stop()
    result = await child.arun_to_end()
    if result.status == "done":
        return render_result(dump_output(result.output))
    err = child.stop_error
    owner = getattr(err, "scope_name", None)
    if err is not None and err.reason in ("budget", "wall_time") and owner not in (
            None, child.run_id):
        raise err
    what = f"stopped ({result.stop_reason})" if result.status == "stopped" else "failed"
    raise ToolFailed(f"Delegate {agent.agent_name!r} {what}: {result.error}")
