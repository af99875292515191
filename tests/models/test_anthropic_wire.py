"""The exact JSON and headers AnthropicModel puts on the wire, seen through httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from agentnb.core import (
    Message,
    RefusalPart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolDefinition,
    ToolResultPart,
    UsageError,
)
from agentnb.models import ModelSettings
from agentnb.models.anthropic import ANTHROPIC_VERSION, AnthropicModel

OK = {"id": "msg_w", "type": "message", "role": "assistant", "model": "claude-x",
      "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
      "usage": {"input_tokens": 1, "output_tokens": 1}}
LOOKUP = ToolDefinition(name="lookup", description="Look a key up.",
                        parameters={"type": "object", "properties": {"key": {"type": "string"}}})


def capture(messages: Sequence[Message] = (Message.user("Hi"),), *,
            tools: Sequence[ToolDefinition] = (), settings: ModelSettings | None = None,
            **kw: Any) -> httpx.Request:
    """Send one request through a MockTransport and return it as sent."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=OK)

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            model = AnthropicModel("claude-x", api_key="sk-wire", http_client=client, **kw)
            await model.request(messages, tools=tools, settings=settings)
            await model.aclose()
            assert not client.is_closed

    asyncio.run(go())
    return seen[0]


def body_of(request: httpx.Request) -> dict[str, Any]:
    """The request's JSON body."""
    return json.loads(request.content)


def test_headers_and_url() -> None:
    """x-api-key, anthropic-version and content-type are sent to /v1/messages; extras win."""
    request = capture(headers={"anthropic-beta": "tools-2024", "x-api-key": "sk-override"})
    assert str(request.url) == "https://api.anthropic.com/v1/messages"
    assert request.headers["anthropic-version"] == ANTHROPIC_VERSION == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["anthropic-beta"] == "tools-2024"
    assert request.headers["x-api-key"] == "sk-override"


def test_minimal_body() -> None:
    """A plain call sends model, max_tokens from the model info, and the user message."""
    body = body_of(capture())
    assert body == {"model": "claude-x", "max_tokens": 4096,
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}


def test_conversation_mapping() -> None:
    """System goes top-level; tool calls, thinking and results map; same roles merge."""
    messages = [
        Message.system("Be brief."),
        Message.user("What do keys 1 and 2 hold?"),
        Message.assistant(
            ThinkingPart(text="two lookups", signature="sig-1"),
            ThinkingPart(text="", signature="anthropic-redacted:blob"),
            ThinkingPart(text="from another provider"),
            TextPart(text="Looking."),
            ToolCallPart(id="t1", name="lookup", arguments='{"key": "1"}'),
            ToolCallPart(id="t2", name="lookup", arguments="{not json"),
            ToolCallPart(id="t3", name="lookup", arguments=""),
        ),
        Message.tool_results(ToolResultPart(call_id="t1", name="lookup", content="a lamp"),
                             ToolResultPart(call_id="t2", name="lookup", content="bad args",
                                            is_error=True)),
        Message.tool_results(ToolResultPart(call_id="t3", name="lookup", content="")),
        Message.user("Thanks."),
        Message.system("Answer in French."),
    ]
    body = body_of(capture(messages))
    assert body["system"] == "Be brief.\n\nAnswer in French."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "What do keys 1 and 2 hold?"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "two lookups", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "blob"},
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"key": "1"}},
            {"type": "tool_use", "id": "t2", "name": "lookup", "input": {}},
            {"type": "tool_use", "id": "t3", "name": "lookup", "input": {}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "a lamp"},
            {"type": "tool_result", "tool_use_id": "t2", "content": "bad args", "is_error": True},
            {"type": "tool_result", "tool_use_id": "t3", "content": ""},
            {"type": "text", "text": "Thanks."},
        ]},
    ]


def test_tool_results_come_first_when_merged_after_text() -> None:
    """A user text followed by tool results merges with the tool_result blocks first."""
    messages = [Message.user("note"),
                Message.tool_results(ToolResultPart(call_id="t", name="f", content="r"))]
    content = body_of(capture(messages))["messages"][0]["content"]
    assert [b["type"] for b in content] == ["tool_result", "text"]


def test_refusal_parts_sent_only_without_text() -> None:
    """A RefusalPart is sent as text when alone and dropped beside text."""
    alone = [Message.user("x"), Message.assistant(RefusalPart(text="No.")), Message.user("y")]
    assert body_of(capture(alone))["messages"][1]["content"] == [{"type": "text", "text": "No."}]
    both = [Message.user("x"), Message.assistant(TextPart(text="Hm"), RefusalPart(text="No."))]
    assert body_of(capture(both))["messages"][1]["content"] == [{"type": "text", "text": "Hm"}]


@pytest.mark.parametrize(("choice", "parallel", "wire"), [
    (None, None, None),
    ("auto", None, {"type": "auto"}),
    ("required", None, {"type": "any"}),
    ("any", None, {"type": "any"}),
    ("none", None, {"type": "none"}),
    ("lookup", None, {"type": "tool", "name": "lookup"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ("none", False, {"type": "none"}),
    ("auto", True, {"type": "auto"}),
])
def test_tool_choice(choice: str | None, parallel: bool | None, wire: dict[str, Any] | None
                     ) -> None:
    """tool_choice and parallel_tool_calls map to the Messages API's tool_choice object."""
    settings = ModelSettings(tool_choice=choice, parallel_tool_calls=parallel)
    body = body_of(capture(tools=[LOOKUP], settings=settings))
    assert body["tools"] == [{"name": "lookup", "description": "Look a key up.",
                              "input_schema": LOOKUP.parameters}]
    assert body.get("tool_choice") == wire


def test_tool_choice_omitted_without_tools() -> None:
    """Without tools no tools or tool_choice field is sent."""
    body = body_of(capture(settings=ModelSettings(tool_choice="required")))
    assert "tools" not in body
    assert "tool_choice" not in body


def test_settings_and_extra_body() -> None:
    """max_tokens, temperature, stop_sequences map; extra_body is merged last."""
    settings = ModelSettings(max_tokens=99, temperature=0.2, stop=("END",),
                             extra_body={"top_k": 5, "metadata": {"user_id": "u1"}})
    body = body_of(capture(settings=settings, temperature=0.9))
    assert (body["max_tokens"], body["temperature"], body["stop_sequences"]) == (99, 0.2, ["END"])
    assert (body["top_k"], body["metadata"]) == (5, {"user_id": "u1"})


def test_model_defaults_and_thinking() -> None:
    """Model-level max_tokens and temperature apply; thinking_budget_tokens enables thinking."""
    body = body_of(capture(max_tokens=3000, temperature=1.0, thinking_budget_tokens=1024))
    assert (body["max_tokens"], body["temperature"]) == (3000, 1.0)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}


def test_stream_flag_in_body() -> None:
    """A stream=True model sends `"stream": true`."""
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json=OK)

    async def go() -> str:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            model = AnthropicModel("claude-x", api_key="k", http_client=client, stream=True)
            return (await model.request([Message.user("Hi")])).text

    assert asyncio.run(go()) == "ok"
    assert seen[0]["stream"] is True


def test_n_above_one_is_refused() -> None:
    """n > 1 raises UsageError: the Messages API returns one choice."""
    model = AnthropicModel("claude-x", api_key="k")
    with pytest.raises(UsageError, match="n=2"):
        model.build_body([Message.user("x")], settings=ModelSettings(n=2))


def test_no_key_header_for_keyless_servers() -> None:
    """A local server without a key gets no x-api-key header."""
    model = AnthropicModel("claude-x", base_url="http://127.0.0.1:1")
    assert "x-api-key" not in model.request_headers()
