"""HTTP clients for tools, confined to the network allow-list (see `_network`).

Every transport of the client (the default one, proxy mounts, user mounts) is wrapped in a guard
that checks each request before it reaches the wire. httpx follows redirects by sending a new
request through the same transport, so every hop is checked: a redirect to an unlisted host
raises `NetworkBlocked` without a connection to it.

The guard checks both the scope that was active when the client was made and the one active
when the request is sent; both must allow. A client made inside a tool's scope stays confined if
it is used later elsewhere.

This module imports httpx at the top; `agentnb.governance` loads it lazily, on the first use of
`http_client` or `http_client_sync`.
"""

from __future__ import annotations

from typing import Any

import httpx

from agentnb.core import UsageError
from agentnb.governance._network import NetworkScope, check_target, current_network_scope

__all__ = ["http_client", "http_client_sync"]


def _check(request: httpx.Request, scope: NetworkScope | None) -> None:
    url = request.url
    check_target(url.scheme, url.raw_host.decode("ascii"), str(url), scopes=(scope,))


class _GuardedAsyncTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, scope: NetworkScope | None) -> None:
        self._inner = inner
        self._scope = scope

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        _check(request, self._scope)
        return await self._inner.handle_async_request(request)

    async def __aenter__(self) -> _GuardedAsyncTransport:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._inner.__aexit__(*exc)

    async def aclose(self) -> None:
        await self._inner.aclose()


class _GuardedTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, scope: NetworkScope | None) -> None:
        self._inner = inner
        self._scope = scope

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _check(request, self._scope)
        return self._inner.handle_request(request)

    def __enter__(self) -> _GuardedTransport:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._inner.__exit__(*exc)

    def close(self) -> None:
        self._inner.close()


def _guard_mounts(client: httpx.AsyncClient | httpx.Client, wrap: Any) -> None:
    # httpx keeps its transports in `_transport` and `_mounts` (proxies, `mounts=`); there is no
    # public hook that sees every hop before it is sent, so we wrap them in place. A test pins
    # this against the installed httpx.
    try:
        client._transport = wrap(client._transport)  # pyright: ignore[reportPrivateUsage]
        client._mounts = {  # pyright: ignore[reportPrivateUsage]
            pattern: None if transport is None else wrap(transport)
            for pattern, transport in client._mounts.items()  # pyright: ignore[reportPrivateUsage]
        }
    except AttributeError as exc:  # pragma: no cover - only on an incompatible httpx
        msg = f"httpx {httpx.__version__} has no `_transport`/`_mounts`; cannot confine it."
        raise UsageError(msg, hint="Install httpx>=0.27,<1.") from exc


def http_client(**httpx_kwargs: Any) -> httpx.AsyncClient:  # Any: httpx's own keyword set
    """An `httpx.AsyncClient` confined to the active network allow-list.

    Takes the same keyword arguments as `httpx.AsyncClient`. Refused requests raise
    `NetworkBlocked` before any connection is made, redirects included.

    Example:
        >>> import asyncio
        >>> from agentnb.core import NetworkBlocked
        >>> from agentnb.governance import network_scope
        >>> async def fetch():
        ...     async with http_client() as client:
        ...         await client.get("http://evil.example/")
        >>> with network_scope(["api.example.com"]):
        ...     try:
        ...         asyncio.run(fetch())
        ...     except NetworkBlocked as e:
        ...         print(e.host)
        evil.example
    """
    scope = current_network_scope()
    client = httpx.AsyncClient(**httpx_kwargs)
    _guard_mounts(client, lambda inner: _GuardedAsyncTransport(inner, scope))
    return client


def http_client_sync(**httpx_kwargs: Any) -> httpx.Client:  # Any: httpx's own keyword set
    """An `httpx.Client` confined to the active network allow-list, for sync tools.

    Example:
        >>> from agentnb.core import NetworkBlocked
        >>> from agentnb.governance import network_scope
        >>> with network_scope(["api.example.com"]), http_client_sync() as client:
        ...     try:
        ...         client.get("http://10.0.0.1/")
        ...     except NetworkBlocked as e:
        ...         print(e.host)
        10.0.0.1
    """
    scope = current_network_scope()
    client = httpx.Client(**httpx_kwargs)
    _guard_mounts(client, lambda inner: _GuardedTransport(inner, scope))
    return client
