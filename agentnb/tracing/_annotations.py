"""Annotations: labels, scores and notes on runs and spans, kept in the trace store.

No `from __future__ import annotations` here: it would bind the name `annotations`, which this
module defines as a public function; the one forward reference is quoted instead.
"""

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentnb.core import UsageError
from agentnb.tracing._spans import flush, redact, store

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["annotate", "annotations"]

ANNOTATION_COLUMNS = ("id", "target_id", "target_kind", "run_id", "label", "score", "note",
                      "author", "created_at")


def annotate(
    target_id: str,
    *,
    label: str | None = None,
    score: float | None = None,
    note: str | None = None,
    author: str | None = None,
    home: Path | str | None = None,
) -> int:
    """Attach a label, a score and/or a note to a run (by run id) or a span (by span id).

    Notes pass through the installed redactor before they are stored.

    Returns:
        The annotation's id.

    Raises:
        UsageError: nothing to record, a score that is not a finite number, or an id that is
            neither a stored run nor a stored span.

    Example:
        >>> import tempfile
        >>> from agentnb.core import resolve
        >>> from agentnb.tracing import configure, tracer
        >>> configure(resolve(home=tempfile.mkdtemp(), env={}))
        >>> attrs = {"agentnb.kind": "run", "agentnb.run.id": "run_doc"}
        >>> with tracer().start_as_current_span("invoke_agent demo", attributes=attrs):
        ...     pass
        >>> annotate("run_doc", label="good", score=1.0) > 0
        True
    """
    if label is None and score is None and note is None:
        msg = f"Nothing to record on {target_id!r}."
        raise UsageError(msg, hint="Pass at least one of `label=`, `score=` or `note=`.")
    if score is not None:
        try:
            score = float(score)
        except (TypeError, ValueError):
            score = math.nan
        if not math.isfinite(score):
            msg = f"`score={score!r}` is not a finite number."
            raise UsageError(msg, hint="Pass a float, for example between 0 and 1.")
    flush()
    db = store(home)
    target_kind, run_id = _resolve_target(db.query, target_id)
    return db.add_annotation(
        target_id=target_id, target_kind=target_kind, run_id=run_id, label=label, score=score,
        note=redact(note) if note is not None else None, author=author)


def _resolve_target(query: Any, target_id: str) -> tuple[str, str | None]:
    span = query("SELECT run_id FROM spans WHERE span_id = ?", (target_id,))
    if span:
        return "span", span[0][0]
    if query("SELECT 1 FROM spans WHERE run_id = ? LIMIT 1", (target_id,)):
        return "run", target_id
    msg = f"No stored run or span has the id {target_id!r}."
    raise UsageError(msg, hint="Use a `run_id` from `traces()` or a `span_id` from `spans()`.")


def annotations(
    target_id: str | None = None,
    *,
    run_id: str | None = None,
    label: str | None = None,
    author: str | None = None,
    home: Path | str | None = None,
) -> "pd.DataFrame":
    """Stored annotations, oldest first, optionally for one target, one run, a label or an author.

    `run_id=` also returns the annotations on that run's spans.

    Example:
        >>> import tempfile
        >>> list(annotations(home=tempfile.mkdtemp()).columns[:3])
        ['id', 'target_id', 'target_kind']
    """
    from agentnb.tracing._query import _pandas

    pd = _pandas()
    flush()
    where, params = [], []
    for column, value in (("target_id", target_id), ("run_id", run_id), ("label", label),
                          ("author", author)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    sql = f"SELECT {', '.join(ANNOTATION_COLUMNS)} FROM annotations"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = store(home).query(sql + " ORDER BY id", params)
    frame = pd.DataFrame.from_records(rows, columns=list(ANNOTATION_COLUMNS))
    frame["created_at"] = pd.to_datetime(frame["created_at"], unit="s", utc=True)
    return frame
