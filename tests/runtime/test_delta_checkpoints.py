"""Checkpoints between whole states are deltas; every load folds them back to the exact state."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from agentnb.core import Message, StoreError, UsageError
from agentnb.models import FunctionInfo, FunctionModel
from agentnb.runtime import Agent, Run, tool
from agentnb.runtime._checkpoint import RunStore
from agentnb.runtime._delta import DELTA_PREFIX, FULL_EVERY

from ._helpers import call

pytestmark = pytest.mark.timeout(60)


@tool(effects={"read"})
def peek(key: str) -> str:
    """Read a key."""
    return f"value of {key}"


def _looping(calls: int) -> FunctionModel:
    def fn(m: list[Message], info: FunctionInfo) -> object:
        if info.call_index < calls:
            return [call("peek", f"c{info.call_index}", key=str(info.call_index))]
        return "done"

    return FunctionModel(fn)


def _comparable(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k != "elapsed_s"}


def _texts(store: RunStore, run_id: str) -> dict[int, str]:
    with sqlite3.connect(store.path) as conn:
        return dict(conn.execute("SELECT step, state FROM rt_checkpoints WHERE run_id = ?",
                                 (run_id,)).fetchall())


def test_every_checkpoint_of_a_long_run_loads_as_the_state_it_saved() -> None:
    agent = Agent(model=_looping(20), tools=[peek], name="long", loop_threshold=100)
    run = agent.start("go")
    seen = {0: None}
    while not run.finished:
        run.step()
        seen[len(run.steps)] = _comparable(run.state_dict())
    assert len(run.steps) == 41
    texts = _texts(run.store, run.run_id)
    whole = sorted(s for s, t in texts.items() if not t.startswith(DELTA_PREFIX))
    assert whole == [0, FULL_EVERY, 2 * FULL_EVERY]
    for step, state in seen.items():
        loaded = run.store.load_checkpoint(run.run_id, step).state
        if state is not None:
            assert _comparable(loaded) == state, step
    assert _comparable(run.store.load_checkpoint(run.run_id).state) == seen[41]
    # The history is written once: the deltas are a small part of what whole states would be.
    total = sum(len(t) for t in texts.values())
    assert total < sum(len(json.dumps(run.store.load_checkpoint(run.run_id, s).state))
                       for s in texts) / 4


def test_a_resumed_or_forked_run_starts_again_from_a_whole_state() -> None:
    agent = Agent(model=_looping(3), tools=[peek], name="resumed")
    run = agent.start("go")
    run.step()
    run.step()
    again = Run.load(run.run_id, agent=agent)
    again.step()
    texts = _texts(run.store, run.run_id)
    assert [s for s in sorted(texts) if not texts[s].startswith(DELTA_PREFIX)] == [0, 3]
    result = again.run_to_end()
    assert result.status == "done"
    fork = Run.load(run.run_id, agent=agent, step=2).rewind(2)
    fork_texts = _texts(run.store, fork.run_id)
    assert all(not t.startswith(DELTA_PREFIX) for t in fork_texts.values())


def test_a_delta_read_as_a_whole_state_is_refused_by_version() -> None:
    agent = Agent(model=_looping(2), tools=[peek], name="versioned")
    run = agent.start("go")
    run.step()
    delta = json.loads(_texts(run.store, run.run_id)[1])
    assert delta["v"] == 2
    with pytest.raises(UsageError, match="version 2"):
        Run.from_state(agent, delta)


def test_a_delta_whose_base_is_gone_is_a_store_error(tmp_path: Any) -> None:
    agent = Agent(model=_looping(3), tools=[peek], name="broken")
    run = agent.start("go")
    for _ in range(3):
        run.step()
    with sqlite3.connect(run.store.path) as conn:
        conn.execute("DELETE FROM rt_checkpoints WHERE run_id = ? AND step = 1", (run.run_id,))
    with pytest.raises(StoreError, match="read a checkpoint"):
        run.store.load_checkpoint(run.run_id, 3)
    assert run.store.load_checkpoint(run.run_id, 0).step == 0


def test_a_base_further_back_than_the_window_is_still_found(tmp_path: Any) -> None:
    store = RunStore(tmp_path / "traces.db")
    whole = {"v": 1, "messages": [{"m": 0}], "chain": ["h0"], "steps": [], "x": 0}
    store.save_checkpoint("run_far", 0, whole, status="ready", agent="a")
    far = FULL_EVERY * 3
    text = (DELTA_PREFIX + '{"base":0,"messages":1,"steps":0},"v":2,"x":1,'
            '"chain":["h1"],"messages":[{"m":1}],"steps":[{"s":1}]}')
    store._write(store._save_fn("run_far", far, text, status="done", agent="a",  # pyright: ignore[reportPrivateUsage]
                                parent_run_id=None))
    state = store.load_checkpoint("run_far").state
    assert state == {"v": 1, "x": 1, "messages": [{"m": 0}, {"m": 1}], "chain": ["h0", "h1"],
                     "steps": [{"s": 1}]}
    store.close()
