"""A step's recordings and audit records go out with its checkpoint, in one writer hop; a step
that fails or is cancelled first still keeps them; effectful tools record at once; a step
that only read holds its checkpoint for the next step's transaction."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agentnb.core import Message, StoreError
from agentnb.governance import Policy, audit
from agentnb.models import FunctionInfo, FunctionModel
from agentnb.runtime import Agent, Run, _toolstep, _writer, tool
from agentnb.runtime._checkpoint import RunStore

from ._helpers import call, key_tool

pytestmark = pytest.mark.timeout(30)

ran: list[str] = []
fast = key_tool("fast", ran, effects={"read"})


gate: dict[str, asyncio.Event] = {}


@tool(effects={"read"})
async def slow(key: str) -> str:
    """Read a key once the gate opens."""
    ran.append(f"slow {key} started")
    await gate["open"].wait()
    return f"slow value of {key}"


def _two_reads() -> FunctionModel:
    def fn(m: list[Message], info: FunctionInfo) -> object:
        if not any(x.role == "tool" for x in m):
            return [call("fast", "c1", key="a"), call("slow", "c2", key="b")]
        return "done"

    return FunctionModel(fn)


def _audit_path(agent: Agent) -> Path:
    return agent.resolved_settings.home / "audit" / "audit.jsonl"


def test_one_writer_hop_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run with a policy submits exactly one write per checkpoint: its recordings and audit
    records ride along, and all of them are on disk afterwards."""
    submits: list[bool] = []
    real = _writer._GroupCommit.submit

    async def counting(self: Any, prepare: Any, action: str, audit_part: Any = None) -> Any:
        submits.append(audit_part is not None)
        return await real(self, prepare, action, audit_part)

    monkeypatch.setattr(_writer._GroupCommit, "submit", counting)
    ran.clear()
    gate["open"] = asyncio.Event()
    gate["open"].set()
    agent = Agent(model=_two_reads(), tools=[fast, slow], policy=Policy(allow={"read"}),
                  name="journal-hops")
    run = agent.start("go")
    result = run.run_to_end()
    assert result.status == "done"
    assert [s.kind for s in result.steps] == ["model", "tools", "model"]
    # Step 1 with the held initial checkpoint and the policy's records, then step 3 carrying
    # the held checkpoint of the read-only tools step 2 and its tool results.
    assert submits == [True, True]
    assert run.store.checkpoint_steps(run.run_id) == [0, 1, 2, 3]
    kinds = sorted(r.kind for r in run.store.recordings(run.run_id))
    assert kinds == ["model", "model", "tool", "tool"]
    events = [r for r in audit.iter_records(_audit_path(agent)) if r.get("run_id") == run.run_id]
    assert [e["event"] for e in events] == [
        audit.TOOL_CALL_REQUESTED, audit.POLICY_DECISION,
        audit.TOOL_CALL_REQUESTED, audit.POLICY_DECISION,
        audit.TOOL_RESULT, audit.TOOL_RESULT]
    assert audit.verify(_audit_path(agent)).ok


def test_cancelled_step_keeps_finished_results_and_resume_repeats_nothing() -> None:
    """Cancelling a tools step while one call still runs writes the finished call's recording;
    a resumed run reuses it and runs only the unfinished call."""
    ran.clear()
    agent = Agent(model=_two_reads(), tools=[fast, slow], name="journal-cancel")
    run = agent.start("go")

    async def main() -> None:
        gate["open"] = asyncio.Event()
        await run.astep()  # the model step proposes both calls
        task = asyncio.create_task(run.astep())
        # Until the fast call has returned (its recording waits in the journal).
        while "slow b started" not in ran or run.journal.empty:  # noqa: ASYNC110 - polls state
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert sorted(ran) == ["fast a", "slow b started"]
    recorded = [r for r in run.store.recordings(run.run_id) if r.kind == "tool"]
    assert [r.payload["call"]["name"] for r in recorded] == ["fast"]

    resumed = Run.from_state(agent, run.store.load_checkpoint(run.run_id, 1).state)
    resumed.consult_recordings = True

    async def finish() -> Any:
        gate["open"] = asyncio.Event()
        gate["open"].set()
        return await resumed.arun_to_end()

    result = asyncio.run(finish())
    assert result.status == "done"
    assert sorted(ran) == ["fast a", "slow b started", "slow b started"]
    tools = result.steps[1].tool_calls
    assert [(t.name, t.replayed) for t in tools] == [("fast", True), ("slow", False)]


def test_effectful_result_is_recorded_before_the_step_ends() -> None:
    """A `write` tool's result is committed as soon as it returns, while its sibling runs."""
    seen: list[int] = []
    store_box: dict[str, Any] = {}

    @tool(effects={"write"})
    def save(key: str) -> str:
        """Write a key."""
        return f"saved {key}"

    @tool(effects={"read"})
    async def look(key: str) -> str:
        """Read, after the write has returned."""
        await asyncio.sleep(0.2)
        run = store_box["run"]
        seen.append(len([r for r in run.store.recordings(run.run_id) if r.kind == "tool"]))
        return key

    def fn(m: list[Message], info: FunctionInfo) -> object:
        if not any(x.role == "tool" for x in m):
            return [call("save", "c1", key="a"), call("look", "c2", key="b")]
        return "done"

    agent = Agent(model=FunctionModel(fn), tools=[save, look], name="journal-effects")
    run = agent.start("go")
    store_box["run"] = run
    assert run.run_to_end().status == "done"
    assert seen == [1]  # the write's recording; the read's waits for the checkpoint
    assert len([r for r in run.store.recordings(run.run_id) if r.kind == "tool"]) == 2


def test_failed_model_step_keeps_its_paid_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model step that raises after its call was made still writes the call's recording."""

    async def broken(run: Any, calls: Any) -> bool:
        raise RuntimeError("policy engine crashed")

    monkeypatch.setattr(_toolstep, "propose", broken)
    agent = Agent(model=_two_reads(), tools=[fast, slow], name="journal-fail")
    run = agent.start("go")
    with pytest.raises(RuntimeError, match="policy engine crashed"):
        run.step()
    assert [r.kind for r in run.store.recordings(run.run_id)] == ["model"]


class _Broken:
    def append_many(self, records: Any) -> Any:
        raise StoreError("disk full", path="x")


def test_audit_failure_reaches_the_caller_and_the_checkpoint_is_kept(tmp_path: Path) -> None:
    """An audit log that cannot be written fails the caller; the checkpoint still commits, and
    a record with a reserved field fails only its own caller."""
    from agentnb.governance import AuditLog

    store = RunStore(tmp_path / "traces.db")
    log = AuditLog(tmp_path / "audit.jsonl")

    async def main() -> list[Any]:
        return await asyncio.gather(
            store.asave_checkpoint("run_a", 0, {"x": 1}, status="ready", agent="a",
                                   audit=(_Broken(), [("e", {"i": 1})])),
            store.asave_checkpoint("run_b", 0, {"x": 2}, status="ready", agent="a",
                                   audit=(log, [("e", {"seq": 1})])),
            store.asave_checkpoint("run_c", 0, {"x": 3}, status="ready", agent="a",
                                   recordings=[("model", "k", 1, {"r": 1})],
                                   audit=(log, [("e", {"i": 3})])),
            return_exceptions=True)

    a, b, c = asyncio.run(main())
    assert isinstance(a, StoreError)
    assert "reserved" in str(b)
    assert c is None
    for run_id in ("run_a", "run_b", "run_c"):
        assert store.checkpoint_steps(run_id) == [0]
    assert store.recorded("run_c", "model", "k", 1) == {"r": 1}
    assert [r["i"] for r in audit.iter_records(log.path)] == [3]
