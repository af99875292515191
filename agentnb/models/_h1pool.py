"""A keep-alive pool for one HTTP/1.1 origin: the idle connections on a stack.

httpcore's `AsyncConnectionPool` serves any origin, HTTP/2 and queued requests, and pays for it
on every request and every response close: `_assign_requests_to_connections` walks every
connection (O(connections) per call; at 100 concurrent model calls that walk, its listcomps
and the closing of connections beyond the keep-alive limit took ~15% of agentnb's CPU per call,
benchmarks/README.md). `ClientPool.post` talks to one origin over HTTP/1.1 and reads each
answer whole, so its pool can be a stack: acquire pops an idle connection (dropping any the
server closed or that outlived the keep-alive expiry), release pushes it back, both O(1).

The connections are `H1Connection`s (`_h1conn`: requests written whole, answers parsed by
llhttp through httptools, httpcore's exceptions and per-phase timeouts), opened with the
transport pool's network backend, TLS context, socket options and limits. A connection whose
request failed or was cancelled is closed, never reused.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import time
from types import ModuleType
from typing import Any

from agentnb.models._h1conn import H1Connection

# The timeouts are per phase of a request (connect, pool), as httpcore passes them.
# ruff: noqa: ASYNC109

__all__ = ["H1Pool"]


class H1Pool:
    """Idle HTTP/1.1 connections to one origin, most recently used first.

    Args:
        core: `httpcore2` or `httpcore` (whichever the client's transport uses).
        pool: That transport's `AsyncConnectionPool`, whose settings this pool takes over.
        origin: The `core.Origin` every request of this pool goes to.

    Example:
        >>> import httpcore2
        >>> origin = httpcore2.URL("http://127.0.0.1:9/").origin
        >>> H1Pool(httpcore2, httpcore2.AsyncConnectionPool(), origin).idle
        0
    """

    def __init__(self, core: ModuleType, pool: Any, origin: Any) -> None:
        self._core = core
        self._origin = origin
        self._backend = pool._network_backend
        self._ssl_context = pool._ssl_context
        self._keepalive_expiry = pool._keepalive_expiry
        self._max_connections = pool._max_connections
        self._max_idle = pool._max_keepalive_connections
        self._socket_options = pool._socket_options
        self._local_address = pool._local_address
        self._idle: list[Any] = []
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    @staticmethod
    def fits(pool: Any) -> bool:
        """Whether a transport pool's settings are ones this pool honours (HTTP/1.1 only, no
        Unix socket, no connect retries, no proxy); otherwise requests stay on that pool."""
        return (getattr(pool, "_http1", False) and not getattr(pool, "_http2", True)
                and getattr(pool, "_uds", "x") is None and getattr(pool, "_retries", 1) == 0
                and hasattr(pool, "_network_backend") and hasattr(pool, "_max_connections"))

    @property
    def idle(self) -> int:
        """How many idle connections are kept."""
        return len(self._idle)

    async def request(self, request: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Send `request` (a `core.Request` to this origin); return (status, headers, body)."""
        return await self.send(request.method, request.url.target, request.headers,
                               b"".join(request.stream), request.extensions.get("timeout", {}))

    async def send(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]],
                   body: bytes, timeouts: dict[str, float | None],
                   ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """`request` without a `core.Request`: a caller that has the parts already skips the
        request object's checks and copies (the connection checks every header line)."""
        conn = await self._acquire(timeouts)
        try:
            answer = await conn.request(method, target, headers, body, timeouts)
        except BaseException:
            await self._drop(conn)
            raise
        await self._release(conn)
        return answer

    async def _acquire(self, timeouts: dict[str, float | None]) -> Any:
        idle = self._idle
        while True:
            while idle:
                conn = idle.pop()
                if conn.is_idle() and not conn.has_expired():
                    return conn
                await self._drop(conn)
            if self._closed:
                msg = "The connection pool is closed."
                raise RuntimeError(msg)
            if self._open < self._max_connections:
                break
            await self._wait(timeouts.get("pool"))
        self._open += 1
        try:
            stream = await self._connect(timeouts.get("connect"))
        except BaseException:
            self._open -= 1
            self._wake()
            raise
        return H1Connection(self._core, stream, self._keepalive_expiry)

    async def _connect(self, timeout: float | None) -> Any:
        origin = self._origin
        host = origin.host.decode("ascii")
        stream = await self._backend.connect_tcp(
            host=host, port=origin.port, timeout=timeout, local_address=self._local_address,
            socket_options=self._socket_options)
        if origin.scheme == b"https":
            context = self._ssl_context
            if context is None:
                # As the transport's pool does when it was given no context.
                context = importlib.import_module(f"{self._core.__name__}._ssl")
                context = context.default_ssl_context()
            context.set_alpn_protocols(["http/1.1"])
            try:
                stream = await stream.start_tls(ssl_context=context, server_hostname=host,
                                                timeout=timeout)
            except BaseException:
                await stream.aclose()
                raise
        return stream

    async def _wait(self, timeout: float | None) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                await future
        except BaseException as exc:
            if future.done() and not future.cancelled():
                self._wake()  # woken, then timed out or cancelled: hand the free slot on
            if isinstance(exc, TimeoutError):
                msg = f"No connection became free within {time.monotonic() - started:.1f}s."
                raise self._core.PoolTimeout(msg) from None
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(future)

    def _wake(self) -> None:
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)
                return

    async def _release(self, conn: Any) -> None:
        if not self._closed and conn.is_idle() and len(self._idle) < self._max_idle:
            self._idle.append(conn)
            self._wake()
            return
        await self._drop(conn)

    async def _drop(self, conn: Any) -> None:
        self._open -= 1
        self._wake()
        with contextlib.suppress(Exception):  # a connection that fails to close is gone anyway
            await conn.aclose()

    async def aclose(self) -> None:
        """Close the idle connections; connections in use close when their request ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._drop(conn)

