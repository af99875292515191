"""Policy decisions: rules first, then deny > approve > allow, undeclared effects to default."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from agentnb.core import ConfigError, UsageError
from agentnb.governance import Policy, PolicyDecision, Rule

BASE = Policy(allow={"read"}, approve={"write", "network"}, deny={"money"})

CASES: list[tuple[str, Policy, str, set[str], dict[str, Any], str, str]] = [
    ("read is allowed", BASE, "lookup", {"read"}, {}, "allow", "allow:read"),
    ("write needs approval", BASE, "save", {"write"}, {}, "approve", "approve:write"),
    ("money is denied", BASE, "pay", {"money"}, {}, "deny", "deny:money"),
    ("approve beats allow", BASE, "t", {"read", "write"}, {}, "approve", "approve:write"),
    ("deny beats approve", BASE, "t", {"write", "money"}, {}, "deny", "deny:money"),
    ("deny beats all three", BASE, "t", {"read", "write", "money"}, {}, "deny", "deny:money"),
    ("no effects is allowed", BASE, "t", set(), {}, "allow", "no-effects"),
    ("unknown effect falls to default deny", BASE, "t", {"exec"}, {}, "deny", "default"),
    ("default deny beats allow", BASE, "t", {"read", "exec"}, {}, "deny", "default"),
    ("explicit deny named before default deny", BASE, "t", {"exec", "money"}, {}, "deny",
     "deny:money"),
    ("default approve", Policy(allow={"read"}, default="approve"), "t", {"exec"}, {}, "approve",
     "default"),
    ("default allow", Policy(default="allow"), "t", {"exec"}, {}, "allow", "default"),
    ("explicit approve beats default allow", Policy(approve={"write"}, default="allow"), "t",
     {"write", "exec"}, {}, "approve", "approve:write"),
    (
        "rule allows a denied effect for matching args",
        Policy(deny={"network"}, rules=[Rule(tool="send_email", decision="allow",
                                             when=lambda a: a["to"].endswith("@example.com"))]),
        "send_email", {"network"}, {"to": "bob@example.com"}, "allow", "rule:send_email#0",
    ),
    (
        "rule does not match other args, effects decide",
        Policy(deny={"network"}, rules=[Rule(tool="send_email", decision="allow",
                                             when=lambda a: a["to"].endswith("@example.com"))]),
        "send_email", {"network"}, {"to": "eve@evil.com"}, "deny", "deny:network",
    ),
    (
        "first matching rule wins",
        Policy(allow={"write"}, rules=[Rule(effect="write", decision="deny", name="nowrite"),
                                       Rule(tool="save", decision="allow")]),
        "save", {"write"}, {}, "deny", "rule:nowrite",
    ),
    (
        "rule for another tool is skipped",
        Policy(allow={"write"}, rules=[Rule(tool="other", decision="deny")]),
        "save", {"write"}, {}, "allow", "allow:write",
    ),
    (
        "effect rule needs the effect declared",
        Policy(allow={"read"}, rules=[Rule(effect="money", decision="approve")]),
        "lookup", {"read"}, {}, "allow", "allow:read",
    ),
    (
        "unconditional rule at index 1 is labelled by position",
        Policy(rules=[Rule(tool="a", decision="deny"), Rule(decision="approve")]),
        "b", {"read"}, {}, "approve", "rule:*#1",
    ),
    (
        "rule can decide an effect-free tool",
        Policy(rules=[Rule(tool="shutdown", decision="deny")]),
        "shutdown", set(), {}, "deny", "rule:shutdown#0",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_decision_table(case: tuple[str, Policy, str, set[str], dict[str, Any], str, str]
                        ) -> None:
    """Each row of the decision table gives the stated decision and names the rule."""
    _, policy, tool, effects, args, decision, rule = case
    result = policy.decide(tool, frozenset(effects), args)
    assert (result.decision, result.rule) == (decision, rule)
    assert tool in result.reason


def test_decision_is_frozen_and_serialisable() -> None:
    """A PolicyDecision is immutable and round-trips through JSON."""
    d = BASE.decide("pay", {"money"}, {})
    with pytest.raises(ValueError, match="frozen"):
        d.decision = "allow"  # type: ignore[misc]
    assert PolicyDecision.model_validate_json(d.model_dump_json()) == d


def test_effects_as_string_is_refused() -> None:
    """Passing effects as a bare string raises UsageError naming the value."""
    with pytest.raises(UsageError, match="'read'"):
        BASE.decide("t", "read", {})  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["allow", "approve", "deny"])
def test_policy_effect_sets_refuse_strings(field: str) -> None:
    """`Policy(allow="read")` is refused with a hint to write a set."""
    with pytest.raises(UsageError, match=r"\{'read'\}"):
        Policy(**{field: "read"})  # type: ignore[arg-type]


def test_policy_refuses_non_string_effects_and_non_iterables() -> None:
    """Effects must be strings in an iterable."""
    with pytest.raises(UsageError, match="42"):
        Policy(allow={42})  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="7"):
        Policy(deny=7)  # type: ignore[arg-type]


def test_unknown_decision_strings_are_refused() -> None:
    """A misspelt decision in a Rule or the default raises ConfigError naming it."""
    with pytest.raises(ConfigError, match="'alow'"):
        Rule(tool="t", decision="alow")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'maybe'"):
        Policy(default="maybe")  # type: ignore[arg-type]


def test_rule_field_types_are_checked() -> None:
    """Rule refuses a non-string tool and a non-callable `when`."""
    with pytest.raises(ConfigError, match="tool"):
        Rule(tool=["a"], decision="allow")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="when"):
        Rule(when="args['x']", decision="allow")  # type: ignore[arg-type]


def test_when_that_raises_is_a_clear_usage_error() -> None:
    """A `when` that raises becomes UsageError naming the rule, the tool and the cause."""
    policy = Policy(rules=[Rule(tool="send_email", name="internal", decision="allow",
                                when=lambda a: a["to"].endswith("@x.org"))])
    with pytest.raises(UsageError, match="'internal'.*KeyError") as info:
        policy.decide("send_email", {"network"}, {"subject": "hi"})
    assert "send_email" in info.value.message
    assert info.value.hint


def test_when_gets_a_copy_of_the_arguments() -> None:
    """A `when` that mutates its argument does not change the caller's dict."""
    args = {"n": 1}
    policy = Policy(rules=[Rule(when=lambda a: bool(a.pop("n")), decision="allow")])
    assert policy.decide("t", {"x"}, args).decision == "allow"
    assert args == {"n": 1}


def test_policy_rejects_non_rules_and_bad_network() -> None:
    """`rules=` must hold Rule objects; `network=` must be a list, not a string."""
    with pytest.raises(UsageError, match="not a Rule"):
        Policy(rules=[{"tool": "x"}])  # type: ignore[list-item]
    with pytest.raises(UsageError, match="api.example.com"):
        Policy(network="api.example.com")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="https://"):
        Policy(network=["https://api.example.com/v1"])
    with pytest.raises(UsageError, match="workspace"):
        Policy(workspace=3)  # type: ignore[arg-type]


def test_policy_normalises_fields() -> None:
    """Policy stores frozensets, a Path workspace, normalised hosts; one Rule is accepted."""
    policy = Policy(allow=["read", "read"], workspace="sandbox", network=["API.example.com."],
                    rules=Rule(tool="t", decision="deny"))  # type: ignore[arg-type]
    assert policy.allow == frozenset({"read"})
    assert policy.workspace is not None
    assert policy.workspace.name == "sandbox"
    assert policy.network == ("api.example.com",)
    assert len(policy.rules) == 1
    assert Policy().network is None


def test_policy_is_frozen_and_pickles() -> None:
    """A Policy without lambdas pickles and cannot be mutated."""
    policy = Policy(allow={"read"}, rules=[Rule(tool="t", decision="deny")])
    assert pickle.loads(pickle.dumps(policy)) == policy
    with pytest.raises(AttributeError):
        policy.allow = frozenset()  # type: ignore[misc]


def test_args_default_to_empty() -> None:
    """`decide` works without arguments."""
    assert BASE.decide("lookup", ["read"]).decision == "allow"
