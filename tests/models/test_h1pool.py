"""The HTTP/1.1 keep-alive stack under `ClientPool.post`, against real loopback servers."""

from __future__ import annotations

import asyncio
import ssl

import httpx2
import pytest
import trustme

from agentnb.core import ModelTimeout
from agentnb.models._http import ClientPool, send_with_retries

from .test_netio import Server, _read_request, _response, aio

pytestmark = pytest.mark.timeout(30)


class Counting:
    """Keep-alive echo that tracks how many connections are open at once."""

    def __init__(self, delay: float = 0.0, close_after: int | None = None) -> None:
        self.open = 0
        self.peak = 0
        self.delay = delay
        self.close_after = close_after

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.peak = max(self.peak, self.open)
        served = 0
        try:
            while (body := await _read_request(reader)) is not None:
                await asyncio.sleep(self.delay)
                served += 1
                last = self.close_after is not None and served >= self.close_after
                writer.write(_response(b"got " + str(len(body)).encode(), close=last))
                await writer.drain()
                if last:
                    return
        finally:
            self.open -= 1


def _pool(url: str, **limits: float) -> ClientPool:
    return ClientPool(timeout_s=5, base_url=url, limits=httpx2.Limits(
        max_connections=int(limits.get("max_connections", 100)),
        max_keepalive_connections=int(limits.get("max_keepalive_connections", 32)),
        keepalive_expiry=limits.get("keepalive_expiry", 5.0)))


async def _post(pool: ClientPool, url: str, n: int = 3) -> str:
    return (await pool.post(url, content=b"x" * n, headers={})).content.decode()


def _stack(pool: ClientPool, url: str):
    route = pool._route(pool.get(), url)  # pyright: ignore[reportPrivateUsage]
    assert route is not None
    assert route.h1 is not None
    return route.h1


@aio
async def test_sequential_calls_share_one_connection_and_concurrent_ones_reuse_the_stack() -> None:
    handler = Counting(delay=0.01)
    server = Server(handler)
    async with server as url:
        pool = _pool(url, max_keepalive_connections=4)
        assert [await _post(pool, url, n) for n in (1, 2, 3)] == ["got 1", "got 2", "got 3"]
        assert server.connections == 1
        got = await asyncio.gather(*(_post(pool, url, i) for i in range(10)))
        assert got == [f"got {i}" for i in range(10)]
        stack = _stack(pool, url)
        assert stack.idle == 4  # the rest closed on release
        assert stack._open == 4  # pyright: ignore[reportPrivateUsage]
        before = server.connections
        await asyncio.gather(*(_post(pool, url) for _ in range(4)))
        assert server.connections == before  # served by the idle four
        await pool.aclose()
        assert stack.idle == 0


@aio
async def test_max_connections_queues_calls_and_pool_timeout_maps_to_model_timeout() -> None:
    handler = Counting(delay=0.05)
    async with Server(handler) as url:
        pool = _pool(url, max_connections=3)
        got = await asyncio.gather(*(_post(pool, url, i) for i in range(12)))
        assert got == [f"got {i}" for i in range(12)]
        assert handler.peak == 3
        await pool.aclose()

    slow = Counting(delay=1.0)
    async with Server(slow) as url:
        pool = ClientPool(timeout_s=5, limits=httpx2.Limits(max_connections=1),
                          base_url=url)
        pool.get()
        first = asyncio.ensure_future(_post(pool, url))
        await asyncio.sleep(0.1)
        route = pool._route(pool.get(), url)  # pyright: ignore[reportPrivateUsage]
        assert route is not None
        route.timeout = {**route.timeout, "pool": 0.1}
        with pytest.raises(httpx2.PoolTimeout):
            await _post(pool, url)
        with pytest.raises(ModelTimeout):  # as send_with_retries sees it
            await send_with_retries(lambda: _post(pool, url), model="m", url=url,
                                    max_retries=0, timeout_s=5)
        assert await first == "got 3"
        await pool.aclose()


@aio
async def test_closed_expired_and_close_delimited_connections_are_not_reused() -> None:
    once = Counting(close_after=1)
    server = Server(once)
    async with server as url:
        pool = _pool(url)
        for _ in range(3):
            assert await _post(pool, url) == "got 3"
        assert server.connections == 3  # each answer said Connection: close
        await pool.aclose()

    async def drop_when_idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_response(b"one"))
        await writer.drain()
        writer.close()  # no Connection: close header: the pool learns it from the socket

    async def two_calls_apart(handler: object, pause: float, **limits: float) -> list[str]:
        """Two calls `pause` seconds apart; the server must have seen two connections."""
        server = Server(handler)  # type: ignore[arg-type]
        async with server as url:
            pool = _pool(url, **limits)
            got = [await _post(pool, url)]
            await asyncio.sleep(pause)
            got.append(await _post(pool, url))
            await pool.aclose()
        assert server.connections == 2
        return got

    assert await two_calls_apart(drop_when_idle, 0.05) == ["one", "one"]
    assert await two_calls_apart(Counting(), 0.1, keepalive_expiry=0.05) == ["got 3", "got 3"]


@aio
async def test_a_cancelled_or_timed_out_call_drops_its_connection() -> None:
    handler = Counting(delay=0.5)
    server = Server(handler)
    async with server as url:
        pool = _pool(url)
        task = asyncio.ensure_future(_post(pool, url))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stack = _stack(pool, url)
        assert (stack.idle, stack._open) == (0, 0)  # pyright: ignore[reportPrivateUsage]
        with pytest.raises(ModelTimeout):
            await send_with_retries(lambda: _post(pool, url), model="m", url=url,
                                    max_retries=0, timeout_s=0.1)
        assert (stack.idle, stack._open) == (0, 0)  # pyright: ignore[reportPrivateUsage]
        handler.delay = 0
        assert await _post(pool, url) == "got 3"
        await pool.aclose()


def test_tls_with_the_clients_verify_context() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    @aio
    async def main() -> None:
        server = Server(Counting(), ssl_ctx=server_ctx)
        async with server as url:
            pool = ClientPool(timeout_s=5, given=None, base_url=url)
            client = httpx2.AsyncClient(verify=client_ctx, timeout=5)
            pool._clients[asyncio.get_running_loop()] = client  # pyright: ignore[reportPrivateUsage]
            for _ in range(3):
                assert await _post(pool, url) == "got 3"
            assert server.connections == 1
            assert _stack(pool, url).idle == 1
            await pool.aclose()

    main()
