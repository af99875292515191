"""Stop flags of the run store (`rt_stops`): asked for by any process, seen by every run.

`StopFlags` is a base of `RunStore`: a flag names a run, a batch or a parent run, is written
at once, and is read from the file at most once per `stop_cache_s` (in between, a dictionary
look-up per step).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Iterable

__all__ = ["StopFlags"]


class StopFlags:
    """Stop requests for runs, batches and parent runs (mixed into `RunStore`).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from agentnb.runtime._checkpoint import RunStore
        >>> store = RunStore(Path(tempfile.mkdtemp()) / "traces.db")
        >>> store.request_stop("batch_1"); store.stop_reason("run_a", also=["batch_1"])
        'stop_requested'
    """

    stop_cache_s: float
    """How long the flags read from the file are trusted (seconds)."""
    _parents: dict[str, str | None]

    def _init_stops(self, stop_cache_s: float) -> None:
        self.stop_cache_s = stop_cache_s
        self._stops: dict[str, str] = {}
        self._stops_read_at = float("-inf")
        # The refresh of the flags in flight, per loop (`astop_reason`).
        self._stops_refresh: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Task[None]] = weakref.WeakKeyDictionary()

    def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:  # pragma: no cover
        raise NotImplementedError  # RunStore's

    def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:  # pragma: no cover
        raise NotImplementedError  # RunStore's

    def request_stop(self, target: str, reason: str = "stop_requested") -> None:
        """Ask a run, or every run of a batch or parent run, to stop before its next step.

        Works across processes (`agentnb stop RUN_ID`); seen at once in this process.
        """
        self._write(lambda c: c.execute(
            "INSERT OR REPLACE INTO rt_stops (target, reason, requested_at) VALUES (?, ?, ?)",
            (target, reason, time.time())))
        self._stops = {**self._stops, target: reason}

    def clear_stop(self, target: str) -> None:
        """Remove a stop flag (before resuming a stopped run)."""
        self._write(lambda c: c.execute("DELETE FROM rt_stops WHERE target = ?", (target,)))
        self._stops = {k: v for k, v in self._stops.items() if k != target}

    def stop_reason(self, run_id: str, *, also: Iterable[str] = ()) -> str | None:
        """The reason a stop was requested for the run, or None.

        A flag on the run, on any of `also` (a batch id, say), or on any ancestor run (via
        the parents recorded in checkpoints) counts. The flags are read from the file at most
        once per `stop_cache_s`; in between this is a dictionary look-up. When no flag is set
        anywhere, which is the usual case, no ancestor is looked up.
        """
        if time.monotonic() - self._stops_read_at > self.stop_cache_s:
            self._read_stops()
        stops = self._stops
        if not stops:
            return None
        for target in (run_id, *also):
            if target in stops:
                return stops[target]
        seen = {run_id}
        parent = self._parent(run_id)
        while parent is not None and parent not in seen:
            if parent in stops:
                return stops[parent]
            seen.add(parent)
            parent = self._parent(parent)
        return None

    def _read_stops(self) -> None:
        now = time.monotonic()
        rows = self._read(lambda c: c.execute("SELECT target, reason FROM rt_stops").fetchall())
        self._stops = dict(rows)
        self._stops_read_at = now

    def stop_requested(self, run_id: str, *, also: Iterable[str] = ()) -> bool:
        """True when a stop was requested for the run (see `stop_reason`); cheap per step."""
        return self.stop_reason(run_id, also=also) is not None

    def remember_parent(self, run_id: str, parent_run_id: str | None) -> None:
        """Note a run's parent before its first checkpoint is written (a stop asked of the
        parent then reaches it at once in this process)."""
        self._parents[run_id] = parent_run_id

    def _parent(self, run_id: str) -> str | None:
        if run_id not in self._parents:
            row = self._read(lambda c: c.execute(
                "SELECT parent_run_id FROM rt_runs WHERE run_id = ?", (run_id,)).fetchone())
            if row is None:
                return None  # not checkpointed yet; ask again next time
            self._parents[run_id] = row[0]
        return self._parents[run_id]

    async def arequest_stop(self, target: str, reason: str = "stop_requested") -> None:
        """Async twin of `request_stop`."""
        await asyncio.to_thread(self.request_stop, target, reason)

    async def aclear_stop(self, target: str) -> None:
        """Async twin of `clear_stop`."""
        await asyncio.to_thread(self.clear_stop, target)

    async def astop_reason(self, run_id: str, *, also: Iterable[str] = ()) -> str | None:
        """Async twin of `stop_reason`; answers on the loop while the cached flags are fresh.

        When they are stale, one read refreshes them for every run of the loop that asks in
        the meantime (at C=100 each expiry used to send every stepping run to a thread).
        """
        also = tuple(also)
        if time.monotonic() - self._stops_read_at > self.stop_cache_s:
            loop = asyncio.get_running_loop()
            pending = self._stops_refresh.get(loop)
            if pending is None or pending.done():
                pending = loop.create_task(asyncio.to_thread(self._read_stops))
                self._stops_refresh[loop] = pending
            await asyncio.shield(pending)
        if not self._stops:
            return None
        return await asyncio.to_thread(self.stop_reason, run_id, also=also)

    async def astop_requested(self, run_id: str, *, also: Iterable[str] = ()) -> bool:
        """Async twin of `stop_requested`; no thread hop while the cached flags are fresh."""
        return await self.astop_reason(run_id, also=also) is not None
