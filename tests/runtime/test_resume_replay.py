"""Checkpoints, rewind, resume after a crash, and replay from recordings."""

from __future__ import annotations

import pytest

from agentnb.core import Message, ReplayDiverged, UsageError
from agentnb.models import FunctionInfo, FunctionModel
from agentnb.runtime import Agent, Run, replay, tool

from ._helpers import call, last_results

pytestmark = pytest.mark.timeout(30)

side_effects: list[str] = []


@tool(effects={"write"})
def write(key: str) -> str:
    """Write a key."""
    side_effects.append(key)
    return f"wrote {key}"


def _model() -> FunctionModel:
    def fn(m: list[Message], info: FunctionInfo) -> object:
        done = sum(1 for x in m if x.role == "tool")
        if done < 3:
            return call("write", f"c{done}", reason=f"step {done}", key=f"k{done}")
        return "all written: " + ",".join(r.content for r in last_results(m))

    return FunctionModel(fn)


def test_checkpoint_after_every_step() -> None:
    """Every step leaves a checkpoint whose state rebuilds the run at that point."""
    agent = Agent(model=_model(), tools=[write], name="writer-cp")
    run = agent.start("go")
    result = run.run_to_end()
    steps = run.store.checkpoint_steps(run.run_id)
    assert steps == list(range(len(result.steps) + 1))
    mid = Run.from_state(agent, run.store.load_checkpoint(run.run_id, 2).state)
    assert [s.kind for s in mid.steps] == ["model", "tools"]
    assert mid.state == "ready"


def test_rewind_forks_and_keeps_the_original() -> None:
    """rewind(k) gives a new run from step k with a parent link; the original is unchanged."""
    agent = Agent(model=_model(), tools=[write], name="writer-rw")
    run = agent.start("go")
    run.run_to_end()
    before = run.state_dict()
    fork = run.rewind(2)
    assert fork.run_id != run.run_id
    assert fork.parent_run_id == run.run_id
    assert fork.forked_from == (run.run_id, 2)
    assert len(fork.steps) == 2
    assert fork.state == "ready"
    result = fork.run_to_end()
    assert result.status == "done"
    assert [s.index for s in result.steps] == list(range(1, len(result.steps) + 1))
    assert run.state_dict() == before
    assert run.rewind(0).steps == []
    with pytest.raises(UsageError, match="Cannot rewind"):
        run.rewind(99)


def test_resume_after_a_crash_repeats_nothing() -> None:
    """A run loaded after a crash mid-step never repeats a tool call or a recorded model call."""
    side_effects.clear()
    model = _model()
    agent = Agent(model=model, tools=[write], name="writer-crash")
    run = agent.start("go")
    run.step()
    run.step()
    # Simulate a crash after the tool of step 4 ran but before its checkpoint was written:
    # rebuild from the checkpoint after step 2, having executed steps 3 and 4 once.
    run.step()
    run.step()
    assert side_effects == ["k0", "k1"]
    calls_before = model.calls
    crashed = Run.from_state(agent, run.store.load_checkpoint(run.run_id, 2).state)
    crashed.consult_recordings = True
    result = crashed.run_to_end()
    assert result.status == "done"
    assert side_effects == ["k0", "k1", "k2"]
    # Step 3's model call was recorded: reused, not paid again; only later ones are new.
    assert model.calls == calls_before + 2
    assert result.steps[3].tool_calls[0].replayed is True
    assert result.steps[2].cache_hit is True


def test_load_and_resume_from_the_store() -> None:
    """Run.load(run_id) finds the agent by name and resumes to the same end."""
    side_effects.clear()
    agent = Agent(model=_model(), tools=[write], name="writer-load")
    run = agent.start("go")
    run.step()
    loaded = Run.load(run.run_id)
    assert loaded.agent is agent
    assert loaded.steps == run.steps
    result = loaded.resume()
    assert result.output == "all written: wrote k2"
    assert side_effects == ["k0", "k1", "k2"]
    with pytest.raises(UsageError, match="not defined"):
        _load_unknown(run)


def _load_unknown(run: Run) -> None:
    state = run.state_dict()
    run.store.save_checkpoint("run_ghost", 0, {**state, "agent": "ghost"}, status="ready",
                              agent="nobody-defines-this")
    Run.load("run_ghost")


def test_replay_reproduces_the_steps_without_side_effects() -> None:
    """replay() re-executes from recordings: same steps, no tool runs, no model calls."""
    side_effects.clear()
    model = _model()
    agent = Agent(model=model, tools=[write], name="writer-replay")
    original = agent.run("go")
    calls = model.calls
    effects = list(side_effects)
    replayed = replay(original.run_id)
    assert model.calls == calls
    assert side_effects == effects
    strip = {"started_at", "duration_s", "cache_hit"}
    got = [s.model_dump(exclude=strip) for s in replayed.steps]
    want = [s.model_dump(exclude=strip) for s in original.steps]
    for g in got:
        for c in g["tool_calls"]:
            c.pop("replayed")
            c.pop("duration_s")
    for w in want:
        for c in w["tool_calls"]:
            c.pop("replayed")
            c.pop("duration_s")
    assert got == want
    assert replayed.result is not None
    assert replayed.result.output == original.output


def test_replay_with_a_changed_tool_diverges_at_the_step() -> None:
    """A tool whose description changed makes replay raise ReplayDiverged with a diff."""
    agent = Agent(model=_model(), tools=[write], name="writer-diverge")
    original = agent.run("go")

    @tool(effects={"write"}, name="write")
    def write_v2(key: str) -> str:
        """Write a key, now to the new store."""
        return f"wrote {key}"

    changed = Agent(model=_model(), tools=[write_v2], name="writer-diverge")
    with pytest.raises(ReplayDiverged) as info:
        replay(original.run_id, agent=changed)
    err = info.value
    assert err.step == 1
    assert "-" in err.message
    assert "+" in err.message
    assert "now to the new store" in err.message
    assert "Write a key." in err.expected


def test_replay_with_changed_tool_arguments_diverges() -> None:
    """A model asking for different arguments than recorded diverges at the tools step."""
    agent = Agent(model=_model(), tools=[write], name="writer-args")
    original = agent.run("go")

    def fn(m: list[Message], info: FunctionInfo) -> object:
        return call("write", "c0", key="other")

    changed = Agent(model=FunctionModel(fn), tools=[write], name="writer-args")
    # the model is never called during replay, so divergence must come from instructions:
    changed_instr = Agent(model=FunctionModel(fn), tools=[write], name="writer-args",
                          instructions="New instructions.")
    with pytest.raises(ReplayDiverged, match="New instructions"):
        replay(original.run_id, agent=changed_instr)
    assert replay(original.run_id, agent=changed).result is not None


def test_resume_keeps_the_original_budget() -> None:
    """A loaded run only has what its budget left: limits count the usage before the crash."""
    from agentnb.runtime import Budget

    model = FunctionModel(lambda m, i: call("write", f"c{i.call_index}", key=f"r{i.call_index}"))
    agent = Agent(model=model, tools=[write], name="writer-budget", budget=Budget(model_calls=3),
                  loop_threshold=0)
    run = agent.start("go")
    run.step()
    run.step()
    result = Run.load(run.run_id).resume()
    assert result.stop_reason == "budget"
    assert result.usage.model_calls == 3
    assert model.calls == 3


def test_state_json_matches_state_dict_across_steps_and_resume() -> None:
    """The checkpoint text, built from per-message encodings kept between steps, decodes to
    exactly `state_dict()` at every step, also for a run rebuilt from a checkpoint."""
    import json

    def same(run: Run) -> None:
        # elapsed_s moves between the two calls; everything else must be equal.
        text, state = json.loads(run.state_json()), run.state_dict()
        assert text.pop("elapsed_s") <= state.pop("elapsed_s")
        assert text == state

    side_effects.clear()
    agent = Agent(model=_model(), tools=[write], name="writer-json")
    run = agent.start("go")
    for _ in range(3):
        run.step()
        same(run)
    again = Run.from_state(agent, run.store.load_checkpoint(run.run_id).state)
    same(again)
    again.run_to_end()
    same(again)
    stored = run.store.load_checkpoint(again.run_id).state
    assert len(stored["messages"]) == len(again.state_dict()["messages"]) == 8
