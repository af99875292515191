"""The `Model` protocol and the records a model call exchanges.

A model is anything with an `info` and two async methods, `request()` and `stream()`, that both
return a complete `ModelResponse`; `stream()` also reports deltas as they arrive.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from agentnb.core import FinishReason, Message, Part, TextPart, ToolCallPart, ToolDefinition, Usage
from agentnb.core._messages import parts_json

__all__ = [
    "Choice",
    "Model",
    "ModelBase",
    "ModelInfo",
    "ModelResponse",
    "ModelSettings",
    "StreamEvent",
    "estimate_tokens",
    "wire_count",
]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ModelInfo:
    """What a model is and what it costs.

    Example:
        >>> info = ModelInfo(provider="sim", name="careful", input_per_mtok=Decimal("3"),
        ...                  output_per_mtok=Decimal("15"))
        >>> info.id
        'sim:careful'
        >>> info.cost(input_tokens=1_000_000, output_tokens=0)
        Decimal('3')
    """

    provider: str
    """Provider name as in `"provider:model"` (`sim`, `openai`, `anthropic`, `function`)."""
    name: str
    """The model's own name."""
    input_per_mtok: Decimal | None = None
    """USD per million input tokens; None when unpriced."""
    output_per_mtok: Decimal | None = None
    """USD per million output tokens; None when unpriced."""
    cached_input_per_mtok: Decimal | None = None
    """USD per million cache-read input tokens; defaults to the input price."""
    cache_write_per_mtok: Decimal | None = None
    """USD per million cache-write input tokens; defaults to the input price."""
    context_window: int | None = None
    """Maximum input + output tokens, when known."""
    max_output_tokens: int = 4096
    """The `max_tokens` a call asks for when none is set; budgets reserve this much output."""
    system: str | None = None
    """The `gen_ai.provider.name` for spans (`openai`, `anthropic`, ...); defaults to provider."""

    @property
    def id(self) -> str:
        """The `"provider:model"` string."""
        return f"{self.provider}:{self.name}"

    @property
    def priced(self) -> bool:
        """True when both input and output prices are known."""
        return self.input_per_mtok is not None and self.output_per_mtok is not None

    def cost(self, *, input_tokens: int, output_tokens: int, cached_tokens: int = 0,
             cache_write_tokens: int = 0) -> Decimal | None:
        """USD for a call, or None when unpriced. `input_tokens` includes cached ones."""
        if self.input_per_mtok is None or self.output_per_mtok is None:
            return None
        cached_price = self.cached_input_per_mtok
        if cached_price is None:
            cached_price = self.input_per_mtok
        write_price = self.cache_write_per_mtok
        if write_price is None:
            write_price = self.input_per_mtok
        plain = max(input_tokens - cached_tokens - cache_write_tokens, 0)
        total = (plain * self.input_per_mtok + cached_tokens * cached_price
                 + cache_write_tokens * write_price + output_tokens * self.output_per_mtok)
        return total / 1_000_000


class ModelSettings(BaseModel):
    """Per-call options; None means the model's default.

    Example:
        >>> ModelSettings(max_tokens=256).max_tokens
        256
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    max_tokens: int | None = None
    """Output token cap; budgets reserve it."""
    temperature: float | None = None
    """Sampling temperature."""
    n: int | None = None
    """Number of choices (OpenAI-compatible servers)."""
    tool_choice: Literal["auto", "none", "required"] | str | None = None
    """`auto`, `none`, `required`, or a tool name to force."""
    parallel_tool_calls: bool | None = None
    """Allow several tool calls in one response."""
    seed: int | None = None
    """Sampling seed where the provider supports it."""
    stop: tuple[str, ...] | None = None
    """Stop sequences."""
    extra_body: dict[str, Any] | None = None
    """Provider-specific fields merged into the request body."""


class Choice(BaseModel):
    """One of several alternatives (`n` > 1)."""

    model_config = ConfigDict(frozen=True)
    index: int
    parts: tuple[Part, ...] = ()
    finish_reason: FinishReason | None = None


class ModelResponse(BaseModel):
    """A complete model answer, the same whether it arrived streamed or not.

    Example:
        >>> r = ModelResponse(parts=(TextPart(text="hi"),), model_name="sim:careful")
        >>> r.text, r.tool_calls
        ('hi', [])
    """

    model_config = ConfigDict(frozen=True)
    parts: tuple[Part, ...] = ()
    """The assistant message's parts (the first choice)."""
    usage: Usage = Field(default_factory=Usage)
    """Tokens and cost of this call (`model_calls=1`)."""
    finish_reason: FinishReason | None = None
    """Normalised finish reason."""
    raw_finish_reason: str | None = None
    """The provider's own finish/stop reason."""
    model_name: str = ""
    """The model that answered, as the provider named it."""
    provider_id: str | None = None
    """The provider's response id."""
    extra_choices: tuple[Choice, ...] = ()
    """Choices after the first when `n` > 1."""

    def json_dict(self) -> dict[str, Any]:
        """`model_dump(mode="json")`, made by hand (a run dumps every response it gets).

        Example:
            >>> r = ModelResponse(parts=(TextPart(text="hi"),), model_name="m")
            >>> r.json_dict() == r.model_dump(mode="json")
            True
        """
        return {
            "parts": parts_json(self.parts), "usage": self.usage.json_dict(),
            "finish_reason": self.finish_reason, "raw_finish_reason": self.raw_finish_reason,
            "model_name": self.model_name, "provider_id": self.provider_id,
            "extra_choices": [{"index": c.index, "parts": parts_json(c.parts),
                               "finish_reason": c.finish_reason} for c in self.extra_choices],
        }

    @property
    def text(self) -> str:
        """The concatenated text parts."""
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        """The tool calls asked for."""
        return [p for p in self.parts if isinstance(p, ToolCallPart)]

    def message(self) -> Message:
        """The assistant message to append to the conversation."""
        return Message(role="assistant", parts=self.parts)


class StreamEvent(BaseModel):
    """A delta reported while a streamed response arrives."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["text", "thinking", "tool_call", "refusal"]
    """What the delta extends."""
    delta: str
    """The new text or argument fragment."""
    index: int = 0
    """Part or tool-call index the delta belongs to."""
    name: str | None = None
    """The tool's name, on the first fragment of a tool call."""


StreamCallback = Callable[[StreamEvent], None]


@runtime_checkable
class Model(Protocol):
    """What the runtime needs from a model.

    Example:
        >>> from agentnb.models import FunctionModel
        >>> isinstance(FunctionModel(lambda messages, info: "ok"), Model)
        True
    """

    @property
    def info(self) -> ModelInfo:
        """Name, provider and prices."""
        ...

    async def request(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        """Send one request and return the whole answer."""
        ...

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        settings: ModelSettings | None = None,
        on_event: StreamCallback | None = None,
    ) -> ModelResponse:
        """Send one streamed request; report deltas to `on_event`; return the whole answer."""
        ...


class ModelBase:
    """Convenience base: `stream()` falls back to `request()`; `aclose()` does nothing."""

    _info: ModelInfo

    @property
    def info(self) -> ModelInfo:
        """Name, provider and prices."""
        return self._info

    async def request(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        """Send one request and return the whole answer."""
        raise NotImplementedError

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        settings: ModelSettings | None = None,
        on_event: StreamCallback | None = None,
    ) -> ModelResponse:
        """Answer with `request()` and report the text as one delta."""
        response = await self.request(messages, tools=tools, settings=settings)
        if on_event is not None and response.text:
            on_event(StreamEvent(kind="text", delta=response.text))
        return response

    async def aclose(self) -> None:
        """Release connections; the model stays usable."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.info.id!r})"


def estimate_tokens(messages: Sequence[Message], tools: Sequence[ToolDefinition] = ()) -> int:
    """Estimate input tokens generously (about 3 characters a token, plus framing).

    Budgets reserve this before a call, so it errs high: a reservation that is too large only
    holds money back until the call settles; one that is too small could overspend.

    Example:
        >>> estimate_tokens([Message.user("hello world")]) > 3
        True
    """
    chars = 0
    for m in messages:
        chars += 16
        for p in m.parts:
            if isinstance(p, ToolCallPart):
                chars += len(p.name) + len(p.arguments) + 24
            else:
                chars += len(getattr(p, "text", "") or getattr(p, "content", ""))
    for t in tools:
        chars += _tool_chars(t)
    return chars // 3 + 8


_TOOL_CHARS: dict[int, tuple[ToolDefinition, int]] = {}
"""Characters a tool definition counts for in `estimate_tokens`, by definition (frozen; the
same objects are sent on every call of an agent), so its schema is not printed on each call."""


def _tool_chars(tool: ToolDefinition) -> int:
    seen = _TOOL_CHARS.get(id(tool))
    if seen is not None and seen[0] is tool:
        return seen[1]
    chars = len(tool.name) + len(tool.description) + len(str(tool.parameters)) + 24
    if len(_TOOL_CHARS) >= 1024:
        _TOOL_CHARS.clear()
    _TOOL_CHARS[id(tool)] = (tool, chars)
    return chars


def wire_count(value: Any) -> int:
    """A count or index from a provider's JSON; 0 when it is missing, negative or not a number
    (both clients read token counts and choice indexes with it).

    Example:
        >>> wire_count(12), wire_count("7"), wire_count(None), wire_count([1]), wire_count(-3)
        (12, 7, 0, 0, 0)
    """
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError, OverflowError):
        return 0
