"""`diff(run_a, run_b)`: where two stored trajectories diverge."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agentnb.core import UsageError
from agentnb.tracing import TraceDiff, diff, tracer
from agentnb.tracing import semconv as sc


def test_identical_runs_do_not_diverge(run_emitter: Callable[..., None],
                                       simple_steps: list[Any]) -> None:
    """Two runs with the same steps report no divergence."""
    run_emitter("run_a", simple_steps)
    run_emitter("run_b", simple_steps)
    d = diff("run_a", "run_b")
    assert not d.diverged
    assert (d.step, d.how, d.steps_a, d.steps_b) == (None, None, 3, 3)
    assert repr(d) == "TraceDiff('run_a' and 'run_b' follow the same 3 steps)"


@pytest.mark.parametrize(
    ("step", "change", "how"),
    [
        (0, ("model", ("let me look", [("lookup", {"q": "refund"})])), "tool"),
        (1, ("tool", [("search", {"q": "refunds"})]), "arguments"),
        (2, ("model", ("Refunds take 30 days.", [])), "text"),
        (1, ("model", ("never mind", [])), "kind"),
    ],
)
def test_first_divergence_and_how(run_emitter: Callable[..., None], simple_steps: list[Any],
                                  step: int, change: Any, how: str) -> None:
    """The first differing step is found and classified (tool, arguments, text, step kind)."""
    other = list(simple_steps)
    other[step] = change
    run_emitter("run_a", simple_steps)
    run_emitter("run_b", other)
    d = diff("run_a", "run_b")
    assert (d.step, d.how) == (step, how)
    assert d.a is not None
    assert d.b is not None
    assert d.a.index == d.b.index == step
    assert f"diverge at step {step}" in repr(d)


def test_shorter_run_diverges_where_it_ends(run_emitter: Callable[..., None],
                                            simple_steps: list[Any]) -> None:
    """A run that stops early diverges at its length, with no step on its side."""
    run_emitter("run_long", simple_steps)
    run_emitter("run_short", simple_steps[:2])
    d = diff("run_long", "run_short")
    assert (d.step, d.how, d.steps_a, d.steps_b) == (2, "length", 3, 2)
    assert d.b is None
    assert d.a is not None
    assert d.a.text == "Refunds take 14 days."
    assert "(no step)" in repr(d)
    assert diff("run_short", "run_long").a is None


def test_child_runs_are_not_part_of_the_parent_trajectory(
        run_emitter: Callable[..., None], simple_steps: list[Any]) -> None:
    """Steps of a delegate's child run do not count as the parent's steps."""
    run_emitter("run_a", simple_steps)
    run_emitter("run_b", simple_steps)
    run_emitter("run_b_child", simple_steps[:1], parent_run_id="run_b")
    assert not diff("run_a", "run_b").diverged


def test_runs_without_step_spans_compare_calls() -> None:
    """When a run has no step spans, each model or tool call counts as a step."""
    t = tracer()
    for run_id, tool in (("run_x", "search"), ("run_y", "fetch")):
        with t.start_as_current_span("invoke_agent a", attributes={
                sc.AGENTNB_KIND: "run", sc.AGENTNB_RUN_ID: run_id}), \
                t.start_as_current_span(f"execute_tool {tool}", attributes={
                    sc.AGENTNB_KIND: "tool_call", sc.GEN_AI_TOOL_NAME: tool,
                    sc.GEN_AI_TOOL_CALL_ARGUMENTS: "not json"}):
            pass
    d = diff("run_x", "run_y")
    assert (d.step, d.how) == (0, "tool")
    assert d.a is not None
    assert d.a.tool_calls == (("search", "not json"),)


def test_mimebundle_has_text_and_html(run_emitter: Callable[..., None],
                                      simple_steps: list[Any]) -> None:
    """The diff renders as text/plain and escaped text/html, honouring include/exclude."""
    other = list(simple_steps)
    other[2] = ("model", ("<b>30</b> days", []))
    run_emitter("run_a", simple_steps)
    run_emitter("run_b", other)
    d = diff("run_a", "run_b")
    bundle = d._repr_mimebundle_()
    assert bundle["text/plain"] == repr(d)
    assert "&lt;b&gt;30&lt;/b&gt;" in bundle["text/html"]
    assert "different text" in bundle["text/html"]
    assert set(d._repr_mimebundle_(include=["text/plain"])) == {"text/plain"}
    assert set(d._repr_mimebundle_(exclude=["text/plain"])) == {"text/html"}
    same = TraceDiff(run_a="a", run_b="b", step=None, how=None, a=None, b=None, steps_a=1,
                     steps_b=1)
    assert "follow the same 1 steps" in same._repr_mimebundle_()["text/html"]


def test_unknown_run_is_usage_error(run_emitter: Callable[..., None],
                                    simple_steps: list[Any]) -> None:
    """Diffing a run id with no stored spans raises UsageError naming it."""
    run_emitter("run_a", simple_steps)
    with pytest.raises(UsageError, match="run_missing"):
        diff("run_a", "run_missing")
