"""`RunContext`: what a tool may ask about the run that called it."""

from __future__ import annotations

import dataclasses
from typing import Any

from agentnb.core import Usage

__all__ = ["RunContext"]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RunContext:
    """Passed to a tool whose first parameter is annotated `RunContext` (or named `ctx`).

    It never appears in the JSON schema the model sees.

    Example:
        >>> import agentnb as anb
        >>> @anb.tool
        ... def whoami(ctx: RunContext) -> str:
        ...     '''Say which run is asking.'''
        ...     return ctx.run_id
        >>> "ctx" in whoami.definition.parameters["properties"]
        False
    """

    run_id: str
    """The calling run's id."""
    agent: str
    """The calling agent's name."""
    deps: Any = None
    """Whatever the caller passed as `deps=` (a database handle, a client, ...)."""
    environment: Any = None
    """The synthetic environment of an eval scenario, when there is one."""
    usage: Usage = dataclasses.field(default_factory=Usage)
    """What the run consumed before this tool call."""
    step: int = 0
    """Index of the step running this tool call."""
    call_id: str = ""
    """The model's id for this tool call."""
