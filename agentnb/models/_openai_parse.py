"""Reading OpenAI Chat Completions answers: whole bodies and stream chunks into a
`ModelResponse` (see `agentnb.models.openai`).

Every field is brought to its type where it is read (a count or index that is not a number
reads as 0, an id that is not text as its text), so an answer with odd field types gives a
well-typed response; `tests/models/test_odd_bodies.py` holds the parsers to it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agentnb.core import (
    FinishReason,
    Part,
    RefusalPart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    UnexpectedModelOutput,
    Usage,
)
from agentnb.models._base import (
    Choice,
    ModelResponse,
    StreamCallback,
    StreamEvent,
    estimate_tokens,
    wire_count,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agentnb.core import Message, ToolDefinition
    from agentnb.models._base import ModelInfo

__all__ = ["Accumulator", "choice_from_message", "hint_format", "response_from"]


def hint_format() -> str:
    """The hint of an answer that is not Chat Completions JSON."""
    return ("Check that `base_url` points at an OpenAI-compatible API (it usually ends in "
            "`/v1`) and not at a web page or proxy login.")

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "refusal",
    "error": "error",
}


def _finish(raw: str | None, parts: Sequence[Part]) -> FinishReason | None:
    if raw is None:
        return None
    finish = _FINISH.get(raw, "stop")
    if finish == "stop" and any(isinstance(p, ToolCallPart) for p in parts):
        finish = "tool_calls"
    if finish == "stop" and any(isinstance(p, RefusalPart) for p in parts):
        finish = "refusal"
    return finish


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return ""


def _args_text(arguments: Any) -> str:
    if arguments is None or arguments == "":
        return "{}"
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def choice_from_message(raw: Any) -> Choice:
    """One `choices[i]` of a whole answer as a `Choice`, whatever the types of its fields.

    Example:
        >>> choice_from_message({"index": 0, "message": {"content": "hi"},
        ...                      "finish_reason": "stop"}).parts
        (TextPart(kind='text', text='hi'),)
    """
    # Every value is brought to its field's type here, so validating the parts cannot fail
    # (pydantic's validation in Rust is also faster than `model_construct`).
    raw = raw if isinstance(raw, dict) else {}
    message = raw.get("message")
    message = message if isinstance(message, dict) else {}
    parts: list[Part] = []
    thinking = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(thinking, str) and thinking:
        parts.append(ThinkingPart(text=thinking))
    text = _text_of(message.get("content"))
    if text:
        parts.append(TextPart(text=text))
    if message.get("refusal"):
        parts.append(RefusalPart(text=str(message["refusal"])))
    raw_calls = message.get("tool_calls")
    calls = list(raw_calls) if isinstance(raw_calls, list) else []
    if message.get("function_call"):
        calls.append({"function": message["function_call"]})
    for i, item in enumerate(calls):
        call = item if isinstance(item, dict) else {}
        fn = call.get("function")
        fn = fn if isinstance(fn, dict) else {}
        name = fn.get("name")
        parts.append(ToolCallPart(
            id=str(call.get("id") or f"call_{i}"), name=name if isinstance(name, str) else "",
            arguments=_args_text(fn.get("arguments"))))
    raw_finish = raw.get("finish_reason")
    return Choice(
        index=wire_count(raw.get("index")), parts=tuple(parts),
        finish_reason=_finish(str(raw_finish), parts) if raw_finish else None)


def _usage(raw: Any, info: ModelInfo, messages: Sequence[Message],
           tools: Sequence[ToolDefinition], choices: Sequence[Choice]) -> Usage:
    if not isinstance(raw, dict):
        # The server sent no usage: estimate rather than report a silent zero.
        input_tokens = estimate_tokens(messages, tools)
        chars = sum(len(getattr(p, "text", "") or getattr(p, "arguments", ""))
                    for c in choices for p in c.parts)
        output_tokens = max(1, chars // 4)
        return Usage(input_tokens=input_tokens, output_tokens=output_tokens, model_calls=1,
                     usd=info.cost(input_tokens=input_tokens, output_tokens=output_tokens))
    prompt = raw.get("prompt_tokens_details")
    prompt = prompt if isinstance(prompt, dict) else {}
    completion = raw.get("completion_tokens_details")
    completion = completion if isinstance(completion, dict) else {}
    input_tokens = wire_count(raw.get("prompt_tokens"))
    output_tokens = wire_count(raw.get("completion_tokens"))
    cached = wire_count(prompt.get("cached_tokens") or raw.get("prompt_cache_hit_tokens")
                    or raw.get("cache_read_input_tokens"))
    written = wire_count(prompt.get("cache_write_tokens") or prompt.get("cache_creation_tokens")
                     or raw.get("cache_creation_input_tokens"))
    reasoning = wire_count(completion.get("reasoning_tokens"))
    usd = info.cost(input_tokens=input_tokens, output_tokens=output_tokens,
                    cached_tokens=cached, cache_write_tokens=written)
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=cached,
                 cache_write_tokens=written, reasoning_tokens=reasoning, model_calls=1, usd=usd)


def response_from(choices: Sequence[Choice], usage: Any, *, provider_id: Any,
                  model_name: Any, info: ModelInfo, messages: Sequence[Message],
                  tools: Sequence[ToolDefinition], raw_finish: str | None = None
                  ) -> ModelResponse:
    """The response of the first choice (the others as `extra_choices`), with its usage."""
    first = choices[0] if choices else Choice(index=0)
    return ModelResponse(
        parts=first.parts,
        usage=_usage(usage, info, messages, tools, choices),
        finish_reason=first.finish_reason,
        raw_finish_reason=None if raw_finish is None else str(raw_finish),
        model_name=str(model_name or info.name),
        provider_id=str(provider_id) if provider_id else None,
        extra_choices=tuple(choices[1:]),
    )


class _ToolCallBuffer:
    __slots__ = ("arguments", "id", "index", "name")

    def __init__(self, index: int) -> None:
        self.index = index
        self.id = ""
        self.name = ""
        self.arguments = ""


class _ChoiceBuffer:
    def __init__(self, index: int) -> None:
        self.index = index
        self.thinking = ""
        self.text = ""
        self.refusal = ""
        self.calls: list[_ToolCallBuffer] = []
        self.by_index: dict[int, _ToolCallBuffer] = {}
        self.finish: str | None = None

    def parts(self) -> tuple[Part, ...]:
        parts: list[Part] = []
        if self.thinking:
            parts.append(ThinkingPart(text=self.thinking))
        if self.text:
            parts.append(TextPart(text=self.text))
        if self.refusal:
            parts.append(RefusalPart(text=self.refusal))
        parts.extend(
            ToolCallPart(id=c.id or f"call_{i}", name=c.name, arguments=_args_text(c.arguments))
            for i, c in enumerate(self.calls)
        )
        return tuple(parts)


class Accumulator:
    """Folds `chat.completion.chunk` objects into choices, reporting deltas as they arrive."""

    def __init__(self, on_event: StreamCallback | None) -> None:
        self.on_event = on_event
        self.choices: dict[int, _ChoiceBuffer] = {}
        self.usage: Any = None
        self.id: Any = None
        self.model: Any = None
        self.emitted = False

    def _emit(self, event: StreamEvent) -> None:
        self.emitted = True
        if self.on_event is not None:
            self.on_event(event)

    def add(self, chunk: dict[str, Any]) -> None:
        self.id = self.id or chunk.get("id")
        self.model = self.model or chunk.get("model")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        raw_choices = chunk.get("choices")
        for raw in raw_choices if isinstance(raw_choices, list) else []:
            if not isinstance(raw, dict):
                continue
            index = wire_count(raw.get("index"))
            buf = self.choices.setdefault(index, _ChoiceBuffer(index))
            delta = raw.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            thinking = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(thinking, str) and thinking:
                buf.thinking += thinking
                if index == 0:
                    self._emit(StreamEvent(kind="thinking", delta=thinking))
            text = _text_of(delta.get("content"))
            if text:
                buf.text += text
                if index == 0:
                    self._emit(StreamEvent(kind="text", delta=text))
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                buf.refusal += refusal
                if index == 0:
                    self._emit(StreamEvent(kind="refusal", delta=refusal))
            fragments = delta.get("tool_calls")
            for frag in fragments if isinstance(fragments, list) else []:
                if isinstance(frag, dict):
                    self._tool_fragment(buf, frag)
            if delta.get("function_call"):
                self._tool_fragment(buf, {"index": 0, "function": delta["function_call"]})
            if raw.get("finish_reason"):
                buf.finish = str(raw["finish_reason"])

    def _tool_fragment(self, buf: _ChoiceBuffer, frag: dict[str, Any]) -> None:
        pos = frag.get("index")
        call_id = frag.get("id") or ""
        call_id = call_id if isinstance(call_id, str) else str(call_id)
        if not isinstance(pos, int) or isinstance(pos, bool):
            # Servers that omit `index`: a new id starts a new call, otherwise extend the last.
            pos = len(buf.calls) - (0 if call_id or not buf.calls else 1)
            pos = max(pos, 0)
        call = buf.by_index.get(pos)
        if call is None or (call_id and call.id and call_id != call.id):
            # A different id at a used index is a new call (some servers number every call 0).
            call = _ToolCallBuffer(len(buf.calls))
            buf.calls.append(call)
            buf.by_index[pos] = call
        fn = frag.get("function")
        fn = fn if isinstance(fn, dict) else {}
        first = not call.name
        if call_id and not call.id:
            call.id = call_id
        name = fn.get("name")
        if isinstance(name, str) and name and name != call.name:
            # Names repeated in later fragments are not appended; split names are.
            call.name += name
        arguments = fn.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = json.dumps(arguments)  # an object (some servers), or junk to show
        if arguments:
            call.arguments += arguments
        if buf.index == 0 and (arguments or first):
            self._emit(StreamEvent(kind="tool_call", delta=arguments or "", index=call.index,
                                   name=call.name if first else None))

    def response(self, info: ModelInfo, messages: Sequence[Message],
                 tools: Sequence[ToolDefinition]) -> ModelResponse:
        if not self.choices and self.id is None:
            msg = f"Model {info.id!r} ended its stream without sending any chunk."
            raise UnexpectedModelOutput(msg, model=info.id, hint=hint_format())
        choices = []
        for index in sorted(self.choices):
            buf = self.choices[index]
            parts = buf.parts()
            choices.append(Choice(index=index, parts=parts, finish_reason=_finish(buf.finish,
                                                                                  parts)))
        raw_finish = self.choices[min(self.choices)].finish if self.choices else None
        return response_from(choices, self.usage, provider_id=self.id, model_name=self.model,
                             info=info, messages=messages, tools=tools, raw_finish=raw_finish)


