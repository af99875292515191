"""Approvers: automatic, parameter (keywords and YAML rules), chain with escalation, sticky."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentnb.core import ConfigError, UsageError, run_sync
from agentnb.governance import (
    Approval,
    ApprovalChain,
    ApprovalRequest,
    Approver,
    AutoApprove,
    AutoDeny,
    ParameterApprover,
    StickyApprovals,
    StickyApprover,
    headless_approver,
)


def req(tool: str = "send_email", effects: list[str] | None = None, **arguments: Any
        ) -> ApprovalRequest:
    return ApprovalRequest(run_id="run_1", tool=tool, call_id="call_1", arguments=arguments,
                           effects=effects or [], rule="approve:network")


def decide(approver: Any, request: ApprovalRequest) -> Approval:
    return run_sync(approver.approve(request))


class Abstain:
    """An approver that always escalates."""

    interactive = False

    def __init__(self) -> None:
        self.calls = 0

    async def approve(self, request: ApprovalRequest) -> Approval | None:
        self.calls += 1
        return None


class Human:
    """Stands in for the widget: interactive, answers from a script."""

    interactive = True

    def __init__(self, *answers: Approval) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def approve(self, request: ApprovalRequest) -> Approval:
        self.calls += 1
        return self.answers.pop(0)


def test_auto_approvers() -> None:
    """AutoApprove approves, AutoDeny denies with its message; both are non-interactive."""
    assert decide(AutoApprove(), req()).decision == "approve"
    denied = decide(AutoDeny(message="No email today."), req())
    assert (denied.decision, denied.message, denied.approver) == ("deny", "No email today.",
                                                                  "auto-deny")
    assert not AutoApprove().interactive
    assert not AutoDeny().interactive
    assert isinstance(AutoApprove(), Approver)
    assert isinstance(ParameterApprover("deny"), Approver)


@pytest.mark.parametrize(("spec", "decision"), [("deny", "deny"), ("allow", "approve"),
                                                ("approve", "approve")])
def test_parameter_keywords(spec: str, decision: str) -> None:
    """`approvals=deny|allow` decides every call and names itself as the approver."""
    answer = decide(ParameterApprover(spec), req())
    assert answer.decision == decision
    assert answer.approver == f"parameters:{spec}"
    if decision == "deny":
        assert answer.message is not None
        assert "'deny'" in answer.message


RULES = """
- {tool: send_email, when_args: {to: "*@example.com"}, decision: approve}
- {effect: money, decision: deny, message: "No purchases in batch jobs."}
- {tool: write_file, when_args: {path: "*.txt"}, decision: approve}
- {tool: "delete_*", decision: terminate}
- {tool: resize, when_args: {size: 3}, decision: allow}
- {tool: ask_human, decision: escalate}
"""

YAML_CASES = [
    ("send_email", [], {"to": "bob@example.com"}, "approve"),
    ("send_email", [], {"to": "eve@evil.com"}, "deny"),
    ("send_email", [], {}, "deny"),
    ("buy", ["money", "network"], {}, "deny"),
    ("write_file", ["write"], {"path": "notes.txt"}, "approve"),
    ("write_file", ["write"], {"path": "run.sh"}, "deny"),
    ("delete_all", ["write"], {}, "terminate"),
    ("resize", [], {"size": 3}, "approve"),
    ("resize", [], {"size": 4}, "deny"),
    ("unknown_tool", [], {}, "deny"),
]


@pytest.mark.parametrize(("tool", "effects", "args", "decision"), YAML_CASES)
def test_parameter_yaml_rules(tmp_path: Path, tool: str, effects: list[str],
                              args: dict[str, Any], decision: str) -> None:
    """YAML rules: first match wins, globs on tools and argument values, default deny."""
    path = tmp_path / "approvals.yaml"
    path.write_text(RULES)
    answer = decide(ParameterApprover(str(path)), req(tool, effects, **args))
    assert answer.decision == decision
    assert answer.approver == "parameters:approvals.yaml"


def test_yaml_rule_message_reaches_the_model(tmp_path: Path) -> None:
    """A rule's message is the Approval's message."""
    path = tmp_path / "a.yaml"
    path.write_text(RULES)
    answer = decide(ParameterApprover(path), req("buy", ["money"]))
    assert answer.message == "No purchases in batch jobs."


def test_yaml_mapping_form_with_default(tmp_path: Path) -> None:
    """`{default: approve, rules: [...]}` changes what unmatched calls get."""
    path = tmp_path / "a.yaml"
    path.write_text("default: approve\nrules:\n  - {effect: money, decision: deny}\n")
    assert decide(ParameterApprover(path), req("x", ["read"])).decision == "approve"
    assert decide(ParameterApprover(path), req("x", ["money"])).decision == "deny"


def test_empty_yaml_denies(tmp_path: Path) -> None:
    """An empty rules file denies everything."""
    path = tmp_path / "a.yaml"
    path.write_text("")
    assert decide(ParameterApprover(path), req()).decision == "deny"


def test_escalate_standalone_denies(tmp_path: Path) -> None:
    """An escalate rule with nobody to escalate to denies, saying so."""
    path = tmp_path / "a.yaml"
    path.write_text(RULES)
    answer = decide(ParameterApprover(path), req("ask_human"))
    assert answer.decision == "deny"
    assert answer.message is not None
    assert "escalated" in answer.message


@pytest.mark.parametrize(("content", "match"), [
    ("- {tool: x, decision: approve, colour: red}", "colour"),
    ("- {tool: x, decision: maybe}", "decision"),
    ("- {tool: x}", "decision"),
    ("rules: 3", "rules"),
    ("- [unclosed", "Cannot read"),
])
def test_bad_yaml_is_a_config_error(tmp_path: Path, content: str, match: str) -> None:
    """Malformed rule files raise ConfigError naming the problem."""
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=match) as info:
        ParameterApprover(path)
    assert info.value.source == "approvals"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A spec that is neither keyword nor file says what is accepted."""
    with pytest.raises(ConfigError, match="'alow'.*'deny', 'allow'"):
        ParameterApprover("alow")


def test_chain_escalates_to_the_next_approver(tmp_path: Path) -> None:
    """In a chain, rules decide what they match and escalate the rest to the person."""
    path = tmp_path / "a.yaml"
    path.write_text("default: escalate\nrules:\n  - {effect: money, decision: deny}\n")
    human = Human(Approval(decision="edit", arguments={"to": "ok@example.com"}, approver="widget"))
    chain = ApprovalChain([ParameterApprover(path), human])
    assert chain.interactive
    assert decide(chain, req("buy", ["money"])).approver == f"parameters:{path.name}"
    assert human.calls == 0
    edited = decide(chain, req("send_email", ["network"], to="eve@evil.com"))
    assert (edited.decision, edited.arguments) == ("edit", {"to": "ok@example.com"})
    assert human.calls == 1


def test_chain_of_abstainers_denies() -> None:
    """A chain where nobody answers denies the call."""
    first, second = Abstain(), Abstain()
    answer = decide(ApprovalChain([first, second]), req())
    assert (answer.decision, answer.approver) == ("deny", "chain")
    assert (first.calls, second.calls) == (1, 1)
    assert not ApprovalChain([first]).interactive


def test_chain_validation() -> None:
    """An empty chain, a member without `approve`, and a bad answer are usage errors."""
    with pytest.raises(UsageError, match="at least one"):
        ApprovalChain([])
    with pytest.raises(UsageError, match="no `approve`"):
        ApprovalChain([object()])

    class Wrong:
        interactive = False

        async def approve(self, request: ApprovalRequest) -> str:
            return "yes"

    with pytest.raises(UsageError, match="'yes'"):
        decide(ApprovalChain([Wrong()]), req())


def test_sticky_answer_is_reused_for_the_tool() -> None:
    """An 'always approve' answer is remembered per tool; other tools still ask."""
    human = Human(Approval(decision="approve", approver="widget", sticky=True),
                  Approval(decision="deny", approver="widget", message="no"))
    sticky = StickyApprover(human)
    assert sticky.interactive
    assert decide(sticky, req("send_email")).approver == "widget"
    again = decide(sticky, req("send_email"))
    assert (again.decision, again.approver) == ("approve", "sticky:widget")
    assert decide(sticky, req("delete")).decision == "deny"
    assert human.calls == 2
    assert decide(sticky, req("send_email")).approver == "sticky:widget"


def test_non_sticky_and_edit_answers_are_not_remembered() -> None:
    """Only sticky approve/deny answers are kept; edit and terminate never are."""
    state = StickyApprovals()
    assert not state.remember("t", Approval(decision="approve", approver="a"))
    assert not state.remember("t", Approval(decision="edit", approver="a", sticky=True,
                                            arguments={}))
    assert not state.remember("t", Approval(decision="terminate", approver="a", sticky=True))
    assert state.get("t") is None
    assert state.remember("t", Approval(decision="deny", approver="a", sticky=True))
    state.forget("t")
    assert state.get("t") is None


def test_sticky_state_survives_a_checkpoint_round_trip() -> None:
    """StickyApprovals serialises to JSON and a restored approver reuses the answers."""
    first = StickyApprover(Human(Approval(decision="deny", approver="widget", sticky=True,
                                          message="never")))
    decide(first, req("pay"))
    restored = StickyApprovals.model_validate_json(first.state.model_dump_json())
    human = Human()
    answer = decide(StickyApprover(human, restored), req("pay"))
    assert (answer.decision, answer.message, human.calls) == ("deny", "never", 0)
    restored.forget()
    assert restored.by_tool == {}


def test_sticky_inside_a_chain_escalation() -> None:
    """A StickyApprover around an abstainer escalates (None) in a chain and denies alone."""
    sticky = StickyApprover(Abstain())
    assert decide(ApprovalChain([sticky, AutoApprove()]), req()).decision == "approve"
    assert decide(sticky, req()).decision == "deny"


def test_headless_replaces_interactive_approvers(tmp_path: Path) -> None:
    """Headless: interactive approvers become a recorded deny; rules and autos are kept."""
    rules = ParameterApprover("allow")
    assert headless_approver(rules) is rules
    assert decide(headless_approver(None), req()).approver == "headless"
    assert decide(headless_approver(Human()), req()).decision == "deny"
    chain = headless_approver(ApprovalChain([Abstain(), Human()]))
    answer = decide(chain, req())
    assert (answer.decision, answer.approver) == ("deny", "headless")
    assert answer.message is not None
    assert "arun" in answer.message
    state = StickyApprovals()
    state.remember("send_email", Approval(decision="approve", approver="widget", sticky=True))
    kept = headless_approver(StickyApprover(Human(), state))
    assert not kept.interactive
    assert decide(kept, req("send_email")).decision == "approve"
    assert decide(kept, req("other")).decision == "deny"


def test_records_are_frozen_and_strict() -> None:
    """ApprovalRequest/Approval refuse unknown fields and unknown decisions."""
    with pytest.raises(ValueError, match="decision"):
        Approval(decision="escalate", approver="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="extra"):
        ApprovalRequest(run_id="r", tool="t", call_id="c", arguments={}, rule="x",
                        colour="red")  # type: ignore[call-arg]
