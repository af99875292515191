"""The content-hash cache of model responses and tool results, in `<AGENTNB_HOME>/cache.db`.

Also home of `_Database`, the SQLite plumbing shared with `_checkpoint.py`: a connection per
thread, WAL with `synchronous=NORMAL`, a busy timeout, `BEGIN IMMEDIATE` writes with retries,
and every SQLite failure turned into a `StoreError` that names the file.

Keys come from `cache_key` (model id + messages + tools + settings, canonical JSON, SHA-256), so
the same request gives the same key in every process. Values are stored verbatim: they must
already be redacted by the caller. Use is opt-in (`Settings.cache`); the runtime decides.

Every method has an `a`-prefixed twin that runs it in a worker thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agentnb.core import (
    StoreError,
    UsageError,
    compact_json,
    content_hash,
    current_pid,
    resolve,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from contextlib import AbstractContextManager

    from agentnb.runtime._writer import AuditPart, _GroupCommit
    from agentnb.tracing._shared import PendingSpans

__all__ = ["CacheStats", "ResponseCache", "cache_key", "response_cache"]

T = TypeVar("T")

CACHE_KEY_VERSION = 1
"""Bumped when the canonical form changes, so old entries simply stop matching."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO cache_meta (key, value) VALUES ('schema_version', '1');
CREATE TABLE IF NOT EXISTS cache_entries (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL
);
"""


_BUSY_TIMEOUT_S = 10.0
_RETRIES = 5


def _dumps(obj: Mapping[str, Any], what: str) -> str:
    try:
        return compact_json(obj)
    except (TypeError, ValueError) as exc:
        msg = f"The {what} is not JSON-serialisable: {exc}."
        hint = "Pass plain JSON data, e.g. `model.model_dump(mode='json')`."
        raise UsageError(msg, hint=hint) from None


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class _Database:
    """One SQLite file: a connection per thread, WAL, busy timeout, retries, errors as StoreError.

    Shared by `RunStore` and `ResponseCache`.
    """

    def __init__(self, path: Path, *, schema: str, label: str, damaged_hint: str) -> None:
        self.path = Path(path)
        self._schema = schema
        self._label = label
        self._damaged_hint = damaged_hint
        self._local = threading.local()
        # Guards `_conns`, `_ready` and `_pid`: the schema is created once per process and every
        # connection is known so that close() can reach connections of other threads.
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        # One writer per process at a time. SQLite admits one writer anyway; a mutex hands the
        # turn over at once, where SQLite's busy handler would sleep (1, 2, 5, 10... ms) between
        # tries. Other processes still meet the busy timeout.
        self._write_lock = threading.Lock()
        self._ready = False
        self._generation = 0
        self._pid = current_pid()
        self._writer: _GroupCommit | None = None
        self.companion: Callable[[], AbstractContextManager[PendingSpans | None]] | None = None
        """Other rows for this file's group commits (the run store: finished spans)."""

    def error(self, exc: BaseException, action: str) -> StoreError:
        if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
            msg = f"Could not {action} {str(self.path)!r}: it stayed locked ({exc})."
            return StoreError(msg, path=str(self.path), hint="Another process holds a long write "
                              "lock on it; retry, or stop the process that holds it.")
        msg = f"Could not {action} the {self._label} {str(self.path)!r}: {exc}."
        return StoreError(msg, path=str(self.path), hint=self._damaged_hint)

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise self.error(exc, "open") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
            self._retry(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
            conn.execute("PRAGMA synchronous = NORMAL")
            # Rows are small and written once; a 1 MiB page cache per connection (instead of
            # SQLite's 2 MiB default) keeps a connection per worker thread cheap in memory.
            conn.execute("PRAGMA cache_size = -1024")
        except sqlite3.Error as exc:
            conn.close()
            raise self.error(exc, "open") from None
        except StoreError:
            conn.close()
            raise
        return conn

    def conn(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "generation", None) == self._generation and self._pid == current_pid():
            return local.conn
        with self._lock:
            if self._pid != current_pid():
                # A forked child must not use the parent's connections (SQLite forbids it);
                # abandon them without closing, which would disturb the parent's locks.
                self._pid = current_pid()
                self._conns = []
                self._ready = False
                self._generation += 1
            conn = self._open()
            self._conns.append(conn)
            if not self._ready:
                try:
                    self._retry(lambda: conn.executescript(self._schema))
                except sqlite3.Error as exc:
                    raise self.error(exc, "set up") from None
                self._ready = True
            local.conn = conn
            local.generation = self._generation
        return conn

    def _retry(self, fn: Callable[[], T]) -> T:
        for attempt in range(_RETRIES):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or attempt == _RETRIES - 1:
                    raise
                time.sleep(0.01 * 2**attempt)
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def read(self, fn: Callable[[sqlite3.Connection], T], action: str = "read") -> T:
        conn = self.conn()
        try:
            return self._retry(lambda: fn(conn))
        except sqlite3.Error as exc:
            raise self.error(exc, action) from None

    def write(self, fn: Callable[[sqlite3.Connection], T], action: str = "write to") -> T:
        """Run `fn` in one `BEGIN IMMEDIATE` transaction, committed before returning."""
        conn = self.conn()

        def attempt() -> T:
            # IMMEDIATE takes the write lock up front, so the busy handler waits for it; a
            # deferred transaction that upgrades later can fail at once with SQLITE_BUSY.
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        try:
            with self._write_lock:
                return self._retry(attempt)
        except sqlite3.Error as exc:
            raise self.error(exc, action) from None

    async def awrite(self, prepare: Callable[[], Callable[[sqlite3.Connection], T]],
                     action: str = "write to", *, audit: AuditPart | None = None) -> T:
        """Group commit: `prepare()` then its write, shared with concurrent writes.

        Alone (one run stepping) the write is made at once on this thread; writes made by
        concurrent runs in one turn of the event loop share one transaction at the start of
        the next turn (see `agentnb.runtime._writer`), so N concurrent runs cost one commit,
        not N. The await returns once the write is committed, exactly as `write()` does. What
        `prepare` (JSON encoding, say) raises goes to its caller alone, and a batch that fails
        is retried one write per transaction so that only the failing caller sees it.

        `audit` is `(log, records)`: records for an `AuditLog` (anything with `append_many`),
        appended just before the transaction. The records of every write in a batch go to
        their log in one `append_many`. When the append fails the transaction still commits
        (nothing the caller paid for is lost) and the caller gets the append's error.
        """
        return await self._group().submit(prepare, action, audit)

    def _group(self) -> _GroupCommit:
        group = self._writer
        if group is None or group.pid != current_pid():
            from agentnb.runtime._writer import _GroupCommit

            with self._lock:
                group = self._writer
                if group is None or group.pid != current_pid():
                    group = self._writer = _GroupCommit(self)
        return group

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
            self._generation += 1
            if self._pid == current_pid():
                for conn in conns:
                    conn.close()


def _home(home: Path | str | None) -> Path:
    if home is None:
        home = resolve().home
    return Path(home).expanduser().resolve()


def _dump(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        return dump(mode="json", exclude_none=True)
    return obj


def _canonical_part(part: dict[str, Any]) -> dict[str, Any]:
    # A tool call's arguments are a JSON string; equal objects in another key order are the
    # same request.
    args = part.get("arguments")
    if part.get("kind") == "tool_call" and isinstance(args, str):
        try:
            return {**part, "arguments": json.loads(args)}
        except ValueError:
            return part
    return part


def _canonical_message(message: Any) -> Any:
    data = _dump(message)
    if isinstance(data, dict) and isinstance(data.get("parts"), list):
        return {**data, "parts": [_canonical_part(p) if isinstance(p, dict) else p
                                  for p in data["parts"]]}
    return data


def _canonical_tool(tool: Any) -> Any:
    data = _dump(tool)
    if isinstance(data, dict):
        # Effects are for the policy; the model never sees them, so they do not change a reply.
        data = {k: v for k, v in data.items() if k != "effects"}
    return data


def cache_key(model_id: str, messages: Iterable[Any], tools: Iterable[Any] = (),
              settings: Any = None) -> str:
    """The content hash of one model request; equal requests give equal keys in any process.

    Messages and tools are pydantic models (or plain dicts); settings may be None. Dict key
    order, None-valued settings and tool effects do not change the key; message and tool order do.

    Example:
        >>> from agentnb.core import Message
        >>> a = cache_key("sim:careful", [Message.user("hi")], [], {"temperature": 0, "seed": 1})
        >>> a == cache_key("sim:careful", [Message.user("hi")], [], {"seed": 1, "temperature": 0})
        True
    """
    settings_data = _dump(settings) if settings is not None else {}
    if isinstance(settings_data, dict):
        settings_data = {k: v for k, v in settings_data.items() if v is not None}
    return content_hash({
        "v": CACHE_KEY_VERSION,
        "model": model_id,
        "messages": [_canonical_message(m) for m in messages],
        "tools": [_canonical_tool(t) for t in tools],
        "settings": settings_data,
    })


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CacheStats:
    """Hits and misses of this `ResponseCache` object since it was made or cleared."""

    hits: int
    """Look-ups that found a live entry."""
    misses: int
    """Look-ups that found nothing, or an expired entry."""
    entries: int
    """Entries in the file (any process), expired ones included until pruned."""


_DAMAGED_HINT = (
    "The cache file is damaged. It holds only cached responses: delete it and agentnb builds "
    "a new one."
)


class ResponseCache:
    """Model responses and tool results by content hash, in `cache.db` (SQLite, WAL).

    Example:
        >>> import tempfile
        >>> cache = ResponseCache(Path(tempfile.mkdtemp()) / "cache.db")
        >>> cache.put("k", {"text": "hello"}, kind="model")
        >>> cache.get("k"), cache.get("other")
        ({'text': 'hello'}, None)
        >>> cache.stats().hits
        1
    """

    def __init__(self, path: Path) -> None:
        self._db = _Database(Path(path), schema=_SCHEMA, label="cache",
                             damaged_hint=_DAMAGED_HINT)
        # Guards the two counters, which worker threads of the async twins update concurrently.
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self._db.path

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached value, or None when absent or expired."""
        row = self._db.read(lambda c: c.execute(
            "SELECT value, expires_at FROM cache_entries WHERE key = ?", (key,)).fetchone())
        value: dict[str, Any] | None = None
        if row is not None and (row[1] is None or row[1] > time.time()):
            try:
                value = json.loads(row[0])
            except ValueError as exc:
                raise self._db.error(exc, "read an entry from") from None
        with self._lock:
            if value is None:
                self._misses += 1
            else:
                self._hits += 1
        return value

    def put(self, key: str, value: Mapping[str, Any], *, kind: str,
            ttl_s: float | None = None) -> None:
        """Store a value (verbatim; already redacted) under `key`, replacing any old one.

        `kind` says what it is (`model`, `tool`); `ttl_s=None` keeps it until `clear()`.
        """
        text = _dumps(value, f"cache value for {key!r}")
        now = time.time()
        expires = now + ttl_s if ttl_s is not None else None
        self._db.write(lambda c: c.execute(
            "INSERT OR REPLACE INTO cache_entries (key, kind, value, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)", (key, kind, text, now, expires)))

    def prune(self) -> int:
        """Delete expired entries; returns how many."""
        return self._db.write(lambda c: c.execute(
            "DELETE FROM cache_entries WHERE expires_at IS NOT NULL AND expires_at <= ?",
            (time.time(),)).rowcount)

    def clear(self) -> None:
        """Delete every entry and reset the hit and miss counters."""
        self._db.write(lambda c: c.execute("DELETE FROM cache_entries"))
        with self._lock:
            self._hits = self._misses = 0

    def stats(self) -> CacheStats:
        """Hits and misses of this object, and the number of entries in the file."""
        entries = self._db.read(lambda c: c.execute(
            "SELECT count(*) FROM cache_entries").fetchone()[0])
        with self._lock:
            return CacheStats(hits=self._hits, misses=self._misses, entries=entries)

    def close(self) -> None:
        """Close every connection; the cache reopens on the next call."""
        self._db.close()

    async def aget(self, key: str) -> dict[str, Any] | None:
        """Async twin of `get`."""
        return await asyncio.to_thread(self.get, key)

    async def aput(self, key: str, value: Mapping[str, Any], *, kind: str,
                   ttl_s: float | None = None) -> None:
        """Async twin of `put`."""
        await asyncio.to_thread(self.put, key, value, kind=kind, ttl_s=ttl_s)

    async def aprune(self) -> int:
        """Async twin of `prune`."""
        return await asyncio.to_thread(self.prune)

    async def aclear(self) -> None:
        """Async twin of `clear`."""
        await asyncio.to_thread(self.clear)

    async def astats(self) -> CacheStats:
        """Async twin of `stats`."""
        return await asyncio.to_thread(self.stats)

    async def aclose(self) -> None:
        """Async twin of `close`."""
        await asyncio.to_thread(self.close)


_KEEP = 16
"""How many caches `response_cache` keeps open (tests make a new home per test)."""
_caches: dict[Path, ResponseCache] = {}
# Guards `_caches` so that two threads asking for the same path get the same ResponseCache.
_caches_lock = threading.Lock()


def response_cache(home: Path | str | None = None) -> ResponseCache:
    """The `ResponseCache` over `<home>/cache.db`, one per path (home from settings when None).

    Example:
        >>> import tempfile
        >>> home = Path(tempfile.mkdtemp())
        >>> response_cache(home) is response_cache(home)
        True
    """
    path = _home(home) / "cache.db"
    with _caches_lock:
        cache = _caches.pop(path, None) or ResponseCache(path)
        _caches[path] = cache  # most recently used last
        if len(_caches) > _KEEP:
            # Forget (not close) the least recently used: whoever still holds it keeps a
            # working cache, and its connections close when the last reference goes.
            del _caches[next(iter(_caches))]
        return cache
