"""Loop detection: the same tool call, an A-B-A-B ping-pong, or the same output, repeated.

The detector's state is a few plain lists, so it travels in the run's checkpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from agentnb.core import ToolCallPart, canonical_json, parsed_arguments

__all__ = ["LoopDetector"]


def _signature(call: ToolCallPart) -> str:
    args: Any = parsed_arguments(call)
    if args is None:
        args = call.arguments
    return f"{call.name}({canonical_json(args)})"


@dataclasses.dataclass(kw_only=True, slots=True)
class LoopDetector:
    """Watches a run's model turns and names what repeats, once it repeats `threshold` times.

    Example:
        >>> from agentnb.core import ToolCallPart
        >>> d = LoopDetector(threshold=3)
        >>> call = ToolCallPart(id="1", name="lookup", arguments='{"key": "7"}')
        >>> [d.observe(calls=[call], text="") for _ in range(3)][-1]
        'lookup({"key":"7"}) repeated 3 times'
    """

    threshold: int = 3
    """How many repeats of the same call or output count as a loop."""
    calls: dict[str, int] = dataclasses.field(default_factory=dict)
    """How often each tool call signature has been asked for."""
    outputs: dict[str, int] = dataclasses.field(default_factory=dict)
    """How often each non-empty model text has been produced."""
    turns: list[str] = dataclasses.field(default_factory=list)
    """The recent turn signatures (sorted tool calls of each model turn), for ping-pong."""

    def observe(self, *, calls: Sequence[ToolCallPart], text: str) -> str | None:
        """Record one model turn; return what loops, or None."""
        if self.threshold <= 0:
            return None
        found: str | None = None
        for call in calls:
            sig = _signature(call)
            self.calls[sig] = self.calls.get(sig, 0) + 1
            if found is None and self.calls[sig] >= self.threshold:
                found = f"{sig} repeated {self.calls[sig]} times"
        stripped = text.strip()
        if stripped:
            self.outputs[stripped] = self.outputs.get(stripped, 0) + 1
            if found is None and self.outputs[stripped] >= self.threshold:
                shown = stripped if len(stripped) <= 80 else stripped[:77] + "..."
                found = f"output {shown!r} repeated {self.outputs[stripped]} times"
        if calls:
            self.turns.append("|".join(sorted(_signature(c) for c in calls)))
            del self.turns[:-8]
            window = self.turns[-4:]
            if (found is None and len(window) == 4 and window[0] == window[2]
                    and window[1] == window[3] and window[0] != window[1]):
                found = f"ping-pong between {window[0]} and {window[1]}"
        return found

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a checkpoint."""
        return {"threshold": self.threshold, "calls": dict(self.calls),
                "outputs": dict(self.outputs), "turns": list(self.turns)}

    def redacted_dict(self, redact: Callable[[str], str]) -> dict[str, Any]:
        """`to_dict()` with `redact` applied to every text (signatures, outputs, turns), for a
        checkpoint. The counts stay counts: a generic walk would put `[REDACTED]` in place of
        the count of an output that ends like a secret's name ("... the api_key"), and the
        resumed run would fail adding to it.

        Example:
            >>> d = LoopDetector(outputs={"tell me the api_key": 1})
            >>> d.redacted_dict(str.upper)["outputs"]
            {'TELL ME THE API_KEY': 1}
        """
        return {"threshold": self.threshold,
                "calls": {redact(k): n for k, n in self.calls.items()},
                "outputs": {redact(k): n for k, n in self.outputs.items()},
                "turns": [redact(t) for t in self.turns]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopDetector:
        """Rebuild from `to_dict()`. A count that is not a number (a checkpoint written
        before `redacted_dict`, where a walk had redacted it) starts again from zero."""
        def counts(raw: Any) -> dict[str, int]:
            return {str(k): n for k, n in dict(raw or {}).items() if type(n) is int}

        return cls(threshold=int(data.get("threshold", 3)), calls=counts(data.get("calls")),
                   outputs=counts(data.get("outputs")), turns=list(data.get("turns", [])))
