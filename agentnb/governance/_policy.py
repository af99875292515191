"""Policy: which tool calls may run, which need approval, which are refused.

A decision is made in two passes:

1. **Rules**, in order: the first `Rule` whose `tool`, `effect` and `when` all match decides.
2. **Effects**: each effect the tool declares is looked up in `deny`, `approve` and `allow`; the
   strictest answer wins (deny > approve > allow). An effect named in none of them falls to
   `default` (`"deny"` unless changed). A tool that declares no effects is effect-free and is
   allowed.

Every `PolicyDecision` names the rule that made it, so the tool span and the audit log can say
why: `"rule:send_email#0"` (or `"rule:<name>"`), `"deny:money"`, `"approve:write"`,
`"allow:read"`, `"default"`, `"no-effects"`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict

from agentnb.core import ConfigError, UsageError
from agentnb.governance._network import normalise_hosts

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

__all__ = ["Policy", "PolicyDecision", "PolicyVerdict", "Rule"]

PolicyVerdict = Literal["allow", "deny", "approve"]
"""What a policy says about a tool call: run it, refuse it, or ask an approver first."""

_VERDICTS: tuple[str, ...] = get_args(PolicyVerdict)
_SEVERITY = {"allow": 0, "approve": 1, "deny": 2}


class PolicyDecision(BaseModel):
    """The outcome of `Policy.decide`, recorded on the tool span and in the audit log.

    Example:
        >>> d = Policy(allow={"read"}).decide("lookup", frozenset({"read"}), {})
        >>> (d.decision, d.rule)
        ('allow', 'allow:read')
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision: PolicyVerdict
    """allow, deny or approve (ask an approver)."""
    rule: str
    """Which rule decided: `rule:<name>`, `<verdict>:<effect>`, `default` or `no-effects`."""
    reason: str
    """One sentence for people (and for the model when the call is denied)."""


def _check_verdict(value: object, what: str) -> PolicyVerdict:
    if value not in _VERDICTS:
        msg = f"{what} must be one of {list(_VERDICTS)!r}, got {value!r}."
        raise ConfigError(msg, hint='Use "allow", "approve" or "deny".')
    return value  # type: ignore[return-value]  # checked against the Literal's values above


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Rule:
    """An argument-level policy rule; the first matching rule decides.

    A rule matches when every condition it sets holds: the tool's name equals `tool`, the tool
    declares `effect`, and `when(args)` is true. A rule with no condition matches every call.

    Example:
        >>> r = Rule(tool="send_email", when=lambda a: a["to"].endswith("@example.com"),
        ...          decision="allow")
        >>> r.matches("send_email", frozenset({"network"}), {"to": "bob@example.com"})
        True
    """

    tool: str | None = None
    """Tool name this rule applies to (None: any tool)."""
    effect: str | None = None
    """Effect the tool must declare (None: any)."""
    when: Callable[[dict[str, Any]], bool] | None = None
    """Predicate over the call's arguments (None: always)."""
    decision: PolicyVerdict
    """What the rule decides."""
    name: str | None = None
    """Label recorded as `rule:<name>`; by default `rule:<tool or effect or *>#<index>`."""

    def __post_init__(self) -> None:
        _check_verdict(self.decision, f"Rule(decision=...) of rule {self.name or self.tool!r}")
        for field in ("tool", "effect", "name"):
            value = getattr(self, field)
            if value is not None and not isinstance(value, str):
                msg = f"Rule({field}=...) must be a str or None, got {value!r}."
                raise ConfigError(msg, hint="Write one rule per tool or effect.")
        if self.when is not None and not callable(self.when):
            msg = f"Rule(when=...) must be a callable taking the arguments dict, got {self.when!r}."
            raise ConfigError(msg, hint='e.g. `when=lambda args: args["to"].endswith(".org")`.')

    def label(self, index: int) -> str:
        """The name recorded for this rule when it sits at `index` in `Policy.rules`."""
        if self.name:
            return f"rule:{self.name}"
        return f"rule:{self.tool or self.effect or '*'}#{index}"

    def matches(self, tool: str, effects: frozenset[str], args: Mapping[str, Any]) -> bool:
        """Whether this rule applies to the call.

        Raises:
            UsageError: `when` raised; the policy refuses to guess.
        """
        if self.tool is not None and self.tool != tool:
            return False
        if self.effect is not None and self.effect not in effects:
            return False
        if self.when is None:
            return True
        try:
            return bool(self.when(dict(args)))
        except Exception as exc:
            label = self.name or self.tool or self.effect or "*"
            msg = (f"The `when` condition of policy rule {label!r} raised "
                   f"{type(exc).__name__}: {exc} (tool {tool!r}).")
            raise UsageError(
                msg,
                hint="Make the condition total, e.g. `args.get('to', '')` instead of "
                "`args['to']`; the call is treated as denied.",
            ) from exc


def _effect_set(value: object, what: str) -> frozenset[str]:
    if isinstance(value, (str, bytes)):
        msg = f"{what} must be a set of effect names, got the string {value!r}."
        raise UsageError(msg, hint=f"Write {what}={{{value!r}}}.")
    try:
        items = frozenset(value)  # type: ignore[call-overload]  # checked by the except
    except TypeError:
        msg = f"{what} must be a set of effect names, got {value!r}."
        raise UsageError(msg, hint=f'Write e.g. {what}={{"read"}}.') from None
    for item in items:  # pyright: ignore[reportUnknownVariableType]
        if not isinstance(item, str):
            msg = f"{what} holds {item!r}, which is not an effect name (str)."
            raise UsageError(msg, hint='Effects are strings such as "read" or "network".')
    return items  # pyright: ignore[reportUnknownVariableType]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True, init=False)
class Policy:
    """Allow, approve or deny tool calls by declared effects and argument rules.

    Args:
        allow: Effects that may run without asking.
        approve: Effects that need an approver's decision first.
        deny: Effects that are refused.
        rules: Argument rules, tried in order before the effect sets; first match wins.
        workspace: Folder that file-path arguments must stay inside (None: no confinement).
        network: Hosts tools may reach through `http_client()` (None: any host).
        default: What happens to an effect named in none of the sets.

    Example:
        >>> p = Policy(allow={"read"}, approve={"write"}, deny={"money"})
        >>> [p.decide("t", frozenset(e), {}).decision for e in ({"read"}, {"read", "write"},
        ...                                                     {"write", "money"}, {"exec"})]
        ['allow', 'approve', 'deny', 'deny']
    """

    allow: frozenset[str]
    approve: frozenset[str]
    deny: frozenset[str]
    rules: tuple[Rule, ...]
    workspace: Path | None
    network: tuple[str, ...] | None
    default: PolicyVerdict

    def __init__(
        self,
        *,
        allow: Iterable[str] = (),
        approve: Iterable[str] = (),
        deny: Iterable[str] = (),
        rules: Iterable[Rule] = (),
        workspace: str | Path | None = None,
        network: Iterable[str] | None = None,
        default: PolicyVerdict = "deny",
    ) -> None:
        setter = object.__setattr__
        setter(self, "allow", _effect_set(allow, "allow"))
        setter(self, "approve", _effect_set(approve, "approve"))
        setter(self, "deny", _effect_set(deny, "deny"))
        if isinstance(rules, Rule):
            rules = [rules]
        rule_tuple = tuple(rules)
        for rule in rule_tuple:
            if not isinstance(rule, Rule):  # pyright: ignore[reportUnnecessaryIsInstance]
                msg = f"Policy(rules=...) holds {rule!r}, which is not a Rule."
                raise UsageError(msg, hint="Build each with `anb.Rule(tool=..., decision=...)`.")
        setter(self, "rules", rule_tuple)
        if workspace is not None and not isinstance(workspace, (str, Path)):
            msg = f"Policy(workspace=...) must be a path, got {workspace!r}."
            raise UsageError(msg, hint='e.g. `workspace="./sandbox"`.')
        setter(self, "workspace", None if workspace is None else Path(workspace))
        if network is not None:
            if isinstance(network, (str, bytes)):
                msg = f"Policy(network=...) must be a list of hosts, got the string {network!r}."
                raise UsageError(msg, hint=f"Write network=[{network!r}].")
            setter(self, "network", normalise_hosts(network))
        else:
            setter(self, "network", None)
        setter(self, "default", _check_verdict(default, "Policy(default=...)"))

    def decide(
        self, tool: str, effects: Iterable[str], args: Mapping[str, Any] | None = None
    ) -> PolicyDecision:
        """Decide one tool call.

        Args:
            tool: The tool's name.
            effects: The effects the tool declares (a set; a bare string is refused).
            args: The call's arguments, as the model sent them.

        Raises:
            UsageError: `effects` is a string, or a rule's `when` raised.

        Example:
            >>> p = Policy(rules=[Rule(tool="send_email", decision="approve")], allow={"network"})
            >>> p.decide("send_email", {"network"}, {"to": "a@b.c"}).rule
            'rule:send_email#0'
        """
        effect_set = _effect_set(effects, "effects")
        arguments = {} if args is None else args
        for index, rule in enumerate(self.rules):
            if rule.matches(tool, effect_set, arguments):
                return PolicyDecision(
                    decision=rule.decision,
                    rule=rule.label(index),
                    reason=f"Policy rule {rule.label(index)!r} says {rule.decision!r} "
                    f"for tool {tool!r}.",
                )
        if not effect_set:
            return PolicyDecision(
                decision="allow", rule="no-effects",
                reason=f"Tool {tool!r} declares no effects.",
            )
        best: tuple[int, int, str, PolicyVerdict, str] | None = None
        for effect in sorted(effect_set):
            if effect in self.deny:
                verdict: PolicyVerdict = "deny"
                explicit = 1
            elif effect in self.approve:
                verdict, explicit = "approve", 1
            elif effect in self.allow:
                verdict, explicit = "allow", 1
            else:
                verdict, explicit = self.default, 0
            candidate = (_SEVERITY[verdict], explicit, effect, verdict, effect)
            if best is None or candidate[:2] > best[:2]:
                best = candidate
        assert best is not None  # effect_set is not empty
        _, explicit, effect, verdict, _ = best
        if explicit:
            return PolicyDecision(
                decision=verdict, rule=f"{verdict}:{effect}",
                reason=f"Effect {effect!r} of tool {tool!r} is in the policy's {verdict!r} set.",
            )
        return PolicyDecision(
            decision=verdict, rule="default",
            reason=f"Effect {effect!r} of tool {tool!r} is not named in allow/approve/deny; "
            f"the policy default is {verdict!r}.",
        )
