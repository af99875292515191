"""Spans into the store and back: tree structure, attributes, events, redaction, on/off."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from typing import Any

import pandas as pd
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from agentnb.core import resolve
from agentnb.tracing import (
    attributes,
    configure,
    flush,
    load_spans,
    set_redactor,
    spans,
    start_span,
    store,
    tracer,
)
from agentnb.tracing import semconv as sc


def _delegating_run() -> None:
    """A run with a retry, two parallel tool calls (one delegates to a child run), a budget stop."""
    t = tracer()

    async def tool(name: str, call_id: str, delegate: bool) -> None:
        with t.start_as_current_span(f"execute_tool {name}", attributes={
                sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.AGENTNB_KIND: "tool_call",
                sc.GEN_AI_TOOL_NAME: name, sc.GEN_AI_TOOL_CALL_ID: call_id,
                sc.AGENTNB_POLICY_DECISION: "allow", sc.AGENTNB_TOOL_EFFECTS: ["read"]}):
            await asyncio.sleep(0.01)
            if delegate:
                with t.start_as_current_span("invoke_agent researcher", attributes={
                        sc.AGENTNB_KIND: "run", sc.AGENTNB_RUN_ID: "run_child",
                        sc.AGENTNB_PARENT_RUN_ID: "run_parent",
                        sc.GEN_AI_AGENT_NAME: "researcher"}), \
                        t.start_as_current_span("step 0 model", attributes={
                            sc.AGENTNB_KIND: "step", sc.AGENTNB_STEP_INDEX: 0}):
                    await asyncio.sleep(0.01)

    async def main() -> None:
        with t.start_as_current_span("invoke_agent planner", attributes={
                sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.AGENTNB_KIND: "run",
                sc.AGENTNB_RUN_ID: "run_parent", sc.GEN_AI_AGENT_NAME: "planner"}) as run:
            with t.start_as_current_span("step 0 model", attributes={
                    sc.AGENTNB_KIND: "step", sc.AGENTNB_STEP_INDEX: 0}):
                with t.start_as_current_span("chat sim:careful", attributes={
                        sc.AGENTNB_KIND: "model_call", sc.AGENTNB_RETRY_ATTEMPT: 0}) as first:
                    first.set_status(Status(StatusCode.ERROR, "HTTP 429"))
                    first.add_event("retry", {sc.AGENTNB_RETRY_CAUSE: "rate_limit"})
                with t.start_as_current_span("chat sim:careful", attributes={
                        sc.AGENTNB_KIND: "model_call", sc.AGENTNB_RETRY_ATTEMPT: 1,
                        sc.GEN_AI_USAGE_INPUT_TOKENS: 12,
                        sc.GEN_AI_RESPONSE_FINISH_REASONS: ["tool_calls"]}):
                    pass
            with t.start_as_current_span("step 1 tool", attributes={
                    sc.AGENTNB_KIND: "step", sc.AGENTNB_STEP_INDEX: 1}):
                async with asyncio.TaskGroup() as group:
                    group.create_task(tool("search", "c1", delegate=False))
                    group.create_task(tool("ask_researcher", "c2", delegate=True))
            with t.start_as_current_span("budget stop", attributes={
                    sc.AGENTNB_KIND: "stop", sc.AGENTNB_BUDGET_SCOPE: "run",
                    sc.AGENTNB_BUDGET_REMAINING_USD: 0.0}):
                pass
            run.set_attributes({sc.AGENTNB_STATUS: "stopped", sc.AGENTNB_STOP_REASON: "budget"})

    asyncio.run(main())


def test_span_tree_with_delegation_parallel_tools_retry_and_budget_stop() -> None:
    """The stored tree keeps parents, attribute names, values and events; the child run nests."""
    _delegating_run()
    frame = spans("run_parent")
    by_name: dict[str, list[dict[str, Any]]] = {}
    for row in frame.to_dict("records"):
        by_name.setdefault(str(row["name"]), []).append(row)
    run = by_name["invoke_agent planner"][0]
    assert run["parent_id"] is None or bool(pd.isna(run["parent_id"]))
    assert run[sc.AGENTNB_STATUS] == "stopped"
    assert run[sc.AGENTNB_STOP_REASON] == "budget"
    step0, step1 = by_name["step 0 model"][0], by_name["step 1 tool"][0]
    assert step0["parent_id"] == run["span_id"] == step1["parent_id"]
    first, second = by_name["chat sim:careful"]
    assert first["parent_id"] == second["parent_id"] == step0["span_id"]
    assert first["status"] == "ERROR"
    assert first["status_message"] == "HTTP 429"
    assert first["events"][0]["name"] == "retry"
    assert first["events"][0]["attributes"] == {sc.AGENTNB_RETRY_CAUSE: "rate_limit"}
    assert second[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    assert second[sc.GEN_AI_USAGE_INPUT_TOKENS] == 12
    tools = {r[sc.GEN_AI_TOOL_NAME]: r for r in by_name["execute_tool search"]
             + by_name["execute_tool ask_researcher"]}
    assert {r["parent_id"] for r in tools.values()} == {step1["span_id"]}
    assert tools["search"][sc.AGENTNB_TOOL_EFFECTS] == ("read",)
    # the two tools overlapped in time: they ran in parallel
    assert tools["search"]["start"] < tools["ask_researcher"]["end"]
    assert tools["ask_researcher"]["start"] < tools["search"]["end"]
    child = by_name["invoke_agent researcher"][0]
    assert child["parent_id"] == tools["ask_researcher"]["span_id"]
    assert child["run_id"] == "run_child"
    assert child[sc.AGENTNB_PARENT_RUN_ID] == "run_parent"
    child_step = next(r for r in by_name["step 0 model"] if r["run_id"] == "run_child")
    assert child_step["parent_id"] == child["span_id"]
    stop = by_name["budget stop"][0]
    assert stop["kind"] == "stop"
    assert stop["parent_id"] == run["span_id"]
    assert len(frame) == 10
    assert {r["trace_id"] for r in frame.to_dict("records")} == {run["trace_id"]}
    # the parent's own spans carry its run id; the child's carry the child's
    own = load_spans("run_parent", include_children=False)
    assert {s.run_id for s in own} == {"run_parent"}
    assert len(own) == 8


def test_attributes_helper_and_start_span() -> None:
    """`attributes` drops None and converts Decimal and dicts; `start_span` stores them."""
    values = attributes({sc.AGENTNB_COST_USD: Decimal("0.125"), "skip": None},
                        extra={"a": [1, 2]}, effects=frozenset({"write", "read"}),
                        mixed=[1, "a"])
    assert values == {sc.AGENTNB_COST_USD: 0.125, "extra": '{"a": [1, 2]}',
                      "effects": ["read", "write"], "mixed": '[1, "a"]'}
    with start_span("custom", values, **{sc.AGENTNB_KIND: "budget", sc.AGENTNB_RUN_ID: "run_x"}):
        pass
    (record,) = load_spans("run_x")
    assert record.attributes == {**values, sc.AGENTNB_KIND: "budget", sc.AGENTNB_RUN_ID: "run_x"}
    assert record.kind == "budget"


def test_exception_is_recorded_on_span() -> None:
    """An exception inside a span leaves an ERROR status and an `exception` event."""
    t = tracer()
    try:
        with t.start_as_current_span("invoke_agent x", attributes={
                sc.AGENTNB_KIND: "run", sc.AGENTNB_RUN_ID: "run_err"}):
            raise ValueError("boom")
    except ValueError:
        pass
    (record,) = load_spans("run_err")
    assert record.status == "ERROR"
    assert record.events[0]["name"] == "exception"
    assert record.events[0]["attributes"]["exception.message"] == "boom"


def test_redactor_applies_to_attributes_events_and_status() -> None:
    """Every string value (lists and events too) passes the redactor before it is stored."""
    set_redactor(lambda text: text.replace("sk-123", "[REDACTED]"))
    with tracer().start_as_current_span("tool", attributes={
            sc.AGENTNB_RUN_ID: "run_red", sc.GEN_AI_TOOL_CALL_ARGUMENTS: '{"key": "sk-123"}',
            "list": ["a sk-123", "b"], "n": 3}) as span:
        span.add_event("note", {"text": "token sk-123"})
        span.set_status(Status(StatusCode.ERROR, "bad key sk-123"))
    (record,) = load_spans("run_red")
    assert record.attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS] == '{"key": "[REDACTED]"}'
    assert record.attributes["list"] == ["a [REDACTED]", "b"]
    assert record.attributes["n"] == 3
    assert record.events[0]["attributes"] == {"text": "token [REDACTED]"}
    assert record.status_message == "bad key [REDACTED]"
    assert "sk-123" not in store().path.read_bytes().decode("latin-1")


def test_governance_redactor_memo_is_used_and_stays_right_after_a_new_secret() -> None:
    """With governance's redactor installed, attribute strings are looked up in its memo first
    (no call per recurring value); a secret learnt later replaces the memo, so a value that was
    memoised as clean before is redacted from then on."""
    from agentnb.governance import Redactor

    r = Redactor(env={}, values=["hunter2hunter2"])
    assert r.redact("later-secret-xyz") == "later-secret-xyz"  # memoised as clean
    set_redactor(r.redact)
    try:
        r.register("later-secret-xyz")
        with tracer().start_as_current_span("tool", attributes={
                sc.AGENTNB_RUN_ID: "run_memo", "a": "pw hunter2hunter2", "b": "later-secret-xyz",
                "list": ["x later-secret-xyz", "y"], "n": 3, "f": 0.5, "ok": True}):
            pass
        (record,) = load_spans("run_memo")
    finally:
        set_redactor(None)
    assert record.attributes["a"] == "pw [REDACTED]"
    assert record.attributes["b"] == "[REDACTED]"
    assert record.attributes["list"] == ["x [REDACTED]", "y"]
    assert (record.attributes["n"], record.attributes["f"], record.attributes["ok"]) == (
        3, 0.5, True)
    assert "later-secret-xyz" not in store().path.read_bytes().decode("latin-1")


def test_tracing_off_stores_nothing_and_spans_do_not_record() -> None:
    """`AGENTNB_TRACE=0` hands out non-recording spans and writes nothing."""
    settings = resolve(trace=False)
    configure(settings)
    with tracer().start_as_current_span("x", attributes={sc.AGENTNB_RUN_ID: "run_off"}) as span:
        assert not span.is_recording()
    configure(dataclasses.replace(settings, trace=True))
    assert load_spans("run_off") == []
    assert store().count_spans() == 0


def test_provider_is_not_global() -> None:
    """agentnb never installs its provider as the global OpenTelemetry one."""
    from agentnb.tracing import _spans

    st = _spans._state()
    assert st.tracer is not None  # the SDK tracer, made on first use
    assert st.provider is not None
    assert trace.get_tracer_provider() is not st.provider


def test_configure_switches_home_after_flushing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Spans finished before a re-configure land in the old home, later ones in the new."""
    with tracer().start_as_current_span("a", attributes={sc.AGENTNB_RUN_ID: "run_a"}):
        pass
    old = store()
    configure(resolve(home=tmp_path / "other"))
    with tracer().start_as_current_span("b", attributes={sc.AGENTNB_RUN_ID: "run_b"}):
        pass
    flush()
    assert old.query("SELECT run_id FROM spans") == [("run_a",)]
    assert store().query("SELECT run_id FROM spans") == [("run_b",)]
    assert store().path == (tmp_path / "other" / "traces.db").absolute()
