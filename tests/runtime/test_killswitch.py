"""Kill switches: loops, retries, wall time, stop() and the store's stop flag."""

from __future__ import annotations

import asyncio
import time

import pytest

from agentnb.core import LoopDetected, Message, ToolCallPart, run_sync
from agentnb.models import FunctionInfo, FunctionModel
from agentnb.runtime import Agent, Budget, LoopDetector, tool

from ._helpers import call

pytestmark = pytest.mark.timeout(30)


@tool
def lookup(key: str) -> str:
    """Look up."""
    return "same answer"


@tool
async def slow(seconds: float) -> str:
    """Sleep."""
    await asyncio.sleep(seconds)
    return "slept"


def test_same_call_repeated_stops_with_loop() -> None:
    """A model that keeps calling the same tool is stopped within loop_threshold model turns."""
    model = FunctionModel(lambda m, i: call("lookup", f"c{i.call_index}", key="7"))
    agent = Agent(model=model, tools=[lookup], loop_threshold=3)
    result = agent.run("go")
    assert (result.status, result.stop_reason) == ("stopped", "loop")
    assert model.calls == 3
    assert len(result.steps) == 5
    assert "lookup" in (result.error or "")
    with pytest.raises(LoopDetected) as info:
        agent.run("go", raise_on_stop=True)
    assert 'lookup({"key":"7"})' in info.value.repeated


def test_ping_pong_is_a_loop() -> None:
    """A-B-A-B between two calls stops the run even below the repeat threshold."""

    def fn(m: list[Message], info: FunctionInfo) -> ToolCallPart:
        return call("lookup", f"c{info.call_index}", key="a" if info.call_index % 2 else "b")

    result = Agent(model=FunctionModel(fn), tools=[lookup], loop_threshold=3).run("go")
    assert result.stop_reason == "loop"
    assert "ping-pong" in (result.error or "")


def test_same_output_repeated_is_a_loop() -> None:
    """The same (invalid) final text over and over is a loop, not endless retries."""
    from pydantic import BaseModel

    class Out(BaseModel):
        """O."""

        n: int

    model = FunctionModel(lambda m, i: "I cannot do that.")
    result = Agent(model=model, output_type=Out, loop_threshold=3,
                   budget=Budget(retries=10)).run("go")
    assert result.stop_reason == "loop"
    assert model.calls == 3


def test_detector_state_roundtrips() -> None:
    """LoopDetector travels in checkpoints."""
    d = LoopDetector(threshold=2)
    d.observe(calls=[call("lookup", key="1")], text="hi")
    again = LoopDetector.from_dict(d.to_dict())
    assert again.observe(calls=[call("lookup", key="1")], text="") is not None
    assert LoopDetector(threshold=0).observe(calls=[call("x")], text="x") is None


def test_retries_cap() -> None:
    """Bad arguments over and over hit Budget(retries=...) with stop_reason retries."""
    model = FunctionModel(lambda m, i: call("lookup", f"c{i.call_index}",
                                            key=i.call_index))
    result = Agent(model=model, tools=[lookup], budget=Budget(retries=2),
                   loop_threshold=0).run("go")
    assert (result.status, result.stop_reason) == ("stopped", "retries")
    assert result.steps[-1].kind == "tools"


def test_default_retry_cap_without_a_budget() -> None:
    """With no retries limit anywhere, a run still stops after the default cap."""
    model = FunctionModel(lambda m, i: call("lookup", f"c{i.call_index}", key=i.call_index))
    result = Agent(model=model, tools=[lookup], loop_threshold=0).run("go")
    assert result.stop_reason == "retries"


def test_wall_time_stops_a_running_step() -> None:
    """Budget(wall_s=...) interrupts a slow tool and stops with wall_time."""
    model = FunctionModel(lambda m, i: call("slow", seconds=5))
    t0 = time.monotonic()
    result = Agent(model=model, tools=[slow], budget=Budget(wall_s=0.3)).run("go")
    assert (result.status, result.stop_reason) == ("stopped", "wall_time")
    assert time.monotonic() - t0 < 3


def test_stop_before_the_next_step() -> None:
    """run.stop() stops the run before its next step, with a checkpoint."""
    model = FunctionModel(lambda m, i: call("lookup", f"c{i.call_index}", key=str(i.call_index)))
    run = Agent(model=model, tools=[lookup], loop_threshold=0).start("go")
    run.step()
    run.stop()
    step = run.step()
    assert (step.status, step.stop_reason, run.state) == ("stopped", "stop_requested", "stopped")
    assert run.store.load_checkpoint(run.run_id).status == "stopped"
    assert model.calls == 1


def test_stop_flag_from_the_store() -> None:
    """A stop flag set through the store (agentnb stop RUN_ID) stops the run."""
    model = FunctionModel(lambda m, i: call("lookup", f"c{i.call_index}", key=str(i.call_index)))
    run = Agent(model=model, tools=[lookup], loop_threshold=0).start("go")
    run.step()
    run.store.request_stop(run.run_id)
    result = run.run_to_end()
    assert result.stop_reason == "stop_requested"


def test_stop_while_running_async() -> None:
    """stop() from another task ends a running arun at the next step boundary."""
    model = FunctionModel(lambda m, i: call("slow", f"c{i.call_index}",
                                            seconds=0.01 + i.call_index / 1000))

    async def go() -> str | None:
        run = Agent(model=model, tools=[slow], loop_threshold=0).start("go")
        task = asyncio.create_task(run.arun_to_end())
        await asyncio.sleep(0.1)
        run.stop()
        return (await task).stop_reason

    assert run_sync(go()) == "stop_requested"


def test_output_retries_exhausted() -> None:
    """Invalid structured output past Budget(retries=...) stops with reason retries."""
    from pydantic import BaseModel

    class Out(BaseModel):
        """O."""

        n: int

    model = FunctionModel(lambda m, i: f"not json {i.call_index}")
    result = Agent(model=model, output_type=Out, budget=Budget(retries=1),
                   loop_threshold=0).run("go")
    assert (result.status, result.stop_reason) == ("stopped", "retries")
    assert model.calls == 2


def test_model_error_fails_the_run_and_releases_the_reservation() -> None:
    """A model that raises ModelError fails the run; the reserved money is given back."""
    from agentnb.core import ModelHTTPError
    from agentnb.runtime import budget

    def fn(m: list[Message], info: FunctionInfo) -> str:
        raise ModelHTTPError(status_code=400, body="bad request", model="function:fn")

    model = FunctionModel(fn, input_per_mtok=1, output_per_mtok=1)
    with budget(usd=1, name="notebook") as scope:
        result = Agent(model=model).run("go")
    assert (result.status, result.stop_reason) == ("failed", None)
    assert "HTTP 400" in (result.error or "")
    assert scope.spent_summary().usd == 0
    assert scope.reserved_summary().usd == 0


def test_an_output_named_like_a_secret_keeps_its_count_through_a_checkpoint() -> None:
    """A walk over the detector's dict put `[REDACTED]` in place of the count of an output
    ending like a secret's name, and the resumed run failed adding to it."""
    from agentnb.runtime import Run, _hooks

    run = Agent(model=FunctionModel(lambda m, i: "hi")).start("t")
    _hooks.configure_once(run.agent.resolved_settings)
    run.loop.observe(calls=[], text="tell me the api_key")
    state = run.state_dict()
    assert state["loop"]["outputs"] == {"tell me the api_key": 1}
    again = Run.from_state(run.agent, state)
    assert again.loop.observe(calls=[], text="tell me the api_key") is None
    assert again.loop.outputs == {"tell me the api_key": 2}


def test_a_redacted_count_from_an_older_checkpoint_starts_again() -> None:
    loop = LoopDetector.from_dict({"threshold": 2, "calls": {"f({})": "[REDACTED]", "g({})": 1},
                                   "outputs": {"the secret": "[REDACTED]"}, "turns": []})
    assert loop.calls == {"g({})": 1}
    assert loop.outputs == {}
    assert loop.observe(calls=[], text="the secret") is None


def test_the_checkpointed_loop_state_is_redacted() -> None:
    from agentnb.runtime import _hooks

    run = Agent(model=FunctionModel(lambda m, i: "hi")).start("t")
    _hooks.configure_once(run.agent.resolved_settings)
    secret = "sk-proj-" + "a" * 24
    run.loop.observe(calls=[ToolCallPart(id="1", name="f", arguments=f'{{"k": "{secret}"}}')],
                     text=f"key {secret}")
    assert secret not in str(run.state_dict()["loop"])
