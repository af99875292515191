"""The Anthropic Messages API's wire forms: messages and tool choice out, a message's blocks
(whole or as stream deltas) back into parts (see `agentnb.models.anthropic`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agentnb.core import (
    Message,
    Part,
    RefusalPart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
)
from agentnb.models._base import StreamEvent

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agentnb.models._base import ModelSettings

__all__ = ["REDACTED_PREFIX", "Accumulator", "to_wire_messages", "tool_choice"]

REDACTED_PREFIX = "anthropic-redacted:"


def tool_choice(s: ModelSettings) -> dict[str, Any] | None:
    """The request's `tool_choice` for the settings' `tool_choice` and `parallel_tool_calls`.

    Example:
        >>> from agentnb.models._base import ModelSettings
        >>> tool_choice(ModelSettings(tool_choice="required"))
        {'type': 'any'}
    """
    choice: dict[str, Any] | None
    if s.tool_choice is None:
        choice = None if s.parallel_tool_calls is not False else {"type": "auto"}
    elif s.tool_choice in ("auto", "none"):
        choice = {"type": s.tool_choice}
    elif s.tool_choice in ("required", "any"):
        choice = {"type": "any"}
    else:
        choice = {"type": "tool", "name": s.tool_choice}
    if choice is not None and s.parallel_tool_calls is False and choice["type"] != "none":
        choice["disable_parallel_tool_use"] = True
    return choice


def _tool_input(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _blocks(message: Message) -> list[dict[str, Any]]:
    has_text = any(isinstance(p, TextPart) and p.text for p in message.parts)
    blocks: list[dict[str, Any]] = []
    for p in message.parts:
        if isinstance(p, TextPart):
            if p.text:
                blocks.append({"type": "text", "text": p.text})
        elif isinstance(p, RefusalPart):
            if p.text and not has_text:
                blocks.append({"type": "text", "text": p.text})
        elif isinstance(p, ThinkingPart):
            if p.signature and p.signature.startswith(REDACTED_PREFIX):
                blocks.append({"type": "redacted_thinking",
                               "data": p.signature.removeprefix(REDACTED_PREFIX)})
            elif p.signature:
                blocks.append({"type": "thinking", "thinking": p.text,
                               "signature": p.signature})
        elif isinstance(p, ToolCallPart):
            blocks.append({"type": "tool_use", "id": p.id, "name": p.name,
                           "input": _tool_input(p.arguments)})
        else:
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": p.call_id,
                                     "content": p.content}
            if p.is_error:
                block["is_error"] = True
            blocks.append(block)
    return blocks


def to_wire_messages(messages: Sequence[Message]) -> tuple[str | None, list[dict[str, Any]]]:
    """Map our messages to the Messages API's `system` and `messages` fields.

    Example:
        >>> system, wire = to_wire_messages([Message.system("Be brief."), Message.user("Hi")])
        >>> system, wire
        ('Be brief.', [{'role': 'user', 'content': [{'type': 'text', 'text': 'Hi'}]}])
    """
    system: list[str] = []
    wire: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            if m.text:
                system.append(m.text)
            continue
        role = "assistant" if m.role == "assistant" else "user"
        blocks = _blocks(m)
        if not blocks:
            continue
        if wire and wire[-1]["role"] == role:
            wire[-1]["content"].extend(blocks)
        else:
            wire.append({"role": role, "content": blocks})
    for entry in wire:
        if entry["role"] == "user":
            # The API rejects a user message whose tool_result blocks do not come first.
            entry["content"].sort(key=lambda b: b["type"] != "tool_result")
    return ("\n\n".join(system) or None), wire


class Accumulator:
    """Builds a response from a message's blocks, whole or as stream deltas."""

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.blocks: dict[int, dict[str, Any]] = {}
        self.texts: dict[int, list[str]] = {}
        self.args: dict[int, list[str]] = {}
        self.signatures: dict[int, list[str]] = {}

    def start(self, message: dict[str, Any]) -> None:
        self.id = message.get("id") or self.id
        self.model = message.get("model") or self.model
        self.add_usage(message.get("usage") or {})

    def add_usage(self, usage: dict[str, Any]) -> None:
        # message_delta counts are cumulative, so a later value replaces an earlier one.
        self.usage.update({k: v for k, v in usage.items() if v is not None})

    def block_start(self, index: int, block: dict[str, Any]) -> None:
        self.blocks[index] = block
        kind = block.get("type")
        if kind == "text":
            self.texts[index] = [block.get("text") or ""]
        elif kind == "thinking":
            self.texts[index] = [block.get("thinking") or ""]
            self.signatures[index] = [block.get("signature") or ""]
        elif kind == "tool_use":
            self.args[index] = []

    def delta(self, index: int, delta: dict[str, Any]) -> StreamEvent | None:
        kind = delta.get("type")
        if kind == "text_delta":
            self.texts.setdefault(index, []).append(text := delta.get("text") or "")
            return StreamEvent(kind="text", delta=text, index=index)
        if kind == "thinking_delta":
            self.texts.setdefault(index, []).append(text := delta.get("thinking") or "")
            return StreamEvent(kind="thinking", delta=text, index=index)
        if kind == "signature_delta":
            self.signatures.setdefault(index, []).append(delta.get("signature") or "")
        elif kind == "input_json_delta":
            self.args.setdefault(index, []).append(text := delta.get("partial_json") or "")
            return StreamEvent(kind="tool_call", delta=text, index=index) if text else None
        return None

    def parts(self) -> tuple[Part, ...]:
        parts: list[Part] = []
        for index in sorted(self.blocks):
            block = self.blocks[index]
            kind = block.get("type")
            if kind == "text":
                parts.append(TextPart(text="".join(self.texts.get(index, []))))
            elif kind == "thinking":
                signature = "".join(self.signatures.get(index, [])) or None
                parts.append(ThinkingPart(text="".join(self.texts.get(index, [])),
                                          signature=signature))
            elif kind == "redacted_thinking":
                parts.append(ThinkingPart(text="", signature=REDACTED_PREFIX
                                          + str(block.get("data", ""))))
            elif kind == "tool_use":
                parts.append(ToolCallPart(id=str(block.get("id", "")),
                                          name=str(block.get("name", "")),
                                          arguments=_normalise_args("".join(self.args[index]))))
        return tuple(parts)


def _normalise_args(text: str) -> str:
    """One spelling for a tool's input, whether it arrived whole or in fragments."""
    if not text.strip():
        return "{}"
    try:
        return json.dumps(json.loads(text), ensure_ascii=False)
    except ValueError:
        # Malformed: keep the model's text so the runtime can show it what went wrong.
        return text
