"""Headless approvals: a tool needing approval, decided by `--approvals` / `AGENTNB_APPROVALS`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from agentnb.core import Message, ToolCallPart, ToolResultPart, resolve, run_sync
from agentnb.governance import Policy, audit
from agentnb.models import FunctionInfo, FunctionModel
from agentnb.runtime import Agent, tool

from ._support import agentnb_run, audit_records, cell_text, write_notebook

pytestmark = pytest.mark.timeout(90)

RULES = """\
- {tool: send_email, when_args: {to: "*@example.com"}, decision: approve}
- {tool: send_email, decision: deny, message: "Only example.com addresses in batch jobs."}
"""

# Two emails in one turn: one to an allowed domain, one elsewhere; then a summary of the results.
SETUP = '''\
import json
import agentnb as anb
from agentnb.core import ToolCallPart
from agentnb.models import FunctionModel

sent = []

@anb.tool(effects={"write"})
def send_email(to: str) -> str:
    """Send an email."""
    sent.append(to)
    return "sent to " + to

def reply(messages, info):
    if info.call_index == 0:
        return [ToolCallPart(id="c1", name="send_email", arguments=json.dumps({"to": to_ok})),
                ToolCallPart(id="c2", name="send_email", arguments=json.dumps({"to": to_other}))]
    return " | ".join(p.content for p in messages[-1].parts)

agent = anb.Agent(model=FunctionModel(reply), tools=[send_email],
                  policy=anb.Policy(allow={"read"}, approve={"write"}))
'''
RUN = ('result = agent.run("Send the two emails")\n'
       'print("SENT", sorted(sent))\n'
       'print("STATUS", result.status, result.run_id)\n'
       'print("OUTPUT", result.output)')


def _notebook(tmp_path: Path) -> Path:
    return write_notebook(tmp_path / "approve.ipynb",
                          "to_ok = 'ann@example.com'\nto_other = 'bob@elsewhere.org'", SETUP, RUN)


def _approvals(home: Path) -> list[dict[str, Any]]:
    return [r for r in audit_records(home) if r["event"] == audit.APPROVAL]


@pytest.mark.parametrize(("approvals", "sent", "decisions"), [
    (None, [], {"deny"}),
    ("allow", ["ann@example.com", "bob@elsewhere.org"], {"approve"}),
    ("rules", ["ann@example.com"], {"approve", "deny"}),
])
def test_agentnb_run_decides_approvals(tmp_path: Path, approvals: str | None,
                                       sent: list[str], decisions: set[str]) -> None:
    """`agentnb run --approvals deny|allow|FILE` decides the approval; each decision is audited."""
    home = Path(os.environ["AGENTNB_HOME"])
    args = ["--budget-usd", "1.00"]
    if approvals == "rules":
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES)
        args += ["--approvals", str(rules)]
    elif approvals is not None:
        args += ["--approvals", approvals]
    out = tmp_path / "out.ipynb"
    proc = agentnb_run(_notebook(tmp_path), out, *args)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    text = cell_text(out)
    assert f"SENT {sent}" in text, text
    assert "STATUS done" in text
    records = _approvals(home)
    assert {r["decision"] for r in records} == decisions
    assert {r["tool"] for r in records} == {"send_email"}
    assert len(records) == 2
    policy = [r for r in audit_records(home) if r["event"] == audit.POLICY_DECISION]
    assert [r["decision"] for r in policy] == ["approve", "approve"]
    if approvals is None:
        # The default is a recorded deny whose message the model sees, with the interactive hint.
        assert all("arun" in (r["message"] or "") for r in records), records
        assert "Denied by" in text
    if approvals == "rules":
        assert "Only example.com addresses in batch jobs." in text
    report = audit.verify(home / "audit" / "audit.jsonl")
    assert report.ok, report
    assert report.records == len(audit_records(home))


def _email_agent(settings: Any = None) -> tuple[Agent, list[str]]:
    sent: list[str] = []

    @tool(effects={"write"})
    def send_email(to: str) -> str:
        """Send an email."""
        sent.append(to)
        return "sent to " + to

    def reply(messages: list[Message], info: FunctionInfo) -> Any:
        if info.call_index == 0:
            return [ToolCallPart(id="c1", name="send_email",
                                 arguments=json.dumps({"to": "ann@example.com"})),
                    ToolCallPart(id="c2", name="send_email",
                                 arguments=json.dumps({"to": "bob@elsewhere.org"}))]
        return " | ".join(p.content for p in messages[-1].parts if isinstance(p, ToolResultPart))

    agent = Agent(model=FunctionModel(reply), tools=[send_email], settings=settings,
                  policy=Policy(approve={"write"}))
    return agent, sent


def test_in_process_default_is_a_recorded_deny() -> None:
    """With no approver and no setting, a sync run denies, records and tells the model how."""
    agent, sent = _email_agent()
    result = agent.run("Send the emails")
    assert sent == []
    assert [c.status for c in result.steps[1].tool_calls] == ["denied", "denied"]
    home = agent.resolved_settings.home
    assert [r["decision"] for r in _approvals(home)] == ["deny", "deny"]
    assert audit.verify(home / "audit" / "audit.jsonl").ok


def test_in_process_env_allow(monkeypatch: pytest.MonkeyPatch) -> None:
    """AGENTNB_APPROVALS=allow approves in a sync run and under arun."""
    monkeypatch.setenv("AGENTNB_APPROVALS", "allow")
    agent, sent = _email_agent()
    agent.run("Send the emails")
    assert sent == ["ann@example.com", "bob@elsewhere.org"]
    agent2, sent2 = _email_agent()
    run_sync(agent2.arun("Send the emails"))
    assert sent2 == ["ann@example.com", "bob@elsewhere.org"]
    home = agent.resolved_settings.home
    assert {r["approver"] for r in _approvals(home)} == {"parameters:allow"}


def test_in_process_rules_file_through_settings(tmp_path: Path) -> None:
    """A YAML rules file given as `settings.approvals` approves one call and denies the other."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    agent, sent = _email_agent(resolve(approvals=str(rules)))
    result = agent.run("Send the emails")
    assert sent == ["ann@example.com"]
    assert "Only example.com addresses in batch jobs." in result.output
    home = agent.resolved_settings.home
    decided = {(r["call_id"], r["decision"]) for r in _approvals(home)}
    assert decided == {("c1", "approve"), ("c2", "deny")}
    assert audit.verify(home / "audit" / "audit.jsonl").ok
