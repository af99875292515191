"""Static renderers: self-contained HTML with the trace tree, the timeline SVG and the budget."""

from __future__ import annotations

import re

from agentnb.notebook import BudgetChart, RunView, Timeline, TraceTree, run_view
from agentnb.notebook._fragments import meters_html, steps_html
from agentnb.tracing import load_spans

from ._helpers import approval_agent, delegate_agent

DELEGATE_TASK = "Look up key 7 and ask the helper to look up key 7, then save a note"


def _assert_self_contained(html: str) -> None:
    assert not re.search(r"\bsrc\s*=", html)
    assert "http://" not in html
    assert "https://" not in html
    assert "<script" not in html
    assert "<link" not in html
    assert "url(" not in html


def test_trace_tree_nests_the_delegate_run_under_its_tool_call() -> None:
    """The tree shows run > step > tool call > child run, with tokens and cost."""
    result = delegate_agent().run(DELEGATE_TASK)
    tree = TraceTree.from_store(result.run_id)
    html = tree.to_html()
    _assert_self_contained(html)
    assert html.count("<details") >= 4
    text = tree.to_text()
    lines = text.splitlines()
    tool_line = next(i for i, line in enumerate(lines) if "execute_tool delegate_helper" in line)
    child = lines[tool_line + 1]
    assert "invoke_agent helper" in child
    assert len(child) - len(child.lstrip()) > len(lines[tool_line]) - len(lines[tool_line].lstrip())
    assert "tok" in lines[0]
    assert "$" in lines[0]


def test_timeline_is_inline_svg_with_one_bar_per_span_and_overlapping_parallel_calls() -> None:
    """Parallel tool calls overlap on the time axis; every span has a bar."""
    result = delegate_agent().run(DELEGATE_TASK)
    spans = load_spans(result.run_id)
    html = Timeline(spans).to_html()
    _assert_self_contained(html)
    assert "<svg" in html
    assert html.count("<rect") == len(spans)
    tools = sorted((s for s in spans if s.kind == "tool_call" and s.run_id == result.run_id),
                   key=lambda s: s.start_ns)
    assert len(tools) == 2
    assert tools[1].start_ns < tools[0].end_ns  # concurrent, hence side by side in the chart


def test_budget_chart_accumulates_cost_per_step_including_delegates() -> None:
    """The last point equals the run's total cost, delegate spend included; the limit is known."""
    result = delegate_agent().run(DELEGATE_TASK)
    spans = load_spans(result.run_id)
    chart = BudgetChart.from_spans(spans)
    assert [i for i, _ in chart.points] == [s.index for s in result.steps]
    values = [v for _, v in chart.points]
    assert values == sorted(values)
    assert result.usage.usd is not None
    everything = sum(s.attributes["agentnb.cost.usd"] for s in spans if s.kind == "model_call")
    assert abs(values[-1] - everything) < 1e-9
    assert values[-1] > float(result.usage.usd)  # the helper's calls count too
    assert chart.limit_usd is not None
    assert abs(chart.limit_usd - 0.05) < 1e-6
    assert "<polyline" in chart.to_html()


def test_run_view_from_store_has_summary_tree_and_timeline() -> None:
    """`run_view(run_id)` renders a stored run: state, cost, tree, timeline."""
    result = delegate_agent().run(DELEGATE_TASK)
    view = run_view(result.run_id)
    bundle = view._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    html = bundle["text/html"]
    _assert_self_contained(html)
    for needle in ("anb-tree", "<svg", "done", result.run_id, "Timeline", "Budget over steps"):
        assert needle in html
    assert bundle["text/plain"].startswith(f"run {result.run_id}")
    assert view._repr_mimebundle_(include=["text/plain"]).keys() == {"text/plain"}
    assert view._repr_mimebundle_(exclude=["text/plain"]).keys() == {"text/html"}


def test_run_view_of_a_live_run_shows_steps_reason_and_pending_call() -> None:
    """A run waiting for approval renders its proposed call, the reason and the budget meter."""
    run = approval_agent().start("Save a note about the catalogue")
    run.step()
    html = RunView.from_run(run).to_html()
    _assert_self_contained(html)
    assert "save_note" in html
    assert "reason:" in html
    assert "awaiting_approval" in html
    assert "anb-meter" in html
    assert "steps 1/20" in html


def test_escaping_keeps_markup_out_of_the_page() -> None:
    """Task text with markup is escaped, never injected."""
    run = approval_agent().start("<script>alert(1)</script> save a note")
    html = RunView.from_run(run).to_html()
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html


def test_empty_views_say_so() -> None:
    """Views of nothing render a short note rather than failing."""
    assert "No spans" in TraceTree([]).to_html()
    assert "No spans" in Timeline([]).to_html()
    assert BudgetChart([]).to_text() == "budget: no steps"
    assert "No steps" in steps_html([])
    assert "No budget scope" in meters_html([])
    assert run_view("run_nope").to_text() == "run run_nope: no spans stored"
