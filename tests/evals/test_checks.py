"""Checks over result-like objects and real runs; each returns a CheckResult with a reason."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

import agentnb as anb
from agentnb.core import Usage, UsageError
from agentnb.evals import Outcome, Scenario, checks, envs


@dataclasses.dataclass
class Call:
    name: str
    arguments: str
    status: str = "ok"
    result: str | None = None


@dataclasses.dataclass
class Step:
    kind: str
    index: int
    tool_calls: tuple[Call, ...] = ()
    status: str = "ok"
    messages: tuple[Any, ...] = ()


@dataclasses.dataclass
class Result:
    output: Any
    steps: tuple[Step, ...] = ()
    status: str = "done"
    stop_reason: str | None = None
    usage: Usage = dataclasses.field(default_factory=Usage)
    run_id: str = "r1"
    error: str | None = None


SCENARIO = Scenario("s", "Refund $12.5 for order 42.")
STEPS = (
    Step("model", 1, (Call("lookup_order", '{"order_id": 42}', "pending"),)),
    Step("tools", 2, (Call("lookup_order", '{"order_id": 42}', "ok", "{...}"),)),
    Step("tools", 3, (Call("refund", '{"order_id": 42, "amount": 12.5}', "retry"),), "retry"),
    Step("tools", 4, (Call("refund", '{"order_id": 42, "amount": 12.5}', "ok"),)),
    Step("model", 5),
)


def outcome(output: Any = "Refunded $12.50 for order 42.", **kw: Any) -> Outcome:
    return Outcome(scenario=SCENARIO, result=Result(output, STEPS, **kw), model="m",
                   latency_s=0.4, environment=kw.pop("environment", None))


def test_output_checks() -> None:
    """exact, contains and regex pass and fail on the output text with reasons."""
    o = outcome()
    assert checks.exact("Refunded $12.50 for order 42.").evaluate(o).passed
    assert not checks.exact("refunded $12.50 for order 42.").evaluate(o).passed
    assert checks.exact("refunded $12.50 for order 42.", case=False).evaluate(o).passed
    assert checks.contains("refunded", "42").evaluate(o).passed
    miss = checks.contains("refunded", "99").evaluate(o)
    assert not miss.passed
    assert miss.score == 0.5
    assert "99" in miss.reason
    assert checks.contains("x", "42", any_of=True).evaluate(o).passed
    assert checks.regex(r"\$\d+\.\d\d").evaluate(o).passed
    assert not checks.regex(r"€").evaluate(o).passed
    with pytest.raises(UsageError):
        checks.contains()


class Refund(BaseModel):
    order_id: int
    amount: float
    items: list[dict[str, str]] = []


def test_field_on_structured_outputs() -> None:
    """field() reads pydantic objects, dicts and (fenced) JSON text by dotted path."""
    obj = Refund(order_id=42, amount=12.5, items=[{"sku": "A1"}])
    assert checks.field("amount", 12.5).evaluate(outcome(obj)).passed
    assert checks.field("items[0].sku", "A1").evaluate(outcome(obj)).passed
    assert checks.field("amount", predicate=lambda v: v > 10).evaluate(outcome(obj)).passed
    assert not checks.field("amount", 13).evaluate(outcome(obj)).passed
    fenced = '```json\n{"refund": {"amount": 12.5}}\n```'
    assert checks.field("refund.amount", 12.5).evaluate(outcome(fenced)).passed
    assert "no field" in checks.field("nope").evaluate(outcome({"a": 1})).reason
    assert "not JSON" in checks.field("a").evaluate(outcome("plain text")).reason


def test_trajectory_checks() -> None:
    """Tool calls are counted on executed steps, with argument filters, order and retries."""
    o = outcome()
    assert checks.tool_called("refund").evaluate(o).passed
    assert checks.tool_called("refund", times=2).evaluate(o).passed
    assert checks.tool_called("refund", times=1, ok=True).evaluate(o).passed
    assert checks.tool_called("refund", with_args={"amount": 12.5}).evaluate(o).passed
    assert not checks.tool_called("refund", with_args={"order_id": 7}).evaluate(o).passed
    assert checks.tool_called("lookup_order", times=1).evaluate(o).passed
    assert checks.tool_not_called("send_email").evaluate(o).passed
    assert not checks.tool_not_called("refund").evaluate(o).passed
    assert checks.call_order(["lookup_order", "refund"]).evaluate(o).passed
    assert not checks.call_order(["refund", "lookup_order"]).evaluate(o).passed
    assert checks.max_steps(5).evaluate(o).passed
    assert not checks.max_steps(4).evaluate(o).passed
    retry = checks.no_retries().evaluate(o)
    assert not retry.passed
    assert "step 3" in retry.reason
    assert checks.no_denied().evaluate(o).passed


def test_cost_latency_status_custom() -> None:
    """Ceilings compare with usage and latency; custom accepts bools, pairs and scores."""
    o = outcome(usage=Usage(usd=Decimal("0.002")))
    assert checks.max_cost(0.01).evaluate(o).passed
    assert not checks.max_cost("0.001").evaluate(o).passed
    assert "unknown" in checks.max_cost(1).evaluate(outcome(usage=Usage(usd=None))).reason
    assert checks.max_latency(1.0).evaluate(o).passed
    assert not checks.max_latency(0.1).evaluate(o).passed
    assert checks.status("done").evaluate(o).passed
    assert not checks.status("done").evaluate(outcome(status="stopped")).passed
    assert checks.custom(lambda o: "42" in o.text).evaluate(o).passed
    pair = checks.custom(lambda o: (False, "too short")).evaluate(o)
    assert not pair.passed
    assert pair.reason == "too short"
    assert checks.custom(lambda o: 0.75).evaluate(o).score == 0.75
    broken = checks.custom(lambda o: 1 / 0, name="broken").evaluate(o)
    assert not broken.passed
    assert "ZeroDivisionError" in broken.reason


def test_env_check_inspects_the_world() -> None:
    """env_check sees the world after the run; a missing key is a failure, not a crash."""
    world = envs.Catalogue(seed=1)
    world.refund_order(42, 12.5)
    o = Outcome(scenario=SCENARIO, result=Result("ok"), environment=world)
    assert checks.env_check(lambda env: env.refunds[42] == 12.5).evaluate(o).passed
    missing = checks.env_check(lambda env: env.refunds[43] == 1).evaluate(o)
    assert not missing.passed
    assert "KeyError" in missing.reason
    assert not checks.env_check(lambda env: True).evaluate(outcome()).passed


def test_checks_on_a_real_run() -> None:
    """The same checks read a real RunResult and its spans."""
    world = envs.Catalogue(seed=1).fresh()
    agent = anb.Agent(model="sim:expert", tools=world.tools)
    result = agent.run("Look up order 44 and tell me its status.", environment=world)
    o = Outcome(scenario=Scenario("s", "t"), result=result, environment=world)
    assert checks.tool_called("lookup_order", with_args={"order_id": 44}).evaluate(o).passed
    assert checks.contains(world.orders[44].status).evaluate(o).passed
    has_tool_span = checks.spans(
        lambda df: (df["name"] == "execute_tool lookup_order").any(), name="tool span")
    assert has_tool_span.evaluate(o).passed


def test_scenario_validation_and_defaults() -> None:
    """Scenarios need a name and a task; without checks, expected or status is checked."""
    with pytest.raises(UsageError):
        Scenario("", "task")
    with pytest.raises(UsageError, match="not a `Check`"):
        Scenario("s", "task", checks=["contains"])  # type: ignore[list-item]
    assert Scenario("s", "t", expected="42").all_checks()[0].name == "contains('42')"
    assert Scenario("s", "t").all_checks()[0].name == "status('done')"


def test_trajectory_text_lists_steps_and_calls() -> None:
    """The trajectory shows each step, each call with arguments, status and result."""
    text = outcome().trajectory()
    assert "step 3 tools [retry]" in text
    assert 'refund({"order_id": 42, "amount": 12.5}) [retry]' in text
