"""`Suite`: run every scenario x model x repeat, each in a fresh world; `SuiteReport` of the rows.

One agent definition runs under several models: the suite makes a copy of the agent per run
with `dataclasses.replace` (model, the environment's tools when the agent lacks them, a seed per
repeat so simulated models vary between repeats, the scenario's budget), and passes the fresh
world as `environment=` so tools act on that run's own state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from agentnb.core import AgentnbError, UsageError, run_sync
from agentnb.evals._report import SuiteReport
from agentnb.evals._scenario import Outcome, Scenario

if TYPE_CHECKING:
    from agentnb.evals._environments import Environment
    from agentnb.runtime import Agent, Budget

__all__ = ["Suite"]


def _model_id(model: Any) -> str:
    if isinstance(model, str):
        return model
    info = getattr(model, "info", None)
    return str(getattr(info, "id", None) or type(model).__name__)


def _tool_name(item: Any) -> str | None:
    return getattr(item, "name", None) or getattr(item, "__name__", None)


def variant(agent: Agent, *, model: Any = None, environment: Environment | None = None,
            seed: int | None = None, budget: Budget | None = None) -> Agent:
    """A copy of `agent` with another model, the environment's tools, a seed and a budget."""
    from agentnb.models import ModelSettings

    changes: dict[str, Any] = {}
    if model is not None:
        changes["model"] = model
    if environment is not None:
        have = {_tool_name(t) for t in agent.tools}
        extra = [t for t in environment.tools if t.name not in have]
        if extra:
            changes["tools"] = [*agent.tools, *extra]
    if seed is not None:
        settings = agent.model_settings or ModelSettings()
        if settings.seed is None:
            changes["model_settings"] = settings.model_copy(update={"seed": seed})
    if budget is not None:
        changes["budget"] = budget
    return dataclasses.replace(agent, **changes) if changes else agent


class Suite:
    """Scenarios run together across models and repeats.

    Args:
        scenarios: the `Scenario`s (names must be unique).
        environment: the world every scenario runs in unless it names its own; each run gets
            a fresh copy.
        name: shown in reports.

    Example:
        >>> import agentnb as anb
        >>> from agentnb.evals import Scenario, Suite, checks, envs
        >>> suite = Suite([Scenario("status", "Look up order 42 and report its status.",
        ...                          checks=[checks.tool_called("lookup_order")])],
        ...               environment=envs.Catalogue(seed=1))
        >>> report = suite.run(anb.Agent(model="sim:expert"), models=["sim:expert"])
        >>> float(report.table().loc["sim:expert", "pass_rate"])
        1.0
    """

    def __init__(self, scenarios: Iterable[Scenario], environment: Environment | None = None,
                 *, name: str = "suite") -> None:
        self.scenarios = list(scenarios)
        self.environment = environment
        self.name = name
        if not self.scenarios:
            msg = f"Suite {name!r} has no scenarios."
            raise UsageError(msg, hint="Pass `anb.Suite([anb.Scenario(...), ...])`.")
        seen: set[str] = set()
        for s in self.scenarios:
            if not isinstance(s, Scenario):
                msg = f"Suite {name!r} got {s!r}, which is not a `Scenario`."
                raise UsageError(msg)
            if s.name in seen:
                msg = f"Suite {name!r} has two scenarios named {s.name!r}."
                raise UsageError(msg, hint="Give every scenario a unique name.")
            seen.add(s.name)

    def __repr__(self) -> str:
        return f"Suite({self.name!r}, scenarios={[s.name for s in self.scenarios]!r})"

    def __len__(self) -> int:
        return len(self.scenarios)

    def select(self, *, tags: Iterable[str] = (), names: Iterable[str] = ()) -> Suite:
        """A suite of the scenarios carrying any of `tags` or named in `names`."""
        tagset, nameset = set(tags), set(names)
        chosen = [s for s in self.scenarios
                  if (tagset & set(s.tags)) or s.name in nameset or not (tagset or nameset)]
        return Suite(chosen, self.environment, name=self.name)

    async def arun(self, agent: Agent, models: Sequence[Any] | None = None, *, repeats: int = 1,
                   concurrency: int = 8, budget: Budget | float | Decimal | None = None,
                   seed: int = 0) -> SuiteReport:
        """Async twin of `run`."""
        from agentnb.runtime import Budget
        from agentnb.runtime import budget as budget_scope

        if repeats < 1 or concurrency < 1:
            msg = f"repeats and concurrency must be >= 1, got {repeats!r} and {concurrency!r}."
            raise UsageError(msg)
        model_list = list(models) if models else [agent.model if isinstance(agent.model, str)
                                                  else agent.resolved_model]
        jobs = [(s, m, r) for m in model_list for s in self.scenarios for r in range(repeats)]
        gate = asyncio.Semaphore(concurrency)
        rows: list[dict[str, Any] | None] = [None] * len(jobs)

        async def one(i: int, scenario: Scenario, model: Any, repeat: int) -> None:
            async with gate:
                rows[i] = await self._run_one(agent, scenario, model, repeat, seed)

        limits = (budget if isinstance(budget, Budget) or budget is None
                  else Budget(usd=Decimal(str(budget))))
        started = time.perf_counter()
        async with (budget_scope(limits or Budget(), name=f"suite {self.name}"),
                    asyncio.TaskGroup() as group):
            for i, (s, m, r) in enumerate(jobs):
                group.create_task(one(i, s, m, r))
        meta = {"suite": self.name, "models": [_model_id(m) for m in model_list],
                "repeats": repeats, "scenarios": [s.name for s in self.scenarios],
                "wall_s": round(time.perf_counter() - started, 3)}
        return SuiteReport.from_rows([r for r in rows if r is not None], meta=meta)

    def run(self, agent: Agent, models: Sequence[Any] | None = None, *, repeats: int = 1,
            concurrency: int = 8, budget: Budget | float | Decimal | None = None,
            seed: int = 0) -> SuiteReport:
        """Run every scenario x model x repeat (a fresh world each) and check the results.

        Args:
            agent: the agent definition; its model is replaced by each of `models`.
            models: model ids or `Model`s (default: the agent's own model).
            repeats: runs per scenario and model; repeat `r` uses model seed `seed + r`.
            concurrency: runs at once.
            budget: a `Budget` (or USD amount) for the whole suite, judges included.
            seed: the first repeat's model seed.

        Returns:
            A `SuiteReport`: `.table()`, `.plot()`, `.save()`, `.compare()`.
        """
        return run_sync(self.arun(agent, models, repeats=repeats, concurrency=concurrency,
                                  budget=budget, seed=seed))

    async def _run_one(self, agent: Agent, scenario: Scenario, model: Any, repeat: int,
                       seed: int) -> dict[str, Any]:
        base = scenario.environment if scenario.environment is not None else self.environment
        env = base.fresh() if base is not None else None
        row: dict[str, Any] = {"scenario": scenario.name, "model": _model_id(model),
                               "repeat": repeat, "tags": list(scenario.tags)}
        started = time.perf_counter()
        try:
            copy = variant(agent, model=model, environment=env, seed=seed + repeat,
                           budget=scenario.budget)
            result = await copy.arun(scenario.task, environment=env)
        except AgentnbError as exc:
            row.update(run_id=None, status="failed", stop_reason=None, passed=False, score=0.0,
                       cost_usd=0.0, judge_cost_usd=0.0, latency_s=time.perf_counter() - started,
                       input_tokens=0, output_tokens=0, steps=0, tool_calls=0, output="",
                       error=str(exc), checks=[], trajectory=f"the run could not start: {exc}")
            return row
        latency = time.perf_counter() - started
        outcome = Outcome(scenario=scenario, result=result, environment=env,
                          model=_model_id(model), latency_s=latency, repeat=repeat)
        verdicts = [await c.aevaluate(outcome) for c in scenario.all_checks()]
        usage = result.usage
        row.update(
            run_id=result.run_id, status=result.status, stop_reason=result.stop_reason,
            passed=all(v.passed for v in verdicts),
            score=sum(v.score for v in verdicts) / len(verdicts),
            cost_usd=float(usage.usd) if usage.usd is not None else None,
            judge_cost_usd=sum(v.cost_usd for v in verdicts), latency_s=latency,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            steps=len(result.steps), tool_calls=usage.tool_calls, output=outcome.text[:2000],
            error=result.error, checks=[v.model_dump(mode="json") for v in verdicts],
            trajectory=outcome.trajectory())
        return row
