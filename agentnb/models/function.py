"""`FunctionModel`: a test double driven by a plain Python function (after pydantic-ai)."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Union

from agentnb.core import (
    Message,
    Part,
    TextPart,
    ToolCallPart,
    ToolDefinition,
    UnexpectedModelOutput,
    Usage,
)
from agentnb.models._base import ModelBase, ModelInfo, ModelResponse, ModelSettings, estimate_tokens

__all__ = ["FunctionInfo", "FunctionModel", "FunctionReturn"]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class FunctionInfo:
    """What a `FunctionModel`'s function is told besides the messages."""

    tools: Sequence[ToolDefinition]
    """The tools offered on this call."""
    settings: ModelSettings
    """The call's settings."""
    call_index: int
    """How many calls this model answered before this one."""


FunctionReturn = Union[str, Part, Sequence[Part], ModelResponse]  # noqa: UP007 - a runtime alias
"""What the function may return: text, one part, several parts, or a whole response."""

ModelFunction = Callable[[list[Message], FunctionInfo],
                         Union[FunctionReturn, Awaitable[FunctionReturn]]]  # noqa: UP007


class FunctionModel(ModelBase):
    """A model whose answers come from a function of (messages, info).

    Tokens are estimated from the text, and cost follows the stated prices (free by default).

    Example:
        >>> from agentnb.core import Message, run_sync
        >>> m = FunctionModel(lambda messages, info: "echo: " + messages[-1].text)
        >>> run_sync(m.request([Message.user("hi")])).text
        'echo: hi'
    """

    __test__ = False

    def __init__(
        self,
        function: ModelFunction,
        *,
        name: str | None = None,
        input_per_mtok: Decimal | float | None = 0,
        output_per_mtok: Decimal | float | None = 0,
        max_output_tokens: int = 1024,
    ) -> None:
        self.function = function
        self.calls = 0
        self._info = ModelInfo(
            provider="function",
            name=name or getattr(function, "__name__", "function"),
            input_per_mtok=None if input_per_mtok is None else Decimal(str(input_per_mtok)),
            output_per_mtok=None if output_per_mtok is None else Decimal(str(output_per_mtok)),
            max_output_tokens=max_output_tokens,
        )

    async def request(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        """Call the function and wrap what it returns."""
        info = FunctionInfo(tools=tuple(tools), settings=settings or ModelSettings(),
                            call_index=self.calls)
        self.calls += 1
        out = self.function(list(messages), info)
        if inspect.isawaitable(out):
            out = await out
        if isinstance(out, ModelResponse):
            return out
        parts = _to_parts(out, self.info.id)
        input_tokens = estimate_tokens(messages, tools)
        output_tokens = max(1, sum(len(getattr(p, "text", "") or getattr(p, "arguments", ""))
                                   for p in parts) // 4)
        usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, model_calls=1,
                      usd=self.info.cost(input_tokens=input_tokens, output_tokens=output_tokens))
        finish = "tool_calls" if any(isinstance(p, ToolCallPart) for p in parts) else "stop"
        return ModelResponse(parts=parts, usage=usage, finish_reason=finish,
                             raw_finish_reason=finish, model_name=self.info.name)


def _to_parts(out: object, model: str) -> tuple[Part, ...]:
    if isinstance(out, str):
        return (TextPart(text=out),)
    if isinstance(out, (list, tuple)):
        return tuple(p for item in out for p in _to_parts(item, model))
    if hasattr(out, "kind") and hasattr(out, "model_dump"):
        return (out,)  # type: ignore[return-value]
    msg = f"FunctionModel's function returned {type(out).__name__}, not text or parts."
    raise UnexpectedModelOutput(msg, body=repr(out), model=model,
                                hint="Return a str, a part (e.g. `ToolCallPart`), a list of "
                                "parts or a `ModelResponse`.")
