"""Finished spans written inside another writer's transaction on the same `traces.db`.

The run store (`agentnb.runtime`) keeps checkpoints in the file the trace store writes spans
to. Left alone, each step's checkpoint and each batch of spans is its own transaction from its
own thread, and a run that ends waits for a flush on a worker thread so that its spans are on
disk when it returns. `spans_writer` lets the run store's writer take every finished span
queued so far into the transaction it is about to commit: one commit instead of two, no extra
hop, and when a run's last checkpoint commits, every span that ended before it is stored too.

The drain lock is held from the moment the queue is drained until the caller's transaction
has committed, exactly as `flush()` holds it around its own write, so `flush()` still returns
only after every span queued before it is on disk, whoever wrote it. Lock order everywhere:
drain lock, then SQLite's write lock.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from agentnb.tracing._store import EventRow, SpanRow, TraceStore

__all__ = ["PendingSpans", "flush_needed", "spans_writer"]

_SAME_FILE: dict[tuple[str, str], bool] = {}
"""(trace store path, caller's path) -> whether they are one file."""


def _same_file(a: Path, b: Path) -> bool:
    key = (str(a), str(b))
    same = _SAME_FILE.get(key)
    if same is None:
        try:
            same = os.path.samefile(a, b)
        except OSError:
            same = False
        _SAME_FILE[key] = same
    return same


class PendingSpans:
    """Span and event rows drained from the queue, to be written in the caller's transaction.

    Call `write(conn)` inside the transaction, then set `committed` once it has committed;
    rows that were not committed are written by `spans_writer` on its own when the `with`
    block ends, so none are lost when the caller's transaction fails.

    Example:
        >>> import sqlite3
        >>> pending = PendingSpans([], [], lambda exc: None)
        >>> pending.write(sqlite3.connect(":memory:")), pending.committed
        (0, False)
    """

    __slots__ = ("_on_error", "committed", "events", "spans")

    def __init__(self, spans: list[SpanRow], events: list[EventRow],
                 on_error: Callable[[sqlite3.Error], None]) -> None:
        self.spans = spans
        self.events = events
        self._on_error = on_error
        self.committed = False

    def write(self, conn: sqlite3.Connection) -> int:
        """Insert the rows (inside a savepoint: a failure leaves the caller's writes alone)."""
        from agentnb.tracing._store import insert_rows

        if not self.spans and not self.events:
            return 0
        conn.execute("SAVEPOINT agentnb_spans")
        try:
            insert_rows(conn, self.spans, self.events)
        except sqlite3.Error as exc:
            # Given up on, as the writer thread gives up a failed batch.
            conn.execute("ROLLBACK TO agentnb_spans")
            conn.execute("RELEASE agentnb_spans")
            self._on_error(exc)
            return 0
        conn.execute("RELEASE agentnb_spans")
        return len(self.spans)


def _target(st: Any, path: Path) -> TraceStore | None:
    """The trace store when it is open, storing spans, and the file at `path`."""
    store = st.store
    if (store is None or store.closed or not st.processor.store_enabled
            or not _same_file(store.path, path)):
        return None
    return store


def flush_needed(path: Path) -> bool:
    """False when a transaction that `spans_writer(path)` joined leaves nothing for `flush()`:
    spans are stored in `path` and no live exporter waits for them, or nothing records spans.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> flush_needed(Path(tempfile.mkdtemp()) / "traces.db") in (True, False)
        True
    """
    from agentnb.tracing import _spans

    st = _spans._STATE  # pyright: ignore[reportPrivateUsage]
    if st is None:
        return False
    processor = st.processor
    if processor.extra or st.error is not None:
        return True  # an exporter to push, or a failed write that `flush()` must report
    if not processor.store_enabled:
        return bool(processor.queue)
    return _target(st, path) is None


@contextlib.contextmanager
def spans_writer(path: Path) -> Iterator[PendingSpans | None]:
    """Hold the span queue for a transaction on `path`; yield its drained rows, or None.

    Yields None (holding nothing) when tracing is not set up or spans go to another file.
    Otherwise the drain lock is held until the `with` block ends: write the rows in the
    transaction and commit it inside the block. A failed insert is rolled back to a savepoint
    (the caller's own writes are kept) and its error is raised by the next `flush()`, as a
    failed write of the `agentnb-traces` thread is. Rows whose transaction did not commit
    are written on their own when the block ends.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> with spans_writer(Path(tempfile.mkdtemp()) / "traces.db") as pending:
        ...     pending is None
        True
    """
    from agentnb.tracing import _spans

    st = _spans._STATE  # pyright: ignore[reportPrivateUsage]
    store = None if st is None else _target(st, path)
    if st is None or store is None:
        yield None
        return
    from agentnb.tracing._queue import drain
    from agentnb.tracing._store import _fail  # pyright: ignore[reportPrivateUsage]

    def failed(exc: sqlite3.Error) -> None:
        st.error = _fail(path, "write to", exc)

    with st.drain_lock:
        # Taken even when the queue is empty: a batch the writer thread drained is on disk
        # once the lock is ours.
        spans, events = _spans.to_rows(drain(st.processor.queue),
                                       _spans._REDACTOR)  # pyright: ignore[reportPrivateUsage]
        pending = PendingSpans(spans, events, failed)
        try:
            yield pending
        finally:
            if not pending.committed and (spans or events):
                try:
                    store.write(spans, events)
                except Exception as exc:
                    st.error = exc
