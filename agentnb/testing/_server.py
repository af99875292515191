"""A scripted HTTP/1.1 server on 127.0.0.1 in a background thread: the base of the fake providers.

It speaks just enough HTTP/1.1 for httpx (keep-alive, Content-Length bodies, chunked replies),
which lets tests see what only a socket shows: streamed SSE arriving in pieces, timeouts, dropped
connections, 429/500 with `Retry-After`, and gzip bodies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip as gzip_module
import json
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["LoopbackServer", "RecordedRequest", "Reply"]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RecordedRequest:
    """A request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    """Header names lowercased."""
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body or b"null")


@dataclasses.dataclass(kw_only=True, slots=True)
class Reply:
    """What the server answers.

    Exactly one of `json`, `body` or `sse` is normally set. `sse` chunks are written one by one
    (chunked transfer encoding) with `chunk_delay_s` between them, so a client sees them arrive
    separately; a chunk may split an event anywhere.
    """

    status: int = 200
    json: Any = None
    body: bytes | str | None = None
    sse: list[bytes | str] | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    delay_s: float = 0.0
    """Wait before sending the status line (to trigger client timeouts)."""
    chunk_delay_s: float = 0.0
    gzip: bool = False
    """Compress the body with gzip and say so in Content-Encoding."""
    drop: bool = False
    """Close the connection without answering."""
    drop_after_chunks: int | None = None
    """With `sse`: close the connection abruptly after this many chunks (no final chunk)."""


Handler = Callable[[RecordedRequest], Reply]

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            408: "Request Timeout", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 529: "Overloaded"}


class LoopbackServer:
    """Serve `handler` on 127.0.0.1 on a free port, in a daemon thread with its own loop.

    Example:
        >>> import httpx
        >>> with LoopbackServer(lambda req: Reply(json={"path": req.path})) as server:
        ...     httpx.get(server.url + "/hello").json()
        {'path': '/hello'}
    """

    def __init__(self, handler: Handler, *, host: str = "127.0.0.1") -> None:
        self.handler = handler
        self.host = host
        self.port = 0
        self.requests: list[RecordedRequest] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> LoopbackServer:
        """Start serving; returns at once when the port is bound."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._client, self.host, 0, backlog=2048)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name="agentnb-loopback", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        async def shutdown() -> None:
            server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = self._server = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                with self._lock:
                    self.requests.append(request)
                try:
                    reply = self.handler(request)
                except Exception as exc:
                    reply = Reply(status=500, json={"error": {"message": f"handler: {exc!r}"}})
                if reply.delay_s:
                    await asyncio.sleep(reply.delay_s)
                if reply.drop:
                    break
                await _write_reply(writer, reply)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> RecordedRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    if headers.get("content-encoding") == "gzip" and body:
        body = gzip_module.decompress(body)
    return RecordedRequest(method=method, path=path, headers=headers, body=body)


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


async def _write_reply(writer: asyncio.StreamWriter, reply: Reply) -> None:
    status_line = f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}\r\n"
    headers = {k.lower(): v for k, v in reply.headers.items()}
    if reply.sse is not None:
        headers.setdefault("content-type", "text/event-stream")
        headers["transfer-encoding"] = "chunked"
        head = status_line + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode("latin-1"))
        await writer.drain()
        for sent, chunk in enumerate(reply.sse):
            if reply.drop_after_chunks is not None and sent >= reply.drop_after_chunks:
                writer.transport.abort()
                return
            data = _bytes(chunk)
            if not data:
                continue
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()
            if reply.chunk_delay_s:
                await asyncio.sleep(reply.chunk_delay_s)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return
    if reply.json is not None:
        body = json.dumps(reply.json).encode()
        headers.setdefault("content-type", "application/json")
    else:
        body = _bytes(reply.body or b"")
    if reply.gzip:
        body = gzip_module.compress(body)
        headers["content-encoding"] = "gzip"
    headers["content-length"] = str(len(body))
    head = status_line + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    writer.write(head.encode("latin-1") + body)
    await writer.drain()
