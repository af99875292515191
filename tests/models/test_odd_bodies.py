"""Whatever JSON a provider answers with, parsing gives a well-typed response or one clear
`AgentnbError`, never an exception from deep inside (property-based, no network)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentnb.core import AgentnbError, Message
from agentnb.models._base import ModelResponse
from agentnb.models.anthropic import AnthropicModel
from agentnb.models.openai import OpenAIModel

SCALARS = (st.none() | st.booleans() | st.integers(-10**20, 10**20)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=12)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The realistic value or any JSON value in its place."""
    return strategy | JSON


OPENAI_CALL = st.fixed_dictionaries({
    "id": _maybe(st.text(max_size=8)), "type": st.just("function"),
    "function": _maybe(st.fixed_dictionaries({
        "name": _maybe(st.sampled_from(["lookup", "now"])),
        "arguments": _maybe(st.sampled_from(['{"key": 7}', "", "{bad", "[1]"]))}))})
OPENAI_MESSAGE = st.fixed_dictionaries({
    "role": st.just("assistant"), "content": _maybe(st.text(max_size=12)),
    "tool_calls": _maybe(st.lists(_maybe(OPENAI_CALL), max_size=3)),
    "refusal": _maybe(st.none()), "reasoning_content": _maybe(st.none())})
OPENAI_CHOICE = st.fixed_dictionaries({
    "index": _maybe(st.integers(0, 3)), "message": _maybe(OPENAI_MESSAGE),
    "finish_reason": _maybe(st.sampled_from(["stop", "length", "tool_calls", None]))})
OPENAI_USAGE = st.fixed_dictionaries({
    "prompt_tokens": _maybe(st.integers(0, 10**6)),
    "completion_tokens": _maybe(st.integers(0, 10**6)),
    "prompt_tokens_details": _maybe(st.fixed_dictionaries({
        "cached_tokens": _maybe(st.integers(0, 100))})),
    "completion_tokens_details": _maybe(st.fixed_dictionaries({
        "reasoning_tokens": _maybe(st.integers(0, 100))}))})
OPENAI_BODY = st.fixed_dictionaries({
    "id": _maybe(st.text(max_size=8)), "model": _maybe(st.text(max_size=8)),
    "choices": _maybe(st.lists(_maybe(OPENAI_CHOICE), min_size=1, max_size=3)),
    "usage": _maybe(OPENAI_USAGE)})

ANTHROPIC_BLOCK = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": _maybe(st.text(max_size=12))}),
    st.fixed_dictionaries({"type": st.just("thinking"), "thinking": _maybe(st.text(max_size=8)),
                           "signature": _maybe(st.text(max_size=8))}),
    st.fixed_dictionaries({"type": st.just("tool_use"), "id": _maybe(st.text(max_size=8)),
                           "name": _maybe(st.sampled_from(["lookup"])),
                           "input": _maybe(st.fixed_dictionaries({"key": st.integers(0, 9)}))}),
    st.fixed_dictionaries({"type": st.just("redacted_thinking"), "data": JSON}),
    JSON)
ANTHROPIC_BODY = st.fixed_dictionaries({
    "type": _maybe(st.just("message")), "id": _maybe(st.text(max_size=8)),
    "model": _maybe(st.text(max_size=8)),
    "content": _maybe(st.lists(ANTHROPIC_BLOCK, max_size=3)),
    "stop_reason": _maybe(st.sampled_from(["end_turn", "tool_use", "refusal", "max_tokens"])),
    "usage": _maybe(st.fixed_dictionaries({
        "input_tokens": _maybe(st.integers(0, 10**6)),
        "output_tokens": _maybe(st.integers(0, 10**6)),
        "cache_read_input_tokens": _maybe(st.integers(0, 100))}))})

HELLO = [Message.user("hi")]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _well_typed(response: ModelResponse) -> None:
    """Every field holds its declared type: validating the dump gives the same response."""
    assert ModelResponse.model_validate(response.model_dump()) == response
    assert response.usage.input_tokens >= 0
    assert response.usage.output_tokens >= 0


@FUZZ
@given(OPENAI_BODY)
def test_openai_plain_body_of_any_shape(body: dict[str, Any]) -> None:
    model = OpenAIModel("test-unpriced", base_url="http://127.0.0.1:9/v1", api_key="sk-test")
    text = json.dumps(body).encode()
    try:
        response = model._parse_body(text, model.info, HELLO, ())  # pyright: ignore[reportPrivateUsage]
    except AgentnbError:
        return
    _well_typed(response)


@FUZZ
@given(ANTHROPIC_BODY)
def test_anthropic_message_of_any_shape(body: dict[str, Any]) -> None:
    model = AnthropicModel("claude-x", base_url="http://127.0.0.1:9", api_key="sk-test")
    try:
        response = model.parse_message(json.dumps(body))
    except AgentnbError:
        return
    _well_typed(response)


OPENAI_CHUNK = st.fixed_dictionaries({
    "id": _maybe(st.text(max_size=8)), "model": _maybe(st.text(max_size=8)),
    "choices": _maybe(st.lists(_maybe(st.fixed_dictionaries({
        "index": _maybe(st.integers(0, 2)),
        "delta": _maybe(st.fixed_dictionaries({
            "content": _maybe(st.text(max_size=8)),
            "tool_calls": _maybe(st.lists(_maybe(st.fixed_dictionaries({
                "index": _maybe(st.integers(0, 2)), "id": _maybe(st.text(max_size=6)),
                "function": _maybe(st.fixed_dictionaries({
                    "name": _maybe(st.just("lookup")),
                    "arguments": _maybe(st.sampled_from(['{"k', '": 1}', ""]))}))})),
                max_size=2))})),
        "finish_reason": _maybe(st.sampled_from(["stop", "tool_calls", None]))})), max_size=2)),
    "usage": _maybe(OPENAI_USAGE)})


@FUZZ
@given(st.lists(OPENAI_CHUNK, min_size=1, max_size=4))
def test_openai_stream_chunks_of_any_shape(chunks: list[dict[str, Any]]) -> None:
    from agentnb.models._openai_parse import Accumulator

    model = OpenAIModel("test-unpriced", base_url="http://127.0.0.1:9/v1", api_key="sk-test")
    events: list[Any] = []
    acc = Accumulator(events.append)
    try:
        for chunk in chunks:
            acc.add(chunk)
        response = acc.response(model.info, HELLO, ())
    except AgentnbError:
        return
    _well_typed(response)


ANTHROPIC_EVENT = st.one_of(
    st.fixed_dictionaries({"type": st.just("message_start"), "message": _maybe(
        st.fixed_dictionaries({"id": _maybe(st.text(max_size=6)),
                               "usage": _maybe(st.fixed_dictionaries({
                                   "input_tokens": _maybe(st.integers(0, 99))}))}))}),
    st.fixed_dictionaries({"type": st.just("content_block_start"),
                           "index": _maybe(st.integers(0, 2)),
                           "content_block": _maybe(ANTHROPIC_BLOCK)}),
    st.fixed_dictionaries({"type": st.just("content_block_delta"),
                           "index": _maybe(st.integers(0, 2)),
                           "delta": _maybe(st.fixed_dictionaries({
                               "type": st.sampled_from(["text_delta", "input_json_delta",
                                                        "thinking_delta", "signature_delta"]),
                               "text": _maybe(st.text(max_size=6)),
                               "partial_json": _maybe(st.sampled_from(['{"k', '": 1}'])),
                               "thinking": _maybe(st.text(max_size=6)),
                               "signature": _maybe(st.text(max_size=6))}))}),
    st.fixed_dictionaries({"type": st.just("message_delta"),
                           "delta": _maybe(st.fixed_dictionaries({
                               "stop_reason": _maybe(st.sampled_from(["end_turn", "tool_use"]))})),
                           "usage": _maybe(st.fixed_dictionaries({
                               "output_tokens": _maybe(st.integers(0, 99))}))}))


@FUZZ
@given(st.lists(ANTHROPIC_EVENT, min_size=1, max_size=6))
def test_anthropic_stream_events_of_any_shape(events: list[dict[str, Any]]) -> None:
    """Each event is folded under the same guard `_parse_stream` uses: an odd field ends the
    stream with one `UnexpectedModelOutput`, and a stream that gets through gives a
    well-typed response."""
    from agentnb.models._anthropic_wire import Accumulator
    from agentnb.models.anthropic import _ODD_SHAPE  # pyright: ignore[reportPrivateUsage]

    model = AnthropicModel("claude-x", base_url="http://127.0.0.1:9", api_key="sk-test")
    acc = Accumulator()
    try:
        for data in events:
            try:
                model._apply(acc, data["type"], data)  # pyright: ignore[reportPrivateUsage]
            except _ODD_SHAPE:
                return  # `_parse_stream` turns this into UnexpectedModelOutput
        response = model._finish(acc)  # pyright: ignore[reportPrivateUsage]
    except _ODD_SHAPE:
        return
    except AgentnbError:
        return
    _well_typed(response)
