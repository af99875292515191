"""OpenAIModel's request JSON as sent, through `httpx.MockTransport` (no sockets)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from agentnb.core import (
    Message,
    RefusalPart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolDefinition,
    ToolResultPart,
)
from agentnb.models._base import ModelResponse, ModelSettings
from agentnb.models.openai import OpenAIModel

ANSWER = {"id": "chatcmpl-1", "object": "chat.completion", "model": "m",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                       "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


def capture(model_kwargs: dict[str, Any], messages: list[Message],
            **call: Any) -> tuple[httpx.Request, dict[str, Any], ModelResponse]:
    """Send one request through a MockTransport and return the request, its JSON and the answer."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=ANSWER)

    async def go() -> ModelResponse:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            model = OpenAIModel("m", base_url="http://llm.test/v1", http_client=client,
                                **model_kwargs)
            return await model.request(messages, **call)

    response = asyncio.run(go())
    return seen[0], json.loads(seen[0].content), response


def test_messages_map_to_chat_completions_roles() -> None:
    """System/user/assistant/tool messages map to OpenAI roles; thinking is dropped."""
    conversation = [
        Message.system("Be brief."),
        Message.user("Weather and time?"),
        Message.assistant(
            ThinkingPart(text="secret"), TextPart(text="Checking."),
            ToolCallPart(id="c1", name="weather", arguments='{"city": "Paris"}'),
            ToolCallPart(id="c2", name="now", arguments="")),
        Message.tool_results(
            ToolResultPart(call_id="c1", name="weather", content="sunny"),
            ToolResultPart(call_id="c2", name="now", content="noon", is_error=True)),
        Message.assistant(RefusalPart(text="No.")),
    ]
    _, body, _ = capture({"api_key": "k"}, conversation)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather and time?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
            {"id": "c2", "type": "function", "function": {"name": "now", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "noon"},
        {"role": "assistant", "content": "No."},
    ]


def test_tools_and_settings_on_the_wire() -> None:
    """Tools, settings and extra_body appear in the body; the URL and headers are right."""
    tool = ToolDefinition(name="lookup", description="Look a key up.",
                          parameters={"type": "object", "properties": {"key": {"type": "string"}}})
    settings = ModelSettings(max_tokens=64, temperature=0.2, n=2, tool_choice="lookup",
                             parallel_tool_calls=False, seed=7, stop=("END",),
                             extra_body={"top_p": 0.5, "temperature": 0.3})
    request, body, response = capture({"api_key": "sk-1", "headers": {"x-team": "a"}},
                                      [Message.user("hi")], tools=[tool], settings=settings)
    assert str(request.url) == "http://llm.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-1"
    assert request.headers["x-team"] == "a"
    assert body["tools"] == [{"type": "function", "function": {
        "name": "lookup", "description": "Look a key up.", "parameters": tool.parameters}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert (body["max_tokens"], body["n"], body["seed"], body["stop"]) == (64, 2, 7, ["END"])
    assert body["parallel_tool_calls"] is False
    assert (body["temperature"], body["top_p"]) == (0.3, 0.5)
    assert "stream" not in body
    assert response.text == "ok"


def test_model_defaults_and_named_tool_choice_values() -> None:
    """Model-level max_tokens/temperature apply; `required` stays a string; no parallel flag."""
    settings = ModelSettings(tool_choice="required", parallel_tool_calls=True)
    _, body, _ = capture({"max_tokens": 99, "temperature": 0.0}, [Message.user("hi")],
                         settings=settings)
    assert (body["max_tokens"], body["temperature"]) == (99, 0.0)
    assert body["tool_choice"] == "required"
    assert "parallel_tool_calls" not in body
    assert "tools" not in body


def test_streaming_body_asks_for_usage() -> None:
    """A streamed request sends `stream: true` with `stream_options.include_usage`."""
    model = OpenAIModel("m", base_url="http://llm.test/v1")
    body = model.build_body([Message.user("hi")], stream=True)
    assert (body["stream"], body["stream_options"]) == (True, {"include_usage": True})
    assert body["max_tokens"] == model.info.max_output_tokens
