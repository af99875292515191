"""Shared HTTP machinery for provider clients: clients per loop, retries, error mapping, SSE.

Retries use tenacity: exponential backoff with full jitter, honouring `Retry-After` (seconds or an
HTTP date) on 429/503, for 408/409/429/5xx and connection errors; other 4xx are never retried.
Each attempt has its own timeout. The first attempt runs without tenacity (it is the one that
almost always succeeds); tenacity takes over, with the same numbering, once it has failed.

Transport: the clients we create are `httpx2.AsyncClient` when `httpx2` is installed (the
API-compatible fork that openai >= 3 uses; its connection pool does not rescan every
connection per request, which costs httpx 0.28 2-3x the CPU per call at 100 concurrent
requests, see benchmarks/README.md), else `httpx.AsyncClient`. A client given by the user may
be either; errors from both are mapped.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import functools
import importlib
import os
import random
import ssl
import sys
import time
import urllib.parse
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from agentnb.core import (
    ConfigError,
    ModelConnectionError,
    ModelError,
    ModelHTTPError,
    ModelTimeout,
)
from agentnb.models._h1pool import H1Pool
from agentnb.models._netio import install

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = [
    "ClientPool",
    "Posted",
    "SSEEvent",
    "aiter_sse",
    "check_base_url",
    "observe_retries",
    "raise_for_status",
    "retry_after_s",
    "send_with_retries",
]

T = TypeVar("T")

RetryHook = Callable[[int, BaseException, float], None]
"""Called before a retry sleep with (attempt number, error, sleep seconds)."""


_KEEPALIVE = 128
"""Idle keep-alive connections our clients keep (see `ClientPool.get`)."""


@functools.cache
def transport_module() -> ModuleType:
    """The HTTP library our own clients are built with: `httpx2` when installed, else `httpx`.

    Example:
        >>> transport_module().__name__ in ("httpx", "httpx2")
        True
    """
    try:
        return importlib.import_module("httpx2")
    except ImportError:
        return importlib.import_module("httpx")


_ERRORS: dict[tuple[Any, Any], dict[str, tuple[type[BaseException], ...]]] = {}


def _transport_errors() -> dict[str, tuple[type[BaseException], ...]]:
    """Exception classes by kind, from whichever of httpx and httpx2 are loaded.

    A client can only raise errors of a library that is imported, so neither is imported here
    just to name its errors (each costs memory and import time).
    """
    transport_module()
    key = (sys.modules.get("httpx"), sys.modules.get("httpx2"))
    found = _ERRORS.get(key)
    if found is None:
        libs = [lib for lib in key if lib is not None]

        def of(*names: str) -> tuple[type[BaseException], ...]:
            return tuple(getattr(lib, n) for lib in libs for n in names)

        found = _ERRORS[key] = {
            "timeout": of("TimeoutException"),
            "connect": of("ConnectError", "RemoteProtocolError", "ReadError", "WriteError"),
            "http": of("HTTPError")}
    return found


def check_base_url(url: str, *, what: str, source: str, example: str) -> str:
    """Return `url` if it is an http(s) URL with a host and a valid port, else raise.

    Raises:
        ConfigError: naming the URL, what it is for and where it came from.

    Example:
        >>> check_base_url("http://127.0.0.1:8000/v1", what="OpenAI base URL",
        ...                source="argument", example="http://127.0.0.1:8000/v1")
        'http://127.0.0.1:8000/v1'
    """
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port  # raises ValueError outside 0-65535 or when not a number
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        msg = f"{what} {url!r} is not an http(s) URL with a host and a port in 0-65535."
        raise ConfigError(msg, source=source, hint=f"Use e.g. `{example}`.")
    return url


class ClientPool:
    """One async HTTP client per event loop, created lazily (STYLE B5.7).

    A client given by the user (`http_client=`, httpx or httpx2) is used as is and never
    closed by us. The clients we create come from `transport_module()`.
    """

    native_io = True
    """Whether clients we create use `agentnb.models._netio`'s asyncio backend (class-wide)."""
    direct = True
    """Whether `post` on clients we create goes straight to the connection pool (class-wide)."""

    def __init__(self, *, timeout_s: float, given: Any = None, limits: Any = None,
                 base_url: str | None = None) -> None:
        self._base_url = base_url
        self._given = given
        self._timeout_s = timeout_s
        self._limits = limits
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._routes: weakref.WeakKeyDictionary[Any, tuple[str, _Route | None]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> Any:  # Any: an httpx or httpx2 AsyncClient
        """The client for the running loop."""
        if self._given is not None:
            return self._given
        running = asyncio.get_running_loop()
        client = self._clients.get(running)
        if client is None or client.is_closed:
            lib = transport_module()
            # Idle keep-alive connections: `post` keeps them on a stack (O(1) per call, see
            # `_h1pool`), so enough stay warm that 100 concurrent calls do not reconnect. The
            # transport's own pool (streamed calls) probes each idle one per request, which the
            # asyncio backend makes two attribute reads.
            limits = self._limits or lib.Limits(max_connections=1000,
                                                max_keepalive_connections=_KEEPALIVE)
            client = lib.AsyncClient(timeout=self._timeout_s, limits=limits,
                                     verify=ssl_context(lib, self._base_url))
            # The default transport's pool gets the asyncio-native network backend (env proxies,
            # mounted separately by the client, keep httpx's own).
            if self.native_io:
                install(getattr(client, "_transport", None))
            self._clients[running] = client
        return client

    async def post(self, url: str, *, content: bytes, headers: Mapping[str, str]) -> Posted:
        """POST `content` to `url` and read the whole answer.

        A client we made sends it straight into its transport's connection pool: the client's
        layers above it (request building and header merging, auth and redirect flows, cookies,
        event hooks, response wrapping) do nothing for our clients and cost about a third of
        the HTTP CPU per call. Errors are mapped exactly as the transport maps them. A client
        given by the user, and a URL its proxy settings route through a proxy, go through
        the client as usual.
        """
        client = self.get()
        route = self._route(client, url)
        if route is None:
            response = await client.post(url, content=content, headers=headers)
            return Posted(response.status_code, dict(response.headers), response.content)
        return await route.post(content, headers)

    def _route(self, client: Any, url: str) -> _Route | None:
        if self._given is not None or not self.direct:
            return None
        cached = self._routes.get(client)
        if cached is None or cached[0] != url:
            cached = (url, _Route.make(client, url))
            self._routes[client] = cached
        return cached[1]

    async def aclose(self) -> None:
        """Close the client of the running loop, if we made it."""
        if self._given is not None:
            return
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            cached = self._routes.pop(client, None)
            if cached is not None and cached[1] is not None:
                await cached[1].aclose()
            await client.aclose()


class Posted(NamedTuple):
    """A whole HTTP answer: what `raise_for_status` and the parsers need."""

    status_code: int
    headers: dict[str, str]
    """Lower-case names (as `dict(httpx.Headers)` gives them)."""
    content: bytes
    """The body, decoded when the server sent a `content-encoding`."""


class _Route:
    """How `ClientPool.post` reaches one URL through one client's connection pool."""

    __slots__ = ("defaults", "encoded", "h1", "lib", "mapper", "pool", "request_cls", "timeout",
                 "url")

    def __init__(self, client: Any, lib: ModuleType, url: Any, mapper: Callable[[], Any]) -> None:
        self.lib, self.mapper = lib, mapper
        self.pool = client._transport._pool
        self.timeout = client.timeout.as_dict()
        # The client's default headers (user agent, accepted encodings), as it would send them.
        self.defaults = {"host": url.netloc.decode("ascii"),
                         **{k.lower(): v for k, v in client.headers.items()}}
        core = importlib.import_module("httpcore2" if lib.__name__ == "httpx2" else "httpcore")
        self.url = core.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port,
                            target=url.raw_path)
        self.request_cls = core.Request
        # The header lines of a request but its length, by the caller's headers: a model sends
        # the same ones on every call, so they are merged and encoded once.
        self.encoded: dict[tuple[tuple[str, str], ...], list[tuple[bytes, bytes]]] = {}
        # One origin, HTTP/1.1, whole answers: a stack of idle connections serves it in O(1).
        self.h1 = H1Pool(core, self.pool, self.url.origin) if H1Pool.fits(self.pool) else None

    @classmethod
    def make(cls, client: Any, url: str) -> _Route | None:
        """The route, or None when the client would not send `url` to its own pool."""
        lib = importlib.import_module(type(client).__module__.split(".")[0])
        parsed = lib.URL(url)
        transport = getattr(client, "_transport", None)
        pick = getattr(client, "_transport_for_url", None)
        if (parsed.scheme not in ("http", "https") or getattr(transport, "_pool", None) is None
                or pick is None
                or pick(parsed) is not transport or type(transport) is not lib.AsyncHTTPTransport
                or client.event_hooks["request"] or client.event_hooks["response"]
                or client.auth is not None):
            return None
        try:
            default = importlib.import_module(f"{lib.__name__}._transports.default")
            mapper = default.map_httpcore_exceptions
        except (ImportError, AttributeError):
            return None
        return cls(client, lib, parsed, mapper)

    async def post(self, content: bytes, headers: Mapping[str, str]) -> Posted:
        key = tuple(headers.items())
        lines = self.encoded.get(key)
        if lines is None:
            merged = {**self.defaults, **{k.lower(): v for k, v in headers.items()}}
            merged.pop("content-length", None)
            lines = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in merged.items()]
            if len(self.encoded) >= 64:
                self.encoded.clear()
            self.encoded[key] = lines
        sent = [*lines, (b"content-length", b"%d" % len(content))]
        with self.mapper():
            if self.h1 is not None:
                # No `core.Request`: its header checks and copies were a twentieth of the
                # client's Python per call, and the connection checks every line itself.
                status, raw, body = await self.h1.send(b"POST", self.url.target, sent,
                                                       content, self.timeout)
            else:
                request = self.request_cls(b"POST", self.url, content=content, headers=sent,
                                           extensions={"timeout": self.timeout})
                response = await self.pool.handle_async_request(request)
                try:
                    body = b"".join([chunk async for chunk in response.stream])
                finally:
                    await response.aclose()
                status, raw = response.status, response.headers
        names = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}
        if names.get("content-encoding", "identity") != "identity":
            # The library's response decodes it, as the client would.
            body = self.lib.Response(status, headers=raw, content=body).content
        return Posted(status, names, body)

    async def aclose(self) -> None:
        """Close the connections this route keeps."""
        if self.h1 is not None:
            await self.h1.aclose()


@functools.cache
def _shared_context(lib: ModuleType) -> Any:
    return lib.create_ssl_context()


@functools.cache
def _no_trust_context() -> ssl.SSLContext:
    # Verification stays on, with no trust anchors: any TLS use fails closed.
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _https_proxy_configured() -> bool:
    return any(name.lower().endswith("_proxy") and value.lower().startswith("https:")
               for name, value in os.environ.items())


def ssl_context(lib: ModuleType, base_url: str | None) -> ssl.SSLContext:
    """The TLS context for a client of ours talking to `base_url`.

    httpx builds a context per client and loads the CA bundle into it (~0.8-3.5 MiB and
    40-70 ms each). Our clients share one per library, built on first use; a client for a plain
    `http://` server (vLLM, Ollama, llama.cpp on a local port) gets a context with no trust
    anchors, so nothing is loaded and any TLS use fails verification instead of going
    unchecked. An `https` proxy in the environment gets the shared, verifying one.

    Example:
        >>> import httpx2
        >>> ssl_context(httpx2, "https://api.openai.com/v1") is ssl_context(httpx2, None)
        True
        >>> ssl_context(httpx2, "http://127.0.0.1:8000/v1").verify_mode.name
        'CERT_REQUIRED'
    """
    if (base_url is not None and base_url.lower().startswith("http://")
            and not _https_proxy_configured()):
        return _no_trust_context()
    return _shared_context(lib)


def retry_after_s(headers: dict[str, str]) -> float | None:
    """Parse `Retry-After` (or `retry-after-ms`) into seconds.

    Example:
        >>> retry_after_s({"retry-after": "2"})
        2.0
        >>> retry_after_s({"retry-after-ms": "150"})
        0.15
    """
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(parsed.timestamp() - time.time(), 0.0)


def raise_for_status(response: Any, body: str, *, model: str) -> None:  # httpx/httpx2 Response
    """Raise `ModelHTTPError` for a non-2xx response."""
    if response.status_code < 400:
        return
    raise ModelHTTPError(status_code=response.status_code, body=body, model=model,
                         headers=dict(response.headers))


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, ModelHTTPError):
        return exc.retryable
    return isinstance(exc, (ModelTimeout, ModelConnectionError))


def _wait(base_s: float, cap_s: float) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ModelHTTPError):
            hinted = retry_after_s(exc.headers)
            if hinted is not None:
                return min(hinted, 60.0)
        # Full jitter (AWS architecture blog): spreads retrying clients apart.
        return random.uniform(0, min(cap_s, base_s * 2 ** (state.attempt_number - 1)))

    return wait


_OBSERVER: contextvars.ContextVar[RetryHook | None] = contextvars.ContextVar(
    "agentnb_retry_observer", default=None)


@contextlib.contextmanager
def observe_retries(hook: RetryHook) -> Iterator[None]:
    """Report every retry of a model call made inside the block to `hook`.

    The runtime uses it to put each retry on the model call's span, whichever client retries.

    Example:
        >>> seen = []
        >>> with observe_retries(lambda attempt, error, sleep_s: seen.append(attempt)):
        ...     pass
        >>> seen
        []
    """
    token = _OBSERVER.set(hook)
    try:
        yield
    finally:
        _OBSERVER.reset(token)


async def send_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    model: str,
    url: str,
    max_retries: int,
    timeout_s: float,
    backoff_base_s: float = 0.5,
    backoff_cap_s: float = 20.0,
    on_retry: RetryHook | None = None,
) -> T:
    """Run `attempt` with a per-attempt timeout, mapping transport errors and retrying.

    Raises:
        ModelHTTPError: a non-retryable status, or the last retryable one.
        ModelTimeout: the last attempt timed out.
        ModelConnectionError: the server could not be reached.
    """
    errors = _transport_errors()

    async def one() -> T:
        try:
            async with asyncio.timeout(timeout_s):
                return await attempt()
        except TimeoutError:
            msg = f"Model {model!r} did not answer within {timeout_s}s ({url})."
            raise ModelTimeout(msg, model=model, timeout_s=timeout_s) from None
        except errors["timeout"]:
            msg = f"Model {model!r} timed out talking to {url}."
            raise ModelTimeout(msg, model=model, timeout_s=timeout_s) from None
        except errors["connect"] as exc:
            msg = f"Cannot reach model {model!r} at {url}: {exc or type(exc).__name__}."
            raise ModelConnectionError(msg, model=model, url=url) from None
        except errors["http"] as exc:
            msg = f"HTTP failure calling model {model!r} at {url}: {exc!r}."
            raise ModelError(msg, model=model) from None

    # Fast path: the first attempt needs no retry machinery unless it fails.
    try:
        return await one()
    except (ModelHTTPError, ModelTimeout, ModelConnectionError) as exc:
        if max_retries <= 0 or not _is_retryable(exc):
            raise
        first: BaseException | None = exc

    async def again() -> T:
        # Tenacity's attempt 1 is the failure above, replayed, so the numbering, the waits
        # and `on_retry` are exactly those of a loop that made every attempt itself.
        nonlocal first
        if first is not None:
            failed, first = first, None
            raise failed
        return await one()

    from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

    observer = _OBSERVER.get()

    def before_sleep(state: RetryCallState) -> None:
        if state.outcome is None:
            return
        exc = state.outcome.exception()
        sleep = state.next_action.sleep if state.next_action else 0.0
        if exc is None:
            return
        for hook in (on_retry, observer):
            if hook is not None:
                hook(state.attempt_number, exc, sleep)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(max_retries + 1),
        wait=_wait(backoff_base_s, backoff_cap_s),
        retry=retry_if_exception(_is_retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(again)


class SSEEvent:
    """One server-sent event."""

    __slots__ = ("data", "event")

    def __init__(self, event: str, data: str) -> None:
        self.event = event
        self.data = data

    def __repr__(self) -> str:
        return f"SSEEvent(event={self.event!r}, data={self.data!r})"


async def aiter_sse(lines: AsyncIterator[str]) -> AsyncIterator[SSEEvent]:
    """Parse server-sent events from decoded lines (WHATWG rules: multi-line data, comments).

    Example:
        >>> import asyncio
        >>> async def lines():
        ...     for line in ["event: ping", "data: {}", "", ": comment", "data: a", "data: b", ""]:
        ...         yield line
        >>> async def collect():
        ...     return [(e.event, e.data) async for e in aiter_sse(lines())]
        >>> asyncio.run(collect())
        [('ping', '{}'), ('message', 'a\\nb')]
    """
    event = ""
    data: list[str] = []
    async for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data:
                yield SSEEvent(event or "message", "\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    if data:
        yield SSEEvent(event or "message", "\n".join(data))
