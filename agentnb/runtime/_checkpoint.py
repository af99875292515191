"""The runtime's storage in `traces.db`: checkpoints, recordings for replay/resume, stop flags.

The runtime's tables all start with `rt_` and are created with `IF NOT EXISTS`; the tracing
layer owns every other table in the same file (and its own schema-version table), so nothing
here reads, writes, migrates or drops them. `rt_meta` holds this module's schema version.

Durability: the file is in WAL mode with `synchronous=NORMAL`. A method that writes has
committed when it returns, so the data survives the process being killed (SIGKILL, OOM, a
kernel restart) the moment after; only a power loss or OS crash can drop the last commits,
which is the trade SQLite documents for WAL + NORMAL and what keeps a write at tens of
microseconds instead of an fsync per call.

Secrets: `state` and `payload` are stored verbatim, byte for byte, because replay must give
back exactly what was recorded. They must already be redacted by the caller (the runtime
redacts before it calls); this module never adds anything it was not given.

Every method is synchronous. Its `a`-prefixed twin runs it in a worker thread
(`asyncio.to_thread`), except the writes a step makes (`asave_checkpoint`, `arecord`): they go
through the file's group commit (`agentnb.runtime._writer`), written on the caller's thread when
one run steps and once per turn of the event loop when several do. Each thread has its own
connection. Stop flags are in `agentnb.runtime._stops`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from agentnb.core import StoreError, UsageError
from agentnb.runtime._cache import _Database, _dumps, _home
from agentnb.runtime._delta import FULL_EVERY, _fold
from agentnb.runtime._recordings import (
    FIND_SQL,
    SAVE_SQL,
    SAVE_SQL_TOP,
    encode,
    latest,
    merged,
    needle,
)
from agentnb.runtime._stops import StopFlags
from agentnb.tracing._shared import flush_needed, spans_writer

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Mapping, Sequence

    from agentnb.runtime._cache import AuditPart

__all__ = ["Checkpoint", "Recording", "RecordKind", "RunInfo", "RunStore", "run_store"]

T = TypeVar("T")

RecordKind = Literal["model", "tool"]
"""What a recording holds: a model response or a tool result."""

SCHEMA_VERSION = 2
"""Version of the `rt_*` tables; kept in `rt_meta`. 2 added `rt_checkpoints.recordings` (a
step's recordings in its checkpoint's row, `agentnb.runtime._recordings`); a version-1 file
gets the column on its first use."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rt_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rt_runs (
    run_id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    parent_run_id TEXT,
    status TEXT NOT NULL,
    last_step INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS rt_runs_updated ON rt_runs (updated_at);
CREATE TABLE IF NOT EXISTS rt_checkpoints (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    state TEXT NOT NULL,
    status TEXT NOT NULL,
    agent TEXT NOT NULL,
    parent_run_id TEXT,
    saved_at REAL NOT NULL,
    recordings TEXT,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS rt_recordings (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    occurrence INTEGER NOT NULL,
    payload TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    UNIQUE (run_id, kind, key, occurrence)
);
CREATE TABLE IF NOT EXISTS rt_stops (
    target TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    requested_at REAL NOT NULL
);
"""

_RECORD_SQL = (
    "INSERT INTO rt_recordings (run_id, kind, key, occurrence, payload, recorded_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, kind, key, occurrence) DO UPDATE SET "
    "payload = excluded.payload, recorded_at = excluded.recorded_at")


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Checkpoint:
    """A run's full serialised state after one step.

    Example:
        >>> import tempfile
        >>> store = RunStore(Path(tempfile.mkdtemp()) / "traces.db")
        >>> store.save_checkpoint("run_a", 1, {"messages": []}, status="ready", agent="bot")
        >>> store.load_checkpoint("run_a").step
        1
    """

    run_id: str
    """The run."""
    step: int
    """The step after which the state was saved."""
    state: dict[str, Any]
    """The run's state, as given to `save_checkpoint` (already redacted)."""
    status: str
    """The run's status at that point (`ready`, `done`, `stopped`, ...)."""
    agent: str
    """The agent's name."""
    parent_run_id: str | None
    """The parent run, for a delegate's child run."""
    saved_at: datetime
    """When it was saved (UTC)."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Recording:
    """One recorded model response or tool result."""

    run_id: str
    """The run that made the call."""
    kind: RecordKind
    """`model` or `tool`."""
    key: str
    """Content hash of the request."""
    occurrence: int
    """Which of several identical requests in the run (0, 1, ...)."""
    payload: dict[str, Any]
    """The response or result, verbatim."""
    recorded_at: datetime
    """When it was recorded (UTC)."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RunInfo:
    """One row of `RunStore.list_runs`: a run that has at least one checkpoint."""

    run_id: str
    """The run."""
    agent: str
    """The agent's name."""
    parent_run_id: str | None
    """The parent run, for a child run."""
    status: str
    """Status at the newest checkpoint."""
    last_step: int
    """The highest checkpointed step."""
    created_at: datetime
    """First checkpoint (UTC)."""
    updated_at: datetime
    """Newest checkpoint (UTC)."""


_DAMAGED_HINT = (
    "The file is damaged or is not an agentnb store. Move it aside (it also holds traces) and "
    "agentnb starts a new one."
)


class RunStore(StopFlags):
    """Checkpoints, recordings and stop flags of runs, in the `rt_*` tables of `traces.db`.

    Args:
        path: the SQLite file, normally `<AGENTNB_HOME>/traces.db`.
        stop_cache_s: how long `stop_requested` trusts its last read of the stop flags. A flag
            set in this process is seen at once; one set by another process (`agentnb stop`)
            within this many seconds.

    Example:
        >>> import tempfile
        >>> store = RunStore(Path(tempfile.mkdtemp()) / "traces.db")
        >>> store.record("run_a", "tool", "k1", 0, {"content": "42"})
        >>> store.recorded("run_a", "tool", "k1", 0)
        {'content': '42'}
        >>> store.request_stop("run_a"); store.stop_requested("run_a")
        True
    """

    def __init__(self, path: Path, *, stop_cache_s: float = 0.075) -> None:
        self._db = _Database(Path(path), schema=_SCHEMA, label="run store",
                             damaged_hint=_DAMAGED_HINT)
        # Finished spans go to disk in the checkpoints' transactions when the trace store is
        # this file (agentnb.tracing._shared): one commit per step, not one per step and batch.
        self._db.companion = functools.partial(spans_writer, self._db.path)
        self._init_stops(stop_cache_s)
        self._parents: dict[str, str | None] = {}
        # (agent, parent) last committed to the runs table, by run (see `_save_fn`).
        self._listed: dict[str, tuple[str, str | None]] = {}
        self._meta_checked = False

    list_every_step = False
    """Write the runs table at every checkpoint, not only when its row changes (A/B switch)."""

    def _saved(self, run_id: str, agent: str, parent_run_id: str | None) -> None:
        """Note what the runs table holds for `run_id` once its checkpoint has committed."""
        if len(self._listed) > 4096:
            self._listed.clear()  # forgotten runs are written again at their next checkpoint
        self._listed[run_id] = (agent, parent_run_id)

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self._db.path

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    def _check_version(self) -> None:
        if self._meta_checked:
            return

        def check(conn: sqlite3.Connection) -> str | None:
            conn.execute("INSERT OR IGNORE INTO rt_meta (key, value) VALUES ('schema_version', ?)",
                         (str(SCHEMA_VERSION),))
            row = conn.execute("SELECT value FROM rt_meta WHERE key = 'schema_version'").fetchone()
            found = row[0] if row else None
            if found is not None and found.isdigit() and int(found) < SCHEMA_VERSION:
                # Version 1 -> 2: the column for a step's recordings (one writer at a time:
                # this runs in a write transaction, and the column is looked for first).
                columns = {r[1] for r in conn.execute("PRAGMA table_info(rt_checkpoints)")}
                if "recordings" not in columns:
                    conn.execute("ALTER TABLE rt_checkpoints ADD COLUMN recordings TEXT")
                conn.execute("UPDATE rt_meta SET value = ? WHERE key = 'schema_version'",
                             (str(SCHEMA_VERSION),))
                found = str(SCHEMA_VERSION)
            return found

        found = self._db.write(check, "set up")
        if found is not None and int(found) > SCHEMA_VERSION:
            msg = (f"The run store {str(self.path)!r} has schema version {found}; this agentnb "
                   f"reads version {SCHEMA_VERSION}.")
            raise StoreError(msg, path=str(self.path), hint="Upgrade agentnb.")
        self._meta_checked = True

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._check_version()
        return self._db.read(fn)

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._check_version()
        return self._db.write(fn)

    # -- checkpoints ---------------------------------------------------------------------------

    def save_checkpoint(self, run_id: str, step: int, state: Mapping[str, Any] | str, *,
                        status: str, agent: str, parent_run_id: str | None = None) -> None:
        """Save the run's full state after `step`; committed (crash-safe) when this returns.

        `state` is stored verbatim and must already be redacted; it may be given as its JSON
        text already (`Run.state_json`, or the delta of a checkpoint a run held). Saving the
        same step again replaces it.
        """
        self._write(self._save_fn(run_id, step, state, status=status, agent=agent,
                                  parent_run_id=parent_run_id))
        self._saved(run_id, agent, parent_run_id)

    def _save_fn(self, run_id: str, step: int, state: Mapping[str, Any] | str, *, status: str,
                 agent: str, parent_run_id: str | None,
                 earlier: Sequence[tuple[int, str, str]] = (),
                 recordings: Sequence[tuple[RecordKind, str, int, Mapping[str, Any]]] = (),
                 ) -> Callable[[sqlite3.Connection], None]:
        """The write of a checkpoint, with the `earlier` ones of the same run and
        `recordings` (as `asave_checkpoint` takes them, kept in the checkpoint's row: see
        `agentnb.runtime._recordings`), as one function of a connection.

        The rows go in one `executemany`, and a missing parent is written as the statement's
        NULL, not bound: each statement and each bound None costs the sqlite3 module as much
        as SQLite's own insert of a small row."""
        now = time.time()
        parent = () if parent_run_id is None else (parent_run_id,)  # SAVE_SQL_TOP has none
        text = (state if isinstance(state, str)
                else _dumps(state, f"state of run {run_id!r} at step {step}"))
        made = encode([(kind, key, occ, self._payload_text(run_id, kind, key, payload))
                       for kind, key, occ, payload in recordings])
        rows = [(run_id, e_step, e_text, e_status, agent, *parent, now, "")
                for e_step, e_text, e_status in earlier]
        rows.append((run_id, step, text, status, agent, *parent, now, made))
        save_sql = SAVE_SQL if parent else SAVE_SQL_TOP
        self._parents[run_id] = parent_run_id

        # The runs table is written at a run's first checkpoint in this store (and if its
        # agent or parent changes): its status, last step and update time are read from the
        # newest checkpoint (`list_runs`), so a later step writes no page of the runs table or
        # of its time index, not even the last one (measured -3% CPU per call at C=1).
        listed = (self.list_every_step
                  or self._listed.get(run_id) != (agent, parent_run_id))

        def save(conn: sqlite3.Connection) -> None:
            conn.executemany(save_sql, rows)
            if not listed:
                return
            conn.execute(
                "INSERT INTO rt_runs (run_id, agent, parent_run_id, status, last_step, created_at,"
                " updated_at) VALUES (?, ?, NULLIF(?, ''), ?, ?, ?, ?) ON CONFLICT (run_id) DO "
                "UPDATE SET status = excluded.status, agent = excluded.agent, "
                "parent_run_id = excluded.parent_run_id, updated_at = excluded.updated_at, "
                "last_step = max(last_step, excluded.last_step)",
                (run_id, agent, parent_run_id or "", status, step, now, now),
            )

        return save

    def load_checkpoint(self, run_id: str, step: int | None = None) -> Checkpoint:
        """Load the checkpoint after `step`, or the newest one when `step` is None.

        The state is always whole: a checkpoint stored as a delta (`DELTA_PREFIX`, what runs
        write between full ones) is folded onto the checkpoints it builds on.

        Raises:
            UsageError: no such run, or no checkpoint at that step.
            StoreError: the file cannot be read, or a delta's base is missing.
        """
        cols = "step, state, status, agent, parent_run_id, saved_at"

        def load(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            top = step
            if top is None:
                row = conn.execute("SELECT max(step) FROM rt_checkpoints WHERE run_id = ?",
                                   (run_id,)).fetchone()
                top = row[0] if row else None
                if top is None:
                    return []
            # A delta builds on at most FULL_EVERY earlier steps: one range read finds them.
            return conn.execute(
                f"SELECT {cols} FROM rt_checkpoints WHERE run_id = ? AND step BETWEEN ? AND ? "
                "ORDER BY step", (run_id, top - FULL_EVERY, top)).fetchall()

        rows = self._read(load)
        if not rows or (step is not None and rows[-1][0] != step):
            steps = self.checkpoint_steps(run_id)
            if not steps:
                msg = f"No run {run_id!r} in {str(self.path)!r}."
                raise UsageError(msg, hint="`anb.traces()` lists runs.")
            msg = f"Run {run_id!r} has no checkpoint at step {step!r}; it has steps {steps}."
            raise UsageError(msg, hint="Pick one of those steps, or pass no step for the newest.")
        row = rows[-1]
        texts = {r[0]: r[1] for r in rows}
        try:
            try:
                state = _fold(texts, row[0])
            except KeyError:  # a base further back than the policy puts it: read them all
                texts = dict(self._read(lambda c: c.execute(
                    "SELECT step, state FROM rt_checkpoints WHERE run_id = ? AND step <= ?",
                    (run_id, row[0])).fetchall()))
                state = _fold(texts, row[0])
        except (ValueError, KeyError, TypeError) as exc:
            raise self._db.error(exc, "read a checkpoint from") from None
        return Checkpoint(run_id=run_id, step=row[0], state=state, status=row[2], agent=row[3],
                          parent_run_id=row[4], saved_at=_utc(row[5]))

    def checkpoint_steps(self, run_id: str) -> list[int]:
        """The steps that have a checkpoint, ascending (empty for an unknown run)."""
        rows = self._read(lambda c: c.execute(
            "SELECT step FROM rt_checkpoints WHERE run_id = ? ORDER BY step", (run_id,)).fetchall())
        return [r[0] for r in rows]

    def list_runs(self, *, limit: int = 100) -> list[RunInfo]:
        """Runs that have checkpoints, most recently updated first."""
        # The runs table is written at a run's first checkpoint in a process; its newest
        # checkpoint gives the status, the last step and the update time (one look-up in the
        # checkpoints' key per run). A runs row newer than that checkpoint (a run loaded at an
        # earlier step and driven on) gives its own status.
        rows = self._read(lambda c: c.execute(
            "SELECT r.run_id, r.agent, r.parent_run_id, CASE WHEN k.saved_at IS NULL OR "
            "r.updated_at > k.saved_at THEN r.status ELSE k.status END, max(r.last_step, "
            "coalesce(k.step, r.last_step)), r.created_at, max(r.updated_at, "
            "coalesce(k.saved_at, r.updated_at)) AS newest FROM rt_runs r "
            "LEFT JOIN rt_checkpoints k ON k.run_id = r.run_id AND k.step = "
            "(SELECT max(step) FROM rt_checkpoints WHERE run_id = r.run_id) "
            "ORDER BY newest DESC, r.run_id DESC LIMIT ?", (limit,)).fetchall())
        return [RunInfo(run_id=r[0], agent=r[1], parent_run_id=r[2], status=r[3], last_step=r[4],
                        created_at=_utc(r[5]), updated_at=_utc(r[6])) for r in rows]

    # -- recordings ----------------------------------------------------------------------------

    def record(self, run_id: str, kind: RecordKind, key: str, occurrence: int,
               payload: Mapping[str, Any]) -> None:
        """Record a model response or tool result; committed (crash-safe) when this returns.

        `key` is the request's content hash and `occurrence` counts identical requests in the
        run. Recording the same (kind, key, occurrence) again replaces the payload and keeps
        its place in the order. `payload` is stored verbatim and must already be redacted.
        """
        self._write(self._record_fn(run_id, kind, key, occurrence, payload))

    def _record_fn(self, run_id: str, kind: RecordKind, key: str, occurrence: int,
                   payload: Mapping[str, Any]) -> Callable[[sqlite3.Connection], Any]:
        row = (run_id, kind, key, occurrence, self._payload_text(run_id, kind, key, payload),
               time.time())
        return lambda c: c.execute(_RECORD_SQL, row)

    @staticmethod
    def _payload_text(run_id: str, kind: RecordKind, key: str,
                      payload: Mapping[str, Any]) -> str:
        """A recording's payload as JSON text, once its kind is checked."""
        if kind not in ("model", "tool"):
            msg = f"Recording kind must be 'model' or 'tool', not {kind!r}."
            raise UsageError(msg)
        return _dumps(payload, f"{kind} recording {key!r} of run {run_id!r}")

    def recorded(self, run_id: str, kind: RecordKind, key: str,
                 occurrence: int) -> dict[str, Any] | None:
        """The recorded payload, or None when that call was not recorded."""

        def read(c: sqlite3.Connection) -> tuple[Any, list[tuple[float, str]]]:
            row = c.execute(
                "SELECT recorded_at, payload FROM rt_recordings WHERE run_id = ? AND kind = ? "
                "AND key = ? AND occurrence = ?", (run_id, kind, key, occurrence)).fetchone()
            return row, c.execute(FIND_SQL, (run_id, needle(kind, key, occurrence))).fetchall()

        row, rows = self._read(read)
        try:
            found = latest(rows, kind, key, occurrence)
            if row is not None and (found is None or row[0] > found[0]):
                return json.loads(row[1])
        except ValueError as exc:
            raise self._db.error(exc, "read a recording from") from None
        return None if found is None else found[1]

    def recordings(self, run_id: str) -> list[Recording]:
        """Every recording of a run, in the order they were first made."""

        def read(c: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
            return (c.execute(
                "SELECT kind, key, occurrence, payload, recorded_at FROM rt_recordings "
                "WHERE run_id = ? ORDER BY id", (run_id,)).fetchall(),
                c.execute("SELECT step, saved_at, recordings FROM rt_checkpoints WHERE "
                          "run_id = ? AND recordings IS NOT NULL ORDER BY step",
                          (run_id,)).fetchall())

        table, rows = self._read(read)
        try:
            return [Recording(run_id=run_id, kind=kind, key=key,  # pyright: ignore[reportArgumentType]  # "model" or "tool", as written
                              occurrence=occ, payload=payload, recorded_at=_utc(at))
                    for kind, key, occ, payload, at in merged(table, rows)]
        except ValueError as exc:
            raise self._db.error(exc, "read a recording from") from None

    def close(self) -> None:
        """Close every connection; the store reopens on the next call."""
        self._db.close()

    # -- async twins ---------------------------------------------------------------------------

    async def asave_checkpoint(
        self, run_id: str, step: int, state: Mapping[str, Any] | str, *, status: str, agent: str,
        parent_run_id: str | None = None,
        recordings: Sequence[tuple[RecordKind, str, int, Mapping[str, Any]]] = (),
        audit: AuditPart | None = None,
        earlier: Sequence[tuple[int, str, str]] = (),
    ) -> None:
        """Async twin of `save_checkpoint` (group commit: concurrent runs share transactions).

        `state` may be given as its JSON text already (`Run.state_json`). `earlier`
        (`(step, state text, status)`) are checkpoints of the same run written first, in the
        same transaction (a step that held its checkpoint for this one).
        `recordings` (`(kind, key, occurrence, payload)`, as `record` takes them) are written
        in the checkpoint's transaction, and `audit` (`(log, [(event, fields), ...])`) is
        appended just before it: everything a step leaves is written in one go. Runs use it
        to keep a step's recordings and audit records until the step's checkpoint.
        """

        def prepare() -> Callable[[sqlite3.Connection], None]:
            self._check_version()
            return self._save_fn(run_id, step, state, status=status, agent=agent,
                                 parent_run_id=parent_run_id, earlier=earlier,
                                 recordings=recordings)

        await self._db.awrite(prepare, audit=audit)
        self._saved(run_id, agent, parent_run_id)

    def spans_ride_along(self) -> bool:
        """True when `asave_checkpoint` also stores every span that ended before it was called
        and no live exporter waits for spans: a run's last checkpoint then needs no flush."""
        return not flush_needed(self._db.path)

    async def aload_checkpoint(self, run_id: str, step: int | None = None) -> Checkpoint:
        """Async twin of `load_checkpoint`."""
        return await asyncio.to_thread(self.load_checkpoint, run_id, step)

    async def acheckpoint_steps(self, run_id: str) -> list[int]:
        """Async twin of `checkpoint_steps`."""
        return await asyncio.to_thread(self.checkpoint_steps, run_id)

    async def alist_runs(self, *, limit: int = 100) -> list[RunInfo]:
        """Async twin of `list_runs`."""
        return await asyncio.to_thread(self.list_runs, limit=limit)

    async def arecord(self, run_id: str, kind: RecordKind, key: str, occurrence: int,
                      payload: Mapping[str, Any]) -> None:
        """Async twin of `record` (group commit: concurrent runs share transactions)."""

        def prepare() -> Callable[[sqlite3.Connection], Any]:
            self._check_version()
            return self._record_fn(run_id, kind, key, occurrence, payload)

        await self._db.awrite(prepare)

    async def arecorded(self, run_id: str, kind: RecordKind, key: str,
                        occurrence: int) -> dict[str, Any] | None:
        """Async twin of `recorded`."""
        return await asyncio.to_thread(self.recorded, run_id, kind, key, occurrence)

    async def arecordings(self, run_id: str) -> list[Recording]:
        """Async twin of `recordings`."""
        return await asyncio.to_thread(self.recordings, run_id)

    async def aclose(self) -> None:
        """Async twin of `close`."""
        await asyncio.to_thread(self.close)


_KEEP = 16
"""How many stores `run_store` keeps open (tests make a new home per test)."""
_stores: dict[Path, RunStore] = {}
# Guards `_stores` so that two threads asking for the same path get the same RunStore.
_stores_lock = threading.Lock()


_PATHS: dict[tuple[Path | str, str], Path] = {}
"""`traces.db` paths by (home as given, working directory): resolving a path costs a few
system calls, and `run_store` is asked for on every step."""


def _resolved_path(home: Path | str | None) -> Path:
    if home is None:
        return _home(None) / "traces.db"
    key = (home, os.getcwd())
    path = _PATHS.get(key)
    if path is None:
        if len(_PATHS) > 256:
            _PATHS.clear()
        path = _PATHS[key] = _home(home) / "traces.db"
    return path


def run_store(home: Path | str | None = None) -> RunStore:
    """The `RunStore` over `<home>/traces.db`, one per path (home from settings when None).

    Example:
        >>> import tempfile
        >>> home = Path(tempfile.mkdtemp())
        >>> run_store(home) is run_store(home)
        True
    """
    path = _resolved_path(home)
    with _stores_lock:
        store = _stores.pop(path, None) or RunStore(path)
        _stores[path] = store  # most recently used last
        if len(_stores) > _KEEP:
            # Forget (not close) the least recently used: whoever still holds it keeps a
            # working store, and its connections close when the last reference goes.
            del _stores[next(iter(_stores))]
        return store
