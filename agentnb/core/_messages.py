"""Messages and their parts: the conversation that crosses every boundary.

Parts are pydantic models told apart by a `kind` field, so a list of them round-trips through
JSON (checkpoints, the cache, recordings) without losing its types.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentnb.core._json import loads_json

__all__ = [
    "FinishReason",
    "Message",
    "Part",
    "RefusalPart",
    "Role",
    "TextPart",
    "ThinkingPart",
    "ToolCallPart",
    "ToolDefinition",
    "ToolResultPart",
    "parsed_arguments",
    "parts_json",
]

Role = Literal["system", "user", "assistant", "tool"]
"""Who wrote a message."""

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "refusal", "error"]
"""Why a model stopped writing, normalised across providers."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class TextPart(BaseModel):
    """Plain text.

    Example:
        >>> TextPart(text="hello").kind
        'text'
    """

    model_config = _FROZEN
    kind: Literal["text"] = "text"
    text: str
    """The text."""


class ThinkingPart(BaseModel):
    """A model's visible reasoning (Anthropic thinking blocks, reasoning content)."""

    model_config = _FROZEN
    kind: Literal["thinking"] = "thinking"
    text: str
    """The reasoning text."""
    signature: str | None = None
    """Provider signature that must be sent back unchanged with the block."""


class RefusalPart(BaseModel):
    """The model declined to answer."""

    model_config = _FROZEN
    kind: Literal["refusal"] = "refusal"
    text: str
    """The refusal as the model wrote it."""


class ToolCallPart(BaseModel):
    """A model asks for a tool to be called.

    `arguments` is the JSON text exactly as the model produced it; it may be malformed, which the
    runtime reports back to the model as a retry prompt.

    Example:
        >>> call = ToolCallPart(id="c1", name="lookup", arguments='{"key": "7"}')
        >>> call.args()
        {'key': '7'}
    """

    model_config = _FROZEN
    kind: Literal["tool_call"] = "tool_call"
    id: str
    """The provider's call id; tool results refer to it."""
    name: str
    """The tool's name."""
    arguments: str = "{}"
    """The arguments as JSON text."""
    reason: str | None = None
    """The model's stated reason for choosing this tool, when it gave one."""

    def args(self) -> dict[str, Any]:
        """Parse the arguments; an empty string means no arguments.

        Raises:
            ValueError: the arguments are not a JSON object.
        """
        if not self.arguments.strip():
            return {}
        value = loads_json(self.arguments)
        if not isinstance(value, dict):
            msg = f"Tool arguments must be a JSON object, got {self.arguments!r}."
            raise ValueError(msg)
        return value


_PARSED: dict[str, dict[str, Any] | None] = {}


def parsed_arguments(call: ToolCallPart) -> dict[str, Any] | None:
    """`call.args()` parsed once per distinct arguments text, or None when they are not a JSON
    object. Shared between callers: read it, never change it (`args()` gives a fresh copy).

    A tool call's arguments are read by the policy, the audit records, the recording key and
    the loop detector: one parse instead of one each.

    Example:
        >>> parsed_arguments(ToolCallPart(id="c1", name="lookup", arguments='{"key": "7"}'))
        {'key': '7'}
        >>> parsed_arguments(ToolCallPart(id="c2", name="lookup", arguments="[1]")) is None
        True
    """
    text = call.arguments
    try:
        return _PARSED[text]
    except KeyError:
        pass
    try:
        value: dict[str, Any] | None = call.args()
    except ValueError:
        value = None
    if len(text) <= 4096:
        if len(_PARSED) >= 512:
            _PARSED.clear()
        _PARSED[text] = value
    return value


class ToolResultPart(BaseModel):
    """The result of a tool call, as the model will see it."""

    model_config = _FROZEN
    kind: Literal["tool_result"] = "tool_result"
    call_id: str
    """The id of the call this answers."""
    name: str
    """The tool's name."""
    content: str
    """The result as text (JSON for structured results)."""
    is_error: bool = False
    """True when the tool failed or was refused; the model sees the message in `content`."""


Part = Annotated[
    TextPart | ThinkingPart | RefusalPart | ToolCallPart | ToolResultPart,
    Field(discriminator="kind"),
]
"""Any message part."""


PART_FIELDS: dict[type[BaseModel], tuple[str, ...]] = {
    cls: tuple(cls.model_fields)
    for cls in (TextPart, ThinkingPart, RefusalPart, ToolCallPart, ToolResultPart)}
"""Each part type's fields, in order: all text, flags or None (see `Message.json_dict`)."""


def parts_json(parts: Iterable[BaseModel]) -> list[dict[str, Any]]:
    """The parts' `model_dump(mode="json")`, made by hand (see `Message.json_dict`).

    Example:
        >>> parts_json([TextPart(text="hi")])
        [{'kind': 'text', 'text': 'hi'}]
    """
    out: list[dict[str, Any]] = []
    for p in parts:
        names = PART_FIELDS.get(type(p))
        out.append(p.model_dump(mode="json") if names is None
                   else {name: getattr(p, name) for name in names})
    return out


class Message(BaseModel):
    """One message of a conversation.

    Example:
        >>> m = Message.user("What does key 7 hold?")
        >>> m.role, m.text
        ('user', 'What does key 7 hold?')
    """

    model_config = _FROZEN
    role: Role
    """Who wrote it."""
    parts: tuple[Part, ...] = ()
    """What it holds, in order."""

    def json_dict(self) -> dict[str, Any]:
        """`model_dump(mode="json")`, made by hand (every part's fields are text, flags or
        None, so they are their own JSON): a run dumps each message it appends.

        Example:
            >>> m = Message.user("hi")
            >>> m.json_dict() == m.model_dump(mode="json")
            True
        """
        return {"role": self.role, "parts": parts_json(self.parts)}

    @classmethod
    def system(cls, text: str) -> Message:
        """Build a system message."""
        return cls(role="system", parts=(TextPart(text=text),))

    @classmethod
    def user(cls, text: str) -> Message:
        """Build a user message."""
        return cls(role="user", parts=(TextPart(text=text),))

    @classmethod
    def assistant(cls, *parts: Part) -> Message:
        """Build an assistant message from parts."""
        return cls(role="assistant", parts=tuple(parts))

    @classmethod
    def tool_results(cls, *results: ToolResultPart) -> Message:
        """Build the message that carries tool results back to the model."""
        return cls(role="tool", parts=tuple(results))

    @property
    def text(self) -> str:
        """The concatenated text parts."""
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        """The tool-call parts."""
        return [p for p in self.parts if isinstance(p, ToolCallPart)]


class ToolDefinition(BaseModel):
    """A tool as a model sees it: name, description and JSON schema of its arguments.

    Example:
        >>> ToolDefinition(name="lookup", description="Look a key up.",
        ...                parameters={"type": "object", "properties": {}}).name
        'lookup'
    """

    model_config = _FROZEN
    name: str
    """The name the model calls it by."""
    description: str = ""
    """What it does, from the docstring."""
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    """JSON schema of the arguments object."""
    effects: frozenset[str] = frozenset()
    """Declared side effects; the model never sees these, the policy does."""
