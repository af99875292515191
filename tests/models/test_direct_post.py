"""`ClientPool.post`: our clients send straight into their connection pool, against real
loopback servers; given clients, proxied URLs and hooked clients go through the client."""

from __future__ import annotations

import asyncio
import gzip
import json

import httpx
import httpx2
import pytest

from agentnb.core import ModelConnectionError, ModelTimeout
from agentnb.models._http import ClientPool, _Route, send_with_retries

from .test_netio import Server, _read_request, aio


class Recorder:
    """A keep-alive server that answers each request with `answer(head, body)` and keeps the
    request heads it saw."""

    def __init__(self, answer: object = None) -> None:
        self.heads: list[dict[str, str]] = []
        self.bodies: list[bytes] = []
        self.answer = answer

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            if reader.at_eof():
                return
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            self.heads.append({k.lower(): v for k, v in fields.items()})
            length = int(fields.get("Content-Length", fields.get("content-length", "0")))
            self.bodies.append(await reader.readexactly(length) if length else b"")
            status, extra, body = (self.answer(self.heads[-1], self.bodies[-1])  # type: ignore[operator]
                                   if self.answer else (200, b"", b'{"ok": true}'))
            writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%s\r\n%s"
                         % (status, len(body), extra, body))
            await writer.drain()


@aio
async def test_our_client_posts_straight_to_its_pool() -> None:
    server = Recorder()
    srv = Server(server)
    async with srv as url:
        pool = ClientPool(timeout_s=5, base_url=url)
        for n in (0, 10, 70_000):
            answer = await pool.post(url + "/v1/chat", content=b"x" * n,
                                     headers={"Authorization": "Bearer k", "X-Two": "2"})
            assert (answer.status_code, json.loads(answer.content)) == (200, {"ok": True})
            assert answer.headers["content-length"] == "12"
        assert pool._route(pool.get(), url + "/v1/chat") is not None  # pyright: ignore[reportPrivateUsage]
        await pool.aclose()
    assert srv.connections == 1  # keep-alive reused
    assert [len(b) for b in server.bodies] == [0, 10, 70_000]
    head = server.heads[-1]
    port = url.rsplit(":", 1)[1]
    assert head["host"] == f"127.0.0.1:{port}"
    assert head["authorization"] == "Bearer k"
    assert head["x-two"] == "2"
    assert head["content-length"] == "70000"
    assert head["user-agent"].startswith("python-httpx")  # the client's defaults still go out


@aio
async def test_a_compressed_answer_is_decoded() -> None:
    def answer(head: dict[str, str], body: bytes) -> tuple[int, bytes, bytes]:
        return 200, b"Content-Encoding: gzip\r\n", gzip.compress(b'{"z": 1}')

    async with Server(Recorder(answer)) as url:
        pool = ClientPool(timeout_s=5)
        got = await pool.post(url, content=b"{}", headers={})
        assert json.loads(got.content) == {"z": 1}
        await pool.aclose()


@aio
async def test_errors_map_as_through_the_client() -> None:
    def answer(head: dict[str, str], body: bytes) -> tuple[int, bytes, bytes]:
        return 429, b"Retry-After: 0\r\n", b'{"error": "slow down"}'

    async with Server(Recorder(answer)) as url:
        pool = ClientPool(timeout_s=5)
        got = await pool.post(url, content=b"{}", headers={})
        assert got.status_code == 429
        assert got.headers["retry-after"] == "0"
        await pool.aclose()

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    async with Server(stall) as url:
        pool = ClientPool(timeout_s=0.2)
        with pytest.raises(ModelTimeout):
            await send_with_retries(lambda: pool.post(url, content=b"{}", headers={}),
                                    model="m", url=url, max_retries=0, timeout_s=5)
        await pool.aclose()
    pool = ClientPool(timeout_s=2)
    with pytest.raises(ModelConnectionError):
        await send_with_retries(lambda: pool.post(url, content=b"{}", headers={}),
                                model="m", url=url, max_retries=0, timeout_s=5)
    await pool.aclose()


@aio
async def test_given_hooked_and_proxied_clients_go_through_the_client() -> None:
    seen: list[str] = []

    async def hook(request: httpx2.Request) -> None:
        seen.append(str(request.url))

    async with Server(Recorder()) as url:
        given = httpx2.AsyncClient(event_hooks={"request": [hook]})
        pool = ClientPool(timeout_s=5, given=given)
        assert (await pool.post(url + "/a", content=b"{}", headers={})).status_code == 200
        assert seen == [url + "/a"]
        await given.aclose()

        old = httpx.AsyncClient()
        pool = ClientPool(timeout_s=5, given=old)
        assert (await pool.post(url, content=b"{}", headers={})).status_code == 200
        # Without httpx2 our clients are httpx ones: the route works on httpcore's pool too.
        route = _Route.make(old, url + "/v1")
        assert route is not None
        assert (await route.post(b"{}", {"a": "b"})).content == b'{"ok": true}'
        assert route.h1 is not None  # httpcore's HTTP/1.1 connection under our stack
        assert route.h1.idle == 1
        await route.aclose()
        assert route.h1.idle == 0
        await old.aclose()

    assert _Route.make(httpx2.AsyncClient(event_hooks={"request": [hook]}), "http://h/") is None
    proxied = httpx2.AsyncClient(mounts={"http://h": httpx2.AsyncHTTPTransport(
        proxy="http://127.0.0.1:9")})
    assert _Route.make(proxied, "http://h/v1") is None
    assert _Route.make(proxied, "http://other/v1") is not None
    assert _Route.make(httpx2.AsyncClient(auth=("u", "p")), "http://h/") is None
    assert _Route.make(httpx2.AsyncClient(), "ftp://h/") is None  # the client says why
    assert _Route.make(httpx.AsyncClient(), "http://h/") is not None  # httpx's own pool too


@aio
async def test_switched_off_posts_go_through_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ClientPool, "direct", False)
    async with Server(Recorder()) as url:
        pool = ClientPool(timeout_s=5)
        assert (await pool.post(url, content=b"{}", headers={})).status_code == 200
        assert pool._route(pool.get(), url) is None  # pyright: ignore[reportPrivateUsage]
        await pool.aclose()


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:9/v1", "http://127.0.0.1:99999/v1",
                                 "http:///v1", "127.0.0.1:8000/v1"])
def test_a_base_url_that_cannot_be_posted_to_is_one_config_error(url: str) -> None:
    from agentnb.core import ConfigError
    from agentnb.models.anthropic import AnthropicModel
    from agentnb.models.openai import OpenAIModel

    with pytest.raises(ConfigError, match="not an http\\(s\\) URL") as caught:
        OpenAIModel("m", base_url=url, api_key="k")
    assert url.rstrip("/") in str(caught.value)
    with pytest.raises(ConfigError, match="Anthropic base URL"):
        AnthropicModel("m", base_url=url, api_key="k")
