"""While `run_to_end` drives a run, its initial checkpoint and a tools step that only read (and
paid for no model call) hold their checkpoint for the next step's transaction; every other
step writes its own, and every way out of a step writes what is held."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agentnb.core import Message
from agentnb.governance import Policy, audit
from agentnb.models import FunctionInfo, FunctionModel
from agentnb.runtime import Agent, Run, _writer

from ._helpers import call, key_tool

pytestmark = pytest.mark.timeout(60)

ran: list[str] = []
read_key = key_tool("read_key", ran, effects={"read"})
write_key = key_tool("write_key", ran, effects={"write"})


def _model(tool_name: str) -> FunctionModel:
    def fn(m: list[Message], info: FunctionInfo) -> object:
        if not any(x.role == "tool" for x in m):
            return [call(tool_name, "c1", key="a")]
        return "done"

    return FunctionModel(fn)


def _submits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the writes submitted; each entry is the number of checkpoint rows it carried."""
    seen: list[int] = []
    real = _writer._GroupCommit.submit  # pyright: ignore[reportPrivateUsage]

    async def counting(self: Any, prepare: Any, action: str, audit_part: Any = None) -> Any:
        seen.append(1)
        return await real(self, prepare, action, audit_part)

    monkeypatch.setattr(_writer._GroupCommit, "submit", counting)
    return seen


@pytest.mark.parametrize(("tool_name", "writes"), [("read_key", 2), ("write_key", 4)])
def test_only_a_read_only_step_rides_the_next_write(monkeypatch: pytest.MonkeyPatch,
                                                    tool_name: str, writes: int) -> None:
    """Initial checkpoint, model step, tools step, final model step: the initial checkpoint
    rides the first step's write and a read-only tools step the final step's (2 writes); a
    `write` tool's result is recorded as it returns and its step written on its own (4).
    Every step has its checkpoint afterwards, and the audit chain holds every record in
    order."""
    seen = _submits(monkeypatch)
    agent = Agent(model=_model(tool_name), tools=[read_key, write_key],
                  policy=Policy(allow={"read", "write"}), name=f"held-{tool_name}")
    run = agent.start("go")
    assert run.run_to_end().status == "done"
    assert len(seen) == writes
    assert run.store.checkpoint_steps(run.run_id) == [0, 1, 2, 3]
    assert run.store.load_checkpoint(run.run_id, 2).state["steps"][-1]["kind"] == "tools"
    log = agent.resolved_settings.home / "audit" / "audit.jsonl"
    events = [r["event"] for r in audit.iter_records(log) if r.get("run_id") == run.run_id]
    assert events == [audit.TOOL_CALL_REQUESTED, audit.POLICY_DECISION, audit.TOOL_RESULT]
    assert audit.verify(log).ok


def test_stepping_by_hand_never_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """`run.step()` writes every step's checkpoint before it returns."""
    seen = _submits(monkeypatch)
    run = Agent(model=_model("read_key"), tools=[read_key], name="held-by-hand").start("go")
    run.step()
    run.step()
    assert len(seen) == 3
    assert run.store.checkpoint_steps(run.run_id) == [0, 1, 2]
    run.step()
    assert run.finished


def test_a_step_that_paid_for_a_delegate_records_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A delegate is an effect-free tool that pays for model calls: its result is recorded
    the moment it returns and its step is written on its own."""
    seen = _submits(monkeypatch)
    helper = Agent(model=FunctionModel(lambda m, i: "helped"), name="held-helper")

    def fn(m: list[Message], info: FunctionInfo) -> object:
        if not any(x.role == "tool" for x in m):
            return [call("delegate_held-helper", "d1", task="help")]
        return "done"

    parent = Agent(model=FunctionModel(fn), delegates=[helper], name="held-parent")
    run = parent.start("go")
    assert run.run_to_end().status == "done"
    mine = [r for r in run.store.recordings(run.run_id) if r.kind == "tool"]
    assert [r.payload["content"] for r in mine] == ["helped"]
    # Parent: initial with the model step, the recording, tools, model (4); the child: its
    # initial checkpoint with its one step (1).
    assert len(seen) == 5


def _gated_model(gate: asyncio.Event, calls: dict[str, int]) -> Any:
    """Propose `read_key(a)`, then answer once `gate` opens; `calls["n"]` counts the calls."""

    async def fn(m: list[Message], info: FunctionInfo) -> object:
        calls["n"] += 1
        if not any(x.role == "tool" for x in m):
            return [call("read_key", "c1", key="a")]
        await gate.wait()
        return "done"

    return fn


def test_cancelling_the_next_step_writes_the_held_checkpoint() -> None:
    """Cancelled while the model answers after a read-only step: the held checkpoint and the
    tool's recording are written, so a resumed run does not read again."""
    ran.clear()
    gate = asyncio.Event()
    calls = {"n": 0}
    fn = _gated_model(gate, calls)

    agent = Agent(model=FunctionModel(fn), tools=[read_key], name="held-cancel")
    run = agent.start("go")

    async def main() -> None:
        task = asyncio.create_task(run.arun_to_end())
        while calls["n"] < 2:  # noqa: ASYNC110 - polls the model's state
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert run.store.checkpoint_steps(run.run_id) == [0, 1, 2]
    assert ran == ["read_key a"]
    gate.set()
    resumed = Run.load(run.run_id, agent=agent)
    assert resumed.resume().status == "done"
    assert ran == ["read_key a"]


_CRASH = """
import os, sys
sys.path.insert(0, {tests!r})
from agentnb.core import Message
from agentnb.governance import Policy
from agentnb.models import FunctionModel
from agentnb.runtime import Agent, tool
from runtime._helpers import call

@tool(effects={{"read"}})
def read_key(key: str) -> str:
    '''Read a key.'''
    with open({marks!r}, "a") as f:
        f.write("read\\n")
    return "value of " + key

def fn(m, info):
    if not any(x.role == "tool" for x in m):
        return [call("read_key", "c1", key="a")]
    os._exit(9)  # the process dies while the model answers after the read

agent = Agent(model=FunctionModel(fn), tools=[read_key], policy=Policy(allow={{"read"}}),
              name="held-crash")
run = agent.start("go")
print(run.run_id, flush=True)
run.run_to_end()
"""


def test_a_crash_after_a_held_step_repeats_only_the_read(tmp_path: Path) -> None:
    """Killed while the model answers: the held read-only step is lost, the newest checkpoint
    is the step that proposed the call, and resuming reads once more and finishes; the audit
    chain verifies."""
    home = tmp_path / "home"
    marks = tmp_path / "reads.txt"
    tests = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "AGENTNB_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-c", _CRASH.format(tests=tests, marks=str(marks))],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 9, proc.stderr
    run_id = proc.stdout.split()[0]
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {tests!r})
        from agentnb.governance import Policy, audit
        from agentnb.models import FunctionModel
        from agentnb.runtime import Agent, Run, tool
        from runtime._helpers import call

        @tool(effects={{"read"}})
        def read_key(key: str) -> str:
            '''Read a key.'''
            with open({str(marks)!r}, "a") as f:
                f.write("read\\n")
            return "value of " + key

        agent = Agent(model=FunctionModel(lambda m, i: "done"), tools=[read_key],
                      policy=Policy(allow={{"read"}}), name="held-crash")
        run = Run.load({run_id!r}, agent=agent)
        print(run.store.checkpoint_steps({run_id!r}))
        print(run.resume().status)
        print(audit.verify(run.agent.resolved_settings.home / "audit" / "audit.jsonl").ok)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=60, check=True).stdout.split("\n")
    assert out[:3] == ["[0, 1]", "done", "True"]
    assert marks.read_text().splitlines() == ["read", "read"]


def test_a_first_step_that_raises_writes_the_held_initial_checkpoint() -> None:
    """The model's code raises on the first call: the run fails, and its initial checkpoint
    (held for step 1's write) is on disk, so the run is listed and can be loaded."""

    def fn(m: list[Message], info: FunctionInfo) -> object:
        raise RuntimeError("model code broke")

    agent = Agent(model=FunctionModel(fn), name="held-first-fails")
    run = agent.start("go")
    with pytest.raises(RuntimeError, match="model code broke"):
        run.run_to_end()
    assert run.store.checkpoint_steps(run.run_id) == [0]
    assert run.run_id in [r.run_id for r in run.store.list_runs()]
    assert Run.load(run.run_id, agent=agent).state == "ready"


def test_a_stop_asked_of_the_parent_reaches_a_child_before_its_first_write() -> None:
    """A child run's initial checkpoint is held, yet a stop requested for its parent is seen
    for the child at once: the store knows the parent in memory."""
    from agentnb.runtime import _stepping

    agent = Agent(model=FunctionModel(lambda m, i: "done"), name="held-stop")
    child = Run(agent, "help", parent_run_id="run_parent_of_held")
    child._driving = True  # as inside `arun_to_end`

    async def hold() -> None:
        await _stepping.checkpoint(child)

    asyncio.run(hold())
    assert child.journal.held is not None
    assert child.store.checkpoint_steps(child.run_id) == []
    child.store.request_stop("run_parent_of_held")
    assert child.store.stop_requested(child.run_id)
    child._driving = False
    _stepping.flush_journal(child)
    assert child.store.checkpoint_steps(child.run_id) == [0]


def test_rewinding_a_driven_run_to_its_held_step_writes_it_first() -> None:
    """While the model answers after a read-only step, `rewind` to that step finds its
    checkpoint (written then); the drive goes on and every step is stored once."""
    gate = asyncio.Event()
    calls = {"n": 0}
    fn = _gated_model(gate, calls)

    agent = Agent(model=FunctionModel(fn), tools=[read_key], policy=Policy(allow={"read"}),
                  name="held-rewind")
    run = agent.start("go")

    async def main() -> tuple[Any, Any]:
        task = asyncio.create_task(run.arun_to_end())
        while calls["n"] < 2:  # noqa: ASYNC110 - polls the model's state
            await asyncio.sleep(0.001)
        assert run.journal.held is not None
        fork = await run.arewind(2)
        gate.set()
        return fork, await task

    fork, result = asyncio.run(main())
    assert [s.kind for s in fork.steps] == ["model", "tools"]
    assert result.status == "done"
    assert run.store.checkpoint_steps(run.run_id) == [0, 1, 2, 3]
    assert audit.verify(agent.resolved_settings.home / "audit" / "audit.jsonl").ok
