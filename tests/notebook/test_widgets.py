"""The run widget and approval card without a browser: handlers schedule tasks on the loop."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from agentnb.core import run_sync
from agentnb.governance import Approval, ApprovalRequest, Approver
from agentnb.notebook import ApprovalCard, RunWidget, WidgetApprover, choose
from agentnb.runtime import Agent, budget

from ._helpers import TASK, approval_agent


async def _drain(widget: RunWidget) -> None:
    for _ in range(50):
        if not widget.tasks:
            return
        await asyncio.gather(*widget.tasks)
    raise AssertionError("tasks kept coming")


def test_step_button_schedules_a_task_and_returns_at_once() -> None:
    """Pressing Step returns a scheduled task; the step lands when the task runs."""
    run = approval_agent().start(TASK)
    widget = RunWidget(run)

    async def click() -> None:
        task = widget.on_step()
        assert isinstance(task, asyncio.Task)
        assert not task.done()
        assert run.steps == []  # nothing ran yet: the handler did not wait
        assert widget.busy
        assert widget.step_button.disabled
        assert widget.on_continue() is None  # refused while busy
        await _drain(widget)

    asyncio.run(click())
    assert [s.kind for s in run.steps] == ["model"]
    assert not widget.busy
    assert "save_note" in widget.steps.value
    assert run.state == "awaiting_approval"
    assert widget.step_button.disabled
    assert widget.continue_button.disabled


def test_approve_click_runs_the_approval_and_the_tool_and_audits_it() -> None:
    """Approve on the card decides through the run, which applies, audits and runs the tool."""
    run = approval_agent().start(TASK)
    widget = RunWidget(run)

    async def scenario() -> None:
        widget.on_continue()
        await _drain(widget)
        assert run.state == "awaiting_approval"
        assert len(widget.cards) == 1
        assert widget.approvals.children
        card = next(iter(widget.cards.values()))
        card.approve()
        assert widget.tasks  # scheduled, not run inline
        await _drain(widget)

    asyncio.run(scenario())
    assert [s.kind for s in run.steps] == ["model", "approval", "tools"]
    assert run.steps[2].tool_calls[0].result.startswith("saved:")
    assert "saved:" in widget.steps.value
    assert not widget.approvals.children
    audit = (Path(run.agent.resolved_settings.home) / "audit" / "audit.jsonl").read_text()
    approvals = [json.loads(line) for line in audit.splitlines()
                 if json.loads(line).get("event") == "approval"]
    assert approvals
    assert approvals[-1]["decision"] == "approve"
    assert approvals[-1]["approver"] == "widget"


def test_edit_with_invalid_json_is_reported_and_valid_json_runs_edited() -> None:
    """The JSON editor validates; the edited arguments are what the tool receives."""
    run = approval_agent().start(TASK)
    widget = RunWidget(run)

    async def scenario() -> None:
        widget.on_step()
        await _drain(widget)
        card = next(iter(widget.cards.values()))
        card.editor.value = "{not json"
        card.edit()
        assert "Invalid JSON" in card.error.value
        assert card.decision is None
        card.editor.value = "[1, 2]"
        card.edit()
        assert "JSON object" in card.error.value
        assert card.decision is None
        card.editor.value = json.dumps({"text": "edited by a person"})
        card.edit()
        await _drain(widget)

    asyncio.run(scenario())
    assert run.steps[1].tool_calls[0].status == "edited"
    assert run.steps[2].tool_calls[0].result == "saved: edited by a person"


def test_deny_sends_the_message_to_the_model() -> None:
    """Deny with a message: the tool does not run and the model sees the message."""
    run = approval_agent().start(TASK)
    widget = RunWidget(run)

    async def scenario() -> None:
        widget.on_step()
        await _drain(widget)
        card = next(iter(widget.cards.values()))
        card.message.value = "Not today."
        card.deny()
        await _drain(widget)

    asyncio.run(scenario())
    assert run.steps[1].tool_calls[0].status == "denied"
    assert "Not today." in (run.steps[2].tool_calls[0].result or "")


def test_stop_on_an_idle_run_records_the_stop() -> None:
    """Stop sets the kill switch and an idle run records its stopped step at once."""
    run = approval_agent().start(TASK)
    widget = RunWidget(run)

    async def scenario() -> None:
        widget.on_stop()
        await _drain(widget)

    asyncio.run(scenario())
    assert run.state == "stopped"
    assert run.stop_reason == "stop_requested"
    assert widget.stop_button.disabled
    assert widget.step_button.disabled
    assert "stopped" in widget.header.value
    assert widget.on_stop() is None  # a finished run ignores Stop


def test_continue_to_breakpoint_pauses_after_the_step_that_proposes_the_tool() -> None:
    """A breakpoint on a tool name pauses before the tool runs."""
    from ._helpers import lookup, save_note

    agent = Agent(model="sim:careful", tools=[lookup, save_note])
    run = agent.start(TASK)
    widget = RunWidget(run)
    widget.breakpoint.value = "save_note"

    async def scenario() -> None:
        widget.on_continue_to()
        await _drain(widget)

    asyncio.run(scenario())
    assert [s.kind for s in run.steps] == ["model"]
    assert not run.finished
    assert "breakpoint" in widget.status.value

    async def rest() -> None:
        widget.on_continue()
        await _drain(widget)

    asyncio.run(rest())
    assert run.state == "done"
    assert "anb-tree" in widget.trace.value
    assert "<svg" in widget.trace.value


def test_rewind_forks_and_the_widget_follows_the_fork() -> None:
    """Rewind to step k shows a new run forked from the original."""
    from ._helpers import lookup, save_note

    run = Agent(model="sim:careful", tools=[lookup, save_note]).start(TASK)
    widget = RunWidget(run)

    async def scenario() -> None:
        widget.on_continue()
        await _drain(widget)
        assert run.finished
        assert widget.rewind_to.max == len(run.steps)
        widget.rewind_to.value = 1
        widget.on_rewind()
        await _drain(widget)

    asyncio.run(scenario())
    assert widget.run is not run
    assert widget.run.parent_run_id == run.run_id
    assert len(widget.run.steps) == 1
    assert not widget.run.finished
    assert "Rewound" in widget.status.value


def test_budget_meters_show_every_open_scope() -> None:
    """A notebook scope and the run's scope each get a meter."""
    with budget(usd=1, name="notebook"):
        run = approval_agent().start(TASK)
        widget = RunWidget(run)
        run_sync(run.astep())
        widget.refresh()
    assert widget.meters.value.count('class="anb-meter"') == 2
    assert "notebook" in widget.meters.value
    assert "steps 1/20" in widget.meters.value


def test_widget_bundle_carries_the_widget_view_and_static_html() -> None:
    """The display bundle has the widget view and a static HTML fallback."""
    widget = RunWidget(approval_agent().start(TASK))
    bundle = widget._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "anb-head" in bundle["text/html"]
    assert bundle["text/plain"].startswith("<Run")


def test_click_without_a_loop_runs_to_completion() -> None:
    """Outside any event loop (a script) a click runs the step synchronously."""
    run = approval_agent().start(TASK)
    widget = RunWidget(run)
    assert widget.on_step() is None
    assert [s.kind for s in run.steps] == ["model"]
    assert not widget.busy


def test_widget_approver_awaits_the_card_click() -> None:
    """WidgetApprover is an interactive Approver whose answer is the clicked decision."""
    approver = WidgetApprover(display=False)
    assert isinstance(approver, Approver)
    assert approver.interactive
    request = ApprovalRequest(run_id="r", tool="save_note", call_id="c9",
                              arguments={"text": "x"}, rule="approve:write")

    async def scenario() -> Approval:
        waiting = asyncio.ensure_future(approver.approve(request))
        await asyncio.sleep(0)
        assert approver.pending == [request]
        assert not waiting.done()
        card = ApprovalCard(request, lambda r, a: approver.resolve(r.call_id, a))
        card.deny()
        return await asyncio.wait_for(waiting, 5)

    decision = asyncio.run(scenario())
    assert decision.decision == "deny"
    assert decision.message == "Denied in the notebook."
    assert approver.pending == []


def test_widget_approver_drives_a_run_started_as_a_task() -> None:
    """An agent with a WidgetApprover waits inside its task until the decision arrives."""
    approver = WidgetApprover(display=False)
    agent = approval_agent(approver=approver)

    async def scenario() -> Any:
        task = asyncio.ensure_future(agent.arun(TASK))
        for _ in range(200):
            if approver.pending:
                break
            await asyncio.sleep(0.01)
        request = approver.pending[0]
        approver.resolve(request.call_id, Approval(decision="approve", approver="widget"))
        return await asyncio.wait_for(task, 10)

    result = asyncio.run(scenario())
    assert result.status == "done"
    assert [s.kind for s in result.steps][:3] == ["model", "approval", "tools"]


def test_choose_picks_widget_html_or_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    """Widget in a live kernel, HTML when headless or kernel-less, plain without IPython."""
    import IPython

    class Shell:
        kernel = object()

    assert choose() == "plain"
    monkeypatch.setattr(IPython, "get_ipython", Shell)
    assert choose() == "widget"
    monkeypatch.setenv("AGENTNB_HEADLESS", "1")
    assert choose() == "html"
    assert choose(headless=False) == "widget"
    Shell.kernel = None  # type: ignore[assignment]
    assert choose(headless=False) == "html"
