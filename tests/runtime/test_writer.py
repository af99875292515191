"""The run store's writer: inline while runs do not meet, batched per turn of the event loop
once they do (or on a writer thread), and finished spans stored in the checkpoints'
transactions (no flush at the end of a run)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from agentnb.core import StoreError, UsageError
from agentnb.models import FunctionModel
from agentnb.runtime import Agent, _hooks, _writer, tool
from agentnb.runtime._checkpoint import RunStore
from agentnb.tracing import _spans, flush, load_spans, tracer

from ._helpers import call

pytestmark = pytest.mark.timeout(60)


@tool(effects={"read"})
def lookup(key: str) -> str:
    """Read a key."""
    return f"value of {key}"


def _agent(name: str) -> Agent:
    def fn(m: list[Any], info: Any) -> object:
        if not any(x.role == "tool" for x in m):
            return [call("lookup", "c1", key="a")]
        return "done"

    return Agent(model=FunctionModel(fn), tools=[lookup], name=name)


def test_one_run_at_a_time_writes_inline_without_a_writer_thread() -> None:
    """Each step's checkpoint is written on the caller's thread: no writer thread starts, and
    every checkpoint is on disk when the run returns."""
    batches: list[str] = []
    real = _writer._GroupCommit._write_batch  # pyright: ignore[reportPrivateUsage]

    def spy(self: Any, batch: list[Any]) -> Any:
        batches.append(threading.current_thread().name)
        return real(self, batch)

    mp = pytest.MonkeyPatch()
    mp.setattr(_writer._GroupCommit, "_write_batch", spy)  # pyright: ignore[reportPrivateUsage]
    try:
        run = _agent("inline").start("go")
        result = run.run_to_end()
    finally:
        mp.undo()
    assert result.status == "done"
    assert batches
    assert not any(name.startswith("agentnb-writer") for name in batches), batches
    group = run.store._db._writer  # pyright: ignore[reportPrivateUsage]
    assert group is not None
    assert group._thread is None  # pyright: ignore[reportPrivateUsage]
    assert run.store.checkpoint_steps(run.run_id) == [0, 1, 2, 3]


def _twenty_runs(tick: bool) -> tuple[list[Any], list[tuple[int, str]], Agent]:
    batches: list[tuple[int, str]] = []
    real = _writer._GroupCommit._write_batch  # pyright: ignore[reportPrivateUsage]

    def spy(self: Any, batch: list[Any]) -> Any:
        batches.append((len(batch), threading.current_thread().name))
        return real(self, batch)

    agent = _agent("together")

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(agent.arun(f"task {i}") for i in range(20))))

    mp = pytest.MonkeyPatch()
    mp.setattr(_writer._GroupCommit, "_write_batch", spy)  # pyright: ignore[reportPrivateUsage]
    mp.setattr(_writer._GroupCommit, "tick", tick)
    try:
        results = asyncio.run(main())
    finally:
        mp.undo()
    assert all(r.status == "done" for r in results)
    writes = sum(n for n, _ in batches)
    # One per model step: the initial checkpoint and the read-only tools step hold theirs
    # for the next step's write.
    assert writes == 20 * 2
    assert len(batches) < writes / 3, batches
    store = RunStore(agent.resolved_settings.home / "traces.db")
    assert all(store.checkpoint_steps(r.run_id) == [0, 1, 2, 3] for r in results)
    store.close()
    return results, batches, agent


def test_concurrent_runs_share_one_transaction_per_turn_of_the_loop() -> None:
    """Twenty runs at once: the checkpoints queued in one turn of the event loop are written
    together on the loop's own thread, in far fewer transactions than there are checkpoints;
    no writer thread is involved and every checkpoint is stored."""
    _, batches, _ = _twenty_runs(tick=True)
    assert {name for _, name in batches} == {"MainThread"}
    assert max(n for n, _ in batches) >= 10, batches


def test_concurrent_runs_can_write_through_the_writer_thread_in_shared_transactions() -> None:
    """With `tick` off, concurrent checkpoints go to the writer thread and share transactions."""
    _, batches, _ = _twenty_runs(tick=False)
    assert any(name.startswith("agentnb-writer") for _, name in batches)


def test_a_batch_of_one_turn_reaches_each_caller_with_its_own_result(tmp_path: Path) -> None:
    """A write refused while a turn's batch is prepared fails only its caller; the rest of the
    batch commits, and a cancelled caller's write is still made."""
    store = RunStore(tmp_path / "traces.db")

    async def main() -> list[Any]:
        with _writer.STEPS, _writer.STEPS:  # as if two runs were stepping: batched per turn
            good = [store.asave_checkpoint(f"run_{i}", 1, {"i": i}, status="done", agent="a")
                    for i in range(5)]
            bad = store.asave_checkpoint("run_bad", 1, {"x": object()}, status="done",
                                         agent="a")
            cancelled = asyncio.ensure_future(store.asave_checkpoint(
                "run_cancelled", 1, {"c": 1}, status="done", agent="a"))
            await asyncio.sleep(0)
            cancelled.cancel()
            return await asyncio.gather(*good, bad, return_exceptions=True)

    results = asyncio.run(main())
    assert results[:5] == [None] * 5
    assert isinstance(results[5], UsageError)
    assert all(store.load_checkpoint(f"run_{i}").state == {"i": i} for i in range(5))
    assert store.load_checkpoint("run_cancelled").state == {"c": 1}
    store.close()


def test_writes_made_outside_runs_or_by_one_run_are_inline(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "traces.db")
    threads: set[str] = set()
    real = _writer._GroupCommit._write_batch  # pyright: ignore[reportPrivateUsage]

    def spy(self: Any, batch: list[Any]) -> Any:
        threads.add(threading.current_thread().name)
        return real(self, batch)

    async def main() -> None:
        await asyncio.gather(*(store.asave_checkpoint(f"run_{i}", 1, {"i": i}, status="done",
                                                      agent="a") for i in range(10)))
        with _writer.STEPS:
            await store.asave_checkpoint("run_one", 1, {}, status="done", agent="a")
        with _writer.STEPS, _writer.STEPS:
            await store.asave_checkpoint("run_two", 1, {}, status="done", agent="a")

    mp = pytest.MonkeyPatch()
    mp.setattr(_writer._GroupCommit, "_write_batch", spy)  # pyright: ignore[reportPrivateUsage]
    try:
        asyncio.run(main())
    finally:
        mp.undo()
    assert threads == {"MainThread"}
    assert all(store.load_checkpoint(f"run_{i}").state == {"i": i} for i in range(10))
    assert store.load_checkpoint("run_two").step == 1
    assert _writer.STEPS.count == 0
    store.close()


def test_a_failing_inline_write_reaches_its_caller_and_the_next_one_works(
        tmp_path: Path) -> None:
    store = RunStore(tmp_path / "traces.db")

    async def main() -> None:
        with pytest.raises(UsageError, match="not JSON-serialisable"):
            await store.asave_checkpoint("run_a", 1, {"x": object()}, status="done", agent="a")
        await store.asave_checkpoint("run_a", 1, {"x": 1}, status="done", agent="a")

    asyncio.run(main())
    assert store.load_checkpoint("run_a").state == {"x": 1}
    store.close()


def test_a_run_stores_its_spans_with_its_last_checkpoint_and_needs_no_flush(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With the span writer thread unable to write, every span of the run (the run's own
    included) is in the store when the run returns, and no flush was waited for."""
    flushes: list[int] = []

    async def no_flush() -> None:
        flushes.append(1)

    monkeypatch.setattr(_hooks, "aflush", no_flush)
    monkeypatch.setattr(_spans, "_drain", lambda st: 0)  # the agentnb-traces thread's writes
    agent = _agent("spans-ride")
    result = asyncio.run(agent.arun("go"))
    assert result.status == "done"
    assert flushes == []
    rows = load_spans(result.run_id, home=agent.resolved_settings.home)
    kinds = sorted(r.kind or "" for r in rows)
    assert kinds == sorted(["run", "step", "step", "step", "model_call", "model_call",
                            "tool_call"]), kinds
    run_span = next(r for r in rows if r.kind == "run")
    assert run_span.attributes["agentnb.status"] == "done"


def test_with_tracing_off_nothing_is_flushed_and_no_span_is_stored(
        monkeypatch: pytest.MonkeyPatch) -> None:
    flushes: list[int] = []

    async def counting() -> None:
        flushes.append(1)

    monkeypatch.setattr(_hooks, "aflush", counting)
    monkeypatch.setenv("AGENTNB_TRACE", "0")
    agent = _agent("spans-off")
    result = asyncio.run(agent.arun("go"))
    assert result.status == "done"
    assert flushes == []
    assert load_spans(result.run_id, home=agent.resolved_settings.home) == []


def _spans_table_broken(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE spans RENAME TO spans_moved")
    conn.close()


def test_a_failed_span_insert_keeps_the_checkpoint_and_is_raised_by_the_next_flush() -> None:
    agent = _agent("spans-broken")
    agent.start("warm").run_to_end()  # tracing configured, store and tables made
    home = agent.resolved_settings.home
    store = RunStore(home / "traces.db")
    flush()
    _spans_table_broken(home / "traces.db")
    tracer().start_span("orphan").end()

    async def save() -> None:
        await store.asave_checkpoint("run_x", 1, {"s": 1}, status="done", agent="a")

    asyncio.run(save())
    assert store.load_checkpoint("run_x").state == {"s": 1}
    with pytest.raises(StoreError, match="spans"):
        flush()
    flush()  # reported once
    store.close()


def test_spans_drained_for_a_transaction_that_failed_are_written_on_their_own() -> None:
    agent = _agent("spans-own")
    agent.start("warm").run_to_end()
    home = agent.resolved_settings.home
    store = RunStore(home / "traces.db")
    flush()
    span = tracer().start_span("kept")
    span_id = f"{span.get_span_context().span_id:016x}"
    span.end()

    async def save() -> None:
        with pytest.raises(UsageError):
            await store.asave_checkpoint("run_y", 1, {"x": object()}, status="done", agent="a")

    asyncio.run(save())
    assert _spans.store(home).query("SELECT name FROM spans WHERE span_id = ?",
                                    (span_id,)) == [("kept",)]
    store.close()


def test_one_run_keeps_its_spans_queued_until_its_last_checkpoint(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Inline, a step's checkpoint leaves the spans queued (the run's last checkpoint or the
    span thread takes them together); the last checkpoint stores them all."""
    monkeypatch.setattr(_spans, "_drain", lambda st: 0)
    agent = _agent("ride-last")
    run = agent.start("go")
    run.step()
    home = agent.resolved_settings.home
    assert load_spans(run.run_id, home=home) == []
    st = _spans._STATE  # pyright: ignore[reportPrivateUsage]
    assert st is not None
    assert any(r[3] == run.run_id or r[7].get("agentnb.run.id") == run.run_id
               for r in st.processor.queue)
    result = run.run_to_end()
    assert result.status == "done"
    assert sorted(r.kind or "" for r in load_spans(run.run_id, home=home)) == sorted(
        ["run", "step", "step", "step", "model_call", "model_call", "tool_call"])


def test_a_run_whose_spans_could_not_be_stored_says_so_when_it_ends() -> None:
    """The span insert of a run's last checkpoint fails: the checkpoint commits, and the run
    ends with the `StoreError` (as when its own flush failed), not silently."""
    agent = _agent("spans-fail-run")
    agent.start("warm").run_to_end()
    home = agent.resolved_settings.home
    flush()
    _spans_table_broken(home / "traces.db")
    run = agent.start("go")
    with pytest.raises(StoreError, match="spans"):
        run.run_to_end()
    assert run.state == "done"
    assert run.store.load_checkpoint(run.run_id).status == "done"


def test_a_turn_whose_batch_cannot_be_written_fails_every_caller_without_hanging(
        tmp_path: Path) -> None:
    store = RunStore(tmp_path / "traces.db")

    def broken(self: Any, batch: list[Any]) -> Any:
        raise RuntimeError("disk on fire")

    async def main() -> list[Any]:
        with _writer.STEPS, _writer.STEPS:
            return await asyncio.wait_for(asyncio.gather(
                *(store.asave_checkpoint(f"run_{i}", 1, {}, status="done", agent="a")
                  for i in range(3)), return_exceptions=True), 10)

    mp = pytest.MonkeyPatch()
    mp.setattr(_writer._GroupCommit, "_write_batch", broken)  # pyright: ignore[reportPrivateUsage]
    try:
        results = asyncio.run(main())
    finally:
        mp.undo()
    assert [str(r) for r in results] == ["disk on fire"] * 3
    store.close()
