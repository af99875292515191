"""Shared HTTP machinery for provider clients: clients per loop, retries, error mapping, SSE.

Retries use tenacity: exponential backoff with full jitter, honouring `Retry-After` (seconds or an
HTTP date) on 429/503, for 408/409/429/5xx and connection errors; other 4xx are never retried.
Each attempt has its own timeout.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import httpx

from agentnb.core import ModelConnectionError, ModelError, ModelHTTPError, ModelTimeout

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = [
    "ClientPool",
    "SSEEvent",
    "aiter_sse",
    "raise_for_status",
    "retry_after_s",
    "send_with_retries",
]

T = TypeVar("T")

RetryHook = Callable[[int, BaseException, float], None]
"""Called before a retry sleep with (attempt number, error, sleep seconds)."""


class ClientPool:
    """One `httpx.AsyncClient` per event loop, created lazily (STYLE B5.7).

    A client given by the user (`http_client=`) is used as is and never closed by us.
    """

    def __init__(self, *, timeout_s: float, given: httpx.AsyncClient | None = None,
                 limits: httpx.Limits | None = None) -> None:
        self._given = given
        self._timeout_s = timeout_s
        self._limits = limits or httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> httpx.AsyncClient:
        """The client for the running loop."""
        if self._given is not None:
            return self._given
        running = asyncio.get_running_loop()
        client = self._clients.get(running)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(timeout=self._timeout_s, limits=self._limits)
            self._clients[running] = client
        return client

    async def aclose(self) -> None:
        """Close the client of the running loop, if we made it."""
        if self._given is not None:
            return
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()


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


def raise_for_status(response: httpx.Response, body: str, *, model: str) -> None:
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
    from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

    async def one() -> T:
        try:
            async with asyncio.timeout(timeout_s):
                return await attempt()
        except TimeoutError:
            msg = f"Model {model!r} did not answer within {timeout_s}s ({url})."
            raise ModelTimeout(msg, model=model, timeout_s=timeout_s) from None
        except httpx.TimeoutException:
            msg = f"Model {model!r} timed out talking to {url}."
            raise ModelTimeout(msg, model=model, timeout_s=timeout_s) from None
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError,
                httpx.WriteError) as exc:
            msg = f"Cannot reach model {model!r} at {url}: {exc or type(exc).__name__}."
            raise ModelConnectionError(msg, model=model, url=url) from None
        except httpx.HTTPError as exc:
            msg = f"HTTP failure calling model {model!r} at {url}: {exc!r}."
            raise ModelError(msg, model=model) from None

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            exc = state.outcome.exception()
            sleep = state.next_action.sleep if state.next_action else 0.0
            if exc is not None:
                on_retry(state.attempt_number, exc, sleep)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(max_retries + 1),
        wait=_wait(backoff_base_s, backoff_cap_s),
        retry=retry_if_exception(_is_retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(one)


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
