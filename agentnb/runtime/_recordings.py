"""Recordings kept in checkpoint rows: the column `rt_checkpoints.recordings` (schema 2).

A step's model responses and tool results are written with its checkpoint, in the same row:
a JSON array of `[kind, key, occurrence, payload]` entries in the order they were made. One
row per step instead of a row in `rt_recordings` (with its unique index) per call: the
transaction a step commits touches two B-trees instead of four, which measured 4% of the CPU
per model call at C=1 (`benchmarks/knockouts.py`, median of 16 paired segments).

`rt_recordings` stays for recordings written on their own (`RunStore.record`, and a step that
fails before its checkpoint); readers take both. Saving a step's checkpoint again keeps the
recordings its row already has and appends the new ones (`SAVE_SQL`). When one call was
recorded more than once, the latest payload counts and the first place in the order.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any

from agentnb.core import canonical_json, loads_json

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["FIND_SQL", "SAVE_SQL", "SAVE_SQL_TOP", "encode", "latest", "merged", "needle"]

_MERGE = (
    "recordings = CASE WHEN excluded.recordings IS NULL THEN recordings "
    "WHEN recordings IS NULL THEN excluded.recordings "
    "ELSE substr(recordings, 1, length(recordings) - 1) || ',' || "
    "substr(excluded.recordings, 2) END")
_SAVE = (
    "INSERT INTO rt_checkpoints (run_id, step, state, status, agent, parent_run_id, saved_at, "
    "recordings) VALUES (?, ?, ?, ?, ?, {parent}, ?, NULLIF(?, '')) "
    "ON CONFLICT (run_id, step) DO UPDATE SET state = excluded.state, "
    "status = excluded.status, agent = excluded.agent, "
    "parent_run_id = excluded.parent_run_id, saved_at = excluded.saved_at, " + _MERGE)

SAVE_SQL = _SAVE.format(parent="?")
"""Save a checkpoint row `(run_id, step, state, status, agent, parent_run_id, saved_at,
recordings text or "")`: a saved step's state is replaced, its recordings are appended to."""
SAVE_SQL_TOP = _SAVE.format(parent="NULL")
"""`SAVE_SQL` for a top-level run, without the parent: binding None costs the sqlite3 module
more than a str (it looks None up as a type to adapt)."""
FIND_SQL = (
    "SELECT saved_at, recordings FROM rt_checkpoints WHERE run_id = ? "
    "AND recordings IS NOT NULL AND instr(recordings, ?) > 0")
"""The checkpoint rows of a run whose recordings hold an entry's `needle`."""


def needle(kind: str, key: str, occurrence: int) -> str:
    """How an entry's text starts: SQLite finds the rows holding it without parsing any.

    Example:
        >>> needle("tool", "k1", 0)
        '["tool","k1",0,'
    """
    return canonical_json([kind, key, occurrence])[:-1] + ","


def encode(entries: Sequence[tuple[str, str, int, str]]) -> str:
    """The column's text for `(kind, key, occurrence, payload JSON text)` entries ("" for none).

    Example:
        >>> encode([("tool", "k1", 0, '{"content":"42"}')])
        '[["tool","k1",0,{"content":"42"}]]'
    """
    if not entries:
        return ""
    return "[" + ",".join(f"{needle(kind, key, occ)}{payload}]"
                          for kind, key, occ, payload in entries) + "]"


def latest(rows: Iterable[tuple[float, str]], kind: str, key: str,
           occurrence: int) -> tuple[float, dict[str, Any]] | None:
    """The newest `(saved_at, payload)` of that call among `(saved_at, recordings)` rows.

    Raises:
        ValueError: a row's text is not the column's JSON.

    Example:
        >>> latest([(1.0, '[["tool","k1",0,{"v":1}],["tool","k1",0,{"v":2}]]')], "tool", "k1", 0)
        (1.0, {'v': 2})
    """
    found: tuple[float, dict[str, Any]] | None = None
    for saved_at, text in rows:
        for entry in _entries(text):
            if entry[0] == kind and entry[1] == key and entry[2] == occurrence and (
                    found is None or saved_at >= found[0]):
                found = (saved_at, entry[3])
    return found


def merged(table: Iterable[tuple[str, str, int, str, float]],
           rows: Iterable[tuple[int, float, str]]) -> list[tuple[str, str, int, Any, float]]:
    """Every recording of a run, `(kind, key, occurrence, payload, recorded_at)`, in the order
    made: `rt_recordings` rows `(kind, key, occurrence, payload text, recorded_at)` in id order
    and checkpoint rows `(step, saved_at, recordings)` in step order, merged by time.

    Raises:
        ValueError: a text is not JSON.

    Example:
        >>> merged([("tool", "k", 0, '{"v":1}', 2.0)], [(1, 1.0, '[["model","m",0,{}]]')])
        [('model', 'm', 0, {}, 1.0), ('tool', 'k', 0, {'v': 1}, 2.0)]
    """
    own = [(at, (kind, key, occ), loads_json(payload)) for kind, key, occ, payload, at in table]
    kept = [(saved_at, (e[0], e[1], e[2]), e[3]) for _, saved_at, text in rows
            for e in _entries(text)]
    out: dict[tuple[str, str, int], tuple[Any, float]] = {}
    # Each source keeps its own order (a re-recorded row of the table has a newer time but
    # its first place); the two are interleaved by time.
    for at, call, payload in heapq.merge(own, kept, key=lambda t: t[0]):
        first = out.get(call)
        # A call recorded again keeps its first place and takes the newest payload.
        out[call] = (payload, at if first is None else first[1])
    return [(*call, payload, at) for call, (payload, at) in out.items()]


def _entries(text: str) -> list[list[Any]]:
    entries = loads_json(text)
    if not isinstance(entries, list) or not all(
            isinstance(e, list) and len(e) == 4 for e in entries):  # pyright: ignore[reportUnknownVariableType]
        msg = "a checkpoint's recordings are not a list of [kind, key, occurrence, payload]"
        raise ValueError(msg)
    return entries  # pyright: ignore[reportUnknownVariableType]
