"""The SQLite store: concurrency, schema version, damaged files, other tables, crash safety."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from agentnb.core import StoreError, resolve
from agentnb.tracing import SCHEMA_VERSION, configure, flush, store, tracer, traces
from agentnb.tracing import semconv as sc


def _tree(run_id: str, width: int) -> None:
    t = tracer()
    with t.start_as_current_span("invoke_agent a", attributes={
            sc.AGENTNB_KIND: "run", sc.AGENTNB_RUN_ID: run_id, sc.GEN_AI_AGENT_NAME: "a",
            sc.AGENTNB_STATUS: "done"}):
        for i in range(width):
            with t.start_as_current_span(f"step {i} model", attributes={
                    sc.AGENTNB_KIND: "step", sc.AGENTNB_STEP_INDEX: i}), \
                    t.start_as_current_span("chat m", attributes={sc.AGENTNB_KIND: "model_call"}):
                pass


def test_200_concurrent_asyncio_runs_lose_nothing() -> None:
    """200 concurrent runs (asyncio tasks) write every span, each under its own run id."""
    t = tracer()

    async def run(n: int) -> None:
        with t.start_as_current_span("invoke_agent a", attributes={
                sc.AGENTNB_KIND: "run", sc.AGENTNB_RUN_ID: f"run_{n:03d}"}):
            for i in range(4):
                with t.start_as_current_span(f"step {i} model", attributes={
                        sc.AGENTNB_KIND: "step"}):
                    await asyncio.sleep(0.001)
                    with t.start_as_current_span("chat m", attributes={
                            sc.AGENTNB_KIND: "model_call"}):
                        await asyncio.sleep(0)

    async def main() -> None:
        async with asyncio.TaskGroup() as group:
            for n in range(200):
                group.create_task(run(n))

    asyncio.run(main())
    flush()
    rows = store().query("SELECT run_id, count(*) FROM spans GROUP BY run_id")
    assert len(rows) == 200
    assert {count for _, count in rows} == {9}
    assert len(traces()) == 200


def test_200_concurrent_threads_lose_nothing_and_never_lock() -> None:
    """200 threads making span trees while readers query: no loss, no 'database is locked'."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                store().query("SELECT count(*) FROM spans")
            except BaseException as exc:
                errors.append(exc)

    def writer(n: int) -> None:
        try:
            _tree(f"run_t{n:03d}", 5)
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(200)]
    for th in readers + writers:
        th.start()
    for th in writers:
        th.join()
    flush()
    stop.set()
    for th in readers:
        th.join()
    assert errors == []
    assert store().count_spans() == 200 * 11


def test_other_processes_write_the_same_file_without_locking(tmp_path: Path) -> None:
    """Four processes writing one traces.db at once keep every span (busy_timeout, WAL)."""
    home = tmp_path / "shared"
    code = textwrap.dedent(f"""
        import sys
        from agentnb.core import resolve
        from agentnb.tracing import configure, flush, tracer
        configure(resolve(home={str(home)!r}, env={{}}))
        for i in range(300):
            with tracer().start_as_current_span("s", attributes={{"agentnb.run.id": sys.argv[1]}}):
                pass
        flush()
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, f"run_p{n}"]) for n in range(4)]
    assert [p.wait(60) for p in procs] == [0, 0, 0, 0]
    rows = store(home).query("SELECT run_id, count(*) FROM spans GROUP BY run_id ORDER BY 1")
    assert rows == [(f"run_p{n}", 300) for n in range(4)]


def test_corrupt_file_gives_store_error(tmp_path: Path) -> None:
    """A traces.db that is not a database raises StoreError naming the path and what to do."""
    home = tmp_path / "bad"
    home.mkdir()
    (home / "traces.db").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError) as info:
        store(home)
    assert info.value.path == str((home / "traces.db").absolute())
    assert "traces.db" in str(info.value)
    assert info.value.hint is not None
    assert "aside" in info.value.hint
    with pytest.raises(StoreError):
        configure(resolve(home=home))


def test_newer_schema_gives_store_error(tmp_path: Path) -> None:
    """A store written by a newer agentnb is refused with a hint to upgrade."""
    home = tmp_path / "newer"
    home.mkdir()
    with sqlite3.connect(home / "traces.db") as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('tracing.schema_version', ?)",
                     (str(SCHEMA_VERSION + 1),))
    conn.close()
    with pytest.raises(StoreError) as info:
        store(home)
    assert f"schema version {SCHEMA_VERSION + 1}" in str(info.value)
    assert info.value.hint is not None
    assert "Upgrade agentnb" in info.value.hint


def test_migration_leaves_other_tables_alone(tmp_path: Path) -> None:
    """Tables and meta keys owned by the runtime survive the tracing migration untouched."""
    home = tmp_path / "shared"
    home.mkdir()
    with sqlite3.connect(home / "traces.db") as conn:
        conn.execute("CREATE TABLE checkpoints (run_id TEXT, step INTEGER, data BLOB)")
        conn.execute("INSERT INTO checkpoints VALUES ('run_1', 3, x'00')")
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('runtime.schema_version', '7')")
    conn.close()
    s = store(home)
    assert s.query("SELECT * FROM checkpoints") == [("run_1", 3, b"\x00")]
    assert dict(s.query("SELECT key, value FROM meta")) == {
        "runtime.schema_version": "7", "tracing.schema_version": str(SCHEMA_VERSION)}
    assert s.query("PRAGMA journal_mode") == [("wal",)]


def test_store_is_shared_per_file_and_reopens_after_close(tmp_path: Path) -> None:
    """`store(home)` returns one object per file; a closed one is replaced and refuses writes."""
    first = store(tmp_path / "x")
    assert store(tmp_path / "x") is first
    first.close()
    with pytest.raises(StoreError, match="closed"):
        first.write([("a",) * 13])
    again = store(tmp_path / "x")
    assert again is not first
    assert again.count_spans() == 0
    assert repr(again) == f"TraceStore({str(again.path)!r})"


def test_unwritable_home_gives_store_error(tmp_path: Path) -> None:
    """A home that cannot be created raises StoreError with a hint about AGENTNB_HOME."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError) as info:
        store(blocker / "home")
    assert info.value.hint is not None
    assert "AGENTNB_HOME" in info.value.hint


_KILLED = """
import sys, time
from agentnb.core import resolve
from agentnb.tracing import configure, tracer
configure(resolve(home=sys.argv[1], env={}))
t = tracer()
with t.start_as_current_span("invoke_agent a", attributes={"agentnb.kind": "run",
                                                         "agentnb.run.id": "run_killed"}):
    for i in range(5):
        with t.start_as_current_span(f"step {i} model", attributes={"agentnb.kind": "step"}):
            pass
    print("finished", flush=True)
    time.sleep(60)
"""


@pytest.mark.slow
def test_spans_survive_sigkill_after_a_flush_interval(tmp_path: Path) -> None:
    """A process killed with SIGKILL keeps the spans that finished one flush interval earlier."""
    home = tmp_path / "killed"
    with subprocess.Popen([sys.executable, "-c", _KILLED, str(home)], stdout=subprocess.PIPE,
                          text=True) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "finished"
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    rows = store(home).query("SELECT name FROM spans WHERE run_id = 'run_killed' ORDER BY name")
    assert rows == [(f"step {i} model",) for i in range(5)]


def test_spans_are_written_at_interpreter_exit(tmp_path: Path) -> None:
    """A process that exits without calling flush() still writes its spans (atexit)."""
    home = tmp_path / "exit"
    code = textwrap.dedent(f"""
        from agentnb.core import resolve
        from agentnb.tracing import configure, tracer
        configure(resolve(home={str(home)!r}, env={{}}))
        for i in range(3000):
            with tracer().start_as_current_span("s", attributes={{"agentnb.run.id": "run_exit"}}):
                pass
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert store(home).query("SELECT count(*) FROM spans") == [(3000,)]


def test_background_write_failure_surfaces_at_flush() -> None:
    """A write that fails on the writer thread is raised by the next flush(), then recovers."""
    from agentnb.tracing import _spans

    store().close()
    with tracer().start_as_current_span("lost", attributes={sc.AGENTNB_RUN_ID: "run_lost"}):
        pass
    time.sleep(0.6)  # let the writer thread try (and fail) on its timer
    with pytest.raises(StoreError, match="closed"):
        flush()
    flush()  # the error is reported once
    configure(resolve())  # re-configuring reopens the closed store
    with tracer().start_as_current_span("kept", attributes={sc.AGENTNB_RUN_ID: "run_kept"}):
        pass
    flush()
    assert store().query("SELECT run_id FROM spans") == [("run_kept",)]
    assert _spans._state().store is store()


def test_forked_child_writes_its_own_spans(tmp_path: Path) -> None:
    """After a fork the child starts a fresh writer and connection and its spans are stored."""
    import multiprocessing

    home = tmp_path / "fork"
    configure(resolve(home=home))
    with tracer().start_as_current_span("parent", attributes={sc.AGENTNB_RUN_ID: "run_parent"}):
        pass
    flush()

    def child() -> None:
        with tracer().start_as_current_span("child", attributes={sc.AGENTNB_RUN_ID: "run_kid"}):
            pass
        flush()

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    proc.join(30)
    assert proc.exitcode == 0
    assert store(home).query("SELECT run_id FROM spans ORDER BY run_id") == [
        ("run_kid",), ("run_parent",)]


def test_unconfigured_process_resolves_home_from_settings(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without configure(), the first write resolves AGENTNB_HOME itself."""
    from agentnb.tracing import _spans

    st = _spans._state()
    monkeypatch.setattr(st, "store", None)
    monkeypatch.setattr(st, "home", None)
    monkeypatch.setenv("AGENTNB_HOME", str(tmp_path / "lazy"))
    with tracer().start_as_current_span("s", attributes={sc.AGENTNB_RUN_ID: "run_lazy"}):
        pass
    flush()
    assert store(tmp_path / "lazy").query("SELECT run_id FROM spans") == [("run_lazy",)]
    monkeypatch.setattr(st, "store", None)
    monkeypatch.setattr(st, "home", None)
    assert store().path == (tmp_path / "lazy" / "traces.db").absolute()


def test_bad_rows_roll_back_and_raise_store_error() -> None:
    """A failing batch rolls back as a whole and raises StoreError, not sqlite3.Error."""
    s = store()
    good = ("a" * 16, "b" * 32, None, "run_g", "n", None, "INTERNAL", 1, 2, "UNSET", None, "{}",
            None)
    with pytest.raises(StoreError, match="Cannot write to"):
        s.write([good, ("short",)])
    assert s.count_spans() == 0
    s.write([good])
    assert s.count_spans() == 1
