"""A step's recordings in its checkpoint's row (schema 2): writing, reading, merging, migrating."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentnb.core import StoreError
from agentnb.runtime._checkpoint import SCHEMA_VERSION, RunStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    s = RunStore(tmp_path / "traces.db")
    yield s
    s.close()


def _save(store: RunStore, step: int, recordings: list[tuple[Any, str, int, dict[str, Any]]],
          *, run_id: str = "run_a", parent: str | None = None,
          earlier: tuple[tuple[int, str, str], ...] = ()) -> None:
    asyncio.run(store.asave_checkpoint(run_id, step, {"s": step}, status="ready", agent="a",
                                       parent_run_id=parent, recordings=recordings,
                                       earlier=earlier))


def _table_rows(store: RunStore) -> int:
    with sqlite3.connect(store.path) as conn:
        return conn.execute("SELECT count(*) FROM rt_recordings").fetchone()[0]


def test_a_steps_recordings_go_in_its_checkpoint_row(store: RunStore) -> None:
    """No row of rt_recordings; the checkpoint row holds them and every reader finds them."""
    _save(store, 1, [("tool", "t1", 0, {"content": "a"}), ("model", "m1", 0, {"r": 1})],
          earlier=((0, '{"s":0}', "ready"),))
    assert _table_rows(store) == 0
    with sqlite3.connect(store.path) as conn:
        rows = dict(conn.execute("SELECT step, recordings FROM rt_checkpoints").fetchall())
    assert rows == {0: None, 1: '[["tool","t1",0,{"content":"a"}],["model","m1",0,{"r":1}]]'}
    assert store.recorded("run_a", "tool", "t1", 0) == {"content": "a"}
    assert store.recorded("run_a", "model", "m1", 0) == {"r": 1}
    assert store.recorded("run_a", "model", "m1", 1) is None
    assert store.recorded("run_a", "model", "t1", 0) is None  # the kind tells them apart
    assert store.recorded("run_b", "tool", "t1", 0) is None
    assert [(r.kind, r.key) for r in store.recordings("run_a")] == [("tool", "t1"),
                                                                     ("model", "m1")]
    assert store.load_checkpoint("run_a").state == {"s": 1}  # the state is the state alone
    assert store.checkpoint_steps("run_a") == [0, 1]


def test_a_child_run_keeps_its_parent_and_recordings(store: RunStore) -> None:
    _save(store, 1, [("model", "m", 0, {"r": 1})], run_id="run_c", parent="run_p")
    assert store.load_checkpoint("run_c").parent_run_id == "run_p"
    assert store.recorded("run_c", "model", "m", 0) == {"r": 1}


def test_saving_a_step_again_keeps_its_recordings_and_adds_the_new(store: RunStore) -> None:
    """A loaded run that goes on from an earlier step saves later steps again: what the rows
    held stays readable, and the newest payload of a call counts."""
    _save(store, 2, [("model", "m1", 0, {"v": 1}), ("tool", "t1", 0, {"v": 1})])
    _save(store, 2, [("model", "m1", 0, {"v": 2}), ("model", "m2", 0, {"v": 3})])
    store.save_checkpoint("run_a", 2, {"s": "again"}, status="ready", agent="a")  # none added
    assert store.load_checkpoint("run_a").state == {"s": "again"}
    assert store.recorded("run_a", "model", "m1", 0) == {"v": 2}
    assert store.recorded("run_a", "tool", "t1", 0) == {"v": 1}
    assert [(r.key, r.payload) for r in store.recordings("run_a")] == [
        ("m1", {"v": 2}), ("t1", {"v": 1}), ("m2", {"v": 3})]


def test_rows_and_table_are_read_together_in_the_order_made(store: RunStore) -> None:
    """`record` (and a step that fails before its checkpoint) still writes the table."""
    store.record("run_a", "model", "m0", 0, {"from": "table"})
    _save(store, 1, [("tool", "t1", 0, {"from": "row"})])
    store.record("run_a", "model", "m2", 0, {"from": "table, later"})
    assert [(r.key, r.payload["from"]) for r in store.recordings("run_a")] == [
        ("m0", "table"), ("t1", "row"), ("m2", "table, later")]
    assert store.recorded("run_a", "model", "m0", 0) == {"from": "table"}
    assert store.recorded("run_a", "tool", "t1", 0) == {"from": "row"}
    # The same call in both places: the newer one is the answer.
    store.record("run_a", "tool", "t1", 0, {"from": "table, newest"})
    assert store.recorded("run_a", "tool", "t1", 0) == {"from": "table, newest"}


def test_text_that_looks_like_an_entry_is_not_one(store: RunStore) -> None:
    """The row is found by a text search, but only its own entries are matched."""
    _save(store, 1, [("model", "m1", 0, {"text": '["tool","t9",0,{}]',
                                          "nested": ["tool", "t9", 0, {"x": 1}]})])
    assert store.recorded("run_a", "tool", "t9", 0) is None
    assert len(store.recordings("run_a")) == 1


def test_a_version_1_file_gets_the_column(tmp_path: Path) -> None:
    """A file written by schema 1 is migrated on first use; its rows stay readable."""
    path = tmp_path / "traces.db"
    with sqlite3.connect(path) as conn:
        conn.executescript("""
            CREATE TABLE rt_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO rt_meta VALUES ('schema_version', '1');
            CREATE TABLE rt_checkpoints (run_id TEXT NOT NULL, step INTEGER NOT NULL,
                state TEXT NOT NULL, status TEXT NOT NULL, agent TEXT NOT NULL,
                parent_run_id TEXT, saved_at REAL NOT NULL, PRIMARY KEY (run_id, step));
            INSERT INTO rt_checkpoints VALUES ('run_old', 1, '{"s":1}', 'ready', 'a', NULL, 1.0);
            CREATE TABLE rt_recordings (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL,
                kind TEXT NOT NULL, key TEXT NOT NULL, occurrence INTEGER NOT NULL,
                payload TEXT NOT NULL, recorded_at REAL NOT NULL,
                UNIQUE (run_id, kind, key, occurrence));
            INSERT INTO rt_recordings VALUES (1, 'run_old', 'model', 'm', 0, '{"r":1}', 1.0);
        """)
    store = RunStore(path)
    try:
        assert store.recorded("run_old", "model", "m", 0) == {"r": 1}
        _save(store, 2, [("tool", "t", 0, {"c": 2})], run_id="run_old")
        assert [r.key for r in store.recordings("run_old")] == ["m", "t"]
        assert store.load_checkpoint("run_old", 1).state == {"s": 1}
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM rt_meta").fetchone() == (str(SCHEMA_VERSION),)
        assert "recordings" in {r[1] for r in conn.execute("PRAGMA table_info(rt_checkpoints)")}
    # A second store over the migrated file finds nothing left to do.
    again = RunStore(path)
    try:
        assert again.recorded("run_old", "tool", "t", 0) == {"c": 2}
    finally:
        again.close()


def test_a_damaged_recordings_text_is_a_store_error(store: RunStore) -> None:
    _save(store, 1, [("tool", "t1", 0, {"content": "a"})])
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE rt_checkpoints SET recordings = '[\"tool\",\"t1\",0,' || 'oops'")
    with pytest.raises(StoreError, match="recording"):
        store.recorded("run_a", "tool", "t1", 0)
    with pytest.raises(StoreError, match="recording"):
        store.recordings("run_a")
