"""Delta checkpoints: a run's state between its full snapshots, and folding it back.

A run stores its whole state at its first checkpoint in a process and every `FULL_EVERY`
steps; in between, a checkpoint holds only what was added (`DELTA_PREFIX`). `_fold` rebuilds
the whole state from the rows, so every reader gets whole states.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentnb.core import loads_json

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DELTA_PREFIX", "FULL_EVERY"]

FULL_EVERY = 16
"""A run stores its whole state at least every this many steps and deltas in between, so a
load folds at most this many rows."""
DELTA_PREFIX = '{"delta":'
"""How a delta checkpoint's text starts: `{"delta": {"base": step, "messages": n, "steps": m},
...}` holds the messages, chain entries and steps after the first n / m of the checkpoint at
`base` (all of which only ever grow) and every other field whole, with `"v": 2` so that an
agentnb that cannot fold deltas refuses the state instead of misreading it."""


def _fold(texts: Mapping[int, str], step: int) -> dict[str, Any]:
    """The whole state at `step` from checkpoint texts by step (full or delta).

    Raises:
        KeyError: a delta's base is not among `texts`.
        ValueError: a text is not JSON, or a delta does not fit its base.
    """
    chain: list[dict[str, Any]] = []
    at = step
    while True:
        text = texts[at]
        if not text.startswith(DELTA_PREFIX):
            state: dict[str, Any] = loads_json(text)
            break
        delta = loads_json(text)
        chain.append(delta)
        base = int(delta["delta"]["base"])
        if base >= at:
            msg = f"delta at step {at} builds on step {base}"
            raise ValueError(msg)
        at = base
    for delta in reversed(chain):
        info = delta.pop("delta")
        n, m = int(info["messages"]), int(info["steps"])
        if len(state["messages"]) < n or len(state["steps"]) < m:
            msg = f"delta on step {info['base']} needs {n} messages and {m} steps"
            raise ValueError(msg)
        delta["messages"] = state["messages"][:n] + delta["messages"]
        delta["chain"] = state["chain"][:n] + delta["chain"]
        delta["steps"] = state["steps"][:m] + delta["steps"]
        delta["v"] = state["v"]
        state = delta
    return state
