"""The writer of one SQLite file: inline when alone, group commit per turn of the event loop.

`_Database.awrite` (in `_cache`) hands writes to the file's `_GroupCommit`. With one run at a
time the write is done on the caller's thread at once; once runs step together, the writes
queued in one turn of the event loop share one transaction, written on the loop's thread at the
start of the next turn (or, with `_GroupCommit.tick` off, on a writer thread). A step's audit
records go to their log just before the transaction, and a file with a `companion` (the run
store's `traces.db`: finished spans, see `agentnb.tracing._shared`) has its rows written in the
same transaction.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import threading
from typing import TYPE_CHECKING, Any

from agentnb.core import UsageError, current_pid

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

    from agentnb.runtime._cache import _Database
    from agentnb.tracing._shared import PendingSpans

__all__ = ["RIDE_SPANS", "STEPS", "AuditPart", "StepsInFlight"]


class StepsInFlight:
    """How many runs of this process are inside a step now (the writer's sign of contention).

    Example:
        >>> steps = StepsInFlight()
        >>> with steps:
        ...     steps.count
        1
        >>> steps.count
        0
    """

    __slots__ = ("_lock", "count")

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        with self._lock:
            self.count += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.count -= 1


STEPS = StepsInFlight()
"""Entered by `Run.astep` around each step."""

RIDE_SPANS: contextvars.ContextVar[bool] = contextvars.ContextVar("agentnb_ride_spans",
                                                                  default=True)
"""Whether a write takes the queued spans into its transaction (the file's `companion`).
Always for a batch (a turn's or the writer thread's), where many runs share the rows' pages;
an inline write (one run stepping) takes them only for a run's last checkpoint: a few spans in
each step's transaction dirty as many index pages as a whole run's, so the `agentnb-traces`
thread's periodic write or the run's last checkpoint takes them together."""

AuditPart = tuple[Any, list[tuple[str, dict[str, Any]]]]
"""(audit log, [(event, fields), ...]) handed to `_Database.awrite`."""
_Item = tuple[Any, str, asyncio.AbstractEventLoop, "asyncio.Future[Any] | None", AuditPart | None]


class _GroupCommit:
    """The writer of one `_Database`: gathers concurrent writes into shared transactions.

    While at most one run is inside a step in this process (`StepsInFlight`), a write is done
    at once on the caller's thread (`inline`): nothing could share its transaction. With more
    runs stepping (`tick`), the writes made during one turn of an event loop are queued for
    that loop and written by one callback at the start of its next turn, in one transaction,
    on the loop's own thread: N concurrent runs cost one commit, and no thread hop (a futex
    wake, a wake-up of the loop through its self-pipe, GIL hand-offs between two busy threads).
    That measured 0.89x the CPU per call of the writer thread at C=100 and the same at C=10
    (in-process A/B, median of 8 pairs). The price is that the loop waits while the batch
    commits (about a millisecond; up to SQLite's busy timeout if another process holds the
    file's write lock). With `tick` off, queued writes go to a writer thread instead, which
    starts on the first queued write and exits after `_IDLE_S` without work. (Inline writes
    whenever the writer was idle measured +23% CPU per call at C=100: an inline write never
    meets another, so nothing was batched.)
    """

    inline = True
    """Write on the caller's thread when the writer is idle (class-wide switch, for A/B runs)."""
    tick = True
    """With several runs stepping, batch the writes queued in one turn of the caller's event
    loop and write them on that loop, not on the writer thread (class-wide switch)."""

    def __init__(self, db: _Database) -> None:
        self.db = db
        self.pid = current_pid()
        self._items: collections.deque[_Item] = collections.deque()
        # Guards `_items`, `_thread` and `_busy`; the writer waits on it for work.
        self._cv = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        # True while a batch (queued or inline) is being written.
        self._busy = False
        # Writes waiting for the next turn of their event loop (`tick`), by loop.
        self._ticks: dict[asyncio.AbstractEventLoop, list[_Item]] = {}

    async def submit(self, prepare: Any, action: str, audit: AuditPart | None = None) -> Any:
        loop = asyncio.get_running_loop()
        with self._cv:
            now = (self.inline and STEPS.count <= 1 and not self._busy
                   and not self._items)
            if now:
                self._busy = True
        if now:
            return self._write_now((prepare, action, loop, None, audit))
        future: asyncio.Future[Any] = loop.create_future()
        if self.tick:
            batch = self._ticks.get(loop)
            if batch is None:
                batch = self._ticks[loop] = []
                # A fresh context: the batch is everyone's, so it takes the spans (RIDE_SPANS).
                loop.call_soon(self._flush_tick, loop, context=contextvars.Context())
            batch.append((prepare, action, loop, future, audit))
            return await future
        with self._cv:
            self._items.append((prepare, action, loop, future, audit))
            self._wake()
        return await future

    def _flush_tick(self, loop: asyncio.AbstractEventLoop) -> None:
        """Write the writes queued on `loop` since the last turn, in one transaction."""
        batch = self._ticks.pop(loop, [])
        if not batch:
            return
        try:
            done = self._write_batch(batch)
        except BaseException as exc:  # every waiting run gets it; none is left hanging
            done = [(item, False, exc) for item in batch]
        _settle([(item[3], ok, value) for item, ok, value in done if item[3] is not None])

    def _wake(self) -> None:
        """Start the writer thread, or wake it (call with `_cv` held)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, daemon=True,
                                            name=f"agentnb-writer:{self.db.path.name}")
            self._thread.start()
        else:
            self._cv.notify()

    def _write_now(self, item: _Item) -> Any:
        try:
            ((_, ok, value),) = self._write_batch([item])
        finally:
            with self._cv:
                self._busy = False
                if self._items:  # queued behind us: the writer takes them now
                    self._wake()
        if not ok:
            raise value
        return value

    def _write_batch(self, batch: list[_Item]) -> list[tuple[_Item, bool, Any]]:
        companion = self.db.companion if RIDE_SPANS.get() else None
        with contextlib.nullcontext() if companion is None else companion() as pending:
            failed = _append_audits(batch)
            done = self._commit(batch, pending)
        if failed:
            done = [(item, False, failed[id(item)]) if ok and id(item) in failed
                    else (item, ok, value) for item, ok, value in done]
        return done

    def _serve(self) -> None:
        while True:
            with self._cv:
                while not self._items or self._busy:
                    if not self._cv.wait(_IDLE_S) and not self._items:
                        self._thread = None
                        return
                batch = list(self._items)
                self._items.clear()
                self._busy = True
            try:
                done = self._write_batch(batch)
            finally:
                with self._cv:
                    self._busy = False
            self._deliver(done)

    def _commit(self, batch: list[_Item],
                pending: PendingSpans | None = None) -> list[tuple[_Item, bool, Any]]:
        """Write the batch in one transaction (one per write if that fails), with `pending`
        rows in the first transaction that commits."""
        done: list[tuple[_Item, bool, Any]] = []
        ready: list[tuple[_Item, Callable[[sqlite3.Connection], Any]]] = []
        for item in batch:
            try:
                ready.append((item, item[0]()))
            except BaseException as exc:
                done.append((item, False, exc))
        if len(ready) > 1:
            db = self.db

            def attempt() -> list[Any]:
                conn = db.conn()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if pending is not None:
                        pending.write(conn)
                    out = [fn(conn) for _, fn in ready]
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                return out

            try:
                with db._write_lock:
                    results = db._retry(attempt)
            except Exception:
                pass
            else:
                if pending is not None:
                    pending.committed = True
                done.extend((item, True, r) for (item, _), r in zip(ready, results, strict=True))
                return done
        for item, fn in ready:
            extra = pending if pending is not None and not pending.committed else None
            try:
                done.append((item, True, self.db.write(fn if extra is None
                                                       else _with_rows(extra, fn), item[1])))
            except BaseException as exc:
                done.append((item, False, exc))
            else:
                if extra is not None:
                    extra.committed = True
        return done

    @staticmethod
    def _deliver(done: list[tuple[_Item, bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, bool, Any]]] = {}
        for (_, _, loop, future, _), ok, value in done:
            by_loop.setdefault(loop, []).append((future, ok, value))
        for loop, results in by_loop.items():
            # A loop that closed while its writes were committing has nobody waiting.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, results)


def _with_rows(pending: PendingSpans, fn: Callable[[sqlite3.Connection], Any]
               ) -> Callable[[sqlite3.Connection], Any]:
    def both(conn: sqlite3.Connection) -> Any:
        pending.write(conn)
        return fn(conn)

    return both


def _append_audits(batch: list[_Item]) -> dict[int, BaseException]:
    """Append the batch's audit records, one `append_many` per log; the errors by item id.

    A record refused before anything is written (`UsageError`) makes the log's writes go one
    caller at a time, so only its caller sees the error; any other failure reaches them all.
    """
    by_log: dict[int, tuple[Any, list[tuple[int, list[tuple[str, dict[str, Any]]]]]]] = {}
    for item in batch:
        part = item[4]
        if part is not None and part[1]:
            by_log.setdefault(id(part[0]), (part[0], []))[1].append((id(item), part[1]))
    failed: dict[int, BaseException] = {}
    for log, parts in by_log.values():
        try:
            log.append_many([record for _, records in parts for record in records])
            continue
        except UsageError:
            pass
        except BaseException as exc:  # handed to every caller of this log
            failed.update((key, exc) for key, _ in parts)
            continue
        for key, records in parts:
            try:
                log.append_many(records)
            except BaseException as exc:  # handed to the caller whose records failed
                failed[key] = exc
    return failed


def _settle(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in results:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


_IDLE_S = 5.0
"""How long a writer thread waits for work before it exits."""


