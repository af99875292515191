"""Merge one trace store into another: a batch job's `traces.db` into the batch's.

Each job of a batch writes its spans into its own home (no SQLite file is shared across
machines); the coordinator copies them into `runs/<batch-id>/traces.db` as jobs finish. The
copy runs in SQLite itself (`ATTACH` + `INSERT ... SELECT`) in one transaction, so it is fast
and all-or-nothing. Spans and events keep their keys (`INSERT OR IGNORE`); annotations get new
ids in the target and are matched on their content, so merging the same store twice adds
nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agentnb.core import StoreError

if TYPE_CHECKING:
    import sqlite3

__all__ = ["merge_store"]

_SPAN_COLUMNS = ("span_id, trace_id, parent_id, run_id, name, kind, span_kind, start_ns, end_ns, "
                 "status, status_message, attributes, scope")
_EVENT_COLUMNS = "span_id, seq, name, time_ns, attributes"
_NOTE_COLUMNS = "target_id, target_kind, run_id, label, score, note, author, created_at"

_COPY_SPANS = (f"INSERT OR IGNORE INTO main.spans ({_SPAN_COLUMNS}) "
               f"SELECT {_SPAN_COLUMNS} FROM src.spans")
_COPY_EVENTS = (f"INSERT OR IGNORE INTO main.events ({_EVENT_COLUMNS}) "
                f"SELECT {_EVENT_COLUMNS} FROM src.events")
# Annotation ids are per file: the same note has another id in the target, so match content.
_COPY_NOTES = (
    f"INSERT INTO main.annotations ({_NOTE_COLUMNS}) SELECT {_NOTE_COLUMNS} FROM src.annotations s "
    "WHERE NOT EXISTS (SELECT 1 FROM main.annotations m WHERE m.target_id = s.target_id "
    "AND m.target_kind = s.target_kind AND m.run_id IS s.run_id AND m.label IS s.label "
    "AND m.score IS s.score AND m.note IS s.note AND m.author IS s.author "
    "AND m.created_at = s.created_at)"
)
_BUSY_TIMEOUT_S = 30.0


def merge_store(source_home: Path | str, target_home: Path | str) -> int:
    """Copy the spans, events and annotations of `<source_home>/traces.db` into the target's.

    The target store is created (and migrated) when missing. Rows already in the target are
    kept, so merging twice adds nothing. A source without a `traces.db` adds nothing.

    Args:
        source_home: The folder holding the source `traces.db` (a batch job's home).
        target_home: The folder holding the target `traces.db` (the batch folder).

    Returns:
        How many rows were added (spans + events + annotations).

    Raises:
        StoreError: either file is damaged, locked for too long, or not writable.

    Example:
        >>> import tempfile
        >>> from agentnb.tracing import store
        >>> src, dst = tempfile.mkdtemp(), tempfile.mkdtemp()
        >>> store(src).write([("s1", "t1", None, "run_1", "run", "run", "internal", 1, 2, "ok",
        ...                    None, "{}", None)])
        >>> merge_store(src, dst), merge_store(src, dst)
        (1, 0)
    """
    import sqlite3

    from agentnb.tracing._store import open_store

    source = Path(source_home).expanduser() / "traces.db"
    target_dir = Path(target_home).expanduser()
    if source.resolve() == (target_dir / "traces.db").resolve():
        return 0
    if not source.is_file():
        return 0
    target = open_store(target_dir)  # creates the file and applies the schema's migrations
    try:
        conn = sqlite3.connect(target.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise _error(target.path, source, exc) from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
        conn.execute("ATTACH DATABASE ? AS src", (str(source),))
        tables = {row[0] for row in conn.execute(
            "SELECT name FROM src.sqlite_master WHERE type = 'table'")}
        before = conn.total_changes
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table, statement in (("spans", _COPY_SPANS), ("events", _COPY_EVENTS),
                                     ("annotations", _COPY_NOTES)):
                if table in tables:
                    conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return conn.total_changes - before
    except sqlite3.Error as exc:
        raise _error(target.path, source, exc) from None
    finally:
        conn.close()


def _error(target: Path, source: Path, exc: sqlite3.Error) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        hint = "Another process held a write lock for too long; merge again later."
    else:
        hint = (f"Check that {str(source)!r} is an agentnb trace store and that "
                f"{str(target.parent)!r} is writable.")
    msg = f"Cannot merge the trace store {str(source)!r} into {str(target)!r}: {text}."
    return StoreError(msg, path=str(target), hint=hint)
