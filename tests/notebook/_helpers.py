"""Shared agents for the notebook tests: a catalogue lookup, a write tool that needs approval."""

from __future__ import annotations

import agentnb as anb
from agentnb.runtime import Agent

CATALOGUE = {"7": "a red bicycle"}


@anb.tool(effects={"read"})
def lookup(key: str) -> str:
    """Look a key up in the catalogue."""
    return CATALOGUE.get(key, "unknown")


@anb.tool(effects={"write"})
def save_note(text: str) -> str:
    """Save a note."""
    return f"saved: {text}"


TASK = "Save a note about the catalogue"
"""A task the sim model answers by proposing `save_note` (which needs approval)."""


def approval_agent(**kwargs: object) -> Agent:
    """An agent whose `save_note` calls wait for an approval."""
    return Agent(model="sim:careful", tools=[lookup, save_note],
                 policy=anb.Policy(allow={"read"}, approve={"write"}),
                 budget=anb.Budget(usd=0.05, steps=20), **kwargs)  # type: ignore[arg-type]


def delegate_agent() -> Agent:
    """An agent with a delegate, so that traces hold a nested child run."""
    helper = Agent(model="sim:cheap", name="helper", tools=[lookup],
                   description="looks keys up")
    return Agent(model="sim:careful", tools=[lookup, save_note], delegates=[helper],
                 policy=anb.Policy(allow={"read", "write"}), budget=anb.Budget(usd=0.05),
                 name="lead")
