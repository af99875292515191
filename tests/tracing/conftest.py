"""Tracing test set-up: a store per test; a helper that emits runs the way the runtime does."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentnb.core import resolve
from agentnb.tracing import _spans, configure, flush, set_redactor, tracer
from agentnb.tracing import semconv as sc


@pytest.fixture(autouse=True)
def _fresh_store() -> Iterator[None]:
    """Point the store at this test's AGENTNB_HOME; drop redactors and exporters afterwards."""
    configure(resolve())
    yield
    flush()
    set_redactor(None)
    for endpoint in list(_spans._state().exporters):
        _spans._remove_exporter(endpoint)
    configure(resolve())


Step = tuple[str, Any]
"""("model", (text, [(tool, args), ...])) or ("tool", [(tool, args), ...])."""


def emit_run(
    run_id: str,
    steps: list[Step],
    *,
    agent: str = "planner",
    model: str = "sim:careful",
    parent_run_id: str | None = None,
    status: str = "done",
    stop_reason: str | None = None,
    task: str = "find the refund policy",
    output: str = "done",
    usd: float = 0.25,
) -> None:
    """Emit one run's spans through `tracer()` following the cross-layer span contract."""
    t = tracer()
    start: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.AGENTNB_KIND: "run",
        sc.AGENTNB_RUN_ID: run_id, sc.GEN_AI_AGENT_NAME: agent, sc.GEN_AI_REQUEST_MODEL: model,
        sc.AGENTNB_TASK: task,
    }
    if parent_run_id:
        start[sc.AGENTNB_PARENT_RUN_ID] = parent_run_id
    model_calls = tool_calls = 0
    with t.start_as_current_span(f"invoke_agent {agent}", attributes=start) as run:
        for index, (kind, payload) in enumerate(steps):
            with t.start_as_current_span(f"step {index} {kind}", attributes={
                    sc.AGENTNB_KIND: "step", sc.AGENTNB_STEP_INDEX: index,
                    sc.AGENTNB_STEP_KIND: kind}):
                if kind == "model":
                    text, calls = payload
                    parts: list[dict[str, Any]] = [{"type": "text", "content": text}]
                    parts += [{"type": "tool_call", "name": n, "arguments": a, "id": f"c{i}"}
                              for i, (n, a) in enumerate(calls)]
                    model_calls += 1
                    with t.start_as_current_span(f"chat {model}", attributes={
                            sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.AGENTNB_KIND: "model_call",
                            sc.GEN_AI_PROVIDER_NAME: "sim", sc.GEN_AI_REQUEST_MODEL: model,
                            sc.GEN_AI_RESPONSE_MODEL: model,
                            sc.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
                            sc.GEN_AI_USAGE_INPUT_TOKENS: 100, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 20,
                            sc.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                                [{"role": "assistant", "parts": parts}])}):
                        pass
                else:
                    for i, (name, args) in enumerate(payload):
                        tool_calls += 1
                        with t.start_as_current_span(f"execute_tool {name}", attributes={
                                sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL,
                                sc.AGENTNB_KIND: "tool_call", sc.GEN_AI_TOOL_NAME: name,
                                sc.GEN_AI_TOOL_CALL_ID: f"c{i}",
                                sc.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps(args),
                                sc.AGENTNB_TOOL_STATUS: "ok"}):
                            pass
        end: dict[str, Any] = {
            sc.AGENTNB_STATUS: status, sc.GEN_AI_USAGE_INPUT_TOKENS: 100 * model_calls,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 20 * model_calls, sc.AGENTNB_COST_USD: usd,
            sc.AGENTNB_USAGE_MODEL_CALLS: model_calls, sc.AGENTNB_USAGE_TOOL_CALLS: tool_calls,
            sc.AGENTNB_USAGE_STEPS: len(steps), sc.AGENTNB_OUTPUT: output,
        }
        if stop_reason:
            end[sc.AGENTNB_STOP_REASON] = stop_reason
        run.set_attributes(end)


@pytest.fixture
def run_emitter() -> Callable[..., None]:
    """The `emit_run` helper."""
    return emit_run


@pytest.fixture
def simple_steps() -> list[Step]:
    """A three-step trajectory: the model proposes a search, the tool runs, the model answers."""
    return [
        ("model", ("let me look", [("search", {"q": "refund"})])),
        ("tool", [("search", {"q": "refund"})]),
        ("model", ("Refunds take 14 days.", [])),
    ]
