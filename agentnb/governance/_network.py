"""The network allow-list: which hosts a tool may reach, as a context-local scope.

`network_scope(hosts)` sets the allow-list for the code inside it (a `ContextVar`, so it follows
asyncio tasks and `run_sync`); the runtime opens one from `Policy.network` around each tool call.
`check_url(url)` applies it; the clients from `http_client()` call it for every request they
send, redirects included, *before* a connection is opened.

Rules:

- Outside any scope, and inside `network_scope(None)`, every host is allowed. A notebook cell
  that calls a tool directly is not confined; an agent's tool call under a policy with
  `network=[...]` is.
- An entry is a host name (`api.example.com`: that host only), a wildcard (`*.example.com`: any
  subdomain, not `example.com` itself), or an IP address (`127.0.0.1`, `::1`).
- Names are compared lower-cased, without a trailing dot, in their IDNA (`xn--`) form.
- An IP literal in a URL is allowed only when the same address is listed, whatever its spelling:
  `http://2130706433/`, `http://0x7f.1/` and `http://127.1/` are all 127.0.0.1. Wildcards never
  match IP literals.
- Only `http` and `https` URLs are allowed.
- The host is the URL's real host: in `http://api.example.com@evil.com/` it is `evil.com`.

Not covered (say so in threat reviews): a listed name whose DNS points somewhere unexpected
(DNS rebinding), and tool code that builds its own client instead of using `http_client()`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import ipaddress
import socket
import urllib.parse
from collections.abc import Callable, Iterable, Iterator

from agentnb.core import ConfigError, NetworkBlocked

__all__ = [
    "NetworkDecision",
    "NetworkScope",
    "check_target",
    "check_url",
    "current_network_scope",
    "network_scope",
    "normalise_hosts",
]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class NetworkDecision:
    """What the allow-list said about one request (given to `on_decision` hooks)."""

    allowed: bool
    """Whether the request may be sent."""
    host: str
    """The request's host, normalised."""
    url: str
    """The full URL."""
    reason: str
    """Why: `listed`, `wildcard`, `unrestricted`, `not-listed`, `ip-literal`, `scheme`."""


DecisionHook = Callable[[NetworkDecision], None]
"""Called with every decision made inside a scope (the runtime audits refusals with it)."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class NetworkScope:
    """An active allow-list (`hosts=None`: any host) and its decision hook."""

    hosts: tuple[str, ...] | None
    """Normalised entries; None allows every host."""
    on_decision: DecisionHook | None = None
    """Called with every `NetworkDecision` made under this scope."""
    tool: str | None = None
    """The tool this scope confines, named in `NetworkBlocked`."""


_SCOPE: contextvars.ContextVar[NetworkScope | None] = contextvars.ContextVar(
    "agentnb_network_scope", default=None
)


def _normalise_name(host: str) -> str:
    host = host.strip().rstrip(".").lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _ip_of(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host string denotes if it is an IP literal in any spelling, else None."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        address = None
    if address is None:
        # Legacy inet_aton spellings that resolvers still accept: 2130706433, 0x7f.1, 127.1,
        # 0177.0.0.1. Only strings made of digits, dots and hex digits with an 0x can be one.
        lowered = host.lower()
        if lowered and all(c in "0123456789abcdefx." for c in lowered) and lowered[0].isdigit():
            try:
                address = ipaddress.IPv4Address(socket.inet_aton(lowered))
            except OSError:
                return None
        else:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def normalise_hosts(hosts: Iterable[str]) -> tuple[str, ...]:
    """Check and normalise allow-list entries.

    Raises:
        ConfigError: an entry is not a host (a URL, a path, `*`, an empty string).

    Example:
        >>> normalise_hosts(["API.Example.com.", "*.Example.org", "0x7f.1"])
        ('api.example.com', '*.example.org', '127.0.0.1')
    """
    out: list[str] = []
    for entry in hosts:
        if not isinstance(entry, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            msg = f"Network allow-list entry {entry!r} is not a host name."
            raise ConfigError(msg, hint='Use strings such as "api.example.com".')
        raw = entry.strip()
        bad = not raw or raw == "*" or any(c in raw for c in "/@ \\?#") or (
            raw.count(":") == 1 and not raw.startswith("[")
        )
        if bad or ("*" in raw and not (raw.startswith("*.") and "*" not in raw[2:])):
            msg = f"Network allow-list entry {entry!r} is not a host name or `*.domain` wildcard."
            raise ConfigError(
                msg,
                hint='Write bare hosts: "api.example.com", "*.example.com", "127.0.0.1"; '
                "use `network=None` to allow every host.",
            )
        address = _ip_of(raw.strip("[]"))
        if address is not None:
            out.append(str(address))
        elif raw.startswith("*."):
            out.append("*." + _normalise_name(raw[2:]))
        else:
            out.append(_normalise_name(raw))
    return tuple(dict.fromkeys(out))


def current_network_scope() -> NetworkScope | None:
    """The innermost active scope, or None outside any scope."""
    return _SCOPE.get()


@contextlib.contextmanager
def network_scope(
    hosts: Iterable[str] | None,
    *,
    on_decision: DecisionHook | None = None,
    tool: str | None = None,
) -> Iterator[NetworkScope]:
    """Confine `http_client()` requests made inside the block to `hosts` (None: any host).

    Scopes nest: the innermost one applies. Works in sync and async code alike (it is a
    `ContextVar`), and follows tasks created inside it.

    Example:
        >>> with network_scope(["api.example.com"]):
        ...     check_url("https://api.example.com/v1").allowed
        True
    """
    if isinstance(hosts, (str, bytes)):
        msg = f"network_scope() takes a list of hosts, got the string {hosts!r}."
        raise ConfigError(msg, hint=f"Write network_scope([{hosts!r}]).")
    scope = NetworkScope(
        hosts=None if hosts is None else normalise_hosts(hosts),
        on_decision=on_decision,
        tool=tool,
    )
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


def _split(url: str) -> tuple[str, str]:
    try:
        parts = urllib.parse.urlsplit(url)
        return parts.scheme.lower(), parts.hostname or ""
    except ValueError:
        return url.split(":", 1)[0].lower(), ""


def _decide(scheme: str, raw_host: str, url: str, scope: NetworkScope | None) -> NetworkDecision:
    host = _normalise_name(raw_host)
    if scheme not in ("http", "https"):
        return NetworkDecision(allowed=False, host=host, url=url, reason="scheme")
    if not host:
        return NetworkDecision(allowed=False, host=host, url=url, reason="unparseable")
    if scope is None or scope.hosts is None:
        return NetworkDecision(allowed=True, host=host, url=url, reason="unrestricted")
    address = _ip_of(host)
    if address is not None:
        listed = str(address) in scope.hosts
        return NetworkDecision(allowed=listed, host=str(address), url=url,
                               reason="listed" if listed else "ip-literal")
    if host in scope.hosts:
        return NetworkDecision(allowed=True, host=host, url=url, reason="listed")
    for entry in scope.hosts:
        if entry.startswith("*.") and host.endswith(entry[1:]) and len(host) > len(entry) - 1:
            return NetworkDecision(allowed=True, host=host, url=url, reason="wildcard")
    return NetworkDecision(allowed=False, host=host, url=url, reason="not-listed")


def check_url(
    url: str, *, scopes: Iterable[NetworkScope | None] = (), raise_on_block: bool = True
) -> NetworkDecision:
    """Check one URL against the active allow-list (and any extra `scopes`); all must allow.

    Every scope's `on_decision` hook sees the decision, allowed or not, before anything raises.

    Raises:
        NetworkBlocked: the URL is refused and `raise_on_block` is true.

    Example:
        >>> with network_scope(["api.example.com"]):
        ...     check_url("http://api.example.com@evil.com/", raise_on_block=False).reason
        'not-listed'
    """
    scheme, host = _split(url)
    return check_target(scheme, host, url, scopes=scopes, raise_on_block=raise_on_block)


def check_target(
    scheme: str, host: str, url: str, *, scopes: Iterable[NetworkScope | None] = (),
    raise_on_block: bool = True,
) -> NetworkDecision:
    """`check_url` for an already parsed URL (the HTTP transports pass httpx's own parse)."""
    current = _SCOPE.get()
    active = [current, *(s for s in scopes if s is not None and s is not current)]
    decision = _decide(scheme.lower(), host, url, None)
    blocking: NetworkScope | None = None
    for scope in active:
        decision = _decide(scheme.lower(), host, url, scope)
        if scope is not None and scope.on_decision is not None:
            scope.on_decision(decision)
        if not decision.allowed:
            blocking = scope
            break
    if not decision.allowed and raise_on_block:
        raise _blocked(decision, blocking)
    return decision


def _blocked(decision: NetworkDecision, scope: NetworkScope | None) -> NetworkBlocked:
    listed = list(scope.hosts) if scope is not None and scope.hosts is not None else []
    why: dict[str, str] = {
        "ip-literal": "IP literals are refused unless the address is listed",
        "not-listed": "the host is not in the network allow-list",
        "scheme": "only http and https URLs are allowed",
        "unparseable": "the URL cannot be parsed",
    }
    reason = why.get(decision.reason, decision.reason)
    msg = (f"Request to {decision.url!r} refused: {reason} "
           f"(host {decision.host!r}, allowed {listed!r}).")
    return NetworkBlocked(msg, host=decision.host, url=decision.url,
                          tool=scope.tool if scope is not None else None)
