"""Queries over the trace store, as pandas DataFrames (pandas is imported lazily).

`traces()` gives one row per run (from run spans, `agentnb.kind=run`); `spans(run_id)` gives a
run's spans, its child runs' spans included, with every attribute as a column; `format_traces`
renders either frame as the text the `agentnb traces` command prints.
"""


from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import time
from typing import TYPE_CHECKING, Any, Literal

from agentnb.core import ConfigError, UsageError
from agentnb.tracing import _semconv as sc
from agentnb.tracing._spans import flush, store

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    import pandas as pd

    from agentnb.tracing._store import TraceStore

__all__ = ["SpanRecord", "TimeBound", "format_traces", "load_spans", "spans", "traces"]

TimeBound = dt.datetime | dt.timedelta | str | float | int
"""A point in time: a datetime (naive = UTC), an ISO string, epoch seconds, or a timedelta
meaning "that long ago"."""

TRACE_COLUMNS = (
    "run_id", "parent_run_id", "agent", "model", "models", "status", "stop_reason",
    "input_tokens", "output_tokens", "usd", "duration_s", "steps", "model_calls", "tool_calls",
    "started_at", "task", "output", "labels", "trace_id", "span_id",
)
"""The columns of `traces()`, in order."""

_TABLE_COLUMNS = ("run_id", "agent", "models", "status", "stop_reason", "steps", "input_tokens",
                  "output_tokens", "usd", "duration_s", "started_at")
_SPAN_TABLE_COLUMNS = ("span_id", "parent_id", "run_id", "name", "kind", "status", "duration_s",
                       "start")


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is installed in every test environment
        msg = "Trace queries return pandas DataFrames, and pandas is not installed."
        raise ConfigError(msg, hint='`pip install "agentnb[pandas]"`.') from None
    return pd


def _ns(bound: TimeBound, name: str) -> int:
    if isinstance(bound, dt.timedelta):
        return int((time.time() - bound.total_seconds()) * 1e9)
    if isinstance(bound, bool):
        msg = f"`{name}={bound!r}` is not a time."
        raise UsageError(msg, hint="Pass a datetime, an ISO string, epoch seconds or a timedelta.")
    if isinstance(bound, (int, float)):
        return int(bound * 1e9)
    if isinstance(bound, str):
        try:
            bound = dt.datetime.fromisoformat(bound)
        except ValueError:
            msg = f"`{name}={bound!r}` is not an ISO date or time."
            raise UsageError(msg, hint="Use e.g. '2025-01-31' or '2025-01-31T12:00:00+00:00'.") \
                from None
    if isinstance(bound, dt.datetime):
        if bound.tzinfo is None:
            bound = bound.replace(tzinfo=dt.UTC)
        return int(bound.timestamp() * 1e9)
    msg = f"`{name}={bound!r}` is not a time."
    raise UsageError(msg, hint="Pass a datetime, an ISO string, epoch seconds or a timedelta.")


def _json_key(key: str) -> str:
    return f'$."{key}"'


def _chunks(items: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def traces(
    *,
    since: TimeBound | None = None,
    until: TimeBound | None = None,
    agent: str | None = None,
    status: str | None = None,
    label: str | None = None,
    limit: int | None = None,
    home: Path | str | None = None,
) -> pd.DataFrame:
    """One row per finished run, newest first.

    Args:
        since: only runs started at or after this time.
        until: only runs started before this time.
        agent: only runs of this agent (`gen_ai.agent.name`).
        status: only runs with this `agentnb.status` (`done`, `failed`, `stopped`, ...).
        label: only runs with an annotation of this label (on the run or any of its spans).
        limit: at most this many rows.
        home: read another store than the configured one.

    Returns:
        A DataFrame with the columns in `TRACE_COLUMNS`.

    Example:
        >>> import tempfile
        >>> list(traces(home=tempfile.mkdtemp()).columns[:3])
        ['run_id', 'parent_run_id', 'agent']
    """
    pd = _pandas()
    flush()
    db = store(home)
    where = [f"kind = '{sc.KIND_RUN}'"]
    params: list[Any] = []
    if since is not None:
        where.append("start_ns >= ?")
        params.append(_ns(since, "since"))
    if until is not None:
        where.append("start_ns < ?")
        params.append(_ns(until, "until"))
    if agent is not None:
        where.append(f"json_extract(attributes, '{_json_key(sc.GEN_AI_AGENT_NAME)}') = ?")
        params.append(agent)
    if status is not None:
        where.append(f"json_extract(attributes, '{_json_key(sc.AGENTNB_STATUS)}') = ?")
        params.append(status)
    if label is not None:
        where.append("run_id IN (SELECT run_id FROM annotations WHERE label = ?)")
        params.append(label)
    sql = (f"SELECT span_id, trace_id, run_id, start_ns, end_ns, status, attributes FROM spans "
           f"WHERE {' AND '.join(where)} ORDER BY start_ns DESC")
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    rows = db.query(sql, params)
    run_ids = [r[2] for r in rows if r[2]]
    models = _models_by_run(db, run_ids)
    labels = _labels_by_run(db, run_ids)
    records = [_trace_record(r, models, labels) for r in rows]
    frame = pd.DataFrame.from_records(records, columns=list(TRACE_COLUMNS))
    frame["started_at"] = pd.to_datetime(frame["started_at"], unit="ns", utc=True)
    return frame


def _models_by_run(db: TraceStore, run_ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {}
    for chunk in _chunks(run_ids):
        marks = ",".join("?" * len(chunk))
        for run_id, response_model, request_model in db.query(
            f"SELECT run_id, json_extract(attributes, '{_json_key(sc.GEN_AI_RESPONSE_MODEL)}'),"
            f" json_extract(attributes, '{_json_key(sc.GEN_AI_REQUEST_MODEL)}') FROM spans"
            f" WHERE kind = '{sc.KIND_MODEL_CALL}' AND run_id IN ({marks})", chunk):
            model = response_model or request_model
            if model:
                out.setdefault(run_id, set()).add(str(model))
    return {k: sorted(v) for k, v in out.items()}


def _labels_by_run(db: TraceStore, run_ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {}
    for chunk in _chunks(run_ids):
        marks = ",".join("?" * len(chunk))
        for run_id, label in db.query(
            f"SELECT run_id, label FROM annotations"
            f" WHERE label IS NOT NULL AND run_id IN ({marks})",
            chunk):
            out.setdefault(run_id, set()).add(label)
    return {k: sorted(v) for k, v in out.items()}


def _trace_record(row: tuple[Any, ...], models: dict[str, list[str]],
                  labels: dict[str, list[str]]) -> dict[str, Any]:
    span_id, trace_id, run_id, start_ns, end_ns, otel_status, attributes = row
    a: dict[str, Any] = json.loads(attributes)
    status = a.get(sc.AGENTNB_STATUS) or ("failed" if otel_status == "ERROR" else None)
    model = a.get(sc.GEN_AI_REQUEST_MODEL)
    used = models.get(run_id) or ([model] if model else [])
    return {
        "run_id": run_id,
        "parent_run_id": a.get(sc.AGENTNB_PARENT_RUN_ID),
        "agent": a.get(sc.GEN_AI_AGENT_NAME),
        "model": model,
        "models": ",".join(used),
        "status": status,
        "stop_reason": a.get(sc.AGENTNB_STOP_REASON),
        "input_tokens": a.get(sc.GEN_AI_USAGE_INPUT_TOKENS),
        "output_tokens": a.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS),
        "usd": a.get(sc.AGENTNB_COST_USD),
        "duration_s": (end_ns - start_ns) / 1e9,
        "steps": a.get(sc.AGENTNB_USAGE_STEPS),
        "model_calls": a.get(sc.AGENTNB_USAGE_MODEL_CALLS),
        "tool_calls": a.get(sc.AGENTNB_USAGE_TOOL_CALLS),
        "started_at": start_ns,
        "task": a.get(sc.AGENTNB_TASK),
        "output": a.get(sc.AGENTNB_OUTPUT),
        "labels": ",".join(labels.get(run_id, [])),
        "trace_id": trace_id,
        "span_id": span_id,
    }


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class SpanRecord:
    """One stored span, as read back from the store."""

    span_id: str
    trace_id: str
    parent_id: str | None
    run_id: str | None
    name: str
    kind: str | None
    span_kind: str
    start_ns: int
    end_ns: int
    status: str
    status_message: str | None
    attributes: dict[str, Any]
    scope: str | None
    events: list[dict[str, Any]]
    """Each `{"name", "time_ns", "attributes"}`."""


def load_spans(run_id: str, *, home: Path | str | None = None,
               include_children: bool = True) -> list[SpanRecord]:
    """A run's stored spans in start order (with its child runs' spans unless told otherwise)."""
    flush()
    db = store(home)
    with db.reader() as conn:
        run_ids = [run_id]
        if include_children:
            run_ids = _with_child_runs(conn, run_id)
        rows = []
        for chunk in _chunks(run_ids):
            marks = ",".join("?" * len(chunk))
            rows += conn.execute(f"SELECT * FROM spans WHERE run_id IN ({marks})",
                                 chunk).fetchall()
        rows.sort(key=lambda r: (r[7], r[0]))
        events: dict[str, list[dict[str, Any]]] = {}
        ids = [r[0] for r in rows]
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            for span_id, _seq, name, time_ns, attrs in conn.execute(
                    f"SELECT * FROM events WHERE span_id IN ({marks}) ORDER BY span_id, seq",
                    chunk):
                events.setdefault(span_id, []).append(
                    {"name": name, "time_ns": time_ns, "attributes": json.loads(attrs)})
    return [
        SpanRecord(span_id=r[0], trace_id=r[1], parent_id=r[2], run_id=r[3], name=r[4],
                   kind=r[5], span_kind=r[6], start_ns=r[7], end_ns=r[8], status=r[9],
                   status_message=r[10], attributes=json.loads(r[11]), scope=r[12],
                   events=events.get(r[0], []))
        for r in rows
    ]


def _with_child_runs(conn: Any, run_id: str) -> list[str]:
    """The run and its descendant runs (delegates), from the run spans' parent ids."""
    found, frontier = [run_id], [run_id]
    parent_key = _json_key(sc.AGENTNB_PARENT_RUN_ID)
    while frontier:
        marks = ",".join("?" * len(frontier))
        children = [r[0] for r in conn.execute(
            f"SELECT run_id FROM spans WHERE kind = '{sc.KIND_RUN}' AND run_id IS NOT NULL"
            f" AND json_extract(attributes, '{parent_key}') IN ({marks})", frontier)]
        frontier = [c for c in children if c not in found]
        found += frontier
    return found


def spans(run_id: str, *, home: Path | str | None = None) -> pd.DataFrame:
    """The spans of one run, child runs included, in start order, one column per attribute.

    Fixed columns come first (`span_id`, `parent_id`, `trace_id`, `run_id`, `name`, `kind`,
    `start`, `end`, `duration_s`, `status`, `status_message`, `events`), then every `gen_ai.*`
    and `agentnb.*` attribute found, sorted.

    Example:
        >>> import tempfile
        >>> len(spans("run_missing", home=tempfile.mkdtemp()))
        0
    """
    pd = _pandas()
    records = load_spans(run_id, home=home)
    fixed = ["span_id", "parent_id", "trace_id", "run_id", "name", "kind", "start", "end",
             "duration_s", "status", "status_message", "events"]
    keys = sorted({k for r in records for k in r.attributes})
    rows = []
    for r in records:
        row: dict[str, Any] = {
            "span_id": r.span_id, "parent_id": r.parent_id, "trace_id": r.trace_id,
            "run_id": r.run_id, "name": r.name, "kind": r.kind, "start": r.start_ns,
            "end": r.end_ns, "duration_s": (r.end_ns - r.start_ns) / 1e9, "status": r.status,
            "status_message": r.status_message, "events": r.events,
        }
        for key in keys:
            value = r.attributes.get(key)
            row[key] = tuple(value) if isinstance(value, list) else value
        rows.append(row)
    frame = pd.DataFrame.from_records(rows, columns=fixed + keys)
    for column in ("start", "end"):
        frame[column] = pd.to_datetime(frame[column], unit="ns", utc=True)
    return frame


def format_traces(df: pd.DataFrame, fmt: Literal["table", "json"] = "table") -> str:
    """Render a `traces()` or `spans()` frame as the text `agentnb traces` prints.

    `table` shows the main columns of a `traces()` or `spans()` frame (all columns of any
    other frame) as aligned text; `json` gives every column of every row as a JSON list of
    objects with ISO times. The output is stable: scripts may parse the JSON form.

    Raises:
        UsageError: an unknown `fmt`.

    Example:
        >>> import pandas as pd
        >>> print(format_traces(pd.DataFrame({"run_id": ["run_1"], "status": ["done"]}), "json"))
        [
          {
            "run_id": "run_1",
            "status": "done"
          }
        ]
    """
    if fmt == "json":
        text = df.to_json(orient="records", date_format="iso", date_unit="ms")
        return json.dumps(json.loads(text or "[]"), indent=2, ensure_ascii=False)
    if fmt == "table":
        if df.empty:
            return "No runs recorded."
        wanted = _SPAN_TABLE_COLUMNS if "name" in df.columns else _TABLE_COLUMNS
        columns = [c for c in wanted if c in df.columns] or list(df.columns)
        view: Any = df[columns].copy()
        if "usd" in view.columns:
            view["usd"] = view["usd"].map(
                lambda v: "" if v is None or math.isnan(v) else f"{v:.6f}")
        if "duration_s" in view.columns:
            view["duration_s"] = view["duration_s"].map(lambda v: f"{v:.3f}")
        for column in ("started_at", "start"):
            if column in view.columns:
                view[column] = view[column].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
        view = view.astype(object).mask(view.isna(), "")
        return str(view.to_string(index=False))
    msg = f"Unknown trace format {fmt!r}."
    raise UsageError(msg, hint="Use 'table' or 'json'.")
