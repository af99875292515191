"""The run state machine: steps, states, sync/async facades, structured output."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from agentnb.core import Message, UsageError, run_sync
from agentnb.models import FunctionInfo, FunctionModel
from agentnb.runtime import Agent, Run, RunContext, tool

from ._helpers import call, last_results, scripted

hits: list[str] = []


@tool(effects={"read"})
def lookup(key: str) -> str:
    """Look a key up."""
    hits.append(key)
    return f"value-{key}"


def test_step_by_step_transitions() -> None:
    """Each step() is one transition: model -> tools -> model; states and records follow."""
    model = scripted([call("lookup", reason="need the value", key="7"),
                      lambda m: "It holds " + last_results(m)[0].content])
    run = Agent(model=model, tools=[lookup], name="stepper").start("What does key 7 hold?")
    assert (run.state, run.steps, run.result) == ("ready", [], None)
    s1 = run.step()
    assert (s1.kind, s1.index, s1.status, run.state) == ("model", 1, "ok", "ready")
    assert s1.reason == "need the value"
    assert [c.name for c in s1.tool_calls] == ["lookup"]
    assert s1.usage.model_calls == 1
    s2 = run.step()
    assert (s2.kind, s2.index) == ("tools", 2)
    assert s2.tool_calls[0].result == "value-7"
    assert s2.tool_calls[0].status == "ok"
    assert s2.messages[0].role == "tool"
    assert s2.usage.tool_calls == 1
    s3 = run.step()
    assert (s3.kind, run.state) == ("model", "done")
    result = run.result
    assert result is not None
    assert result.output == "It holds value-7"
    assert (result.usage.model_calls, result.usage.tool_calls) == (2, 1)
    assert [s.index for s in result.steps] == [1, 2, 3]
    with pytest.raises(UsageError, match="takes no more steps"):
        run.step()


def test_state_roundtrip_after_every_step() -> None:
    """state_dict() / from_state() reproduce the run after any step."""
    model = scripted([call("lookup", key="1"), "done"])
    agent = Agent(model=model, tools=[lookup])
    run = agent.start("t")
    while not run.finished:
        run.step()
        again = Run.from_state(agent, run.state_dict())
        assert again.state == run.state
        assert again.messages == run.messages
        assert again.steps == run.steps
        assert again.usage == run.usage


def test_sync_run_inside_a_running_loop() -> None:
    """agent.run works when called from a coroutine (Jupyter's running loop)."""
    agent = Agent(model=FunctionModel(lambda m, i: "pong"))

    async def cell() -> str:
        return agent.run("ping").output

    assert asyncio.run(cell()) == "pong"


def test_async_arun_and_astep() -> None:
    """The async twins give the same results."""
    agent = Agent(model=scripted([call("lookup", key="2"), "ok"]), tools=[lookup])

    async def go() -> tuple[str, list[str]]:
        run = agent.start("t")
        step = await run.astep()
        res = await run.arun_to_end()
        return step.kind, [s.kind for s in res.steps]

    assert asyncio.run(go()) == ("model", ["model", "tools", "model"])
    assert run_sync(agent.arun("t")).status == "done"


def test_sync_tool_calling_agent_run_is_a_usage_error() -> None:
    """A sync tool that calls agent.run would deadlock: UsageError with a hint."""
    inner = Agent(model=FunctionModel(lambda m, i: "inner"))

    @tool
    def nested() -> str:
        """Call another agent synchronously."""
        return inner.run("x").output

    outer = Agent(model=scripted([call("nested"), "never"]), tools=[nested])
    with pytest.raises(UsageError, match="await agent.arun"):
        outer.run("go")


def test_async_tool_may_await_another_agent() -> None:
    """The supported form: an async tool awaiting arun."""
    inner = Agent(model=FunctionModel(lambda m, i: "inner answer"))

    @tool
    async def ask_inner(q: str) -> str:
        """Ask."""
        return (await inner.arun(q)).output

    outer = Agent(model=scripted([call("ask_inner", q="x"), lambda m: last_results(m)[0].content]),
                  tools=[ask_inner])
    assert outer.run("go").output == "inner answer"


def test_errors_reach_the_model_and_the_run_goes_on() -> None:
    """A tool raising, an unknown tool and bad arguments all come back as error results."""

    @tool
    def broken(x: int) -> int:
        """Break."""
        raise RuntimeError("disk on fire")

    seen: list[list[tuple[str, bool]]] = []

    def fn(m: list[Message], info: FunctionInfo) -> object:
        if info.call_index == 0:
            return [call("broken", "a", x=1), call("missing", "b"), call("broken", "c", x="no")]
        seen.append([(r.content, r.is_error) for r in last_results(m)])
        return "recovered"

    res = Agent(model=FunctionModel(fn), tools=[broken]).run("t")
    assert res.status == "done"
    (first, second, third), = seen
    assert first[1]
    assert "RuntimeError: disk on fire" in first[0]
    assert second[1]
    assert "no tool 'missing'" in second[0]
    assert third[1]
    assert "invalid" in third[0]
    statuses = [c.status for c in res.steps[1].tool_calls]
    assert statuses == ["error", "retry", "retry"]


def test_ctx_deps_reach_tools() -> None:
    """deps given to the agent (or the run) reach `ctx.deps`."""

    @tool
    def read_dep(ctx: RunContext) -> str:
        """Read."""
        return f"{ctx.deps}@{ctx.step}"

    model = scripted([call("read_dep"), lambda m: last_results(m)[0].content])
    assert Agent(model=model, tools=[read_dep], deps="db").run("t").output == "db@2"


class Answer(BaseModel):
    """A structured answer."""

    city: str
    population: int


def test_output_type_with_a_retry() -> None:
    """Invalid structured output gets a retry prompt; the second answer validates."""
    prompts: list[str] = []

    def fn(m: list[Message], info: FunctionInfo) -> str:
        prompts.append(m[0].text)
        if info.call_index == 0:
            return '{"city": "Paris"}'
        assert "did not match" in m[-1].text
        return '```json\n{"city": "Paris", "population": 2100000}\n```'

    res = Agent(model=FunctionModel(fn), output_type=Answer, instructions="Be brief.").run("t")
    assert res.output == Answer(city="Paris", population=2100000)
    assert [s.status for s in res.steps] == ["retry", "ok"]
    assert '"population"' in prompts[0]
    assert prompts[0].startswith("Be brief.")


def test_agent_definition_checks() -> None:
    """Duplicate tool names and a bad max_concurrency are refused at construction."""
    with pytest.raises(UsageError, match="two tools"):
        Agent(model=FunctionModel(lambda m, i: ""), tools=[lookup, lookup])
    with pytest.raises(UsageError, match="max_concurrency"):
        Agent(model=FunctionModel(lambda m, i: ""), max_concurrency=0)


def test_default_model_is_sim() -> None:
    """With no model named, agents use settings.default_model (sim:careful) and finish."""
    agent = Agent(tools=[lookup], instructions="Answer from the catalogue.")
    assert agent.resolved_model.info.id == "sim:careful"
    res = agent.run("What does key 7 hold?")
    assert res.status == "done"
    assert res.usage.usd is not None


def test_concurrent_steps_and_bad_state_are_refused() -> None:
    """A second astep while one runs is a UsageError; so is an unknown checkpoint version."""

    async def slow_model(m: list[Message], info: FunctionInfo) -> str:
        await asyncio.sleep(0.05)
        return "ok"

    agent = Agent(model=FunctionModel(slow_model))

    async def go() -> None:
        run = agent.start("t")
        first = asyncio.create_task(run.astep())
        await asyncio.sleep(0.01)
        with pytest.raises(UsageError, match="already executing"):
            await run.astep()
        await first

    run_sync(go())
    with pytest.raises(UsageError, match="version"):
        Run.from_state(agent, {"v": 99})


def test_delegate_tool_naming_and_frozen_agent() -> None:
    """Delegates appear as delegate_<name> tools; an Agent is frozen."""
    import dataclasses

    helper = Agent(model=FunctionModel(lambda m, i: "x"), name="researcher")
    boss = Agent(model=FunctionModel(lambda m, i: "y"), delegates=[helper])
    assert "delegate_researcher" in boss.tool_map
    assert boss.tool_definitions[0].parameters["required"] == ["task"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        boss.instructions = "changed"  # type: ignore[misc]


def test_text_that_is_not_valid_unicode_is_one_usage_error_and_the_agent_keeps_working() -> None:
    """A lone surrogate (bytes decoded with 'surrogateescape') cannot be stored or hashed: the
    task that carries it is refused with a UsageError; a tool's result is kept with U+FFFD."""

    @tool
    def raw_bytes() -> str:
        """Return text decoded the wrong way."""
        return b"caf\xe9".decode("utf-8", "surrogateescape")

    agent = Agent(model=scripted([call("raw_bytes"), "done"]), tools=[raw_bytes])
    with pytest.raises(UsageError, match="user message .* not valid Unicode") as info:
        agent.start("bad \ud800 task")
    assert "errors='replace'" in (info.value.hint or "")
    # A tool's text keeps everything but the lone surrogate, which becomes U+FFFD.
    result = agent.run("fine task")
    assert result.status == "done"
    state = agent.start("x").store.load_checkpoint(result.run_id).state
    tool_parts = [p for m in state["messages"] if m["role"] == "tool" for p in m["parts"]]
    assert [p["content"] for p in tool_parts] == ["caf\ufffd"]
