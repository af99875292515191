"""`agent.map` / `amap`: many runs of one agent under one shared budget scope."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

from agentnb.core import AgentnbError, UsageError, new_id
from agentnb.runtime._budget import Budget
from agentnb.runtime._scopes import budget
from agentnb.runtime._step import RunResult

if TYPE_CHECKING:
    from agentnb.runtime._agent import Agent

__all__ = ["amap"]


async def amap(agent: Agent, tasks: Iterable[str], *, concurrency: int = 50,
               budget: Budget | None = None) -> list[RunResult]:
    """Run `agent` on every task, at most `concurrency` at a time; results in input order.

    Every run draws from one scope (with `budget` as its limit, nested in any enclosing
    scope). A run that fails or is stopped does not cancel the others: its result says why.
    """
    items = list(tasks)
    if concurrency < 1:
        msg = f"map() needs concurrency >= 1, got {concurrency!r}."
        raise UsageError(msg)
    results: list[RunResult | None] = [None] * len(items)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, task: str) -> None:
        async with gate:
            run = agent.start(task)
            try:
                results[i] = await run.arun_to_end()
            except (AgentnbError, Exception) as exc:
                results[i] = RunResult(status="failed", run_id=run.run_id, steps=tuple(run.steps),
                                       usage=run.usage, error=f"{type(exc).__name__}: {exc}")

    async with _scope(budget), asyncio.TaskGroup() as group:
        for i, task in enumerate(items):
            group.create_task(one(i, task))
    return [r for r in results if r is not None]


def _scope(limits: Budget | None) -> budget:
    return budget(limits, name=new_id("map"), kind="batch")
