"""Spans a run leaves: run > step > model call / tool call > delegate child run."""

from __future__ import annotations

import pytest

from agentnb.core import Message
from agentnb.models import FunctionInfo, FunctionModel
from agentnb.runtime import Agent, Budget, tool
from agentnb.tracing import load_spans

from ._helpers import call, last_results

pytestmark = pytest.mark.timeout(30)


@tool(effects={"read"})
def lookup(key: str) -> str:
    """Look up."""
    return f"v{key}"


def test_span_tree_of_a_run_with_a_delegate() -> None:
    """Run, step, chat and execute_tool spans nest; the delegate's run nests under its tool span."""
    helper = Agent(model=FunctionModel(lambda m, i: "helped"), name="helper")

    def fn(m: list[Message], info: FunctionInfo) -> object:
        if info.call_index == 0:
            return [call("lookup", "c1", reason="need it", key="7"),
                    call("delegate_helper", "c2", task="sub")]
        return "|".join(r.content for r in last_results(m))

    result = Agent(model=FunctionModel(fn), tools=[lookup], delegates=[helper],
                   name="boss").run("go")
    spans = load_spans(result.run_id)
    by_id = {s.span_id: s for s in spans}
    names = [s.name for s in spans]
    assert "invoke_agent boss" in names
    assert "invoke_agent helper" in names
    root = next(s for s in spans if s.name == "invoke_agent boss")
    assert root.attributes["agentnb.status"] == "done"
    assert root.attributes["agentnb.usage.model_calls"] == 2
    assert root.attributes["gen_ai.agent.name"] == "boss"
    tool_span = next(s for s in spans if s.name == "execute_tool lookup")
    assert tool_span.attributes["agentnb.tool.reason"] == "need it"
    assert tool_span.attributes["agentnb.tool.status"] == "ok"
    step = by_id[tool_span.parent_id]
    assert step.name == "step 2 tools"
    assert by_id[step.parent_id].span_id == root.span_id
    child = next(s for s in spans if s.name == "invoke_agent helper")
    assert by_id[child.parent_id].name == "execute_tool delegate_helper"
    assert child.attributes["agentnb.run.parent_id"] == result.run_id
    chat = next(s for s in spans if s.name.startswith("chat "))
    assert chat.attributes["gen_ai.operation.name"] == "chat"


def test_stop_leaves_a_span_that_says_why() -> None:
    """A budget stop is visible on the step span and the run span."""
    model = FunctionModel(lambda m, i: call("lookup", f"c{i.call_index}", key=str(i.call_index)))
    result = Agent(model=model, tools=[lookup], budget=Budget(model_calls=1),
                   loop_threshold=0).run("go")
    spans = load_spans(result.run_id)
    root = next(s for s in spans if s.attributes.get("agentnb.kind") == "run")
    assert root.attributes["agentnb.stop_reason"] == "budget"
    last = next(s for s in spans if s.name == f"step {len(result.steps)} model")
    assert last.attributes["agentnb.stop_reason"] == "budget"
    assert any(e["name"] == "stop" for e in last.events)


def test_tracing_follows_each_agents_settings_in_one_process() -> None:
    """An agent with `trace=False` records no spans even after a traced agent ran in the same
    home, and the traced agent records again afterwards."""
    from agentnb.core import resolve

    on = Agent(model=FunctionModel(lambda m, i: "on"), name="traced")
    off = Agent(model=FunctionModel(lambda m, i: "off"), name="untraced",
                settings=resolve(trace=False))
    first, quiet, again = on.run("a"), off.run("b"), on.run("c")
    assert load_spans(first.run_id)
    assert load_spans(quiet.run_id) == []
    assert load_spans(again.run_id)
