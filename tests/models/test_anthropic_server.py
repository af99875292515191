"""FakeAnthropicServer's own behaviours: scripts, SSE sequence, faults, counters."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from agentnb.core import (
    Message,
    ModelConnectionError,
    ModelHTTPError,
    UnexpectedModelOutput,
)
from agentnb.models import ModelResponse
from agentnb.models.anthropic import AnthropicModel
from agentnb.testing._server import Reply
from agentnb.testing.anthropic_server import AnthropicError, AnthropicTurn, FakeAnthropicServer

HEADERS = {"anthropic-version": "2023-06-01"}
BODY = {"model": "claude-fake", "max_tokens": 50,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]}


def post(server: FakeAnthropicServer, body: dict[str, Any] | None = None, **kw: Any
         ) -> httpx.Response:
    """POST a Messages API request to the server with httpx."""
    return httpx.post(server.url + "/v1/messages", json=BODY if body is None else body,
                      headers={**HEADERS, **kw.pop("headers", {})}, **kw)


def ask(server: FakeAnthropicServer, *, stream: bool = False, **kw: Any) -> ModelResponse:
    """One AnthropicModel call against the server."""
    model = AnthropicModel("claude-fake", base_url=server.url, stream=stream,
                           backoff_base_s=0.01, **kw)

    async def go() -> ModelResponse:
        try:
            return await model.request([Message.user("hello there")])
        finally:
            await model.aclose()

    return asyncio.run(go())


def sse_events(raw: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs of an SSE body."""
    out = []
    for block in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_plain_message_shape() -> None:
    """A plain request gets a documented message object with usage and ids."""
    turn = AnthropicTurn(text="hi", tool_calls=[("f", {"a": 1}, "toolu_x")], input_tokens=9,
                         cache_read_input_tokens=3)
    with FakeAnthropicServer([turn]) as server:
        data = post(server).json()
    assert data["type"] == "message"
    assert data["id"].startswith("msg_")
    assert data["model"] == "claude-fake"
    assert data["content"] == [{"type": "text", "text": "hi"},
                               {"type": "tool_use", "id": "toolu_x", "name": "f",
                                "input": {"a": 1}}]
    assert data["stop_reason"] == "tool_use"
    assert data["usage"]["input_tokens"] == 9
    assert data["usage"]["cache_read_input_tokens"] == 3
    assert data["usage"]["output_tokens"] >= 1


def test_sse_event_sequence() -> None:
    """A streamed request gets the documented event order, deltas split, pings included."""
    turn = AnthropicTurn(thinking="think", text="Hello world", tool_calls=[("f", {"k": "v"})])
    with FakeAnthropicServer([turn], delta_chars=3) as server:
        response = post(server, {**BODY, "stream": True})
    assert response.headers["content-type"] == "text/event-stream"
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop") == 3
    assert "ping" in names[3:]
    deltas = [d["delta"] for n, d in events if n == "content_block_delta"]
    texts = [d["text"] for d in deltas if d["type"] == "text_delta"]
    assert texts == ["Hel", "lo ", "wor", "ld"]
    assert [d["type"] for d in deltas if d["type"] == "signature_delta"] == ["signature_delta"]
    partial = "".join(d["partial_json"] for d in deltas if d["type"] == "input_json_delta")
    assert json.loads(partial) == {"k": "v"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_chunk_size_splits_bytes_and_client_still_parses() -> None:
    """chunk_size splits the SSE bytes arbitrarily; the client reassembles them."""
    with FakeAnthropicServer(["streamed in tiny pieces"], chunk_size=3) as server:
        r = ask(server, stream=True)
        assert server.stats.streamed == 1
    assert r.text == "streamed in tiny pieces"


def test_callable_script_sees_request() -> None:
    """A callable script receives the request JSON and returns the turn."""
    def script(request: dict[str, Any]) -> AnthropicTurn:
        return AnthropicTurn(text=f"{request['model']} saw {len(request['messages'])}")

    with FakeAnthropicServer(script) as server:
        assert ask(server).text == "claude-fake saw 1"


def test_echo_without_script_and_exhausted_script() -> None:
    """No script echoes the user's text; an exhausted script answers 400 clearly."""
    with FakeAnthropicServer() as server:
        assert ask(server).text == "hello there"
    with FakeAnthropicServer(["one"]) as server:
        assert ask(server).text == "one"
        with pytest.raises(ModelHTTPError, match="no scripted turn left") as info:
            ask(server)
        assert info.value.status_code == 400


def test_refusal_and_max_tokens_turns() -> None:
    """Scripted stop reasons reach the client in both modes."""
    script = [AnthropicTurn(text="Sorry", stop_reason="refusal"),
              AnthropicTurn(text="cut", stop_reason="max_tokens")] * 2
    with FakeAnthropicServer(script) as server:
        for stream in (False, True):
            assert ask(server, stream=stream).finish_reason == "refusal"
            assert ask(server, stream=stream).finish_reason == "length"


@pytest.mark.parametrize(("kw", "status", "kind"), [
    ({"error_429_rate": 1.0}, 429, "rate_limit_error"),
    ({"error_500_rate": 1.0}, 500, "api_error"),
    ({"overloaded": 1.0}, 529, "overloaded_error"),
])
def test_injected_errors(kw: dict[str, Any], status: int, kind: str) -> None:
    """Fault rates answer with the documented error body and Retry-After, and are counted."""
    with FakeAnthropicServer(["never"], retry_after_s=0.25, **kw) as server:
        response = post(server)
        assert server.stats.injected == {status: 1}
        assert server.stats.turns_served == 0
    assert response.status_code == status
    assert response.json() == {"type": "error", "error": {"type": kind,
                                                          "message": "Injected by the fake server"}}
    assert response.headers["retry-after"] == "0.25"


def test_client_retries_through_partial_fault_rate() -> None:
    """With a 50% overload rate the client's retries get through; counters add up."""
    with FakeAnthropicServer(["ok"] * 20, overloaded=0.5, seed=3) as server:
        for _ in range(5):
            assert ask(server, max_retries=10).text == "ok"
        stats = server.stats
        assert stats.requests == stats.turns_served + stats.injected.get(529, 0)
        assert stats.injected.get(529, 0) > 0


def test_scripted_error_turn_then_success() -> None:
    """An AnthropicError turn answers with its status; the client retries to the next turn."""
    script = [AnthropicError(status=429, type="rate_limit_error", retry_after_s=0), "done"]
    with FakeAnthropicServer(script) as server:
        assert ask(server).text == "done"
        assert server.stats.requests == 2


def test_mid_stream_error_event() -> None:
    """stream_error sends `event: error` mid-stream; the client raises it (retryable 529)."""
    turn = AnthropicTurn(text="partial answer", stream_error="overloaded_error")
    with FakeAnthropicServer([turn]) as server, pytest.raises(ModelHTTPError) as info:
        ask(server, stream=True, max_retries=0)
    assert (info.value.status_code, info.value.retryable) == (529, True)


def test_malformed_chunk() -> None:
    """malformed_chunk sends a data line that is not JSON; the client reports it."""
    server = FakeAnthropicServer([AnthropicTurn(text="x", malformed_chunk=True)])
    with server, pytest.raises(UnexpectedModelOutput):
        ask(server, stream=True)


def test_drop_rate_closes_connections() -> None:
    """drop_rate=1 closes every connection unanswered: a connection error after retries."""
    with FakeAnthropicServer(["x"], drop_rate=1.0) as server:
        with pytest.raises(ModelConnectionError):
            ask(server, max_retries=1)
        assert server.stats.injected == {0: 2}


def test_gzip_and_latency() -> None:
    """gzip=True compresses JSON answers; latency_s delays them."""
    with FakeAnthropicServer(["zipped"], gzip=True, latency_s=0.2) as server:
        started = time.monotonic()
        response = post(server)
        assert time.monotonic() - started >= 0.2
    assert response.headers["content-encoding"] == "gzip"
    assert response.json()["content"][0]["text"] == "zipped"


def test_request_validation_and_auth() -> None:
    """Missing fields or headers, wrong paths and bad keys get the API's error answers."""
    with FakeAnthropicServer(["x"], api_key="sk-right") as server:
        assert post(server, headers={"x-api-key": "wrong"}).status_code == 401
        good = {"x-api-key": "sk-right"}
        missing = post(server, {"model": "m", "messages": []}, headers=good)
        assert missing.status_code == 400
        assert "max_tokens" in missing.json()["error"]["message"]
        no_version = httpx.post(server.url + "/v1/messages", json=BODY, headers=good)
        assert no_version.status_code == 400
        assert httpx.post(server.url + "/v1/other", json=BODY).status_code == 404
        assert post(server, headers=good).status_code == 200
        assert server.request_json()["model"] == "claude-fake"
        assert len(server.requests) == 5


def test_raw_reply_turn_and_add() -> None:
    """A raw Reply turn is sent as is; add() extends the script."""
    with FakeAnthropicServer([Reply(status=200, body=b"not json")]) as server:
        with pytest.raises(UnexpectedModelOutput):
            ask(server)
        server.add("later")
        assert ask(server).text == "later"
