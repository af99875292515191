"""`H1Connection` (llhttp through httptools) against loopback servers that answer in every
shape the wire allows: chunked, interim 1xx, HTTP/1.0, cut short, malformed, too much."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx2
import pytest

from agentnb.core import ModelConnectionError
from agentnb.models._http import ClientPool
from agentnb.models.openai import OpenAIModel

from .test_netio import Handler, Server, _read_request, aio

pytestmark = pytest.mark.timeout(30)

Answer = Callable[[bytes], bytes]


def _serving(answer: Answer, *, close: bool = False) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (body := await _read_request(reader)) is not None:
            writer.write(answer(body))
            await writer.drain()
            if close:
                return

    return handler


def _pool() -> ClientPool:
    return ClientPool(timeout_s=5, limits=httpx2.Limits(max_connections=10,
                                                         max_keepalive_connections=10))


async def _post(pool: ClientPool, url: str, body: bytes = b"xyz") -> tuple[int, bytes]:
    posted = await pool.post(url, content=body, headers={"content-type": "text/plain"})
    return posted.status_code, posted.content


@aio
async def test_a_chunked_answer_is_joined_and_the_connection_kept() -> None:
    def chunked(body: bytes) -> bytes:
        return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"4\r\ngot \r\n" + b"%x\r\n%s\r\n" % (len(body), body) + b"0\r\n\r\n")

    server = Server(_serving(chunked))
    async with server as url:
        pool = _pool()
        assert [await _post(pool, url, b"a" * n) for n in (1, 70_000)] == [
            (200, b"got a"), (200, b"got " + b"a" * 70_000)]
        await pool.aclose()
    assert server.connections == 1


@aio
async def test_interim_1xx_answers_are_skipped() -> None:
    def with_interim(body: bytes) -> bytes:
        return (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-Final: yes\r\n\r\nok")

    async with Server(_serving(with_interim)) as url:
        pool = _pool()
        posted = await pool.post(url, content=b"x", headers={})
        assert (posted.status_code, posted.content) == (201, b"ok")
        assert posted.headers["x-final"] == "yes"
        assert "link" not in posted.headers
        await pool.aclose()


@aio
async def test_http_1_0_and_connection_close_answers_are_not_reused() -> None:
    answers = iter([b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nv0",
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nv1",
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv2",
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv3"])
    server = Server(_serving(lambda body: next(answers)))
    async with server as url:
        pool = _pool()
        assert [await _post(pool, url) for _ in range(4)] == [
            (200, b"v0"), (200, b"v1"), (200, b"v2"), (200, b"v3")]
        await pool.aclose()
    assert server.connections == 3  # v0 and v1 closed theirs; v2 and v3 share one


@aio
async def test_an_answer_that_runs_to_the_close_is_read_whole() -> None:
    body = b"z" * 200_000
    server = Server(_serving(lambda _: b"HTTP/1.1 200 OK\r\n\r\n" + body, close=True))
    async with server as url:
        pool = _pool()
        assert await _post(pool, url) == (200, body)
        assert await _post(pool, url) == (200, body)
        await pool.aclose()
    assert server.connections == 2


@aio
async def test_bytes_after_the_answer_make_the_connection_single_use() -> None:
    server = Server(_serving(lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
                             b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"))
    async with server as url:
        pool = _pool()
        assert [await _post(pool, url) for _ in range(2)] == [(200, b"a"), (200, b"a")]
        await pool.aclose()
    assert server.connections == 2


@pytest.mark.parametrize(("answer", "says"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "before the whole response body"),
    (b"", "disconnected without sending a response"),
    (b"HTTP/1.1 200 OK\r\nContent-Le", "disconnected without sending a response"),
    (b"SPDY/9 banana\r\n\r\n", "Malformed HTTP response"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n", "Malformed HTTP response"),
])
def test_a_cut_short_or_malformed_answer_is_one_model_connection_error(
        answer: bytes, says: str) -> None:
    async def main() -> None:
        async with Server(_serving(lambda _: answer, close=True)) as url:
            model = OpenAIModel("gpt-4o-mini", base_url=url + "/v1", api_key="sk-test",
                                max_retries=0)
            with pytest.raises(ModelConnectionError, match=says) as info:
                await model.request([])
            assert url in str(info.value)
            await model.aclose()

    asyncio.run(main())


@aio
async def test_a_header_that_would_split_the_request_is_refused_before_sending() -> None:
    server = Server(_serving(lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    async with server as url:
        pool = _pool()
        with pytest.raises(httpx2.LocalProtocolError, match="Illegal header value in 'x-note'"
                           ) as info:
            await pool.post(url, content=b"x", headers={"x-note": "a\r\nX-Injected: 1"})
        assert "Injected" not in str(info.value)  # values (often credentials) are not quoted
        assert await _post(pool, url) == (200, b"")  # the pool still works
        await pool.aclose()


@aio
async def test_credential_headers_are_checked_each_time_and_never_kept() -> None:
    from agentnb.models import _h1conn

    server = Server(_serving(lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    async with server as url:
        pool = _pool()
        for _ in range(2):
            response = await pool.post(url, content=b"x", headers={
                "Authorization": "Bearer sk-kept-nowhere-123", "x-api-key": "k-kept-nowhere-456",
                "x-note": "plain"})
            assert response.status_code == 200
        kept = {value for _, value in _h1conn._CHECKED}  # pyright: ignore[reportPrivateUsage]
        assert b"plain" in kept  # ordinary lines are still remembered
        assert not any(b"kept-nowhere" in value for value in kept)
        # Still checked: a bad credential line is refused, not sent.
        with pytest.raises(httpx2.LocalProtocolError, match="Illegal header value"):
            await pool.post(url, content=b"x", headers={"Authorization": "Bearer a\r\nX: 1"})
        await pool.aclose()
