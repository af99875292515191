"""FakeOpenAIServer: scripted turns, realistic shapes, fault injection, counters."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from agentnb.core import Message, ModelConnectionError, ModelHTTPError, UnexpectedModelOutput
from agentnb.models._base import ModelResponse, ModelSettings, StreamEvent
from agentnb.models.openai import OpenAIModel
from agentnb.testing.openai_server import FakeOpenAIServer, OpenAIToolCall, OpenAITurn

ASK = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def call(model: OpenAIModel, *, stream: bool = False, **kwargs: Any) -> ModelResponse:
    """Run one request on a fresh loop and close the model's client."""

    async def go() -> ModelResponse:
        try:
            if stream:
                return await model.stream([Message.user("hi")], **kwargs)
            return await model.request([Message.user("hi")], **kwargs)
        finally:
            await model.aclose()

    return asyncio.run(go())


def sse_events(text: str) -> list[Any]:
    """Parse `data:` lines of an SSE body (JSON, or the raw `[DONE]`)."""
    out: list[Any] = []
    for line in text.splitlines():
        if line.startswith("data: "):
            data = line.removeprefix("data: ")
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_url_and_context_manager() -> None:
    """`url` is http://127.0.0.1:PORT/v1 while serving; the port closes on exit."""
    with FakeOpenAIServer(["a"]) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.url.endswith("/v1")
        url = server.url
    with pytest.raises(httpx.ConnectError):
        httpx.post(url + "/chat/completions", json=ASK)


def test_plain_shape_and_counters() -> None:
    """Non-streamed answers have the documented shape and are counted."""
    with FakeOpenAIServer(["pong"], model="gpt-fake") as server:
        data = httpx.post(server.url + "/chat/completions", json=ASK).json()
        stats = server.stats()
        assert server.last_request == ASK
    assert data["object"] == "chat.completion"
    assert data["model"] == "gpt-fake"
    assert data["choices"][0]["message"] == {"role": "assistant", "content": "pong",
                                             "refusal": None}
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["total_tokens"] == (data["usage"]["prompt_tokens"]
                                             + data["usage"]["completion_tokens"])
    assert stats == {"requests": 1, "ok": 1, "by_status": {200: 1}, "remaining": 0}


def test_stream_shape_with_tool_fragments_and_usage() -> None:
    """SSE: role chunk first, fragments across chunks, finish, usage-only chunk, [DONE]."""
    turn = [OpenAIToolCall("lookup", {"key": "seven"}), OpenAIToolCall("now")]
    body = {**ASK, "stream": True, "stream_options": {"include_usage": True}}
    with FakeOpenAIServer([turn], chunk_chars=4) as server:
        events = sse_events(httpx.post(server.url + "/chat/completions", json=body).text)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert events[-1] == "[DONE]"
    assert events[-2]["choices"] == []
    assert events[-2]["usage"]["completion_tokens"] > 0
    assert events[-3]["choices"][0]["finish_reason"] == "tool_calls"
    fragments = [tc for e in events[1:-3] for tc in e["choices"][0]["delta"]["tool_calls"]]
    args = "".join(f["function"]["arguments"] for f in fragments if f["index"] == 0)
    assert json.loads(args) == {"key": "seven"}
    assert sum(1 for f in fragments if f["index"] == 0) > 2


def test_stream_without_include_usage_has_no_usage_chunk() -> None:
    """Without `stream_options.include_usage` no usage chunk is sent."""
    with FakeOpenAIServer(["hello there"]) as server:
        r = httpx.post(server.url + "/chat/completions", json={**ASK, "stream": True})
    events = sse_events(r.text)
    assert all(e == "[DONE]" or e["choices"] for e in events)
    assert r.headers["content-type"].startswith("text/event-stream")


def test_stream_and_plain_give_equal_responses() -> None:
    """The same turn streamed and not streamed gives an equal ModelResponse."""
    turn = OpenAITurn(text="Let me check both.", reasoning="Two calls needed.",
                      tool_calls=(OpenAIToolCall("a", {"x": [1, 2]}, id="call_x"),
                                  OpenAIToolCall("b", "")))
    results = []
    for stream in (False, True):
        with FakeOpenAIServer([turn], chunk_chars=3, sse_split_bytes=17) as server:
            results.append(call(OpenAIModel("m", base_url=server.url, stream=stream)))
    assert results[0] == results[1]
    assert results[0].tool_calls[1].arguments == "{}"
    assert results[0].finish_reason == "tool_calls"


def test_refusal_length_and_n_choices() -> None:
    """Refusal and length turns, and n > 1 copies of a turn, reach the client."""
    script = [OpenAITurn(refusal="I can't."), OpenAITurn(text="cut", finish_reason="length"),
              "twice"]
    with FakeOpenAIServer(script) as server:
        model = OpenAIModel("m", base_url=server.url)
        refused = call(model, stream=True)
        cut = call(model)
        both = call(model, stream=True, settings=ModelSettings(n=2))
    assert (refused.finish_reason, refused.parts[0].kind) == ("refusal", "refusal")
    assert cut.finish_reason == "length"
    assert both.text == "twice"
    assert both.extra_choices[0].parts == both.parts


def test_callable_script_sees_the_request() -> None:
    """A callable script is called with the request JSON."""
    def answer(request: dict[str, Any]) -> str:
        return f"{len(request['messages'])} message(s), tools={len(request.get('tools', []))}"

    with FakeOpenAIServer(answer) as server:
        r = call(OpenAIModel("m", base_url=server.url))
    assert r.text == "1 message(s), tools=0"


def test_error_turn_with_retry_after_is_retried() -> None:
    """A scripted 429 with retry_after_s sends Retry-After, which the client honours."""
    with FakeOpenAIServer([OpenAITurn.error(429, retry_after_s=0.2), "ok"]) as server:
        start = time.monotonic()
        r = call(OpenAIModel("m", base_url=server.url))
        elapsed = time.monotonic() - start
        stats = server.stats()
    assert r.text == "ok"
    assert elapsed >= 0.18
    assert stats["by_status"] == {429: 1, 200: 1}


def test_injected_error_rates_are_seeded() -> None:
    """error_429_rate / error_500_rate inject faults reproducibly for a seed."""
    def run(seed: int) -> dict[int, int]:
        with FakeOpenAIServer(lambda req: "x", error_429_rate=0.3, error_500_rate=0.2,
                              retry_after_s=0, seed=seed) as server, httpx.Client() as client:
            for _ in range(40):
                client.post(server.url + "/chat/completions", json=ASK)
            return server.stats()["by_status"]

    first, again = run(1), run(1)
    assert first == again
    assert first[429] > 0
    assert first[500] > 0
    assert first[200] > 0


def test_client_survives_injected_faults() -> None:
    """An OpenAIModel with retries gets through a server that fails often."""
    with FakeOpenAIServer(lambda req: "fine", error_429_rate=0.3, error_500_rate=0.2,
                          retry_after_s=0.0, seed=3) as server:
        model = OpenAIModel("m", base_url=server.url, max_retries=8)
        answers = [call(model).text for _ in range(6)]
        stats = server.stats()
    assert answers == ["fine"] * 6
    assert stats["ok"] == 6
    assert stats["requests"] > 6


def test_latency_range() -> None:
    """`latency_s=(low, high)` delays each answer within the range."""
    with FakeOpenAIServer(["a"], latency_s=(0.15, 0.2)) as server:
        start = time.monotonic()
        httpx.post(server.url + "/chat/completions", json=ASK)
        assert time.monotonic() - start >= 0.15


def test_malformed_turns() -> None:
    """A malformed turn gives HTML (plain) or a broken chunk (stream)."""
    script = [OpenAITurn(text="x", malformed=True), OpenAITurn(text="abcdefghij" * 3,
                                                               malformed=True)]
    with FakeOpenAIServer(script) as server:
        model = OpenAIModel("m", base_url=server.url, max_retries=0)
        with pytest.raises(UnexpectedModelOutput, match="not JSON"):
            call(model)
        with pytest.raises(UnexpectedModelOutput, match="not JSON"):
            call(model, stream=True)


def test_mid_stream_error() -> None:
    """A mid-stream error sends part of the answer, then an error object, and no [DONE]."""
    events: list[StreamEvent] = []
    turn = OpenAITurn(text="a fairly long answer", mid_stream_error=True,
                      error_message="boom")
    with FakeOpenAIServer([turn]) as server:
        with pytest.raises(ModelHTTPError, match="boom") as info:
            call(OpenAIModel("m", base_url=server.url), stream=True, on_event=events.append)
        assert server.stats()["requests"] == 1
    assert info.value.status_code == 500
    assert events


def test_drop_before_answer() -> None:
    """`drop=True` on a plain turn closes the connection without an answer."""
    server = FakeOpenAIServer([OpenAITurn(text="x", drop=True)])
    with server, pytest.raises(ModelConnectionError):
        call(OpenAIModel("m", base_url=server.url, max_retries=0))


def test_exhausted_script_wrong_path_and_api_key() -> None:
    """An exhausted script answers 400; unknown paths 404; a wrong key 401."""
    with FakeOpenAIServer(["one"], api_key="sk-right") as server:
        post = server.url + "/chat/completions"
        assert httpx.post(post, json=ASK).status_code == 401
        auth = {"authorization": "Bearer sk-right"}
        assert httpx.post(post, json=ASK, headers=auth).status_code == 200
        exhausted = httpx.post(post, json=ASK, headers=auth)
        assert httpx.get(server.url + "/models", headers=auth).status_code == 404
    assert exhausted.status_code == 400
    assert "exhausted" in exhausted.json()["error"]["message"]


def test_add_turns_and_concurrent_counters() -> None:
    """Turns can be added later; counters stay exact under concurrent clients."""
    with FakeOpenAIServer(lambda req: "hi") as server:
        def worker() -> None:
            with httpx.Client() as client:
                for _ in range(5):
                    client.post(server.url + "/chat/completions", json=ASK)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert server.stats()["ok"] == 40
        assert len(server.requests) == 40
    scripted = FakeOpenAIServer()
    scripted.add("later", OpenAIToolCall("t"))
    assert scripted.stats()["remaining"] == 2


def test_bad_script_entry_is_reported() -> None:
    """A script entry that is not a turn answers 500 naming the problem."""
    bad: Sequence[Any] = [42]
    with FakeOpenAIServer(bad) as server:
        r = httpx.post(server.url + "/chat/completions", json=ASK)
    assert r.status_code == 500
    assert "Not a scripted turn" in r.text
