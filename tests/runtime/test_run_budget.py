"""Budgets inside runs: refused calls are never sent, spend stays under limits, wrap-up notes."""

from __future__ import annotations

import warnings
from decimal import Decimal

import pytest

from agentnb.core import BudgetExceeded, CostUnknownWarning, Message, UsageError
from agentnb.models import FunctionInfo, FunctionModel
from agentnb.runtime import Agent, Budget, budget, spent, tool

from ._helpers import call, priced

pytestmark = pytest.mark.timeout(30)


@tool
def noop(n: int) -> str:
    """Do nothing."""
    return "ok"


def _chatty(counter: list[int]) -> FunctionModel:
    def fn(m: list[Message], info: FunctionInfo) -> object:
        counter.append(info.call_index)
        return call("noop", f"c{info.call_index}", n=info.call_index)

    return priced(fn, usd=1000.0, max_output_tokens=100)


def test_budget_stops_before_the_call() -> None:
    """The refused call never reaches the model; spend <= limit; status/stop_reason/checkpoint."""
    counter: list[int] = []
    agent = Agent(model=_chatty(counter), tools=[noop], budget=Budget(usd=0.9), loop_threshold=0)
    run = agent.start("go")
    result = run.run_to_end()
    assert (result.status, result.stop_reason) == ("stopped", "budget")
    assert result.usage.usd is not None
    assert result.usage.usd <= Decimal("0.9")
    assert len(counter) == result.usage.model_calls
    last = result.steps[-1]
    assert (last.kind, last.status, last.stop_reason) == ("model", "stopped", "budget")
    assert "usd" in (last.error or "")
    assert run.store.checkpoint_steps(result.run_id)[-1] == len(result.steps)
    assert run.store.load_checkpoint(result.run_id).status == "stopped"


def test_raise_on_stop_raises_budget_exceeded() -> None:
    """raise_on_stop=True raises BudgetExceeded with limit, spent and requested."""
    agent = Agent(model=_chatty([]), tools=[noop], budget=Budget(model_calls=2),
                  loop_threshold=0)
    with pytest.raises(BudgetExceeded) as info:
        agent.run("go", raise_on_stop=True)
    err = info.value
    assert (err.limit_name, err.limit, err.spent, err.requested) == ("model_calls", 2, 2, 1)
    assert err.run_id is not None


def test_steps_and_tool_call_limits() -> None:
    """Budget(steps=...) and Budget(tool_calls=...) stop the run with reason budget."""
    by_steps = Agent(model=_chatty([]), tools=[noop], budget=Budget(steps=3),
                     loop_threshold=0).run("go")
    assert (by_steps.stop_reason, len(by_steps.steps)) == ("budget", 4)
    by_tools = Agent(model=_chatty([]), tools=[noop], budget=Budget(tool_calls=1),
                     loop_threshold=0).run("go")
    assert by_tools.stop_reason == "budget"
    assert by_tools.usage.tool_calls == 1


def test_notebook_scope_shared_by_runs() -> None:
    """Runs inside anb.budget() draw from it; the second run is stopped by the scope."""
    counter: list[int] = []
    agent = Agent(model=_chatty(counter), tools=[noop], loop_threshold=0)
    with budget(usd=0.6, name="notebook") as scope:
        first = agent.run("a")
        second = agent.run("b")
        assert spent().usd <= Decimal("0.6")
    assert first.stop_reason == "budget"
    assert second.stop_reason == "budget"
    assert scope.spent_summary().usd == (first.usage.usd or 0) + (second.usage.usd or 0)
    assert len(counter) == first.usage.model_calls + second.usage.model_calls


def test_wrap_up_note_before_the_hard_stop() -> None:
    """Past wrap_up_at the model gets one system note with its remaining budget."""
    notes: list[str] = []

    def fn(m: list[Message], info: FunctionInfo) -> object:
        notes.extend(x.text for x in m if x.role == "system" and "Budget note" in x.text)
        if notes:
            return "final answer"
        return call("noop", f"c{info.call_index}", n=info.call_index)

    agent = Agent(model=FunctionModel(fn), tools=[noop], budget=Budget(model_calls=5),
                  loop_threshold=0, wrap_up_at=0.5)
    res = agent.run("go")
    assert res.status == "done"
    assert res.output == "final answer"
    assert "remaining" in notes[0]
    assert res.usage.model_calls == 4
    off = Agent(model=FunctionModel(fn), tools=[noop], budget=Budget(model_calls=3),
                loop_threshold=0, wrap_up_at=None)
    notes.clear()
    assert off.run("go").stop_reason == "budget"
    assert notes == []


def test_unpriced_model_warns_once_and_reports_none() -> None:
    """An unpriced model gives usage.usd None and one CostUnknownWarning per model id."""
    model = FunctionModel(lambda m, i: "x", name="unpriced-one", input_per_mtok=None,
                          output_per_mtok=None)
    agent = Agent(model=model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = agent.run("a")
        agent.run("b")
    assert first.usage.usd is None
    assert [w.category for w in caught] == [CostUnknownWarning]


def test_unpriced_model_under_a_usd_limit_is_a_usage_error() -> None:
    """A USD limit cannot be enforced on an unpriced model: UsageError, no call sent."""
    model = FunctionModel(lambda m, i: "x", name="unpriced-two", input_per_mtok=None,
                          output_per_mtok=None)
    with pytest.raises(UsageError, match="unpriced"):
        Agent(model=model, budget=Budget(usd=1)).run("a")
    assert model.calls == 0


def test_map_shares_one_scope_and_keeps_order() -> None:
    """map() runs every task under one scope; results come back in input order."""
    counter: list[int] = []
    agent = Agent(model=_chatty(counter), tools=[noop], loop_threshold=0)
    results = agent.map([f"t{i}" for i in range(6)], concurrency=3, budget=Budget(usd=1.5))
    assert len(results) == 6
    total = sum((r.usage.usd or Decimal(0)) for r in results)
    assert total <= Decimal("1.5")
    assert all(r.status == "stopped" and r.stop_reason == "budget" for r in results)
    assert len(counter) == sum(r.usage.model_calls for r in results)
    echo = Agent(model=FunctionModel(lambda m, i: m[-1].text))
    assert [r.output for r in echo.map([str(i) for i in range(20)], concurrency=4)] == [
        str(i) for i in range(20)]


def test_map_failure_does_not_cascade() -> None:
    """One run failing in map() leaves the others done."""

    def fn(m: list[Message], info: FunctionInfo) -> str:
        if m[-1].text == "bad":
            raise RuntimeError("model bug")
        return "fine"

    results = Agent(model=FunctionModel(fn)).map(["a", "bad", "c"])
    assert [r.status for r in results] == ["done", "failed", "done"]
    assert "model bug" in (results[1].error or "")


def test_cache_hit_costs_nothing() -> None:
    """With cache=True an identical request is answered from the cache, free, marked as a hit."""
    counter: list[int] = []

    def fn(m: list[Message], info: FunctionInfo) -> str:
        counter.append(1)
        return "cached answer"

    agent = Agent(model=priced(fn), cache=True, budget=Budget(model_calls=1))
    first = agent.run("same task")
    second = agent.run("same task")
    assert len(counter) == 1
    assert second.output == "cached answer"
    assert second.steps[0].cache_hit is True
    assert (second.usage.usd, second.usage.model_calls) == (Decimal(0), 0)
    assert first.usage.model_calls == 1
    off = Agent(model=priced(fn), cache=False)
    off.run("same task")
    assert len(counter) == 2
