"""OpenAIModel against byte-level SSE fixtures (OpenAI's documented shapes) on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
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
    UnexpectedModelOutput,
)
from agentnb.models._base import ModelResponse, ModelSettings, StreamEvent
from agentnb.models.openai import OpenAIModel
from agentnb.testing._server import LoopbackServer, RecordedRequest, Reply

FIXTURES = Path(__file__).parent / "fixtures" / "openai"
HELLO = [Message.user("Say hello.")]


def fixture(name: str) -> bytes:
    """Read an SSE fixture."""
    return (FIXTURES / name).read_bytes()


def awkward(data: bytes, sizes: Sequence[int] = (1, 7, 13, 2, 61, 5)) -> list[bytes | str]:
    """Split bytes at awkward places: mid-JSON, mid-line, mid-UTF-8 character."""
    out: list[bytes | str] = []
    i = k = 0
    while i < len(data):
        size = sizes[k % len(sizes)]
        out.append(data[i:i + size])
        i += size
        k += 1
    return out


def call(model: OpenAIModel, messages: Sequence[Message] = HELLO, *, stream: bool = False,
         **kwargs: Any) -> ModelResponse:
    """Run one request on a fresh loop and close the model's client."""

    async def go() -> ModelResponse:
        try:
            if stream:
                return await model.stream(messages, **kwargs)
            return await model.request(messages, **kwargs)
        finally:
            await model.aclose()

    return asyncio.run(go())


def sse_server(*bodies: bytes, sizes: Sequence[int] = (1, 7, 13, 2, 61, 5)) -> LoopbackServer:
    """A loopback server answering the given SSE bodies in turn (the last one repeats)."""
    replies = list(bodies)

    def handle(request: RecordedRequest) -> Reply:
        body = replies.pop(0) if len(replies) > 1 else replies[0]
        return Reply(sse=awkward(body, sizes))

    return LoopbackServer(handle)


def model_for(server: LoopbackServer, **kwargs: Any) -> OpenAIModel:
    """An OpenAIModel pointed at a loopback server."""
    kwargs.setdefault("api_key", "sk-test")
    return OpenAIModel(kwargs.pop("name", "test-unpriced"), base_url=server.url + "/v1", **kwargs)


# -- streaming fixtures ------------------------------------------------------------------------


def test_stream_text_split_mid_json_and_mid_character() -> None:
    """Text deltas split at awkward byte boundaries reassemble; usage comes from `choices: []`."""
    events: list[StreamEvent] = []
    with sse_server(fixture("text.sse")) as server:
        model = model_for(server, input_per_mtok="1", output_per_mtok="2")
        r = call(model, stream=True, on_event=events.append)
        sent = server.requests[0].json()
    assert r.text == "Hello, wörld!"
    assert "".join(e.delta for e in events if e.kind == "text") == r.text
    assert (r.finish_reason, r.raw_finish_reason) == ("stop", "stop")
    assert (r.provider_id, r.model_name) == ("chatcmpl-123", "gpt-4o-mini-2024-07-18")
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.cached_tokens) == (120, 4, 100)
    assert r.usage.model_calls == 1
    assert r.usage.usd == (Decimal(120) * 1 + Decimal(4) * 2) / 1_000_000
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


def test_stream_text_with_crlf_line_endings() -> None:
    """SSE with CRLF line endings parses the same."""
    body = fixture("text.sse").replace(b"\n", b"\r\n")
    with sse_server(body) as server:
        r = call(model_for(server), stream=True)
    assert r.text == "Hello, wörld!"


def test_stream_parallel_tool_calls_interleaved_by_index() -> None:
    """Fragments interleave by index; repeated ids/names are not duplicated; no-arg tools get {}."""
    events: list[StreamEvent] = []
    with sse_server(fixture("tools.sse")) as server:
        r = call(model_for(server), stream=True, on_event=events.append)
    calls = r.tool_calls
    assert [(c.id, c.name) for c in calls] == [
        ("call_a", "get_weather"), ("call_b", "get_time"), ("call_c", "now"), ("call_d", "ping")]
    assert [c.args() for c in calls] == [{"city": "Paris"}, {"tz": "UTC"}, {}, {}]
    assert calls[0].arguments == '{"city": "Paris"}'
    assert calls[2].arguments == "{}"
    assert calls[3].arguments == "{}"
    assert (r.finish_reason, r.raw_finish_reason) == ("tool_calls", "tool_calls")
    assert r.text == ""
    assert r.usage.cached_tokens == 1024
    assert r.usage.cache_write_tokens == 512
    assert r.usage.reasoning_tokens == 32
    assert r.usage.usd is None
    named = [e.name for e in events if e.kind == "tool_call" and e.name]
    assert named == ["get_weather", "get_time", "now", "ping"]


def test_stream_refusal_becomes_refusal_part() -> None:
    """`refusal` deltas make one RefusalPart and a `refusal` finish reason."""
    with sse_server(fixture("refusal.sse")) as server:
        r = call(model_for(server), stream=True)
    assert r.parts == (RefusalPart(text="I'm sorry, I can't help with that."),)
    assert (r.finish_reason, r.raw_finish_reason) == ("refusal", "stop")


def test_stream_finish_reason_length() -> None:
    """`finish_reason: length` is normalised to `length`."""
    with sse_server(fixture("length.sse")) as server:
        r = call(model_for(server), stream=True)
    assert r.finish_reason == "length"
    assert r.text == "The answer is a long"


def test_stream_n_two_choices_interleaved() -> None:
    """With n=2 the first choice is the response and the second an extra choice."""
    with sse_server(fixture("n2.sse")) as server:
        r = call(model_for(server), stream=True, settings=ModelSettings(n=2))
        assert server.requests[0].json()["n"] == 2
    assert r.text == "Alpha"
    assert r.finish_reason == "stop"
    assert len(r.extra_choices) == 1
    assert r.extra_choices[0].parts == (TextPart(text="Beta"),)
    assert r.extra_choices[0].finish_reason == "length"


def test_stream_reasoning_content_becomes_thinking() -> None:
    """`reasoning_content` / `reasoning` deltas make a ThinkingPart before the text."""
    events: list[StreamEvent] = []
    with sse_server(fixture("reasoning.sse")) as server:
        r = call(model_for(server), stream=True, on_event=events.append)
    assert r.parts == (ThinkingPart(text="Two plus two is four."), TextPart(text="4"))
    assert r.usage.reasoning_tokens == 8
    assert [e.kind for e in events] == ["thinking", "thinking", "text"]


def test_error_object_inside_200_stream_is_http_error() -> None:
    """`data: {"error": ...}` in a 200 stream raises ModelHTTPError with the error's status."""
    server = sse_server(fixture("error_in_stream.sse"))
    with server, pytest.raises(ModelHTTPError) as info:
        call(model_for(server, max_retries=0), stream=True)
    assert info.value.status_code == 429
    assert info.value.retryable
    assert "Rate limit reached" in info.value.body


def test_error_inside_stream_is_retried_then_succeeds() -> None:
    """A retryable in-stream error before any delta is retried."""
    with sse_server(fixture("error_in_stream.sse"), fixture("text.sse")) as server:
        r = call(model_for(server, max_retries=2), stream=True)
        assert len(server.requests) == 2
    assert r.text == "Hello, wörld!"


def test_event_error_sse_event_is_http_error() -> None:
    """An `event: error` SSE event raises ModelHTTPError (overloaded -> 529, retryable)."""
    with sse_server(fixture("event_error.sse")) as server, pytest.raises(ModelHTTPError) as info:
        call(model_for(server, max_retries=0), stream=True)
    assert (info.value.status_code, info.value.retryable) == (529, True)
    assert "Overloaded" in str(info.value)


def test_error_after_deltas_is_not_retried() -> None:
    """An in-stream error after deltas were reported is not retried (no duplicate deltas)."""
    events: list[StreamEvent] = []
    with sse_server(fixture("error_after_text.sse")) as server:
        with pytest.raises(ModelHTTPError) as info:
            call(model_for(server, max_retries=2), stream=True, on_event=events.append)
        assert len(server.requests) == 1
    assert info.value.status_code == 500
    assert not info.value.retryable
    assert [e.delta for e in events] == ["Partial "]


def test_json_error_body_on_streaming_request() -> None:
    """A non-2xx JSON body on a streaming request raises ModelHTTPError with that body."""
    err = {"error": {"message": "Invalid 'messages'.", "type": "invalid_request_error",
                     "param": "messages", "code": None}}
    with LoopbackServer(lambda req: Reply(status=400, json=err)) as server:
        with pytest.raises(ModelHTTPError) as info:
            call(model_for(server), stream=True)
        assert len(server.requests) == 1
    assert info.value.status_code == 400
    assert json.loads(info.value.body) == err
    assert not info.value.retryable


def test_malformed_chunk_raises_unexpected_output() -> None:
    """A stream chunk that is not JSON raises UnexpectedModelOutput naming model and URL."""
    body = fixture("text.sse").replace(b'{"content":"!"}', b'{"content":"!"', 1)
    with sse_server(body) as server, pytest.raises(UnexpectedModelOutput) as info:
        call(model_for(server), stream=True)
    assert "openai:test-unpriced" in str(info.value)
    assert server.url in str(info.value)


def test_streaming_request_answered_with_plain_json() -> None:
    """A server that ignores `stream: true` and answers JSON still gives a response."""
    with LoopbackServer(lambda req: Reply(json=completion(content="plain"))) as server:
        r = call(model_for(server), stream=True)
    assert r.text == "plain"


def test_stream_without_usage_estimates_tokens() -> None:
    """A stream without usage gives estimated (non-zero) tokens, never a silent zero."""
    body = b"".join(line + b"\n\n" for line in fixture("length.sse").split(b"\n\n")
                    if b'"usage"' not in line and line)
    with sse_server(body) as server:
        r = call(model_for(server, input_per_mtok=1, output_per_mtok=1), stream=True)
    assert r.usage.input_tokens > 0
    assert r.usage.output_tokens > 0
    assert r.usage.usd is not None
    assert r.usage.usd > 0


def test_parallel_calls_all_numbered_zero_with_distinct_ids() -> None:
    """Servers that give every parallel call index 0 but distinct ids yield separate calls."""
    head = '"id":"x","object":"chat.completion.chunk","model":"m"'
    lines = [
        {"index": 0, "id": "call_1", "function": {"name": "a", "arguments": '{"x": 1}'}},
        {"index": 0, "id": "call_2", "function": {"name": "b", "arguments": '{"y": 2}'}},
    ]
    body = "".join(
        f'data: {{{head},"choices":[{{"index":0,"delta":{{"tool_calls":[{json.dumps(f)}]}}}}]}}\n\n'
        for f in lines) + "data: [DONE]\n\n"
    with sse_server(body.encode()) as server:
        r = call(model_for(server), stream=True)
    assert [(c.id, c.name, c.args()) for c in r.tool_calls] == [
        ("call_1", "a", {"x": 1}), ("call_2", "b", {"y": 2})]


# -- non-streaming -----------------------------------------------------------------------------


def completion(content: str | None = "Hi", **message: Any) -> dict[str, Any]:
    """A Chat Completions body as OpenAI documents it."""
    return {
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 1741569952,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content,
                                             "refusal": None, **message},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0}},
    }


def test_plain_tool_calls_refusal_and_reasoning() -> None:
    """A non-streamed message maps reasoning, text, refusal and tool calls to parts."""
    body = completion(
        content="Checking.", refusal="Not that part.", reasoning_content="Think.",
        tool_calls=[{"id": "call_1", "type": "function",
                     "function": {"name": "lookup", "arguments": '{"key": 7}'}},
                    {"id": "call_2", "type": "function",
                     "function": {"name": "now", "arguments": ""}}])
    body["choices"][0]["finish_reason"] = "tool_calls"
    with LoopbackServer(lambda req: Reply(json=body)) as server:
        r = call(model_for(server))
    assert r.parts == (
        ThinkingPart(text="Think."), TextPart(text="Checking."), RefusalPart(text="Not that part."),
        ToolCallPart(id="call_1", name="lookup", arguments='{"key": 7}'),
        ToolCallPart(id="call_2", name="now", arguments="{}"))
    assert (r.finish_reason, r.provider_id, r.model_name) == (
        "tool_calls", "chatcmpl-abc", "gpt-4o-2024-08-06")


def test_plain_n_two_and_usage_details() -> None:
    """Plain responses with two choices give extra_choices; usage details are read."""
    body = completion(content="A")
    body["choices"].append({"index": 1, "message": {"role": "assistant", "content": "B"},
                            "finish_reason": "length"})
    body["usage"]["prompt_tokens_details"] = {"cached_tokens": 5, "cache_creation_tokens": 3}
    body["usage"]["completion_tokens_details"] = {"reasoning_tokens": 4}
    with LoopbackServer(lambda req: Reply(json=body)) as server:
        r = call(model_for(server, input_per_mtok=1, output_per_mtok=1))
    assert (r.text, r.extra_choices[0].parts, r.extra_choices[0].finish_reason) == (
        "A", (TextPart(text="B"),), "length")
    assert (r.usage.cached_tokens, r.usage.cache_write_tokens, r.usage.reasoning_tokens) == (
        5, 3, 4)


def test_non_json_body_raises_unexpected_output() -> None:
    """A 200 HTML body raises UnexpectedModelOutput naming the model and the base URL."""
    page = Reply(body="<html>Welcome to nginx</html>", headers={"content-type": "text/html"})
    with LoopbackServer(lambda req: page) as server:
        model = model_for(server)
        with pytest.raises(UnexpectedModelOutput) as info:
            call(model)
    assert "openai:test-unpriced" in str(info.value)
    assert model.base_url in str(info.value)
    assert "/v1" in (info.value.hint or "")
    assert "nginx" in info.value.body


def test_json_without_choices_raises_unexpected_output() -> None:
    """A JSON body without `choices` raises UnexpectedModelOutput."""
    server = LoopbackServer(lambda req: Reply(json={"object": "list", "data": []}))
    with server, pytest.raises(UnexpectedModelOutput, match="without `choices`"):
        call(model_for(server))


def test_error_object_in_200_json_body() -> None:
    """A 200 JSON body holding only an `error` raises ModelHTTPError."""
    err = {"error": {"message": "busy", "type": "server_error", "code": 503}}
    server = LoopbackServer(lambda req: Reply(json=err))
    with server, pytest.raises(ModelHTTPError) as info:
        call(model_for(server, max_retries=0))
    assert info.value.status_code == 503


# -- retries, timeouts, connection errors ------------------------------------------------------


def scripted(*replies: Reply) -> LoopbackServer:
    """A loopback server answering the replies in order (the last repeats)."""
    queue = list(replies)
    return LoopbackServer(lambda req: queue.pop(0) if len(queue) > 1 else queue[0])


def test_429_retry_after_is_honoured() -> None:
    """A 429 with Retry-After waits that long, calls the retry hook, then succeeds."""
    seen: list[tuple[int, int, float]] = []
    limited = Reply(status=429, json={"error": {"message": "slow down"}},
                    headers={"retry-after": "0.3"})
    with scripted(limited, Reply(json=completion())) as server:
        model = model_for(server, on_retry=lambda n, exc, s: seen.append(
            (n, getattr(exc, "status_code", 0), s)))
        start = time.monotonic()
        r = call(model)
        elapsed = time.monotonic() - start
        assert len(server.requests) == 2
    assert r.text == "Hi"
    assert elapsed >= 0.28
    assert seen == [(1, 429, 0.3)]


def test_500_is_retried_then_succeeds() -> None:
    """A 500 is retried with backoff, and the retry's answer is returned."""
    failing = Reply(status=500, json={"error": {"message": "oops"}}, headers={"retry-after": "0"})
    with scripted(failing, Reply(json=completion(content="ok"))) as server:
        r = call(model_for(server))
        assert len(server.requests) == 2
    assert r.text == "ok"


def test_400_is_not_retried() -> None:
    """A 400 is raised at once, without a retry."""
    with scripted(Reply(status=400, json={"error": {"message": "bad"}})) as server:
        with pytest.raises(ModelHTTPError) as info:
            call(model_for(server, max_retries=3))
        assert len(server.requests) == 1
    assert (info.value.status_code, info.value.retryable) == (400, False)


def test_retries_exhausted_raise_last_status_and_body() -> None:
    """When retries run out the last status and body are raised."""
    busy = Reply(status=503, json={"error": {"message": "overloaded now"}},
                 headers={"retry-after": "0"})
    with scripted(busy) as server:
        with pytest.raises(ModelHTTPError) as info:
            call(model_for(server, max_retries=2), stream=True)
        assert len(server.requests) == 3
    assert info.value.status_code == 503
    assert "overloaded now" in info.value.body


def test_timeout_raises_model_timeout() -> None:
    """An answer slower than `timeout_s` raises ModelTimeout."""
    server = scripted(Reply(json=completion(), delay_s=2.0))
    with server, pytest.raises(ModelTimeout) as info:
        call(model_for(server, timeout_s=0.2, max_retries=0))
    assert info.value.timeout_s == 0.2


def test_unreachable_base_url_names_the_url() -> None:
    """A closed port on 127.0.0.1 raises ModelConnectionError naming the URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = OpenAIModel("m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    with pytest.raises(ModelConnectionError) as info:
        call(model)
    assert f"127.0.0.1:{port}" in str(info.value)
    assert info.value.url == model.url


def test_dropped_stream_raises_connection_error() -> None:
    """A connection closed halfway through a stream raises ModelConnectionError."""
    from agentnb.testing.openai_server import FakeOpenAIServer, OpenAITurn

    with FakeOpenAIServer([OpenAITurn(text="a long answer " * 5, drop=True)]) as server:
        model = OpenAIModel("m", base_url=server.url, max_retries=0)
        with pytest.raises(ModelConnectionError):
            call(model, stream=True)


# -- configuration -----------------------------------------------------------------------------


def test_missing_key_for_openai_raises_config_error() -> None:
    """No key for api.openai.com raises ConfigError naming OPENAI_API_KEY."""
    with pytest.raises(ConfigError) as info:
        OpenAIModel("gpt-4o-mini")
    assert "OPENAI_API_KEY" in str(info.value)
    assert "base_url" in (info.value.hint or "")


def test_env_key_and_base_url_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPENAI_API_KEY and OPENAI_BASE_URL are the defaults."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    model = OpenAIModel("gpt-4o-mini")
    assert (model.api_key, model.url) == ("sk-env", "http://127.0.0.1:9/v1/chat/completions")


def test_local_server_needs_no_key() -> None:
    """A local base URL works without a key, and no Authorization header is sent."""
    with LoopbackServer(lambda req: Reply(json=completion())) as server:
        call(OpenAIModel("llama3", base_url=server.url + "/v1"))
        assert "authorization" not in server.requests[0].headers


def test_unpriced_model_has_no_usd_and_priced_model_does() -> None:
    """Unknown prices give `usd=None`; explicit prices give Decimal USD."""
    with LoopbackServer(lambda req: Reply(json=completion())) as server:
        unpriced = call(model_for(server))
        priced = call(model_for(server, input_per_mtok="0.15", output_per_mtok="0.60"))
    assert unpriced.usage.usd is None
    assert priced.usage.usd == (19 * Decimal("0.15") + 10 * Decimal("0.60")) / 1_000_000


def test_table_price_applies_to_known_model() -> None:
    """A model in the price table is priced without explicit prices."""
    with LoopbackServer(lambda req: Reply(json=completion())) as server:
        model = model_for(server, name="gpt-4o-mini")
        r = call(model)
    assert model.info.priced
    assert r.usage.usd == model.info.cost(input_tokens=19, output_tokens=10)
    assert r.usage.usd is not None


def test_model_stream_flag_makes_request_stream() -> None:
    """`stream=True` on the model makes `request()` send a streamed request."""
    with sse_server(fixture("text.sse")) as server:
        r = call(model_for(server, stream=True))
        assert server.requests[0].json()["stream"] is True
    assert r.text == "Hello, wörld!"


def test_odd_shapes_in_a_plain_body_are_read_leniently() -> None:
    """Fields of the wrong type in a 200 body (a list as finish_reason, a text index, a tool
    call that is not an object, a nameless function, token counts that are not numbers) give
    a response of well-typed fields, not an exception from deep inside."""
    body = completion(content="A", tool_calls=[
        "junk", {"id": 7, "function": {"name": None, "arguments": {"k": 1}}}])
    body["choices"][0]["finish_reason"] = ["stop"]
    body["choices"][0]["index"] = "first"
    body["usage"] = {"prompt_tokens": "many", "completion_tokens": 3.0,
                     "prompt_tokens_details": "none"}
    with LoopbackServer(lambda req: Reply(json=body)) as server:
        r = call(model_for(server))
    assert r.parts == (TextPart(text="A"),
                       ToolCallPart(id="call_0", name="", arguments="{}"),
                       ToolCallPart(id="7", name="", arguments='{"k": 1}'))
    assert (r.finish_reason, r.raw_finish_reason) == ("tool_calls", "['stop']")
    assert (r.usage.input_tokens, r.usage.output_tokens) == (0, 3)
    # Built without a second validation pass, and the same as a validated response.
    assert ModelResponse.model_validate(r.model_dump()) == r
