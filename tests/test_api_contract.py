"""The user-facing contract in ../shared/API.md, exercised as a user types it (offline, sim:)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

import agentnb as anb

CATALOGUE = {"7": "a walnut desk lamp", "3": "a brass telescope"}


@anb.tool(effects={"read"})
async def lookup(key: str) -> str:
    """Look a key up in the catalogue."""
    return CATALOGUE[key]


def _agent(**kw: object) -> anb.Agent:
    options: dict[str, object] = {
        "model": "sim:careful", "instructions": "You answer from the catalogue.",
        "tools": [lookup],
        "budget": anb.Budget(usd=0.50, model_calls=20, tool_calls=40, steps=50, wall_s=120,
                             tokens=200_000),
        "policy": anb.Policy(allow={"read"}, approve={"write", "network"}, deny={"money"}),
        "max_concurrency": 8,
    }
    options.update(kw)
    return anb.Agent(**options)  # type: ignore[arg-type]


def test_tools_and_agents_section() -> None:
    """§ Tools and agents: run, arun, result fields, map."""
    other = anb.Agent(model="sim:cheap", name="other_agent", tools=[lookup])
    agent = _agent(delegates=[other])
    result = agent.run("What does key 7 hold?")
    assert result.status in ("done", "failed", "stopped")
    assert result.status == "done"
    assert result.stop_reason is None
    assert "walnut" in str(result.output)
    assert result.usage.model_calls >= 1
    assert isinstance(result.usage.usd, Decimal)
    assert result.usage.input_tokens > 0
    assert result.usage.output_tokens > 0
    assert isinstance(result.run_id, str)
    again = asyncio.run(agent.arun("What does key 7 hold?"))
    assert again.output == result.output
    results = agent.map(["What does key 7 hold?", "What does key 3 hold?"], concurrency=50)
    assert [("walnut" in str(r.output), "telescope" in str(r.output)) for r in results] == [
        (True, False), (False, True)]


def test_budget_stops_before_the_call() -> None:
    """A budget that the next call would exceed stops the run before it, with the error's fields."""
    agent = _agent(budget=anb.Budget(usd=0.0000001))
    result = agent.run("What does key 7 hold?")
    assert (result.status, result.stop_reason) == ("stopped", "budget")
    assert result.usage.model_calls == 0
    with pytest.raises(anb.BudgetExceeded) as info:
        agent.run("What does key 7 hold?", raise_on_stop=True)
    err = info.value
    assert (err.limit, err.spent) == (Decimal("0.0000001"), 0)
    assert err.requested > err.limit
    assert err.scope == "run"


def test_budget_scope_and_spent() -> None:
    """`with anb.budget(...)` draws every run inside from one scope; `anb.spent()` reports it."""
    agent = _agent()
    with anb.budget(usd=2.00, name="notebook"):
        a = agent.run("What does key 7 hold?")
        b = agent.run("What does key 3 hold?")
        total = anb.spent()
    assert total.usd == a.usage.usd + b.usage.usd


def test_step_through_rewind_resume_replay_stop() -> None:
    """§ Step-through: step, state, steps, run_to_end, rewind, load/resume, replay, stop."""
    agent = _agent(name="stepper")
    run = agent.start("What does key 7 hold?")
    assert run.state == "ready"
    step = run.step()
    assert (step.kind, step.index) == ("model", 1)
    assert step.usage.model_calls == 1
    assert step.tool_calls
    assert step.reason
    assert run.steps == [step]
    result = run.run_to_end()
    assert result.status == "done"
    forked = run.rewind(1)
    assert forked.run_id != run.run_id
    assert len(forked.steps) == 1
    assert forked.run_to_end().output == result.output
    loaded = anb.Run.load(run.run_id)
    assert loaded.state == "done"
    replayed = anb.replay(run.run_id)
    assert [s.kind for s in replayed.steps] == [s.kind for s in result.steps]
    stoppable = agent.start("What does key 3 hold?")
    stoppable.stop()
    assert stoppable.run_to_end().stop_reason == "stop_requested"


def test_models_section() -> None:
    """§ Models: sim list, FunctionModel, Router, Fallback, set_price, unpriced warnings."""
    names = [s.name for s in anb.models.list_sim()]
    assert len(names) >= 3
    fm = anb.models.FunctionModel(lambda messages, info: "ok")
    assert anb.Agent(model=fm).run("hi").output == "ok"
    assert anb.models.Router(default="sim:cheap").info is not None
    assert anb.models.Fallback(["sim:cheap", "sim:careful"]).info is not None
    anb.set_price("openai:my-model", input_per_mtok=1.0, output_per_mtok=2.0)
    price = anb.models.lookup_price("openai", "my-model")
    assert price is not None
    assert price.output_per_mtok == Decimal("2.0")
    unpriced = anb.models.FunctionModel(lambda m, i: "x", name="free-guess",
                                        input_per_mtok=None, output_per_mtok=None)
    with pytest.warns(anb.CostUnknownWarning):
        res = anb.Agent(model=unpriced).run("hi")
    assert res.usage.usd is None


def test_governance_section(tmp_path: Path) -> None:
    """§ Governance: Policy with rules, workspace and network; audit verify."""
    policy = anb.Policy(
        allow={"read"}, approve={"write"}, deny={"money"},
        rules=[anb.Rule(tool="send_email", when=lambda args: args["to"].endswith("@example.com"),
                        decision="allow")],
        workspace=str(tmp_path), network=["api.example.com"],
    )
    verdict = policy.decide("send_email", frozenset({"network"}), {"to": "a@example.com"})
    assert verdict.decision == "allow"
    agent = _agent(policy=policy)
    agent.run("What does key 7 hold?")
    home = Path(anb.core.resolve().home)
    report = anb.audit.verify(home / "audit" / "audit.jsonl")
    assert report.ok
    assert report.records > 0
    assert anb.http_client is not None


def test_traces_section() -> None:
    """§ Traces: traces, spans, annotate, annotations, diff, export_otlp exists."""
    a = _agent(name="tracer").run("What does key 7 hold?")
    b = _agent(name="tracer").run("What does key 3 hold?")
    runs = anb.traces()
    assert {a.run_id, b.run_id} <= set(runs["run_id"])
    spans = anb.spans(a.run_id)
    assert any(c.startswith("gen_ai.") for c in spans.columns)
    anb.annotate(a.run_id, label="good", score=0.9, note="fine")
    assert "good" in set(anb.annotations()["label"])
    assert anb.diff(a.run_id, b.run_id) is not None
    assert callable(anb.export_otlp)


def test_evals_section() -> None:
    """§ Evals: a suite over two models, table and plot."""
    suite = anb.Suite([
        anb.Scenario("order", task="Look up order 42 and tell me its status.",
                     checks=[anb.checks.tool_called("lookup_order")]),
    ], environment=anb.envs.Catalogue(seed=1))
    report = suite.run(anb.Agent(model="sim:careful"), models=["sim:cheap", "sim:careful"],
                       repeats=2)
    table = report.table()
    assert len(table) == 2
    assert report.plot() is not None


def test_notebook_views_exist() -> None:
    """§ Traces and notebook views: show, plot_cost_quality, record, collect are callable."""
    for name in ("show", "plot_cost_quality", "record", "collect"):
        assert callable(getattr(anb, name))
