"""AnthropicModel against byte-level SSE fixtures on a loopback server, and over sockets."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from agentnb.core import (
    ConfigError,
    Message,
    ModelConnectionError,
    ModelHTTPError,
    ModelTimeout,
    RefusalPart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolDefinition,
    UnexpectedModelOutput,
)
from agentnb.models import ModelResponse, ModelSettings, StreamEvent
from agentnb.models.anthropic import AnthropicModel
from agentnb.testing._server import LoopbackServer, RecordedRequest, Reply

from .test_anthropic_fixtures import (
    INVALID_EVENT,
    MESSAGE_START,
    OVERLOADED_EVENT,
    PADDED_STREAM,
    TEXT_STREAM,
    THINKING_STREAM,
    TOOLS_STREAM,
    split_at,
    split_every,
)

HI = [Message.user("Hi")]


def ask(model: AnthropicModel, messages: Sequence[Message] = HI, *, stream: bool = False,
        tools: Sequence[ToolDefinition] = (), settings: ModelSettings | None = None,
        events: list[StreamEvent] | None = None) -> ModelResponse:
    """Run one call on a fresh loop and close the model's client afterwards."""

    async def go() -> ModelResponse:
        try:
            if stream:
                return await model.stream(messages, tools=tools, settings=settings,
                                          on_event=None if events is None else events.append)
            return await model.request(messages, tools=tools, settings=settings)
        finally:
            await model.aclose()

    return asyncio.run(go())


def serve(*replies: Reply) -> LoopbackServer:
    """A loopback server answering with `replies` in order (the last one repeats)."""
    queue = list(replies)

    def handler(_: RecordedRequest) -> Reply:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return LoopbackServer(handler)


def model_for(server: LoopbackServer, **kw: Any) -> AnthropicModel:
    """A model pointed at the server, with fast retries."""
    kw.setdefault("backoff_base_s", 0.01)
    return AnthropicModel("claude-opus-4-1", base_url=server.url, api_key="sk-test", **kw)


# -- streamed answers from documented byte streams --------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 64])
def test_text_stream_split_anywhere(size: int) -> None:
    """Text, usage incl. cache tokens, id and model survive chunks that split bytes anywhere."""
    with serve(Reply(sse=split_every(TEXT_STREAM, size))) as server:
        r = ask(model_for(server, input_per_mtok=3, output_per_mtok=15), stream=True)
    assert r.parts == (TextPart(text="Hello, wörld!"),)
    assert (r.finish_reason, r.raw_finish_reason) == ("stop", "end_turn")
    assert (r.provider_id, r.model_name) == ("msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
                                             "claude-opus-4-1")
    u = r.usage
    assert (u.input_tokens, u.cached_tokens, u.cache_write_tokens) == (25 + 100 + 2000, 2000, 100)
    assert (u.output_tokens, u.model_calls) == (15, 1)
    assert u.usd == (Decimal(2125) * 3 + Decimal(15) * 15) / 1_000_000


def test_text_stream_reports_deltas() -> None:
    """`on_event` receives each text delta as it arrives; pings are not reported."""
    events: list[StreamEvent] = []
    with serve(Reply(sse=split_at(TEXT_STREAM, 300, 301, 650))) as server:
        ask(model_for(server), stream=True, events=events)
    assert [(e.kind, e.delta) for e in events] == [("text", "Hello"), ("text", ", wörld!")]


def test_tools_stream_several_tool_uses_in_fragments() -> None:
    """Several tool_use blocks assemble their input_json_delta fragments; empty input is {}."""
    events: list[StreamEvent] = []
    with serve(Reply(sse=split_every(TOOLS_STREAM, 13))) as server:
        r = ask(model_for(server), stream=True, events=events)
    assert r.text == "Checking both."
    calls = r.tool_calls
    assert [(c.id, c.name) for c in calls] == [("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather"),
                                               ("toolu_02", "get_weather"), ("toolu_03", "now")]
    assert calls[0].args() == {"location": "San Francisco, CA", "unit": "fahrenheit"}
    assert calls[1].args() == {"location": "Paris"}
    assert calls[2].arguments == "{}"
    assert r.finish_reason == "tool_calls"
    assert r.usage.input_tokens == 472
    assert r.usage.output_tokens == 89
    named = [(e.index, e.name) for e in events if e.kind == "tool_call" and e.name]
    assert named == [(1, "get_weather"), (2, "get_weather"), (3, "now")]
    fragments = "".join(e.delta for e in events if e.kind == "tool_call" and e.index == 1)
    assert json.loads(fragments)["unit"] == "fahrenheit"


def test_thinking_stream_keeps_signature_and_redacted_block() -> None:
    """Thinking deltas and the signature_delta form a ThinkingPart; redacted thinking is kept."""
    events: list[StreamEvent] = []
    with serve(Reply(sse=split_every(THINKING_STREAM, 29))) as server:
        r = ask(model_for(server), stream=True, events=events)
    thinking, redacted, text = r.parts
    assert isinstance(thinking, ThinkingPart)
    assert thinking.text.startswith("Let me solve this step by step:\n\n1.")
    assert thinking.text.endswith("2. 453 = 400 + 50 + 3")
    assert thinking.signature == "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
    assert isinstance(redacted, ThinkingPart)
    assert redacted.text == ""
    assert redacted.signature == "anthropic-redacted:EmwKAhgBEgy3va3pzix"
    assert text == TextPart(text="27 * 453 = 12,231")
    assert [e.kind for e in events] == ["thinking", "thinking", "text"]


def test_padded_json_and_crlf_stream() -> None:
    """JSON padded with spaces and CRLF line endings parse; max_tokens maps to length."""
    with serve(Reply(sse=split_every(PADDED_STREAM, 5))) as server:
        r = ask(model_for(server), stream=True)
    assert r.text == "  spaced  "
    assert (r.finish_reason, r.raw_finish_reason) == ("length", "max_tokens")
    assert (r.usage.input_tokens, r.usage.output_tokens) == (7, 3)


def test_overloaded_error_event_in_200_stream_is_retried() -> None:
    """An overloaded_error event inside a 200 stream retries (as 529) and then succeeds."""
    retries: list[tuple[int, BaseException, float]] = []
    with serve(Reply(sse=[MESSAGE_START, OVERLOADED_EVENT]), Reply(sse=[TEXT_STREAM])) as server:
        model = model_for(server)
        model.on_retry = lambda n, exc, s: retries.append((n, exc, s))
        r = ask(model, stream=True)
        assert len(server.requests) == 2
    assert r.text == "Hello, wörld!"
    assert len(retries) == 1
    error = retries[0][1]
    assert isinstance(error, ModelHTTPError)
    assert (error.status_code, error.retryable) == (529, True)
    assert "overloaded_error" in error.body


def test_invalid_request_error_event_is_not_retried() -> None:
    """An invalid_request_error event inside a 200 stream raises at once as a 400."""
    with serve(Reply(sse=[MESSAGE_START, INVALID_EVENT])) as server:
        with pytest.raises(ModelHTTPError) as info:
            ask(model_for(server), stream=True)
        assert len(server.requests) == 1
    assert (info.value.status_code, info.value.retryable) == (400, False)
    assert "prompt is too long" in str(info.value)


def test_stream_ending_before_message_stop_is_a_connection_error() -> None:
    """A stream cut short of `message_stop` raises ModelConnectionError naming the URL."""
    server = serve(Reply(sse=[MESSAGE_START]))
    with server, pytest.raises(ModelConnectionError, match="message_stop") as info:
        ask(model_for(server, max_retries=0), stream=True)
    assert info.value.url == server.url + "/v1/messages"


def test_malformed_stream_data_is_unexpected_output() -> None:
    """A data line that is not JSON raises UnexpectedModelOutput with the line as body."""
    bad = MESSAGE_START + b'event: content_block_delta\ndata: {"type": "content_blo\n\n'
    with serve(Reply(sse=[bad])) as server, pytest.raises(UnexpectedModelOutput) as info:
        ask(model_for(server), stream=True)
    assert "content_blo" in info.value.body


def test_http_error_on_streaming_request_carries_json_body() -> None:
    """A JSON error body on a streamed request raises ModelHTTPError with status and body."""
    body = {"type": "error", "error": {"type": "not_found_error", "message": "model: nope"}}
    with serve(Reply(status=404, json=body)) as server, pytest.raises(ModelHTTPError) as info:
        ask(model_for(server), stream=True)
    assert info.value.status_code == 404
    assert json.loads(info.value.body) == body


def test_stream_request_answered_with_plain_json_still_parses() -> None:
    """A proxy that answers a streamed request with a JSON message still gives a response."""
    with serve(Reply(json=_message([{"type": "text", "text": "plain"}]))) as server:
        assert ask(model_for(server), stream=True).text == "plain"


# -- plain (non-streamed) answers -------------------------------------------------------------


def _message(content: list[dict[str, Any]], stop_reason: str = "end_turn",
             **usage: int) -> dict[str, Any]:
    return {"id": "msg_plain", "type": "message", "role": "assistant", "model": "claude-x",
            "content": content, "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 4, **usage}}


def test_plain_json_padded_with_spaces() -> None:
    """A message body padded with spaces parses into parts, usage and ids."""
    raw = ('  {  "id" : "msg_p" , "type" : "message" , "model" : "claude-x" , "content" :'
           ' [ { "type" : "text" , "text" : "ok" } , { "type" : "tool_use" , "id" : "t1" ,'
           ' "name" : "f" , "input" : { "a" : 1 } } ] , "stop_reason" : "tool_use" ,'
           ' "usage" : { "input_tokens" : 3 , "output_tokens" : 2 ,'
           ' "cache_read_input_tokens" : 4 } }  \n')
    with serve(Reply(body=raw, headers={"content-type": "application/json"})) as server:
        r = ask(model_for(server))
    assert r.parts == (TextPart(text="ok"), ToolCallPart(id="t1", name="f", arguments='{"a": 1}'))
    assert (r.provider_id, r.model_name, r.finish_reason) == ("msg_p", "claude-x", "tool_calls")
    assert (r.usage.input_tokens, r.usage.cached_tokens) == (7, 4)


def test_gzip_body_is_decoded() -> None:
    """A gzip-encoded body (Content-Encoding: gzip) is decoded; the client accepts gzip."""
    with serve(Reply(json=_message([{"type": "text", "text": "zipped"}]), gzip=True)) as server:
        assert ask(model_for(server)).text == "zipped"
        assert "gzip" in server.requests[0].headers["accept-encoding"]
    assert gzip.decompress(gzip.compress(b"x")) == b"x"


@pytest.mark.parametrize(("raw", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("tool_use", "tool_calls"),
    ("max_tokens", "length"), ("pause_turn", "length"), ("refusal", "refusal"),
    ("model_context_window_exceeded", "length"), ("something_new", "stop"),
])
def test_stop_reasons_map(raw: str, finish: str) -> None:
    """Each documented stop_reason maps to our finish reason; the raw one is kept."""
    with serve(Reply(json=_message([{"type": "text", "text": "x"}], raw))) as server:
        r = ask(model_for(server))
    assert (r.finish_reason, r.raw_finish_reason) == (finish, raw)


def test_refusal_keeps_text_and_adds_refusal_part() -> None:
    """A refusal keeps the text that arrived and adds a RefusalPart describing it."""
    body = _message([{"type": "text", "text": "I can't help"}], "refusal")
    with serve(Reply(json=body)) as server:
        r = ask(model_for(server))
    assert r.text == "I can't help"
    refusal = r.parts[-1]
    assert isinstance(refusal, RefusalPart)
    assert "refusal" in refusal.text
    assert "I can't help" in refusal.text


def test_refusal_without_text() -> None:
    """A refusal with no content still yields a RefusalPart."""
    with serve(Reply(json=_message([], "refusal"))) as server:
        r = ask(model_for(server))
    assert len(r.parts) == 1
    assert isinstance(r.parts[0], RefusalPart)


def test_unknown_blocks_are_ignored() -> None:
    """Block types we do not model (server tools) are skipped, not fatal."""
    body = _message([{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}},
                     {"type": "text", "text": "found"}])
    with serve(Reply(json=body)) as server:
        assert ask(model_for(server)).parts == (TextPart(text="found"),)


@pytest.mark.parametrize("body", ["<html>Bad gateway</html>", "[1, 2]", '{"id": "x"}'])
def test_non_message_200_body_is_unexpected_output(body: str) -> None:
    """A 200 body that is not a Messages API message raises UnexpectedModelOutput."""
    with serve(Reply(body=body)) as server, pytest.raises(UnexpectedModelOutput) as info:
        ask(model_for(server))
    assert server.url in str(info.value)
    assert info.value.hint


def test_error_object_in_200_body_raises_http_error() -> None:
    """An `{"type": "error"}` body with status 200 raises ModelHTTPError for its error type."""
    body = {"type": "error", "error": {"type": "permission_error", "message": "no"}}
    with serve(Reply(json=body)) as server:
        with pytest.raises(ModelHTTPError) as info:
            ask(model_for(server))
        assert len(server.requests) == 1
    assert (info.value.status_code, info.value.retryable) == (403, False)


def test_stream_flag_on_model_and_equal_responses() -> None:
    """With stream=True, request() streams; it equals the plain answer of the same turn."""
    from agentnb.testing.anthropic_server import AnthropicTurn, FakeAnthropicServer

    turn = AnthropicTurn(thinking="hmm, let me see", text="Looking it up.",
                         tool_calls=[("lookup", {"key": "7", "deep": {"x": [1, 2]}}, "toolu_a"),
                                     ("now", {}, "toolu_b")],
                         cache_read_input_tokens=30, cache_creation_input_tokens=5)
    with FakeAnthropicServer([turn, turn], chunk_size=11) as server:
        plain = ask(AnthropicModel("claude-x", base_url=server.url, input_per_mtok=1,
                                   output_per_mtok=2))
        streamed = ask(AnthropicModel("claude-x", base_url=server.url, stream=True,
                                      input_per_mtok=1, output_per_mtok=2))
        assert [r.json().get("stream", False) for r in server.requests] == [False, True]
    assert streamed.model_copy(update={"provider_id": None}) == plain.model_copy(
        update={"provider_id": None})
    assert plain.usage.cached_tokens == 30
    assert plain.tool_calls[1].arguments == "{}"


# -- retries, timeouts, connection errors ------------------------------------------------------


def _error(status: int, kind: str, **headers: str) -> Reply:
    return Reply(status=status, json={"type": "error", "error": {"type": kind, "message": kind}},
                 headers=headers)


def test_429_retry_after_is_honoured() -> None:
    """A 429 with Retry-After waits that long, then the retry succeeds."""
    sleeps: list[float] = []
    ok = Reply(json=_message([{"type": "text", "text": "after"}]))
    with serve(_error(429, "rate_limit_error", **{"retry-after": "0.3"}), ok) as server:
        model = model_for(server, on_retry=lambda n, e, s: sleeps.append(s))
        started = time.monotonic()
        assert ask(model).text == "after"
        assert time.monotonic() - started >= 0.3
        assert len(server.requests) == 2
    assert sleeps == [0.3]


def test_529_is_retried() -> None:
    """529 overloaded is retried."""
    ok = Reply(json=_message([{"type": "text", "text": "fine"}]))
    with serve(_error(529, "overloaded_error"), _error(529, "overloaded_error"), ok) as server:
        assert ask(model_for(server)).text == "fine"
        assert len(server.requests) == 3


def test_400_is_not_retried() -> None:
    """A 400 raises at once with status and body, without a retry."""
    with serve(_error(400, "invalid_request_error")) as server:
        with pytest.raises(ModelHTTPError) as info:
            ask(model_for(server, max_retries=5))
        assert len(server.requests) == 1
    assert (info.value.status_code, info.value.retryable) == (400, False)
    assert "invalid_request_error" in info.value.body


def test_retries_exhausted_raise_last_error() -> None:
    """When every attempt fails with 500 the last ModelHTTPError surfaces with its body."""
    with serve(_error(500, "api_error", **{"retry-after": "0"})) as server:
        with pytest.raises(ModelHTTPError) as info:
            ask(model_for(server, max_retries=2))
        assert len(server.requests) == 3
    assert info.value.status_code == 500
    assert json.loads(info.value.body)["error"]["type"] == "api_error"
    assert info.value.headers["retry-after"] == "0"


def test_timeout_per_attempt() -> None:
    """A server slower than timeout_s raises ModelTimeout (also a TimeoutError)."""
    with serve(Reply(json=_message([]), delay_s=1.0)) as server:
        started = time.monotonic()
        with pytest.raises(ModelTimeout) as info:
            ask(model_for(server, timeout_s=0.2, max_retries=0))
        assert time.monotonic() - started < 0.9
    assert isinstance(info.value, TimeoutError)
    assert info.value.timeout_s == 0.2


def test_timeout_applies_to_slow_streams() -> None:
    """A stream whose chunks trickle past timeout_s raises ModelTimeout."""
    server = serve(Reply(sse=split_every(TEXT_STREAM, 40), chunk_delay_s=0.05))
    with server, pytest.raises(ModelTimeout):
        ask(model_for(server, timeout_s=0.2, max_retries=0), stream=True)


def test_unreachable_base_url_names_the_url() -> None:
    """A closed port on 127.0.0.1 raises ModelConnectionError naming the URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    model = AnthropicModel("claude-x", base_url=url, max_retries=1, backoff_base_s=0.01)
    with pytest.raises(ModelConnectionError) as info:
        ask(model)
    assert f"{url}/v1/messages" in str(info.value)
    assert "ANTHROPIC_BASE_URL" in (info.value.hint or "")


def test_dropped_connection_is_retried() -> None:
    """A connection closed without an answer is retried like any connection error."""
    ok = Reply(json=_message([{"type": "text", "text": "back"}]))
    with serve(Reply(drop=True), ok) as server:
        assert ask(model_for(server)).text == "back"


# -- configuration ----------------------------------------------------------------------------


def test_missing_key_against_anthropic_is_config_error() -> None:
    """No key for api.anthropic.com raises ConfigError naming ANTHROPIC_API_KEY."""
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY") as info:
        AnthropicModel("claude-sonnet-4-5")
    assert isinstance(info.value, ValueError)
    assert "claude-sonnet-4-5" in str(info.value)


def test_environment_supplies_key_and_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL are used when no argument is given."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-env")
    assert AnthropicModel("claude-x").url == "https://api.anthropic.com/v1/messages"
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/v1/")
    model = AnthropicModel("claude-x")
    assert model.url == "http://127.0.0.1:9/v1/messages"
    assert model.request_headers()["x-api-key"] == "sk-env"


def test_bad_base_url_is_config_error() -> None:
    """A base URL that is not http(s) raises ConfigError naming it."""
    with pytest.raises(ConfigError, match="localhost:8000"):
        AnthropicModel("claude-x", base_url="localhost:8000")


def test_max_tokens_must_exceed_thinking_budget() -> None:
    """max_tokens at or below thinking_budget_tokens is refused early."""
    with pytest.raises(ConfigError, match="thinking_budget_tokens"):
        AnthropicModel("claude-x", api_key="k", max_tokens=1000, thinking_budget_tokens=1000)
    model = AnthropicModel("claude-x", api_key="k", thinking_budget_tokens=2000)
    assert model.info.max_output_tokens > 2000
    with pytest.raises(ConfigError, match="max_tokens"):
        model.build_body(HI, settings=ModelSettings(max_tokens=500))


def test_prices_and_unpriced() -> None:
    """Explicit prices set the info; an unknown model without prices is unpriced (usd None)."""
    priced = AnthropicModel("claude-x", api_key="k", input_per_mtok="3", output_per_mtok=15)
    assert (priced.info.input_per_mtok, priced.info.output_per_mtok) == (Decimal(3), Decimal(15))
    unpriced = AnthropicModel("no-such-model-zz", api_key="k")
    assert unpriced.info.priced is False
    with serve(Reply(json=_message([{"type": "text", "text": "x"}]))) as server:
        r = ask(AnthropicModel("no-such-model-zz", base_url=server.url))
    assert r.usage.usd is None
    assert repr(unpriced) == "AnthropicModel('anthropic:no-such-model-zz')"


def test_on_retry_hook_sees_connection_errors() -> None:
    """on_retry is called with the attempt number and the error before each retry."""
    seen: list[tuple[int, type[BaseException]]] = []

    def hook(n: int, exc: BaseException, _sleep_s: float) -> None:
        seen.append((n, type(exc)))

    with serve(Reply(drop=True), Reply(drop=True), Reply(json=_message([]))) as server:
        ask(model_for(server, on_retry=hook))
    assert seen == [(1, ModelConnectionError), (2, ModelConnectionError)]


def test_table_prices_include_cache_prices() -> None:
    """Without explicit prices the table prices the call, cache reads and writes included."""
    from agentnb.models._pricing import lookup_price
    from agentnb.testing.anthropic_server import AnthropicTurn, FakeAnthropicServer

    price = lookup_price("anthropic", "claude-sonnet-4-5")
    assert price is not None
    turn = AnthropicTurn(text="x", input_tokens=1000, output_tokens=100,
                         cache_read_input_tokens=10_000, cache_creation_input_tokens=2000)
    with FakeAnthropicServer([turn]) as server:
        r = ask(AnthropicModel("claude-sonnet-4-5", base_url=server.url))
    assert r.usage.input_tokens == 13_000
    cache_read = price.cached_input_per_mtok or price.input_per_mtok
    cache_write = price.cache_write_per_mtok or price.input_per_mtok
    expected = (1000 * price.input_per_mtok + 10_000 * cache_read + 2000 * cache_write
                + 100 * price.output_per_mtok) / 1_000_000
    assert r.usage.usd == expected
    assert cache_read < price.input_per_mtok


def test_malformed_streamed_tool_input_is_kept_verbatim() -> None:
    """Tool input fragments that do not form JSON are kept as the model wrote them."""
    raw = (MESSAGE_START.replace(b'"type": "text",\n data', b"")
           .split(b"event: content_block_start")[0]
           + b"event: content_block_start\n"
           b'data: {"type": "content_block_start", "index": 0, "content_block":'
           b' {"type": "tool_use", "id": "t", "name": "f", "input": {}}}\n\n'
           b"event: content_block_delta\n"
           b'data: {"type": "content_block_delta", "index": 0, "delta":'
           b' {"type": "input_json_delta", "partial_json": "{\\"a\\": "}}\n\n'
           b'event: content_block_stop\ndata: {"type": "content_block_stop", "index": 0}\n\n'
           b'event: message_stop\ndata: {"type": "message_stop"}\n\n')
    with serve(Reply(sse=split_every(raw, 9))) as server:
        r = ask(model_for(server), stream=True)
    assert r.tool_calls[0].arguments == '{"a": '
    assert r.finish_reason is None
