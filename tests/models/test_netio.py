"""The asyncio network backend under httpx2, against real loopback servers (plain and TLS)."""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import time
from collections.abc import Awaitable, Callable

import httpcore2
import httpx2
import pytest
import trustme

from agentnb.models._http import ClientPool, ssl_context
from agentnb.models._netio import AsyncioBackend, install


def aio(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test on a fresh event loop (the suite's tests use `asyncio.run`)."""

    @functools.wraps(fn)
    def run(*args: object, **kwargs: object) -> None:
        asyncio.run(fn(*args, **kwargs))  # type: ignore[arg-type]

    return run


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    """Read one HTTP/1.1 request (headers + Content-Length body); None at EOF."""
    head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
    if not head:
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return await reader.readexactly(length) if length else b""


def _response(body: bytes, *, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return (b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" + extra
            + b"\r\n" + body)


class Server:
    """A loopback server that counts connections and runs `handler` on each."""

    def __init__(self, handler: Handler, ssl_ctx: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_ctx = ssl_ctx
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=self.ssl_ctx)
        port = self.server.sockets[0].getsockname()[1]
        return f"{'https' if self.ssl_ctx else 'http'}://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


async def echo_keepalive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while (body := await _read_request(reader)) is not None:
        writer.write(_response(b"got " + str(len(body)).encode()))
        await writer.drain()


def _client(**kw: object) -> httpx2.AsyncClient:
    client = httpx2.AsyncClient(**kw)  # type: ignore[arg-type]
    assert install(client._transport)  # pyright: ignore[reportPrivateUsage]
    return client


@aio
async def test_our_clients_use_the_backend_and_reuse_a_connection() -> None:
    server = Server(echo_keepalive)
    async with server as url:
        pool = ClientPool(timeout_s=5)
        client = pool.get()
        backend = client._transport._pool._network_backend  # pyright: ignore[reportPrivateUsage]
        assert isinstance(backend, AsyncioBackend)
        for n in (0, 10, 1000):
            response = await client.post(url, content=b"x" * n)
            assert response.text == f"got {n}"
        await pool.aclose()
    assert server.connections == 1


@aio
async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def one_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_response(b"once"))  # keep-alive promised, then closed anyway
        await writer.drain()

    server = Server(one_then_close)
    async with server as url, _client() as client:
        for _ in range(3):
            assert (await client.get(url)).text == "once"
            await asyncio.sleep(0.05)  # the FIN arrives while the connection is idle
    assert server.connections == 3


@aio
async def test_read_timeout_is_the_libraries_own_error() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    async with Server(silent) as url, _client(timeout=0.2) as client:
        t0 = time.monotonic()
        with pytest.raises(httpx2.ReadTimeout):
            await client.get(url)
        assert time.monotonic() - t0 < 2


@aio
async def test_connect_error_on_a_closed_port() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with _client(timeout=2) as client:
        with pytest.raises(httpx2.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")


@aio
async def test_large_bodies_both_ways_with_backpressure() -> None:
    big = bytes(range(256)) * (6 * 4096)  # 6 MiB: past the protocol's pause threshold

    async def slow_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        received = 0
        while received < length:
            chunk = await reader.read(65536)
            received += len(chunk)
            await asyncio.sleep(0)  # the client's writes back up meanwhile
        writer.write(_response(big))
        await writer.drain()

    async with Server(slow_reader) as url, _client(timeout=30) as client:
        response = await client.post(url, content=big)
        assert response.content == big


@aio
async def test_a_response_cut_mid_body_is_an_error_not_a_short_answer() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()

    async with Server(cut) as url, _client(timeout=5) as client:
        with pytest.raises((httpx2.RemoteProtocolError, httpx2.ReadError)):
            await client.get(url)


@aio
async def test_streamed_chunks_arrive_as_they_are_sent() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"data: 1\n\n", b"data: 2\n\n", b"data: 3\n\n"):
            writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with (Server(chunked) as url, _client(timeout=5) as client,
                client.stream("GET", url) as response):
        seen = [chunk async for chunk in response.aiter_bytes()]
    assert b"".join(seen) == b"data: 1\n\ndata: 2\n\ndata: 3\n\n"
    assert len(seen) >= 2  # not buffered into one piece


@aio
async def test_tls_with_a_trusted_test_ca() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    server = Server(echo_keepalive, ssl_ctx=server_ctx)
    async with server as url, _client(verify=client_ctx, timeout=5) as client:
        for n in (3, 70000):
            assert (await client.post(url, content=b"y" * n)).text == f"got {n}"
    assert server.connections == 1


@aio
async def test_tls_to_an_untrusted_server_is_a_connect_error() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    async with Server(echo_keepalive, ssl_ctx=server_ctx) as url, _client(timeout=5) as client:
        with pytest.raises(httpx2.ConnectError):
            await client.get(url)


def test_install_leaves_other_transports_alone() -> None:
    assert install(None) is False
    assert install(httpx2.MockTransport(lambda request: httpx2.Response(200))) is False
    proxied = httpx2.AsyncHTTPTransport(proxy="http://127.0.0.1:9")
    assert install(proxied) is False
    assert isinstance(httpx2.AsyncHTTPTransport()._pool,  # pyright: ignore[reportPrivateUsage]
                      httpcore2.AsyncConnectionPool)


@aio
async def test_switched_off_our_clients_keep_httpx_default_backend(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ClientPool, "native_io", False)
    pool = ClientPool(timeout_s=5)
    backend = pool.get()._transport._pool._network_backend  # pyright: ignore[reportPrivateUsage]
    assert not isinstance(backend, AsyncioBackend)
    await pool.aclose()


def test_plain_http_clients_load_no_trust_anchors_and_fail_closed_on_tls(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.lower().endswith("_proxy")]:
        monkeypatch.delenv(name)
    local = ssl_context(httpx2, "http://127.0.0.1:8000/v1")
    assert local.cert_store_stats()["x509_ca"] == 0
    assert local.verify_mode == ssl.CERT_REQUIRED
    assert local.check_hostname
    shared = ssl_context(httpx2, "https://api.openai.com/v1")
    assert shared is ssl_context(httpx2, None) is not local
    monkeypatch.setenv("HTTPS_PROXY", "https://proxy.invalid:3128")
    assert ssl_context(httpx2, "http://127.0.0.1:8000/v1") is shared

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)

    @aio
    async def tls_with_the_local_context() -> None:
        async with (Server(echo_keepalive, ssl_ctx=server_ctx) as url,
                    _client(verify=local, timeout=5) as client):
            with pytest.raises(httpx2.ConnectError):
                await client.get(url)

    tls_with_the_local_context()
