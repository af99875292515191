"""Policy, approvals, workspace confinement, audit and redaction inside runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agentnb.core import Message, run_sync
from agentnb.governance import AutoApprove, Policy, audit, register_secret
from agentnb.models import FunctionInfo, FunctionModel
from agentnb.runtime import Agent, tool

from ._helpers import call, last_results

pytestmark = pytest.mark.timeout(30)

sent: list[str] = []


@tool(effects={"network"})
def send(to: str) -> str:
    """Send a message."""
    sent.append(to)
    return f"sent to {to}"


@tool(effects={"money"})
def pay(amount: int) -> str:
    """Pay."""
    return "paid"


@tool(effects={"write"})
def save(path: Path, text: str) -> str:
    """Save a file."""
    path.write_text(text)
    return str(path)


def _echo_model(first: object) -> FunctionModel:
    def fn(m: list[Message], info: FunctionInfo) -> object:
        if info.call_index == 0:
            return first
        return " / ".join(f"{r.is_error}:{r.content}" for r in last_results(m))

    return FunctionModel(fn)


def _audit_records(home: Path) -> list[dict[str, object]]:
    path = home / "audit" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_policy_deny_is_an_error_result_and_audited() -> None:
    """A denied call never runs; the model sees why; the decision is in the audit log."""
    agent = Agent(model=_echo_model(call("pay", amount=5)), tools=[pay],
                  policy=Policy(allow={"read"}, deny={"money"}))
    result = agent.run("go")
    assert result.output.startswith("True:Denied by policy (deny:money)")
    assert result.steps[1].tool_calls[0].status == "denied"
    assert result.usage.tool_calls == 0
    home = agent.resolved_settings.home
    events = [(r.get("event"), r.get("decision")) for r in _audit_records(home)]
    assert ("policy_decision", "deny") in events
    assert audit.verify(home / "audit" / "audit.jsonl").ok


def test_sync_run_denies_approvals_with_a_hint() -> None:
    """Under a blocking agent.run an approval cannot be clicked: denied, recorded, hinted."""
    sent.clear()
    agent = Agent(model=_echo_model(call("send", to="a@example.com")), tools=[send],
                  policy=Policy(approve={"network"}))
    result = agent.run("go")
    assert sent == []
    assert [s.kind for s in result.steps] == ["model", "approval", "tools", "model"]
    assert "await agent.arun" in result.output
    assert result.steps[1].tool_calls[0].status == "denied"


def test_approver_approves_and_the_call_runs() -> None:
    """A non-interactive approver's decision applies in sync runs too."""
    sent.clear()
    agent = Agent(model=_echo_model(call("send", to="b@example.com")), tools=[send],
                  policy=Policy(approve={"network"}), approver=AutoApprove())
    result = agent.run("go")
    assert sent == ["b@example.com"]
    assert result.steps[1].tool_calls[0].decision == "approve by auto-approve"


def test_awaiting_approval_decided_from_outside() -> None:
    """Step-through: the run waits in awaiting_approval; decide(edit) changes the arguments."""
    sent.clear()
    agent = Agent(model=_echo_model(call("send", "c9", to="evil@example.com")), tools=[send],
                  policy=Policy(approve={"network"}))
    run = agent.start("go")
    run.step()
    assert run.state == "awaiting_approval"
    (request,) = run.pending_approvals
    assert (request.tool, request.call_id, request.arguments) == (
        "send", "c9", {"to": "evil@example.com"})
    run_sync(run.approve("c9", "edit", arguments={"to": "ok@example.com"}))
    step = run.step()
    assert (step.kind, step.tool_calls[0].status, run.state) == ("approval", "edited", "ready")
    run.run_to_end()
    assert sent == ["ok@example.com"]


def test_terminate_stops_with_policy() -> None:
    """An approver's terminate stops the run with stop_reason policy."""
    agent = Agent(model=_echo_model(call("send", "c1", to="x")), tools=[send],
                  policy=Policy(approve={"network"}))
    run = agent.start("go")
    run.step()
    run.decide("c1", "terminate", message="no")
    result = run.run_to_end()
    assert (result.status, result.stop_reason) == ("stopped", "policy")


def test_workspace_confinement(tmp_path: Path) -> None:
    """Path arguments outside Policy(workspace=...) are refused; inside ones are resolved."""
    ws = tmp_path / "sandbox"
    ws.mkdir()
    model = _echo_model([call("save", "a", path="notes.txt", text="hi"),
                         call("save", "b", path="../escape.txt", text="x")])
    agent = Agent(model=model, tools=[save], policy=Policy(allow={"write"}, workspace=ws))
    result = agent.run("go")
    assert (ws / "notes.txt").read_text() == "hi"
    assert not (tmp_path / "escape.txt").exists()
    assert [c.status for c in result.steps[1].tool_calls] == ["ok", "denied"]


def test_secrets_never_reach_checkpoints_or_recordings() -> None:
    """A registered secret in tool arguments and results is redacted in the store."""
    secret = "sk-test-" + os.urandom(8).hex()
    register_secret(secret)

    @tool
    def echo(value: str) -> str:
        """Echo."""
        return value

    agent = Agent(model=_echo_model(call("echo", value=secret)), tools=[echo])
    result = agent.run("go")
    store = agent.start("x").store
    dumped = json.dumps(store.load_checkpoint(result.run_id).state)
    recorded = json.dumps([r.payload for r in store.recordings(result.run_id)])
    assert secret not in dumped
    assert secret not in recorded


def test_sticky_approval_applies_to_later_calls() -> None:
    """A sticky approve is remembered for the tool: the next call needs no approval step."""
    sent.clear()

    class Once:
        """Approves stickily and counts how often it is asked."""

        interactive = False
        asked = 0

        async def approve(self, request: object) -> object:
            from agentnb.governance import Approval

            Once.asked += 1
            return Approval(decision="approve", approver="once", sticky=True)

    def fn(m: list[Message], info: FunctionInfo) -> object:
        if info.call_index < 2:
            return call("send", f"c{info.call_index}", to=f"p{info.call_index}")
        return "done"

    agent = Agent(model=FunctionModel(fn), tools=[send], policy=Policy(approve={"network"}),
                  approver=Once(), loop_threshold=0)
    result = agent.run("go")
    assert sent == ["p0", "p1"]
    assert Once.asked == 1
    assert [s.kind for s in result.steps] == ["model", "approval", "tools", "model", "tools",
                                              "model"]


def test_headless_approvals_setting_allow_under_arun() -> None:
    """With no approver, settings.approvals='allow' approves under arun."""
    from agentnb.core import resolve

    sent.clear()
    agent = Agent(model=_echo_model(call("send", to="z")), tools=[send],
                  policy=Policy(approve={"network"}), settings=resolve(approvals="allow"))
    result = run_sync(agent.arun("go"))
    assert sent == ["z"]
    assert result.steps[1].tool_calls[0].status == "approved"


def test_interactive_approver_waits_under_arun_and_is_replaced_under_run() -> None:
    """An interactive approver is awaited on the caller's loop; a blocking run denies instead."""
    import asyncio

    from agentnb.governance import Approval, ApprovalRequest

    class Widget:
        """Waits for a click."""

        interactive = True

        def __init__(self) -> None:
            self.clicked = asyncio.Event()
            self.asked: list[str] = []

        async def approve(self, request: ApprovalRequest) -> Approval:
            self.asked.append(request.call_id)
            await self.clicked.wait()
            return Approval(decision="approve", approver="widget")

    sent.clear()

    async def go() -> str:
        widget = Widget()
        agent = Agent(model=_echo_model(call("send", "c1", to="w")), tools=[send],
                      policy=Policy(approve={"network"}), approver=widget)
        task = asyncio.create_task(agent.arun("go"))
        await asyncio.sleep(0.1)
        assert widget.asked == ["c1"]
        assert not task.done()
        widget.clicked.set()
        return (await task).output

    assert asyncio.run(go()) == "False:sent to w"
    blocking = Agent(model=_echo_model(call("send", "c1", to="b")), tools=[send],
                     policy=Policy(approve={"network"}), approver=Widget())
    assert "await agent.arun" in blocking.run("go").output
    assert sent == ["w"]


def test_a_secret_in_the_model_answer_is_redacted_everywhere_it_is_kept() -> None:
    """The answer is redacted once and reused: the checkpoint's message, the recording and the
    span's output messages all hold the same redacted parts, and never the secret."""
    from agentnb.governance import default_redactor
    from agentnb.tracing import load_spans

    secret = "sk-test-" + os.urandom(8).hex()
    register_secret(secret)

    def fn(m: list[Message], info: FunctionInfo) -> object:
        if info.call_index == 0:
            return call("echo_arg", "c1", value=f"use {secret}")
        return f"the key is {secret}"

    @tool
    def echo_arg(value: str) -> str:
        """Echo."""
        return "ok"

    agent = Agent(model=FunctionModel(fn), tools=[echo_arg])
    result = agent.run("go")
    store = agent.start("x").store
    state = store.load_checkpoint(result.run_id).state
    models = [r.payload["response"] for r in store.recordings(result.run_id) if r.kind == "model"]
    outputs = [s.attributes["gen_ai.output.messages"] for s in load_spans(result.run_id)
               if s.kind == "model_call"]
    assert secret not in json.dumps([state, models, outputs])
    assistant = [m for m in state["messages"] if m["role"] == "assistant"]
    # Each kept message equals what redacting the whole message at once gives.
    redactor = default_redactor()
    for kept, response, output in zip(assistant, models, outputs, strict=True):
        assert kept["parts"] == response["parts"]
        assert json.loads(output) == [kept]
        assert redactor.redact_obj(kept) == kept
    assert "[REDACTED]" in assistant[1]["parts"][0]["text"]


def test_a_step_dump_redacts_every_field_that_can_hold_outside_text() -> None:
    """Step dumps redact only `STEP_TEXT_FIELDS`; every other field of `Step` is a number, a
    flag, a literal or a timestamp. A new field must be sorted into one of the two sets."""
    from agentnb.runtime._step import Step
    from agentnb.runtime._stepping import STEP_TEXT_FIELDS

    made_here = {"kind", "index", "status", "usage", "messages", "started_at", "duration_s",
                 "cache_hit", "stop_reason"}
    assert set(Step.model_fields) == made_here | STEP_TEXT_FIELDS
    secret = "sk-test-" + os.urandom(8).hex()
    register_secret(secret)

    @tool
    def fails(value: str) -> str:
        """Fail, quoting the argument."""
        raise RuntimeError(f"cannot use {value}")

    agent = Agent(model=_echo_model(call("fails", value=secret)), tools=[fails])
    result = agent.run("go")
    store = agent.start("x").store
    steps = store.load_checkpoint(result.run_id).state["steps"]
    assert any(s["tool_calls"] for s in steps)
    assert secret not in json.dumps(steps)
