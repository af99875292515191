"""Shared helpers for the runtime-core tests: scripted FunctionModels."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from agentnb.core import Message, ToolCallPart, ToolResultPart
from agentnb.models import FunctionInfo, FunctionModel


def call(name: str, cid: str = "c1", reason: str | None = None, **args: Any) -> ToolCallPart:
    """A tool-call part."""
    return ToolCallPart(id=cid, name=name, arguments=json.dumps(args), reason=reason)


def last_results(messages: list[Message]) -> list[ToolResultPart]:
    """The tool results in the last message."""
    return [p for p in messages[-1].parts if isinstance(p, ToolResultPart)]


def scripted(turns: Sequence[Any], **kw: Any) -> FunctionModel:
    """A model answering turn i with turns[i] (a part, parts, text, or a function of messages)."""

    def fn(messages: list[Message], info: FunctionInfo) -> Any:
        turn = turns[min(info.call_index, len(turns) - 1)]
        return turn(messages) if callable(turn) else turn

    return FunctionModel(fn, **kw)


def priced(fn: Callable[[list[Message], FunctionInfo], Any], *, usd: float = 1.0,
           max_output_tokens: int = 100) -> FunctionModel:
    """A FunctionModel priced at `usd` per million tokens, in and out."""
    return FunctionModel(fn, input_per_mtok=usd, output_per_mtok=usd,
                         max_output_tokens=max_output_tokens)


def key_tool(name: str, log: list[str], *, effects: set[str]) -> Any:
    """A sync tool `name(key)` that appends "<name> <key>" to `log` and answers "value of <key>"."""
    from agentnb.runtime import tool

    def look(key: str) -> str:
        log.append(f"{name} {key}")
        return f"value of {key}"

    return tool(effects=effects, name=name, description=f"{name} a key.")(look)


__all__ = ["call", "key_tool", "last_results", "priced", "scripted"]
