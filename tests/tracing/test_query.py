"""`traces()`, `spans()`, filters, annotations and the CLI text formats."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from agentnb.core import UsageError
from agentnb.tracing import (
    annotate,
    annotations,
    format_traces,
    spans,
    traces,
)
from agentnb.tracing import semconv as sc
from agentnb.tracing._query import TRACE_COLUMNS


def test_traces_one_row_per_run_with_aggregates(run_emitter: Callable[..., None],
                                                simple_steps: list[Any]) -> None:
    """A run row carries agent, models, status, tokens, cost, steps and its child-run link."""
    run_emitter("run_a", simple_steps, agent="planner", usd=0.5, output="14 days")
    run_emitter("run_b", simple_steps[:1], agent="helper", model="sim:cheap",
                parent_run_id="run_a", status="stopped", stop_reason="budget")
    frame = traces()
    assert list(frame.columns) == list(TRACE_COLUMNS)
    assert list(frame["run_id"]) == ["run_b", "run_a"]  # newest first
    a = frame.set_index("run_id").loc["run_a"]
    assert a["agent"] == "planner"
    assert a["models"] == "sim:careful"
    assert a["status"] == "done"
    assert a["input_tokens"] == 200
    assert a["output_tokens"] == 40
    assert a["usd"] == 0.5
    assert (a["steps"], a["model_calls"], a["tool_calls"]) == (3, 2, 1)
    assert a["task"] == "find the refund policy"
    assert a["output"] == "14 days"
    assert a["duration_s"] > 0
    assert isinstance(a["started_at"], pd.Timestamp)
    assert abs(a["started_at"].timestamp() - time.time()) < 60
    b = frame.set_index("run_id").loc["run_b"]
    assert (b["parent_run_id"], b["status"], b["stop_reason"]) == ("run_a", "stopped", "budget")
    assert b["models"] == "sim:cheap"


def test_traces_filters(run_emitter: Callable[..., None], simple_steps: list[Any]) -> None:
    """since/until, agent, status, label and limit each narrow the rows."""
    run_emitter("run_1", simple_steps, agent="a")
    time.sleep(0.02)
    middle = dt.datetime.now(dt.UTC)
    time.sleep(0.02)
    run_emitter("run_2", simple_steps, agent="b", status="failed")
    run_emitter("run_3", simple_steps, agent="b")
    assert list(traces(agent="b")["run_id"]) == ["run_3", "run_2"]
    assert list(traces(status="failed")["run_id"]) == ["run_2"]
    assert list(traces(since=middle)["run_id"]) == ["run_3", "run_2"]
    assert list(traces(until=middle)["run_id"]) == ["run_1"]
    assert list(traces(until=middle.isoformat())["run_id"]) == ["run_1"]
    assert list(traces(since=middle.timestamp())["run_id"]) == ["run_3", "run_2"]
    assert len(traces(since=dt.timedelta(hours=1))) == 3
    assert traces(since=dt.timedelta(seconds=-60)).empty
    assert list(traces(limit=1)["run_id"]) == ["run_3"]
    annotate("run_2", label="bad")
    span_id = spans("run_3").iloc[-1]["span_id"]
    annotate(span_id, label="bad", note="this step")
    assert list(traces(label="bad")["run_id"]) == ["run_3", "run_2"]
    assert traces(label="good").empty
    assert list(traces(label="bad", agent="b", status="done")["run_id"]) == ["run_3"]
    assert traces().set_index("run_id").loc["run_2", "labels"] == "bad"


def test_bad_time_bound_is_usage_error() -> None:
    """A time filter that is not a time raises UsageError with a hint."""
    with pytest.raises(UsageError, match="since='yesterday'"):
        traces(since="yesterday")
    with pytest.raises(UsageError, match="until=True"):
        traces(until=True)
    with pytest.raises(UsageError):
        traces(until=[1])  # type: ignore[arg-type]


def test_spans_frame_flattens_attributes(run_emitter: Callable[..., None],
                                         simple_steps: list[Any]) -> None:
    """`spans(run_id)` has fixed columns, then one column per attribute, in start order."""
    run_emitter("run_s", simple_steps)
    frame = spans("run_s")
    assert list(frame.columns[:12]) == ["span_id", "parent_id", "trace_id", "run_id", "name",
                                        "kind", "start", "end", "duration_s", "status",
                                        "status_message", "events"]
    assert {sc.GEN_AI_TOOL_NAME, sc.AGENTNB_STEP_INDEX, sc.GEN_AI_OUTPUT_MESSAGES} <= set(
        frame.columns)
    assert list(frame["kind"]) == ["run", "step", "model_call", "step", "tool_call", "step",
                                   "model_call"]
    assert frame["start"].is_monotonic_increasing
    tool = frame[frame["kind"] == "tool_call"].iloc[0]
    assert json.loads(tool[sc.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"q": "refund"}
    assert spans("run_unknown").empty


def test_annotations_roundtrip_and_filters(run_emitter: Callable[..., None],
                                           simple_steps: list[Any]) -> None:
    """Annotations on runs and spans are stored with their run id and can be filtered."""
    run_emitter("run_x", simple_steps)
    span_id = str(spans("run_x").iloc[2]["span_id"])
    first = annotate("run_x", label="good", score=0.9, note="clear answer", author="ana")
    second = annotate(span_id, score=0.2, note="slow tool", author="bo")
    assert second > first
    frame = annotations()
    assert list(frame["target_kind"]) == ["run", "span"]
    assert list(frame["run_id"]) == ["run_x", "run_x"]
    assert frame.iloc[0]["label"] == "good"
    assert frame.iloc[0]["score"] == 0.9
    assert frame.iloc[1]["note"] == "slow tool"
    assert list(annotations(span_id)["id"]) == [second]
    assert list(annotations(author="ana")["id"]) == [first]
    assert list(annotations(run_id="run_x")["id"]) == [first, second]
    assert list(annotations(label="good")["id"]) == [first]
    assert isinstance(frame.iloc[0]["created_at"], pd.Timestamp)


def test_annotate_refuses_bad_input(run_emitter: Callable[..., None],
                                    simple_steps: list[Any]) -> None:
    """Unknown ids, empty annotations and non-finite scores raise UsageError."""
    run_emitter("run_y", simple_steps)
    with pytest.raises(UsageError, match="run_nope"):
        annotate("run_nope", label="x")
    with pytest.raises(UsageError, match="Nothing to record"):
        annotate("run_y")
    with pytest.raises(UsageError, match="finite"):
        annotate("run_y", score=float("nan"))
    with pytest.raises(UsageError, match="finite"):
        annotate("run_y", score="high")  # type: ignore[arg-type]
    assert annotations().empty


def test_annotation_note_is_redacted(run_emitter: Callable[..., None],
                                     simple_steps: list[Any]) -> None:
    """A note passes the installed redactor before it is stored."""
    from agentnb.tracing import set_redactor

    run_emitter("run_r", simple_steps)
    set_redactor(lambda text: text.replace("hunter2", "***"))
    annotate("run_r", note="password hunter2 leaked")
    assert annotations().iloc[0]["note"] == "password *** leaked"


def test_format_traces_table_and_json(run_emitter: Callable[..., None],
                                      simple_steps: list[Any]) -> None:
    """The table shows the main columns; JSON holds every column with ISO times."""
    run_emitter("run_f", simple_steps, agent="planner", usd=0.125)
    frame = traces()
    table = format_traces(frame)
    header, row = table.splitlines()
    assert header.split() == ["run_id", "agent", "models", "status", "stop_reason", "steps",
                              "input_tokens", "output_tokens", "usd", "duration_s",
                              "started_at"]
    assert row.split()[:4] == ["run_f", "planner", "sim:careful", "done"]
    assert "0.125000" in row
    records = json.loads(format_traces(frame, "json"))
    assert records[0]["run_id"] == "run_f"
    assert set(records[0]) == set(TRACE_COLUMNS)
    assert dt.datetime.fromisoformat(records[0]["started_at"].replace("Z", "+00:00"))
    assert format_traces(traces(agent="nobody")) == "No runs recorded."
    assert json.loads(format_traces(traces(agent="nobody"), "json")) == []
    assert "span_id" in format_traces(spans("run_f"))
    with pytest.raises(UsageError, match="'xml'"):
        format_traces(frame, "xml")  # type: ignore[arg-type]
