"""An asyncio-native network backend for httpcore / httpcore2, on an `asyncio.Protocol`.

httpcore's default backend under asyncio goes through anyio: every read and write opens a
cancel scope (`anyio.fail_after`), and the connection pool asks every idle connection whether
its socket is readable on each request and each release (`has_expired` ->
`get_extra_info("is_readable")`), which in anyio builds the stream's whole attribute mapping
and polls the socket. At 100 concurrent calls that probe alone took ~14% of agentnb's CPU per
model call, and the anyio stream layer another ~10% (benchmarks/README.md).

This backend implements the same public interface (`AsyncNetworkBackend` /
`AsyncNetworkStream`) on a plain `asyncio.Protocol`:
- the protocol buffers what arrives, so a read returns buffered bytes with no await, and
  otherwise waits on one future with a `call_later` timer for its timeout;
- "is readable" is two attribute reads: bytes arrived or the peer closed, both of which the
  event loop already told the protocol (no system call);
- TLS goes through `loop.start_tls`, the standard library's own.

Errors are the transport library's own (`ConnectError`, `ReadTimeout`, ...), so the pool and
httpx map them exactly as they map anyio's. `install(transport)` puts the backend into an httpx
/ httpx2 `AsyncHTTPTransport`'s pool before its first connection and reports whether it did;
when a library's pool does not look as expected it leaves the transport alone.
"""

# httpcore's stream and backend interface takes `timeout=` arguments; we implement it as is.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import importlib
import ssl
from collections.abc import Iterable
from types import ModuleType
from typing import Any

__all__ = ["AsyncioBackend", "install"]

_PAUSE_AT = 1 << 20
"""Buffered bytes at which the protocol stops reading from the socket until they are read."""
_EXTRA_INFO = {"ssl_object": "ssl_object", "client_addr": "sockname",
               "server_addr": "peername", "socket": "socket"}
"""httpcore's `get_extra_info` names -> asyncio's transport `get_extra_info` names."""


class _Protocol(asyncio.Protocol):
    """Buffers received bytes; wakes at most one reader and one writer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.reader: asyncio.Future[None] | None = None
        self.writer: asyncio.Future[None] | None = None
        self.read_paused = False
        self.write_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= _PAUSE_AT and not self.read_paused and self.transport is not None:
            self.transport.pause_reading()
            self.read_paused = True
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake_reader()
        self.write_paused = False
        self._wake_writer()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_writer()

    def _wake_reader(self) -> None:
        waiter = self.reader
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_writer(self) -> None:
        waiter = self.writer
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


async def _wait(proto: _Protocol, waiter: asyncio.Future[None], timeout: float | None) -> None:
    """Await `waiter`, raising TimeoutError after `timeout` seconds (None: no limit)."""
    if timeout is None:
        await waiter
        return
    timer = proto.loop.call_later(max(timeout, 0.0), _expire, waiter)
    try:
        await waiter
    finally:
        timer.cancel()


class AsyncioStream:
    """One connection: the `AsyncNetworkStream` interface over a buffering protocol."""

    def __init__(self, proto: _Protocol, errors: ModuleType) -> None:
        self._proto = proto
        self._errors = errors

    async def _park(self, slot: str, timeout: float | None, error: type[Exception],
                    message: str) -> None:
        """Wait until the protocol wakes `slot` ("reader" or "writer"), or raise `error`."""
        proto = self._proto
        waiter = proto.loop.create_future()
        setattr(proto, slot, waiter)
        try:
            await _wait(proto, waiter, timeout)
        except TimeoutError:
            raise error(message) from None
        finally:
            setattr(proto, slot, None)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Up to `max_bytes` bytes; b"" once the peer has closed the connection."""
        proto = self._proto
        if not proto.buffer and not proto.eof:
            await self._park("reader", timeout, self._errors.ReadTimeout,
                             "timed out reading the response")
        if proto.buffer:
            data = bytes(proto.buffer[:max_bytes])
            del proto.buffer[:max_bytes]
            if proto.read_paused and len(proto.buffer) < _PAUSE_AT // 2 and proto.transport:
                proto.read_paused = False
                proto.transport.resume_reading()
            return data
        if proto.error is not None:
            raise self._errors.ReadError(str(proto.error) or type(proto.error).__name__)
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Send `buffer`, waiting (up to `timeout`) only when the socket's buffer is full."""
        if not buffer:
            return
        proto = self._proto
        transport = proto.transport
        if transport is None or transport.is_closing():
            raise self._errors.WriteError("the connection is closed")
        transport.write(buffer)
        if proto.write_paused:
            await self._park("writer", timeout, self._errors.WriteTimeout,
                             "timed out writing the request")
            if proto.error is not None or transport.is_closing():
                raise self._errors.WriteError("the connection was closed while writing")

    async def aclose(self) -> None:
        """Close the connection (TLS close-notify, if any, is sent by the transport)."""
        transport = self._proto.transport
        if transport is not None:
            transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> AsyncioStream:
        """Upgrade this connection to TLS; the same protocol then receives the plaintext."""
        proto = self._proto
        assert proto.transport is not None
        try:
            async with asyncio.timeout(timeout):
                tls = await proto.loop.start_tls(proto.transport, proto, ssl_context,
                                                 server_hostname=server_hostname)
        except TimeoutError:
            proto.transport.close()
            raise self._errors.ConnectTimeout("timed out during the TLS handshake") from None
        except (OSError, ssl.SSLError) as exc:
            proto.transport.close()
            raise self._errors.ConnectError(str(exc)) from exc
        assert isinstance(tls, asyncio.Transport)
        proto.transport = tls
        return self

    def get_extra_info(self, info: str) -> Any:
        """What httpcore asks of a stream: TLS object, addresses, socket, readability."""
        proto = self._proto
        if info == "is_readable":
            # Bytes on an idle connection, or the peer's FIN: either way it cannot be reused.
            return bool(proto.buffer) or proto.eof
        transport = proto.transport
        if transport is None:
            return None
        key = _EXTRA_INFO.get(info)
        return None if key is None else transport.get_extra_info(key)


class AsyncioBackend:
    """The `AsyncNetworkBackend` interface on asyncio's own transports.

    Args:
        errors: The module whose exception classes to raise (`httpcore2` or `httpcore`).

    Example:
        >>> import asyncio, httpcore2
        >>> async def main():
        ...     server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        ...     port = server.sockets[0].getsockname()[1]
        ...     stream = await AsyncioBackend(httpcore2).connect_tcp("127.0.0.1", port, 5)
        ...     data = await stream.read(10, timeout=5)
        ...     await stream.aclose(); server.close()
        ...     return data
        >>> asyncio.run(main())
        b''
    """

    def __init__(self, errors: ModuleType) -> None:
        self._errors = errors

    async def _connect(self, timeout: float | None, opts: Iterable[Any] | None,
                       make: Any) -> AsyncioStream:
        loop = asyncio.get_running_loop()
        proto = _Protocol(loop)
        try:
            async with asyncio.timeout(timeout):
                await make(loop, lambda: proto)
        except TimeoutError:
            raise self._errors.ConnectTimeout("timed out connecting") from None
        except OSError as exc:
            raise self._errors.ConnectError(str(exc) or type(exc).__name__) from exc
        assert proto.transport is not None
        sock = proto.transport.get_extra_info("socket")
        for option in opts or ():
            if sock is not None:
                sock.setsockopt(*option)
        return AsyncioStream(proto, self._errors)

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> AsyncioStream:
        """Open a TCP connection (TCP_NODELAY on, as asyncio sets it)."""
        local = None if local_address is None else (local_address, 0)
        return await self._connect(
            timeout, socket_options,
            lambda loop, factory: loop.create_connection(factory, host, port, local_addr=local))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> AsyncioStream:
        """Open a Unix-domain socket connection."""
        return await self._connect(
            timeout, socket_options,
            lambda loop, factory: loop.create_unix_connection(factory, path))

    async def sleep(self, seconds: float) -> None:
        """Sleep on the running loop."""
        await asyncio.sleep(seconds)


def install(transport: Any) -> bool:
    """Give `transport`'s connection pool the asyncio backend; True when it was installed.

    Only a pool that has made no connection yet is changed, and only a plain
    `AsyncConnectionPool` of `httpcore2` or `httpcore` (not a proxy pool).

    Example:
        >>> import httpx2
        >>> install(httpx2.AsyncHTTPTransport())
        True
        >>> install(object())
        False
    """
    pool: Any = getattr(transport, "_pool", None)
    module_name = type(pool).__module__.split(".")[0]
    if module_name not in ("httpcore2", "httpcore"):
        return False
    core = importlib.import_module(module_name)
    if type(pool) is not core.AsyncConnectionPool or not hasattr(pool, "_network_backend"):
        return False
    if getattr(pool, "connections", None):
        return False
    pool._network_backend = AsyncioBackend(core)
    return True
