"""RunStore: checkpoints, recordings, stop flags, durability and sharing traces.db."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentnb.core import StoreError, UsageError
from agentnb.runtime._checkpoint import SCHEMA_VERSION, RunStore, run_store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Path of a fresh traces.db."""
    return tmp_path / "home" / "traces.db"


@pytest.fixture
def store(db: Path) -> Iterator[RunStore]:
    """A RunStore over a fresh file, closed afterwards."""
    s = RunStore(db)
    yield s
    s.close()


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# -- checkpoints -------------------------------------------------------------------------------


def test_checkpoint_round_trip_latest_and_specific(store: RunStore) -> None:
    """Latest and a specific checkpoint come back with their state and metadata."""
    for step in range(3):
        store.save_checkpoint("run_a", step, {"step": step, "msgs": ["x"] * step},
                              status="ready" if step < 2 else "done", agent="bot",
                              parent_run_id="run_p")
    latest = store.load_checkpoint("run_a")
    assert (latest.step, latest.status) == (2, "done")
    assert latest.state == {"step": 2, "msgs": ["x", "x"]}
    first = store.load_checkpoint("run_a", 1)
    assert (first.step, first.state["step"], first.status, first.agent, first.parent_run_id) == (
        1, 1, "ready", "bot", "run_p")
    assert first.saved_at.tzinfo is not None
    assert abs(first.saved_at.timestamp() - time.time()) < 60
    assert store.checkpoint_steps("run_a") == [0, 1, 2]
    assert store.checkpoint_steps("run_other") == []


def test_saving_a_step_again_replaces_it(store: RunStore) -> None:
    """A second save of the same step replaces the first and keeps one row."""
    store.save_checkpoint("run_a", 1, {"v": 1}, status="ready", agent="bot")
    store.save_checkpoint("run_a", 1, {"v": 2}, status="stopped", agent="bot")
    cp = store.load_checkpoint("run_a", 1)
    assert (cp.state, cp.status) == ({"v": 2}, "stopped")
    assert store.checkpoint_steps("run_a") == [1]


def test_list_runs_newest_first_with_last_step(store: RunStore) -> None:
    """list_runs gives one row per run, most recently updated first."""
    store.save_checkpoint("run_a", 0, {}, status="ready", agent="a")
    store.save_checkpoint("run_b", 0, {}, status="ready", agent="b", parent_run_id="run_a")
    store.save_checkpoint("run_a", 3, {}, status="done", agent="a")
    runs = store.list_runs()
    assert [r.run_id for r in runs] == ["run_a", "run_b"]
    assert (runs[0].last_step, runs[0].status) == (3, "done")
    assert runs[1].parent_run_id == "run_a"
    assert runs[0].created_at <= runs[0].updated_at
    assert [r.run_id for r in store.list_runs(limit=1)] == ["run_a"]


def test_the_runs_table_is_written_only_when_a_run_s_row_changes(store: RunStore, db: Path
                                                                  ) -> None:
    """Steps that keep the status leave the runs table alone; list_runs still reports the
    newest step and time (from the checkpoints) and orders by them."""
    store.save_checkpoint("run_a", 0, {}, status="ready", agent="a")
    store.save_checkpoint("run_b", 0, {}, status="ready", agent="b")
    raw = sqlite3.connect(db)

    def row(run_id: str) -> tuple[object, ...]:
        return raw.execute("SELECT status, last_step, updated_at FROM rt_runs WHERE run_id = ?",
                           (run_id,)).fetchone()

    before = row("run_a")
    time.sleep(0.01)
    for step in (1, 2, 3):
        store.save_checkpoint("run_a", step, {}, status="ready", agent="a")
    assert row("run_a") == before  # the same status: only the checkpoints were written
    runs = store.list_runs()
    assert [r.run_id for r in runs] == ["run_a", "run_b"]  # run_a checkpointed last
    assert (runs[0].last_step, runs[0].status) == (3, "ready")
    saved_at = raw.execute("SELECT saved_at FROM rt_checkpoints WHERE run_id = 'run_a' AND "
                           "step = 3").fetchone()[0]
    assert runs[0].updated_at.timestamp() == pytest.approx(saved_at)
    store.save_checkpoint("run_a", 4, {}, status="done", agent="a")
    assert row("run_a") == before  # a new status too: list_runs reads it from the checkpoint
    newest = store.list_runs()[0]
    assert (newest.run_id, newest.status, newest.last_step) == ("run_a", "done", 4)
    # Another RunStore on the file (another process, a resumed run) writes its first one.
    other = RunStore(db)
    other.save_checkpoint("run_b", 1, {}, status="awaiting_approval", agent="b")
    assert row("run_b")[:2] == ("awaiting_approval", 1)
    other.close()
    raw.close()


def test_a_run_loaded_at_an_earlier_step_is_listed_with_its_new_status(store: RunStore,
                                                                       db: Path) -> None:
    """Steps past the one a run was loaded at keep their rows until written again: the runs
    row written since (a newer process's first checkpoint) gives the status."""
    for step, status in ((1, "ready"), (2, "ready"), (3, "done")):
        store.save_checkpoint("run_a", step, {}, status=status, agent="a")
    time.sleep(0.01)
    again = RunStore(db)  # the process that loaded step 1 and drove it on
    again.save_checkpoint("run_a", 2, {}, status="awaiting_approval", agent="a")
    assert [(r.status, r.last_step) for r in again.list_runs()] == [("awaiting_approval", 3)]
    again.close()


def test_a_held_checkpoint_written_with_the_next_lists_the_run_once(store: RunStore) -> None:
    """`earlier` checkpoints in the same transaction leave the runs table to the last one:
    one statement on it, and the row says what the last checkpoint says."""
    statements: list[str] = []
    conn = store._db.conn()  # pyright: ignore[reportPrivateUsage]
    conn.set_trace_callback(statements.append)
    asyncio.run(store.asave_checkpoint("run_a", 1, {"n": 1}, status="ready", agent="a",
                                       earlier=[(0, '{"n":0}', "ready")]))
    conn.set_trace_callback(None)
    assert sum("INTO rt_runs" in s for s in statements) == 1
    assert sum("INTO rt_checkpoints" in s for s in statements) == 2
    assert [(r.run_id, r.status, r.last_step) for r in store.list_runs()] == [
        ("run_a", "ready", 1)]
    assert store.checkpoint_steps("run_a") == [0, 1]
    # A status that changed between the held step and this one: the row says the newest.
    asyncio.run(store.asave_checkpoint("run_b", 3, {}, status="done", agent="b",
                                       earlier=[(2, "{}", "ready")]))
    assert {r.run_id: (r.status, r.last_step) for r in store.list_runs()}["run_b"] == ("done", 3)


def test_a_checkpoint_that_did_not_commit_writes_the_runs_table_next_time(store: RunStore,
                                                                          db: Path) -> None:
    store.save_checkpoint("run_a", 0, {}, status="ready", agent="a")
    real = store._save_fn  # pyright: ignore[reportPrivateUsage]

    def failing(*args: object, **kwargs: object) -> object:
        save = real(*args, **kwargs)  # type: ignore[arg-type]

        def then_fail(conn: sqlite3.Connection) -> None:
            save(conn)
            conn.execute("SELECT * FROM no_such_table")

        return then_fail

    store._save_fn = failing  # type: ignore[method-assign]
    with pytest.raises(StoreError):
        store.save_checkpoint("run_a", 1, {}, status="awaiting_approval", agent="a")
    del store._save_fn
    store.save_checkpoint("run_a", 2, {}, status="awaiting_approval", agent="a")
    assert [(r.status, r.last_step) for r in store.list_runs()] == [("awaiting_approval", 2)]


def test_unknown_run_is_a_usage_error_naming_run_and_file(store: RunStore, db: Path) -> None:
    """Loading a run that was never saved says which run, which file, and how to list runs."""
    with pytest.raises(UsageError) as info:
        store.load_checkpoint("run_x")
    assert info.value.message == f"No run 'run_x' in {str(db)!r}."
    assert "anb.traces()" in (info.value.hint or "")


def test_unknown_step_lists_the_steps_there_are(store: RunStore) -> None:
    """Asking for a step without a checkpoint names the steps that exist."""
    store.save_checkpoint("run_a", 0, {}, status="ready", agent="a")
    store.save_checkpoint("run_a", 2, {}, status="ready", agent="a")
    with pytest.raises(UsageError, match=r"step 1; it has steps \[0, 2\]"):
        store.load_checkpoint("run_a", 1)


def test_state_that_is_not_json_is_refused(store: RunStore) -> None:
    """A state that JSON cannot hold is a UsageError, and nothing is written."""
    with pytest.raises(UsageError, match="not JSON-serialisable"):
        store.save_checkpoint("run_a", 0, {"x": object()}, status="ready", agent="a")
    assert store.checkpoint_steps("run_a") == []


# -- recordings --------------------------------------------------------------------------------


def test_recordings_by_key_and_occurrence(store: RunStore) -> None:
    """Identical requests are told apart by occurrence and kind; order is kept."""
    store.record("run_a", "model", "k1", 0, {"text": "first"})
    store.record("run_a", "tool", "k2", 0, {"content": "42"})
    store.record("run_a", "model", "k1", 1, {"text": "second"})
    store.record("run_b", "model", "k1", 0, {"text": "other run"})
    assert store.recorded("run_a", "model", "k1", 0) == {"text": "first"}
    assert store.recorded("run_a", "model", "k1", 1) == {"text": "second"}
    assert store.recorded("run_a", "model", "k1", 2) is None
    assert store.recorded("run_a", "tool", "k1", 0) is None
    recs = store.recordings("run_a")
    assert [(r.kind, r.key, r.occurrence) for r in recs] == [
        ("model", "k1", 0), ("tool", "k2", 0), ("model", "k1", 1)]
    assert recs[1].payload == {"content": "42"}


def test_re_recording_replaces_payload_and_keeps_position(store: RunStore) -> None:
    """Recording the same call twice keeps its place in the order with the newer payload."""
    store.record("run_a", "model", "k1", 0, {"v": 1})
    store.record("run_a", "model", "k2", 0, {"v": 2})
    store.record("run_a", "model", "k1", 0, {"v": 3})
    assert [(r.key, r.payload) for r in store.recordings("run_a")] == [
        ("k1", {"v": 3}), ("k2", {"v": 2})]


def test_payload_is_stored_verbatim(store: RunStore) -> None:
    """Key order, unicode and floats come back exactly as given, for byte-identical replay."""
    payload = {"z": 1, "a": "héllo ✓ \u2028", "f": 0.1 + 0.2, "nested": {"b": [1, None], "a": True}}
    store.record("run_a", "model", "k", 0, payload)
    back = store.recorded("run_a", "model", "k", 0)
    assert back == payload
    assert list(back or {}) == ["z", "a", "f", "nested"]
    assert list((back or {})["nested"]) == ["b", "a"]


def test_bad_kind_and_bad_payload_are_usage_errors(store: RunStore) -> None:
    """Only model and tool recordings exist, and payloads must be JSON."""
    with pytest.raises(UsageError, match="'model' or 'tool'"):
        store.record("run_a", "span", "k", 0, {})  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="not JSON-serialisable"):
        store.record("run_a", "tool", "k", 0, {"x": {1, 2}})


def test_async_twins(store: RunStore) -> None:
    """Every async twin gives what its sync method gives."""

    async def main() -> None:
        await store.asave_checkpoint("run_a", 0, {"s": 0}, status="ready", agent="a")
        await store.asave_checkpoint("run_a", 1, {"s": 1}, status="done", agent="a")
        assert (await store.aload_checkpoint("run_a")).state == {"s": 1}
        assert (await store.aload_checkpoint("run_a", 0)).state == {"s": 0}
        assert await store.acheckpoint_steps("run_a") == [0, 1]
        assert [r.run_id for r in await store.alist_runs()] == ["run_a"]
        await store.arecord("run_a", "tool", "k", 0, {"c": 1})
        assert await store.arecorded("run_a", "tool", "k", 0) == {"c": 1}
        assert len(await store.arecordings("run_a")) == 1
        assert await store.astop_requested("run_a") is False
        await store.arequest_stop("run_a", "because")
        assert await store.astop_reason("run_a") == "because"
        assert await store.astop_requested("run_a") is True
        await store.aclear_stop("run_a")
        assert await store.astop_requested("run_a") is False
        await store.aclose()

    asyncio.run(main())


def test_threads_each_get_a_connection(store: RunStore) -> None:
    """Many threads writing through one store all succeed."""
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                store.record(f"run_{n}", "model", f"k{i}", 0, {"i": i})
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(len(store.recordings(f"run_{n}")) == 20 for n in range(8))


# -- durability and processes ------------------------------------------------------------------


def test_writes_survive_sigkill_right_after_return(db: Path) -> None:
    """A record and a checkpoint are present after the writer SIGKILLs itself right after."""
    proc = _python("""
        import os, signal, sys
        from pathlib import Path
        from agentnb.runtime._checkpoint import RunStore
        s = RunStore(Path(sys.argv[1]))
        s.save_checkpoint("run_k", 4, {"done": [1, 2]}, status="ready", agent="a")
        s.record("run_k", "model", "key", 0, {"text": "paid for"})
        os.kill(os.getpid(), signal.SIGKILL)
    """, str(db))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    s = RunStore(db)
    assert s.recorded("run_k", "model", "key", 0) == {"text": "paid for"}
    assert s.load_checkpoint("run_k").state == {"done": [1, 2]}
    s.close()


def test_acknowledged_writes_survive_a_kill_mid_stream(db: Path) -> None:
    """Every record the writer acknowledged before being SIGKILLed from outside is there."""
    proc = _python("""
        import sys
        from pathlib import Path
        from agentnb.runtime._checkpoint import RunStore
        s = RunStore(Path(sys.argv[1]))
        i = 0
        while True:
            s.record("run_k", "tool", f"k{i}", 0, {"i": i})
            print(i, flush=True)
            i += 1
    """, str(db))
    assert proc.stdout is not None
    acked = [int(proc.stdout.readline()) for _ in range(50)]
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    s = RunStore(db)
    present = {r.key for r in s.recordings("run_k")}
    assert {f"k{i}" for i in acked} <= present
    s.close()


def test_two_processes_write_the_same_file_concurrently(db: Path, tmp_path: Path) -> None:
    """Two writer processes at once: no 'database is locked', every row lands."""
    go = tmp_path / "go"
    code = """
        import sys, time
        from pathlib import Path
        from agentnb.runtime._checkpoint import RunStore
        path, name, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
        s = RunStore(path)
        s.checkpoint_steps("warm-up")
        print("ready", flush=True)
        while not go.exists():
            time.sleep(0.001)
        for i in range(1000):
            s.record(f"run_{name}", "model", f"k{i}", 0, {"i": i, "pad": "x" * 200})
            if i % 10 == 0:
                s.save_checkpoint(f"run_{name}", i, {"i": i}, status="ready", agent=name)
                s.stop_requested(f"run_{name}")
    """
    procs = [_python(code, str(db), name, str(go)) for name in ("a", "b")]
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "locked" not in err
    s = RunStore(db)
    for name in ("a", "b"):
        assert len(s.recordings(f"run_{name}")) == 1000
        assert s.checkpoint_steps(f"run_{name}") == list(range(0, 1000, 10))
    s.close()


# -- stop flags --------------------------------------------------------------------------------


def test_stop_flag_from_another_process_is_seen_within_the_window(db: Path) -> None:
    """`agentnb stop` in another process is seen within the cache window (plus scheduling)."""
    store = RunStore(db, stop_cache_s=0.075)
    assert store.stop_requested("run_s") is False
    proc = _python("""
        import sys
        from pathlib import Path
        from agentnb.runtime._checkpoint import RunStore
        RunStore(Path(sys.argv[1])).request_stop("run_s", "from shell")
    """, str(db))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    done = time.monotonic()
    while not store.stop_requested("run_s"):
        assert time.monotonic() - done < 1.0, "stop flag not seen"
        time.sleep(0.005)
    assert time.monotonic() - done <= store.stop_cache_s + 0.5
    assert store.stop_reason("run_s") == "from shell"
    store.close()


def test_stop_answers_are_cached_for_the_window(db: Path) -> None:
    """Within the window a flag set elsewhere is not yet seen; after it, it is."""
    mine = RunStore(db, stop_cache_s=3600)
    other = RunStore(db)
    assert mine.stop_requested("run_s") is False
    other.request_stop("run_s")
    assert mine.stop_requested("run_s") is False
    mine.stop_cache_s = 0
    assert mine.stop_requested("run_s") is True
    other.clear_stop("run_s")
    assert mine.stop_requested("run_s") is False
    mine.close()
    other.close()


def test_stop_in_process_is_immediate_and_covers_batch_and_children(store: RunStore) -> None:
    """A local request is seen at once; a batch id in `also` and a stopped parent count."""
    store.stop_cache_s = 3600
    assert not store.stop_requested("run_c")
    store.save_checkpoint("run_p", 0, {}, status="ready", agent="a")
    store.save_checkpoint("run_c", 0, {}, status="ready", agent="b", parent_run_id="run_p")
    store.request_stop("batch_1", "batch stopped")
    assert store.stop_reason("run_c", also=["batch_1"]) == "batch stopped"
    assert not store.stop_requested("run_c")
    store.request_stop("run_p")
    assert store.stop_reason("run_c") == "stop_requested"
    assert not store.stop_requested("run_unrelated")
    store.clear_stop("run_p")
    assert not store.stop_requested("run_c")


def test_stop_check_is_cheap(store: RunStore) -> None:
    """A cached stop check costs microseconds, so it can run before every step."""
    store.stop_requested("run_a")
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        store.stop_requested("run_a")
    per_call_s = (time.perf_counter() - start) / n
    assert per_call_s < 50e-6


# -- sharing the file, damage, versions -------------------------------------------------------


def test_tracing_tables_in_the_same_file_are_left_alone(db: Path) -> None:
    """A `spans` table made by someone else survives; all our tables start with rt_."""
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE spans (span_id TEXT PRIMARY KEY, name TEXT)")
        conn.execute("CREATE TABLE schema_version (version INTEGER)")
        conn.execute("INSERT INTO spans VALUES ('s1', 'invoke_agent bot')")
        conn.execute("INSERT INTO schema_version VALUES (7)")
    conn.close()
    store = RunStore(db)
    store.save_checkpoint("run_a", 0, {}, status="ready", agent="a")
    store.record("run_a", "model", "k", 0, {})
    store.request_stop("run_a")
    store.clear_stop("run_a")
    store.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT * FROM spans").fetchall() == [("s1", "invoke_agent bot")]
        assert conn.execute("SELECT * FROM schema_version").fetchall() == [(7,)]
        names = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'index') "
            "AND name NOT LIKE 'sqlite_%'")}
        assert conn.execute("SELECT value FROM rt_meta WHERE key='schema_version'").fetchone() == (
            str(SCHEMA_VERSION),)
    conn.close()
    assert {n for n in names if not n.startswith("rt_")} == {"spans", "schema_version"}


def test_corrupt_file_is_a_store_error_and_is_not_overwritten(db: Path) -> None:
    """A damaged traces.db raises StoreError naming the file, and its bytes are kept."""
    db.parent.mkdir(parents=True)
    junk = b"this is not a database " * 400
    db.write_bytes(junk)
    store = RunStore(db)
    with pytest.raises(StoreError) as info:
        store.load_checkpoint("run_a")
    assert info.value.path == str(db)
    assert str(db) in info.value.message
    assert "Move it aside" in (info.value.hint or "")
    with pytest.raises(StoreError):
        store.record("run_a", "model", "k", 0, {})
    assert db.read_bytes() == junk


def test_newer_schema_version_is_refused(db: Path) -> None:
    """A file written by a newer agentnb is a StoreError, not a silent misread."""
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE rt_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO rt_meta VALUES ('schema_version', '99')")
    conn.close()
    store = RunStore(db)
    with pytest.raises(StoreError, match="schema version 99"):
        store.checkpoint_steps("run_a")
    store.close()


def test_run_store_is_one_per_path_and_defaults_to_home(tmp_path: Path) -> None:
    """run_store() reuses one store per path and finds AGENTNB_HOME by itself."""
    home = tmp_path / ".agentnb"  # conftest points AGENTNB_HOME here
    assert run_store() is run_store(home)
    assert run_store().path == home.resolve() / "traces.db"
    assert run_store(tmp_path / "other") is not run_store(home)


def test_close_then_use_reopens(store: RunStore) -> None:
    """After close() the store opens a new connection on the next call."""
    store.record("run_a", "tool", "k", 0, {"v": 1})
    store.close()
    assert store.recorded("run_a", "tool", "k", 0) == {"v": 1}
    assert repr(store).startswith("RunStore(")


def test_run_store_forgets_least_recently_used_but_it_keeps_working(tmp_path: Path) -> None:
    """Past 16 homes the oldest store is forgotten, not closed; the recently used one stays."""
    first = run_store(tmp_path / "h0")
    first.record("run_a", "tool", "k", 0, {"v": 1})
    kept = run_store(tmp_path / "h1")
    for i in range(2, 18):
        run_store(tmp_path / f"h{i}")
        run_store(tmp_path / "h1")
    assert run_store(tmp_path / "h1") is kept
    again = run_store(tmp_path / "h0")
    assert again is not first
    assert first.recorded("run_a", "tool", "k", 0) == {"v": 1}
    assert again.recorded("run_a", "tool", "k", 0) == {"v": 1}


def test_a_held_write_lock_is_waited_out_then_reported(db: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock released soon is waited out by retries; one held too long is a StoreError."""
    from agentnb.runtime import _cache

    monkeypatch.setattr(_cache, "_BUSY_TIMEOUT_S", 0.0)
    store = RunStore(db)
    store.checkpoint_steps("run_a")
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    timer = threading.Timer(0.05, lambda: other.execute("COMMIT"))
    timer.start()
    store.record("run_a", "tool", "k", 0, {"v": 1})  # retried until the commit
    timer.join()
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreError, match="stayed locked") as info:
        store.record("run_a", "tool", "k2", 0, {"v": 2})
    assert "Another process" in (info.value.hint or "")
    other.execute("ROLLBACK")
    other.close()
    assert store.recorded("run_a", "tool", "k", 0) == {"v": 1}
    store.close()


def test_unopenable_path_is_a_store_error(tmp_path: Path) -> None:
    """A store under a path whose parent is a file fails with StoreError naming it."""
    (tmp_path / "file").write_text("x")
    store = RunStore(tmp_path / "file" / "traces.db")
    with pytest.raises(StoreError, match="Could not open"):
        store.checkpoint_steps("run_a")


def test_damaged_rows_are_store_errors(store: RunStore, db: Path) -> None:
    """A row whose JSON was damaged on disk raises StoreError, not a JSON traceback."""
    store.save_checkpoint("run_a", 0, {}, status="ready", agent="a")
    store.record("run_a", "model", "k", 0, {})
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE rt_checkpoints SET state = '{broken'")
        conn.execute("UPDATE rt_recordings SET payload = '{broken'")
    conn.close()
    with pytest.raises(StoreError, match="checkpoint"):
        store.load_checkpoint("run_a")
    with pytest.raises(StoreError, match="recording"):
        store.recorded("run_a", "model", "k", 0)
    with pytest.raises(StoreError, match="recording"):
        store.recordings("run_a")


def test_after_fork_connections_are_reopened_not_shared(store: RunStore) -> None:
    """In a forked child (another pid) the store opens new connections and leaves the old."""
    store.record("run_a", "tool", "k", 0, {"v": 1})
    old = store._db.conn()
    store._db._pid = -1
    assert store.recorded("run_a", "tool", "k", 0) == {"v": 1}
    assert store._db.conn() is not old
    assert old.execute("SELECT 1").fetchone() == (1,)  # abandoned, not closed
    old.close()


def test_a_failing_statement_rolls_back_and_is_a_store_error(store: RunStore) -> None:
    """A failing write rolls its transaction back; a failing read is a StoreError too."""
    store.record("run_a", "tool", "k", 0, {"v": 1})

    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM rt_recordings")
        conn.execute("SELECT * FROM no_such_table")

    with pytest.raises(StoreError, match="no_such_table"):
        store._db.write(half_then_fail)
    assert not store._db.conn().in_transaction
    assert store.recorded("run_a", "tool", "k", 0) == {"v": 1}
    with pytest.raises(StoreError, match="no_such_table"):
        store._db.read(lambda c: c.execute("SELECT * FROM no_such_table").fetchall())


def test_stale_stop_flags_are_read_once_for_all_concurrent_runs(tmp_path: Path) -> None:
    """When the cached flags expire, fifty runs asking at once share one read of the file."""
    s = RunStore(tmp_path / "traces.db", stop_cache_s=60.0)
    reads: list[int] = []
    real = s._read_stops  # pyright: ignore[reportPrivateUsage]

    def counting() -> None:
        reads.append(1)
        real()

    s._read_stops = counting  # type: ignore[method-assign]

    async def main() -> list[str | None]:
        return await asyncio.gather(*(s.astop_reason(f"run_{i}") for i in range(50)))

    assert asyncio.run(main()) == [None] * 50
    assert len(reads) == 1
    s.request_stop("run_7", "user")
    s._stops_read_at = float("-inf")  # pyright: ignore[reportPrivateUsage]
    answers = asyncio.run(main())
    assert answers[7] == "user"
    assert answers.count(None) == 49
    assert len(reads) == 2
