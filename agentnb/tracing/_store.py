"""The embedded trace store: SQLite in WAL mode at `<home>/traces.db`.

Tracing owns the tables `spans`, `events`, `annotations` and the `tracing.*` keys of `meta`; the
runtime keeps its checkpoints and stop flags in tables of its own in the same file, which this
module never touches. One writer connection per file and process (guarded by a lock) takes
batches through `executemany` inside `BEGIN IMMEDIATE`; readers open their own connections, so
other processes can read while a run writes (WAL).

A file that is not a database, or that was written by a newer agentnb, raises `StoreError`
naming the path and what to do, never a bare `sqlite3` error.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentnb.core import StoreError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = ["SCHEMA_VERSION", "TraceStore", "open_store"]

SCHEMA_VERSION = 1
"""The trace schema this agentnb writes; stored in `meta` under `tracing.schema_version`."""

_VERSION_KEY = "tracing.schema_version"
_BUSY_TIMEOUT_MS = 30_000

# Index = the version the statements migrate *to*. Append only; never edit a shipped entry.
_MIGRATIONS: dict[int, Sequence[str]] = {
    1: (
        """CREATE TABLE IF NOT EXISTS spans (
            span_id TEXT PRIMARY KEY,
            trace_id TEXT NOT NULL,
            parent_id TEXT,
            run_id TEXT,
            name TEXT NOT NULL,
            kind TEXT,
            span_kind TEXT,
            start_ns INTEGER NOT NULL,
            end_ns INTEGER NOT NULL,
            status TEXT NOT NULL,
            status_message TEXT,
            attributes TEXT NOT NULL,
            scope TEXT
        )""",
        # Few indexes: each one costs ~30% of write throughput. Run spans get a partial index
        # of their own, so `traces()` never scans the other spans.
        "CREATE INDEX IF NOT EXISTS spans_run ON spans(run_id)",
        "CREATE INDEX IF NOT EXISTS spans_runs_by_start ON spans(start_ns) WHERE kind = 'run'",
        """CREATE TABLE IF NOT EXISTS events (
            span_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            name TEXT NOT NULL,
            time_ns INTEGER NOT NULL,
            attributes TEXT NOT NULL,
            PRIMARY KEY (span_id, seq)
        )""",
        """CREATE TABLE IF NOT EXISTS annotations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            target_id TEXT NOT NULL,
            target_kind TEXT NOT NULL,
            run_id TEXT,
            label TEXT,
            score REAL,
            note TEXT,
            author TEXT,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS annotations_target ON annotations(target_id)",
        "CREATE INDEX IF NOT EXISTS annotations_run ON annotations(run_id)",
    ),
}

SpanRow = tuple[Any, ...]
"""(span_id, trace_id, parent_id, run_id, name, kind, span_kind, start_ns, end_ns, status,
status_message, attributes_json, scope); an empty parent_id, run_id, kind, status_message or
scope is stored as NULL."""
EventRow = tuple[Any, ...]
"""(span_id, seq, name, time_ns, attributes_json)"""

_INSERT_SPAN = ("INSERT OR REPLACE INTO spans VALUES (?,?,NULLIF(?,''),NULLIF(?,''),?,"
                "NULLIF(?,''),?,?,?,?,NULLIF(?,''),?,NULLIF(?,''))")
_INSERT_EVENT = "INSERT OR REPLACE INTO events VALUES (?,?,?,?,?)"


def insert_rows(conn: sqlite3.Connection, spans: Sequence[SpanRow],
                events: Sequence[EventRow] = ()) -> None:
    """Insert span and event rows with `conn`, inside the caller's transaction."""
    conn.executemany(_INSERT_SPAN, spans)
    if events:
        conn.executemany(_INSERT_EVENT, events)


def _fail(path: Path, action: str, exc: sqlite3.Error) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        hint = ("Another process holds a write lock for too long; retry, or give this job its own "
                "`AGENTNB_HOME`.")
    elif isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        hint = (f"The file is damaged or is not a SQLite database. Move {str(path)!r} aside "
                "(agentnb creates a fresh one) or point `AGENTNB_HOME` elsewhere.")
    else:
        hint = f"Check that {str(path.parent)!r} exists, is writable and has free space."
    msg = f"Cannot {action} the trace store {str(path)!r}: {text}."
    return StoreError(msg, path=str(path), hint=hint)


class TraceStore:
    """One `traces.db` file: write batches of spans, read them back with plain SQL.

    Obtain it through `agentnb.tracing.store(home)`; the instance is shared per file in a process.

    Example:
        >>> import tempfile
        >>> from agentnb.tracing import store
        >>> s = store(tempfile.mkdtemp())
        >>> s.path.name, s.count_spans()
        ('traces.db', 0)
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        """The database file."""
        self._lock = threading.Lock()
        """Serialises use of the single writer connection (sqlite3 connections are not
        safe for concurrent use)."""
        self._writer: sqlite3.Connection | None = None
        self._open()

    # -- connections ----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise _fail(self.path, "open", exc) from None
        try:
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA cache_size=-1024")  # 1 MiB page cache per connection (RSS)
        except sqlite3.Error as exc:
            conn.close()
            raise _fail(self.path, "open", exc) from None
        return conn

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"Cannot create the folder for the trace store {str(self.path)!r}: {exc}."
            raise StoreError(msg, path=str(self.path),
                             hint="Set `AGENTNB_HOME` to a writable folder.") from None
        conn = self._connect()
        try:
            self._migrate(conn)
        except StoreError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise _fail(self.path, "open", exc) from None
        self._writer = conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        # journal_mode=WAL needs a moment of exclusive access; retry while other processes
        # open the same file at the same time.
        deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        if str(mode).lower() != "wal":  # pragma: no cover - only on filesystems without WAL
            conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (_VERSION_KEY,)).fetchone()
            current = int(row[0]) if row else 0
            if current > SCHEMA_VERSION:
                msg = (f"The trace store {str(self.path)!r} has schema version {current}, newer "
                       f"than this agentnb understands ({SCHEMA_VERSION}).")
                raise StoreError(msg, path=str(self.path),
                                 hint="Upgrade agentnb, or point `AGENTNB_HOME` at another folder.")
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version]:
                    conn.execute(statement)
            if current != SCHEMA_VERSION:
                conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                             (_VERSION_KEY, str(SCHEMA_VERSION)))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """A fresh read connection (closed afterwards); errors become `StoreError`."""
        conn = self._connect()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise _fail(self.path, "read", exc) from None
        finally:
            conn.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read query and return its rows.

        Example:
            >>> import tempfile
            >>> from agentnb.tracing import store
            >>> store(tempfile.mkdtemp()).query("SELECT count(*) FROM annotations")
            [(0,)]
        """
        with self.reader() as conn:
            return conn.execute(sql, params).fetchall()

    # -- writes ---------------------------------------------------------------------------
    def _write(self, action: str, fn: Any) -> Any:
        with self._lock:
            conn = self._writer
            if conn is None:
                msg = f"The trace store {str(self.path)!r} is closed."
                raise StoreError(msg, path=str(self.path),
                                 hint="Call `agentnb.tracing.store()` again.")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _fail(self.path, action, exc) from None
            return result

    def write(self, spans: Sequence[SpanRow], events: Sequence[EventRow] = ()) -> None:
        """Insert finished spans and their events in one transaction (re-writing replaces)."""
        if not spans and not events:
            return
        self._write("write to", lambda conn: insert_rows(conn, spans, events))

    def add_annotation(self, *, target_id: str, target_kind: str, run_id: str | None,
                       label: str | None, score: float | None, note: str | None,
                       author: str | None) -> int:
        """Insert one annotation and return its id."""

        def run(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO annotations (target_id, target_kind, run_id, label, score, note,"
                " author, created_at) VALUES (?,?,?,?,?,?,?,?)",
                (target_id, target_kind, run_id, label, score, note, author, time.time()))
            return int(cur.lastrowid or 0)

        return self._write("annotate in", run)

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._writer is None

    def count_spans(self) -> int:
        """How many spans the store holds."""
        return int(self.query("SELECT count(*) FROM spans")[0][0])

    def close(self) -> None:
        """Close the writer connection (the store object is unusable afterwards)."""
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def __repr__(self) -> str:
        return f"TraceStore({str(self.path)!r})"


_STORES: dict[Path, TraceStore] = {}
_STORES_LOCK = threading.Lock()
"""Guards `_STORES` so two threads never open two writers for one file."""


def open_store(home: Path) -> TraceStore:
    """The shared `TraceStore` for `<home>/traces.db`, opened (and migrated) on first use."""
    path = (Path(home).expanduser() / "traces.db").absolute()
    with _STORES_LOCK:
        found = _STORES.get(path)
        if found is not None and not found.closed:
            return found
        opened = TraceStore(path)
        _STORES[path] = opened
        return opened


def _close_all() -> None:
    with _STORES_LOCK:
        for s in _STORES.values():
            s.close()
        _STORES.clear()
