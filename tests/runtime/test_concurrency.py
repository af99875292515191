"""Parallel tool calls and delegates: bounded, no cascade on ordinary errors, fatal ones once."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from agentnb.core import Message, run_sync
from agentnb.models import FunctionInfo, FunctionModel
from agentnb.runtime import Agent, Budget, budget

from ._helpers import call, last_results, priced

pytestmark = pytest.mark.timeout(30)


def _fan_out(n: int, name: str = "work", **args: object) -> FunctionModel:
    def fn(m: list[Message], info: FunctionInfo) -> object:
        if info.call_index == 0:
            return [call(name, f"c{k}", k=k, **args) for k in range(n)]
        return "|".join(r.content for r in last_results(m))

    return FunctionModel(fn)


def test_parallel_calls_bounded_by_max_concurrency() -> None:
    """At most max_concurrency tool calls run at once, and they do overlap."""
    from agentnb.runtime import tool

    state = {"now": 0, "peak": 0}

    @tool
    async def work(k: int) -> str:
        """Work."""
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.02)
        state["now"] -= 1
        return str(k)

    result = Agent(model=_fan_out(8), tools=[work], max_concurrency=3).run("go")
    assert result.output == "|".join(str(k) for k in range(8))
    assert state["peak"] == 3
    assert result.usage.tool_calls == 8


def test_one_failing_tool_does_not_cancel_siblings() -> None:
    """An ordinary exception in one call is that call's error result; the others finish."""
    from agentnb.runtime import tool

    finished: list[int] = []

    @tool
    async def work(k: int) -> str:
        """Work."""
        if k == 1:
            raise ValueError("bad k")
        await asyncio.sleep(0.02)
        finished.append(k)
        return str(k)

    result = Agent(model=_fan_out(3), tools=[work]).run("go")
    assert result.status == "done"
    assert sorted(finished) == [0, 2]
    assert [c.status for c in result.steps[1].tool_calls] == ["ok", "error", "ok"]


def test_budget_exceeded_in_a_delegate_cancels_siblings_once() -> None:
    """A delegate stopped by the parent's limit cancels sibling calls; one stop is reported."""
    from agentnb.runtime import tool

    cancelled: list[int] = []

    @tool
    async def slow(k: int) -> str:
        """Slow."""
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(k)
            raise
        return "late"

    spender = Agent(model=priced(lambda m, i: "x" * 50, usd=1000.0, max_output_tokens=400),
                    name="spender")

    def fn(m: list[Message], info: FunctionInfo) -> object:
        return [call("slow", "s1", k=1), call("delegate_spender", "d1", task="spend"),
                call("slow", "s2", k=2)]

    parent = Agent(model=FunctionModel(fn), tools=[slow], delegates=[spender],
                   budget=Budget(usd=0.2))
    result = parent.run("go")
    assert (result.status, result.stop_reason) == ("stopped", "budget")
    assert sorted(cancelled) == [1, 2]
    assert result.steps[-1].kind == "tools"
    assert result.error is not None
    assert result.error.count("Budget") == 1


def test_delegate_child_run_and_carved_budget() -> None:
    """A delegate runs as a linked child run whose spend counts in the parent's scope."""
    child_model = priced(lambda m, i: f"child says {m[-1].text}", usd=10.0)
    helper = Agent(model=child_model, name="helper", description="Answers sub-questions.")

    def fn(m: list[Message], info: FunctionInfo) -> object:
        if info.call_index == 0:
            names = [t.name for t in info.tools]
            assert names == ["delegate_helper"]
            assert "Answers sub-questions." in info.tools[0].description
            return call("delegate_helper", task="sub")
        return "parent got: " + last_results(m)[0].content

    parent = Agent(model=priced(fn, usd=10.0), delegates=[helper], name="boss")
    with budget(usd=5, name="notebook") as scope:
        run = parent.start("go")
        result = run.run_to_end()
    assert result.output == "parent got: child says sub"
    (child,) = run.children
    assert child.parent_run_id == run.run_id
    assert child.result is not None
    assert child.result.status == "done"
    assert child.scope is not None
    assert child.scope.parent is run.scope
    parent_usd = result.usage.usd or Decimal(0)
    child_usd = child.result.usage.usd or Decimal(0)
    assert scope.spent_summary().usd == parent_usd + child_usd
    assert run.store.load_checkpoint(child.run_id).parent_run_id == run.run_id


def test_delegate_own_budget_stop_is_a_tool_error() -> None:
    """A delegate hitting its own limit returns an error result; the parent goes on."""
    looping = Agent(model=FunctionModel(lambda m, i: call("nothing")), name="looper",
                    budget=Budget(model_calls=1))

    def fn(m: list[Message], info: FunctionInfo) -> object:
        if info.call_index == 0:
            return call("delegate_looper", task="x")
        return "handled: " + str(last_results(m)[0].is_error)

    result = Agent(model=FunctionModel(fn), delegates=[looping]).run("go")
    assert result.output == "handled: True"


def test_many_runs_concurrently_on_one_loop() -> None:
    """Concurrent aruns on one loop finish independently."""
    agent = Agent(model=FunctionModel(lambda m, i: m[-1].text[::-1]))

    async def go() -> list[str]:
        results = await asyncio.gather(*(agent.arun(f"t{i}") for i in range(30)))
        return [r.output for r in results]

    assert run_sync(go()) == [f"t{i}"[::-1] for i in range(30)]
