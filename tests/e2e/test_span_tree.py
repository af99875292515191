"""Issue 5's must-show on real runs: one run with delegation, parallel tool calls, a retry and a
budget stop, read back from the store through `anb.spans`; and 200 concurrent runs, no loss."""

from __future__ import annotations

import asyncio
import json

import pytest

import agentnb as anb
from agentnb.core import Message, ToolCallPart
from agentnb.models import FunctionInfo, FunctionModel

pytestmark = pytest.mark.timeout(120)


def _call(name: str, cid: str, reason: str | None = None, **args: object) -> ToolCallPart:
    return ToolCallPart(id=cid, name=name, arguments=json.dumps(args), reason=reason)


ATTEMPTS: dict[str, int] = {}


@anb.tool(effects={"read"})
async def lookup(key: str) -> str:
    """Look a key up; the first look-up of key 'flaky' asks the model to retry."""
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    await asyncio.sleep(0.02)
    if key == "flaky" and ATTEMPTS[key] == 1:
        raise anb.ModelRetry("The catalogue was busy; try again.")
    return f"value of {key}"


def _boss(messages: list[Message], info: FunctionInfo) -> object:
    turns: list[object] = [
        [_call("lookup", "a", reason="need a", key="a"),
         _call("lookup", "b", reason="need b", key="b"),
         _call("delegate_helper", "d", reason="helper knows", task="summarise")],
        _call("lookup", "f1", reason="flaky one", key="flaky"),
        _call("lookup", "f2", reason="again", key="flaky"),
        _call("lookup", "z", key="z"),
    ]
    return turns[min(info.call_index, len(turns) - 1)]


def test_span_tree_with_delegation_parallel_tools_retry_and_budget_stop() -> None:
    """Structure, attribute names and values of every kind of span, from the trace store."""
    ATTEMPTS.clear()
    helper = anb.Agent(model=FunctionModel(lambda m, i: "helper says hi"), name="helper")
    boss = anb.Agent(model=FunctionModel(_boss, input_per_mtok=1, output_per_mtok=1),
                     name="boss", tools=[lookup], delegates=[helper],
                     budget=anb.Budget(model_calls=4), max_concurrency=4)
    result = boss.run("Find a, b and flaky.")
    assert (result.status, result.stop_reason) == ("stopped", "budget")

    spans = anb.spans(result.run_id)
    by_id = spans.set_index("span_id")
    root = spans[spans["name"] == "invoke_agent boss"].iloc[0]
    assert root["gen_ai.operation.name"] == "invoke_agent"
    assert root["agentnb.kind"] == "run"
    assert root["agentnb.stop_reason"] == "budget"
    # The helper's model call is carved out of the boss's budget: 3 + 1 = the limit of 4.
    assert root["agentnb.usage.model_calls"] == 3
    assert root["agentnb.cost.usd"] > 0
    stop_steps = spans[spans["events"].map(lambda ev: any(e.get("name") == "stop"
                                                          for e in (ev or [])))]
    assert stop_steps["agentnb.stop_reason"].tolist() == ["budget"]
    assert by_id.loc[stop_steps["parent_id"].iloc[0]]["name"] == "invoke_agent boss"

    # Parallel tool calls: three execute_tool spans under one step, overlapping in time.
    first_tools = spans[(spans["kind"] == "tool_call")
                        & spans["gen_ai.tool.call.id"].isin(["a", "b", "d"])]
    assert len(first_tools) == 3
    assert first_tools["parent_id"].nunique() == 1
    step = by_id.loc[first_tools["parent_id"].iloc[0]]
    assert step["agentnb.step.kind"] == "tools"
    assert by_id.loc[step["parent_id"]]["name"] == "invoke_agent boss"
    assert first_tools["start"].max() < first_tools["end"].min()
    a = first_tools[first_tools["gen_ai.tool.call.id"] == "a"].iloc[0]
    assert (a["gen_ai.tool.name"], a["agentnb.tool.reason"], a["agentnb.tool.status"]) == (
        "lookup", "need a", "ok")

    # Delegation: the child run nests under the delegate's tool span and links its parent run.
    child = spans[spans["name"] == "invoke_agent helper"].iloc[0]
    assert by_id.loc[child["parent_id"]]["gen_ai.tool.name"] == "delegate_helper"
    assert child["agentnb.run.parent_id"] == result.run_id

    # The retry: the first flaky look-up is a retry, the second is ok.
    flaky = spans[spans["gen_ai.tool.call.id"].isin(["f1", "f2"])].sort_values("start")
    assert flaky["agentnb.tool.status"].tolist() == ["retry", "ok"]

    # Model-call spans follow the GenAI conventions.
    chats = spans[spans["kind"] == "model_call"]
    mine = chats[chats["agentnb.run.id"] == result.run_id]
    # Three calls were sent and answered; the fourth was refused before sending: no usage.
    assert mine["gen_ai.usage.input_tokens"].notna().sum() == 3
    assert mine["gen_ai.usage.input_tokens"].isna().sum() == 1
    assert set(chats["gen_ai.operation.name"]) == {"chat"}
    assert chats["gen_ai.usage.input_tokens"].min() > 0
    assert chats["gen_ai.provider.name"].notna().all()

    row = anb.traces().set_index("run_id").loc[result.run_id]
    assert (row["status"], row["stop_reason"], row["model_calls"]) == ("stopped", "budget", 3)


def test_200_concurrent_runs_lose_no_span() -> None:
    """200 runs at once: every run and every span reaches the store, no 'database is locked'."""
    @anb.tool(effects={"read"})
    async def fast(key: str) -> str:
        """Look up fast."""
        return key

    agent = anb.Agent(model=FunctionModel(
        lambda m, i: _call("fast", "c", key="k") if m[-1].role == "user" else "done"),
        tools=[fast], name="many")
    results = agent.map([f"task {n}" for n in range(200)], concurrency=200)
    assert [r.status for r in results] == ["done"] * 200
    runs = anb.traces(agent="many", limit=1000)
    assert set(runs["run_id"]) == {r.run_id for r in results}
    total = sum(len(anb.spans(r.run_id)) for r in results[:20])
    # run + 3 steps (model, tools, model) + 2 chats + 1 tool call = 7 spans per run
    assert total == 20 * 7


def test_provider_retries_are_events_on_the_model_call_span() -> None:
    """A 429 with Retry-After, then success: the chat span carries one retry event and its cause."""
    from agentnb.testing import FakeOpenAIServer, OpenAITurn

    script = [OpenAITurn(status=429, error_message="slow down", retry_after_s=0.01),
              "All good."]
    with FakeOpenAIServer(script, model="gpt-fake") as server:
        model = anb.models.OpenAIModel("gpt-fake", base_url=server.url, api_key="sk-test",
                                       input_per_mtok=1, output_per_mtok=1, max_retries=2)
        result = anb.Agent(model=model, name="retrier").run("hello")
        anb.core.run_sync(model.aclose())
    assert (result.status, result.output) == ("done", "All good.")
    spans = anb.spans(result.run_id)
    chat = spans[spans["kind"] == "model_call"].iloc[0]
    retries = [e for e in chat["events"] if e.get("name") == "retry"]
    assert len(retries) == 1
    attributes = retries[0].get("attributes", retries[0])
    assert attributes["agentnb.retry.cause"] == "http_429"
    assert attributes["agentnb.retry.attempt"] == 1
