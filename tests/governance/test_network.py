"""Network allow-list: unlisted hosts, IP literals and redirects are refused before connecting."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from agentnb.core import ConfigError, NetworkBlocked, run_sync
from agentnb.governance import (
    NetworkDecision,
    check_url,
    current_network_scope,
    http_client,
    http_client_sync,
    network_scope,
)
from agentnb.testing._server import LoopbackServer, RecordedRequest, Reply


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    def handler(request: RecordedRequest) -> Reply:
        if request.path.startswith("/to/"):
            return Reply(status=302, headers={"location": request.path[len("/to/"):]})
        return Reply(json={"path": request.path})

    with LoopbackServer(handler) as srv:
        yield srv


async def _get(url: str, **kwargs: object) -> httpx.Response:
    async with http_client(follow_redirects=True, **kwargs) as client:  # type: ignore[arg-type]
        return await client.get(url)


def get(url: str, **kwargs: object) -> httpx.Response:
    return run_sync(_get(url, **kwargs))


def test_listed_host_is_reached(server: LoopbackServer) -> None:
    """A request to a listed loopback address goes through; the hook sees it allowed."""
    seen: list[NetworkDecision] = []
    with network_scope(["127.0.0.1"], on_decision=seen.append):
        assert get(server.url + "/ok").json() == {"path": "/ok"}
    assert [(d.allowed, d.host, d.reason) for d in seen] == [(True, "127.0.0.1", "listed")]


def test_redirect_to_unlisted_host_is_refused(server: LoopbackServer) -> None:
    """A redirect to an unlisted name raises NetworkBlocked; the hop is never sent."""
    seen: list[NetworkDecision] = []
    port = server.port
    with network_scope(["127.0.0.1"], on_decision=seen.append, tool="fetch"), \
            pytest.raises(NetworkBlocked) as info:
        get(f"{server.url}/to/http://localhost:{port}/secret")
    assert info.value.host == "localhost"
    assert info.value.url == f"http://localhost:{port}/secret"
    assert info.value.tool == "fetch"
    assert [r.path for r in server.requests] == [f"/to/http://localhost:{port}/secret"]
    assert [(d.allowed, d.host) for d in seen] == [(True, "127.0.0.1"), (False, "localhost")]


def test_redirect_to_unresolvable_outside_host_is_refused(server: LoopbackServer) -> None:
    """A redirect to an internet host is refused before any DNS lookup or connection."""
    with network_scope(["127.0.0.1"]), pytest.raises(NetworkBlocked, match="evil.example"):
        get(f"{server.url}/to/https://evil.example/steal?k=1")
    assert len(server.requests) == 1


def test_redirect_to_listed_host_is_followed(server: LoopbackServer) -> None:
    """Every hop is checked, and listed hops are followed."""
    with network_scope(["127.0.0.1", "localhost"]):
        response = get(f"{server.url}/to/http://localhost:{server.port}/final")
    assert response.json() == {"path": "/final"}
    assert len(server.requests) == 2


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "0x7f.1", "127.1", "0x7f000001",
                                  "[::1]", "[::ffff:127.0.0.1]"])
def test_ip_literals_are_refused_unless_listed(server: LoopbackServer, host: str) -> None:
    """IP literals in every spelling are refused when only names are listed; nothing connects."""
    seen: list[NetworkDecision] = []
    with network_scope(["localhost"], on_decision=seen.append), \
            pytest.raises(NetworkBlocked, match="IP literals"):
        get(f"http://{host}:{server.port}/x")
    assert server.requests == []
    assert seen[-1].reason == "ip-literal"


def test_listed_ip_in_another_spelling_is_the_same_address(server: LoopbackServer) -> None:
    """`127.0.0.1` listed allows the decimal spelling of the same address."""
    with network_scope(["127.0.0.1"]):
        assert get(f"http://2130706433:{server.port}/d").json() == {"path": "/d"}


def test_userinfo_trick_is_refused() -> None:
    """`http://api.example.com@evil.example/` goes to evil.example and is refused."""
    with network_scope(["api.example.com"]), pytest.raises(NetworkBlocked) as info:
        get("http://api.example.com@evil.example/")
    assert info.value.host == "evil.example"


def test_sync_client_is_confined(server: LoopbackServer) -> None:
    """http_client_sync applies the same checks, redirects included."""
    with network_scope(["127.0.0.1"]), http_client_sync(follow_redirects=True) as client:
        assert client.get(server.url + "/s").json() == {"path": "/s"}
        with pytest.raises(NetworkBlocked):
            client.get(f"{server.url}/to/http://evil.example/")
        with pytest.raises(NetworkBlocked):
            client.get(f"http://localhost:{server.port}/")
    assert len(server.requests) == 2


def test_outside_any_scope_everything_is_allowed(server: LoopbackServer) -> None:
    """No scope, or a scope of None, does not restrict."""
    assert current_network_scope() is None
    assert get(f"http://localhost:{server.port}/a").status_code == 200
    with network_scope(None) as scope:
        assert scope.hosts is None
        assert get(f"{server.url}/b").status_code == 200


def test_client_keeps_the_scope_it_was_made_in(server: LoopbackServer) -> None:
    """A client made inside a scope stays confined when used after the scope ends."""

    async def scenario() -> None:
        with network_scope(["localhost"]):
            client = http_client()
        async with client:
            with pytest.raises(NetworkBlocked):
                await client.get(server.url + "/late")

    run_sync(scenario())
    assert server.requests == []


def test_inner_scope_and_creation_scope_both_apply(server: LoopbackServer) -> None:
    """Nested scopes: the innermost active scope applies, and must also pass the client's."""
    with network_scope(["127.0.0.1"]):
        with network_scope(["localhost"]), pytest.raises(NetworkBlocked):
            get(server.url + "/inner")
        assert get(server.url + "/outer").status_code == 200


def test_mounts_and_proxies_are_guarded(server: LoopbackServer) -> None:
    """User mounts and proxy transports are wrapped too: the check runs before the proxy."""
    with network_scope(["127.0.0.1"]):
        mounted = get(server.url + "/m", mounts={"http://": httpx.AsyncHTTPTransport()})
        assert mounted.status_code == 200
        with pytest.raises(NetworkBlocked):
            get("http://evil.example/", mounts={"http://": httpx.AsyncHTTPTransport()})
        with pytest.raises(NetworkBlocked):
            get("http://evil.example/", proxy=server.url)
    assert [r.path for r in server.requests] == ["/m"]


CHECKS = [
    ("https://api.example.com/v1", True, "listed"),
    ("HTTPS://API.EXAMPLE.COM./v1", True, "listed"),
    ("https://a.example.org/", True, "wildcard"),
    ("https://a.b.example.org/", True, "wildcard"),
    ("https://example.org/", False, "not-listed"),
    ("https://badexample.org/", False, "not-listed"),
    ("https://api.example.com.evil.net/", False, "not-listed"),
    ("https://10.0.0.1/", False, "ip-literal"),
    ("http://0177.0.0.1/", False, "ip-literal"),
    ("http://0x7f.1/", False, "ip-literal"),
    ("http://[fe80::1%25eth0]/", False, "ip-literal"),
    ("https://bücher.example/", True, "listed"),
    ("ftp://api.example.com/", False, "scheme"),
    ("file:///etc/passwd", False, "scheme"),
    ("http:///nohost", False, "unparseable"),
    ("http://[::1/", False, "unparseable"),
]


@pytest.mark.parametrize(("url", "allowed", "reason"), CHECKS)
def test_check_url_table(url: str, allowed: bool, reason: str) -> None:
    """Exact hosts, `*.` wildcards (not the apex), IDNA, schemes and IP literals."""
    with network_scope(["api.example.com", "*.example.org", "xn--bcher-kva.example"]):
        decision = check_url(url, raise_on_block=False)
    assert (decision.allowed, decision.reason) == (allowed, reason)
    if not allowed:
        with network_scope(["api.example.com"]), pytest.raises(NetworkBlocked):
            check_url(url)


@pytest.mark.parametrize("entry", ["", "*", "https://api.example.com", "api.example.com/v1",
                                   "user@host", "a.*.com", "host:443", 7])
def test_bad_allow_list_entries(entry: object) -> None:
    """Entries that are not hosts are a ConfigError naming the entry."""
    with pytest.raises(ConfigError, match="allow-list entry"), \
            network_scope([entry]):  # type: ignore[list-item]
        pass


def test_scope_refuses_a_bare_string() -> None:
    """`network_scope("host")` is refused with a hint to pass a list."""
    with pytest.raises(ConfigError, match="list"), network_scope("api.example.com"):
        pass
