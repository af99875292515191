"""Checks: what a scenario's run must satisfy; each returns a `CheckResult`.

Output checks (`exact`, `contains`, `regex`, `field`), trajectory checks over the run's steps
(`tool_called`, `tool_not_called`, `call_order`, `max_steps`, `no_retries`, `no_denied`,
`status`), cost and latency ceilings, world checks after the run (`env_check`), span checks
(`spans`), `custom` callables and LLM judges (`judge`).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from agentnb.core import UsageError

if TYPE_CHECKING:
    from agentnb.evals._judge import Judge, Panel
    from agentnb.evals._scenario import Outcome

__all__ = [
    "call_order",
    "Check",
    "CheckResult",
    "contains",
    "custom",
    "env_check",
    "exact",
    "field",
    "judge",
    "max_cost",
    "max_latency",
    "max_steps",
    "no_denied",
    "no_retries",
    "regex",
    "spans",
    "status",
    "tool_called",
    "tool_not_called",
]


class CheckResult(BaseModel):
    """The verdict of one check on one run.

    Example:
        >>> CheckResult(name="contains('x')", passed=True, score=1.0, reason="found").passed
        True
    """

    model_config = ConfigDict(frozen=True)
    name: str
    """The check's name."""
    passed: bool
    """Whether the run satisfied it."""
    score: float
    """0..1 (1.0 or 0.0 for pass/fail checks; a judge's score otherwise)."""
    reason: str = ""
    """Why, in a sentence."""
    cost_usd: float = 0.0
    """What the check itself cost (judges)."""


def _result(name: str, passed: bool, reason: str, score: float | None = None) -> CheckResult:
    return CheckResult(name=name, passed=bool(passed), reason=reason,
                       score=float(passed) if score is None else score)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Check:
    """A named predicate over an `Outcome`. Build one with the functions of `anb.checks`.

    Example:
        >>> c = contains("refund")
        >>> c.name
        "contains('refund')"
    """

    name: str
    """Shown in reports and failures."""
    fn: Callable[[Outcome], CheckResult | Awaitable[CheckResult]]
    """Computes the verdict (sync or async)."""

    async def aevaluate(self, outcome: Outcome) -> CheckResult:
        """Judge one outcome; an exception inside the check is a failed check, not a crash."""
        try:
            value = self.fn(outcome)
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            return _result(self.name, False, f"the check raised {type(exc).__name__}: {exc}")
        return value

    def evaluate(self, outcome: Outcome) -> CheckResult:
        """Sync twin of `aevaluate`."""
        from agentnb.core import run_sync

        return run_sync(self.aevaluate(outcome))


# -- output ----------------------------------------------------------------------------------


def exact(expected: str, *, strip: bool = True, case: bool = True) -> Check:
    """The output equals `expected` (whitespace-stripped; `case=False` ignores case).

    Example:
        >>> exact("42").name
        "exact('42')"
    """
    def fn(o: Outcome) -> CheckResult:
        got, want = o.text, expected
        if strip:
            got, want = got.strip(), want.strip()
        if not case:
            got, want = got.lower(), want.lower()
        return _result(f"exact({expected!r})", got == want,
                       "output matches" if got == want else f"output is {o.text[:120]!r}")

    return Check(name=f"exact({expected!r})", fn=fn)


def contains(*needles: str, case: bool = False, any_of: bool = False) -> Check:
    """The output contains every needle (`any_of=True`: at least one); case-insensitive by default.

    Example:
        >>> contains("refund", "42").name
        "contains('refund', '42')"
    """
    if not needles:
        msg = "contains() needs at least one string."
        raise UsageError(msg, hint='Pass e.g. `contains("refund")`.')
    name = f"contains({', '.join(repr(n) for n in needles)})"

    def fn(o: Outcome) -> CheckResult:
        text = o.text if case else o.text.lower()
        found = [n for n in needles if (n if case else n.lower()) in text]
        ok = bool(found) if any_of else len(found) == len(needles)
        missing = [n for n in needles if n not in found]
        return _result(name, ok, f"found {found!r}" if ok else
                       f"missing {missing!r} in output {o.text[:160]!r}",
                       score=len(found) / len(needles))

    return Check(name=name, fn=fn)


def regex(pattern: str, *, flags: int = re.IGNORECASE) -> Check:
    """The output matches `pattern` (`re.search`; case-insensitive by default).

    Example:
        >>> regex("[0-9]+ USD").name
        "regex('[0-9]+ USD')"
    """
    compiled = re.compile(pattern, flags)

    def fn(o: Outcome) -> CheckResult:
        m = compiled.search(o.text)
        return _result(f"regex({pattern!r})", m is not None,
                       f"matched {m.group(0)!r}" if m else f"no match in {o.text[:160]!r}")

    return Check(name=f"regex({pattern!r})", fn=fn)


_MISSING = object()


def _lookup(obj: Any, path: str) -> Any:
    for key in [k for k in re.split(r"[.\[\]]+", path) if k]:
        if isinstance(obj, BaseModel):
            obj = obj.model_dump(mode="json")
        if isinstance(obj, dict):
            if key not in obj:
                return _MISSING
            obj = obj[key]
        elif isinstance(obj, (list, tuple)) and key.lstrip("-").isdigit():
            index = int(key)
            if not -len(obj) <= index < len(obj):
                return _MISSING
            obj = obj[index]
        else:
            obj = getattr(obj, key, _MISSING)
            if obj is _MISSING:
                return obj
    return obj


def field(path: str, value: Any = _MISSING, *,
          predicate: Callable[[Any], bool] | None = None) -> Check:
    """A field of a structured output (pydantic object, dict or JSON text) has a value.

    `path` is dotted (`"refund.amount"`, `"items[0].sku"`). Give `value` (compared with `==`) or
    `predicate` (a function of the field's value); with neither the field must exist.

    Example:
        >>> field("amount", 12.5).name
        "field('amount' == 12.5)"
    """
    if value is not _MISSING and predicate is not None:
        msg = "field() takes `value` or `predicate=`, not both."
        raise UsageError(msg)
    shown = (f"{path!r} == {value!r}" if value is not _MISSING else
             f"{path!r} satisfies {getattr(predicate, '__name__', 'predicate')}"
             if predicate else f"{path!r} exists")
    name = f"field({shown})"

    def fn(o: Outcome) -> CheckResult:
        out = o.output
        if isinstance(out, str):
            try:
                out = json.loads(_unfence(out))
            except ValueError:
                return _result(name, False, f"output is not JSON: {out[:120]!r}")
        got = _lookup(out, path)
        if got is _MISSING:
            return _result(name, False, f"no field {path!r} in the output")
        if predicate is not None:
            ok = bool(predicate(got))
        elif value is not _MISSING:
            ok = got == value
        else:
            ok = True
        return _result(name, ok, f"{path} = {got!r}")

    return Check(name=name, fn=fn)


def _unfence(text: str) -> str:
    m = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    return m.group(1) if m else text


# -- trajectory ------------------------------------------------------------------------------


def _args(call: Any) -> dict[str, Any]:
    try:
        value = json.loads(getattr(call, "arguments", "") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _matches(args: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(k in args and (v(args[k]) if callable(v) else args[k] == v)
               for k, v in wanted.items())


def tool_called(name: str, *, times: int | None = None,
                with_args: dict[str, Any] | None = None, ok: bool = False) -> Check:
    """The run executed tool `name` (exactly `times` times, when given).

    Args:
        name: the tool's name.
        times: the exact number of calls (None: at least one).
        with_args: only count calls whose arguments include these values (a value may be a
            predicate function).
        ok: only count calls that succeeded.

    Example:
        >>> tool_called("refund", with_args={"order_id": 42}).name
        "tool_called('refund', with_args={'order_id': 42})"
    """
    extra = "".join([f", times={times}" if times is not None else "",
                     f", with_args={with_args!r}" if with_args else "", ", ok=True" if ok else ""])
    label = f"tool_called({name!r}{extra})"

    def fn(o: Outcome) -> CheckResult:
        calls = [c for c in o.tool_calls() if c.name == name]
        if ok:
            calls = [c for c in calls if getattr(c, "status", "ok") == "ok"]
        if with_args:
            calls = [c for c in calls if _matches(_args(c), with_args)]
        n = len(calls)
        passed = n == times if times is not None else n > 0
        seen = [f"{c.name}({c.arguments})" for c in o.tool_calls()]
        return _result(label, passed, f"{n} matching call(s); calls: {seen!r}"[:300])

    return Check(name=label, fn=fn)


def tool_not_called(name: str) -> Check:
    """The run never executed tool `name`.

    Example:
        >>> tool_not_called("refund").name
        "tool_not_called('refund')"
    """
    label = f"tool_not_called({name!r})"

    def fn(o: Outcome) -> CheckResult:
        n = sum(1 for c in o.tool_calls() if c.name == name)
        return _result(label, n == 0, f"{name!r} was called {n} time(s)")

    return Check(name=label, fn=fn)


def call_order(names: Sequence[str]) -> Check:
    """The tools in `names` were executed in this order (other calls may come in between).

    Example:
        >>> call_order(["lookup_order", "refund"]).name
        "call_order(['lookup_order', 'refund'])"
    """
    wanted = list(names)
    label = f"call_order({wanted!r})"

    def fn(o: Outcome) -> CheckResult:
        seen = [c.name for c in o.tool_calls()]
        i = 0
        for n in seen:
            if i < len(wanted) and n == wanted[i]:
                i += 1
        return _result(label, i == len(wanted), f"calls were {seen!r}")

    return Check(name=label, fn=fn)


def max_steps(n: int) -> Check:
    """The run took at most `n` steps (model calls, approvals and tool batches).

    Example:
        >>> max_steps(4).name
        'max_steps(4)'
    """
    def fn(o: Outcome) -> CheckResult:
        k = len(o.steps)
        return _result(f"max_steps({n})", k <= n, f"{k} step(s)")

    return Check(name=f"max_steps({n})", fn=fn)


def no_retries() -> Check:
    """No step needed a retry (invalid arguments, `ModelRetry`, a failed tool tried again).

    Example:
        >>> no_retries().name
        'no_retries()'
    """
    def fn(o: Outcome) -> CheckResult:
        retried = [f"step {getattr(s, 'index', '?')}" for s in o.steps
                   if getattr(s, "status", "ok") == "retry"
                   or any(getattr(c, "status", "") == "retry"
                          for c in getattr(s, "tool_calls", ()))]
        return _result("no_retries()", not retried,
                       "no retries" if not retried else f"retries at {retried!r}")

    return Check(name="no_retries()", fn=fn)


def no_denied() -> Check:
    """No tool call was denied by the policy or an approver.

    Example:
        >>> no_denied().name
        'no_denied()'
    """
    def fn(o: Outcome) -> CheckResult:
        denied = [c.name for s in o.steps for c in getattr(s, "tool_calls", ())
                  if getattr(c, "status", "") == "denied"]
        return _result("no_denied()", not denied,
                       "nothing denied" if not denied else f"denied: {denied!r}")

    return Check(name="no_denied()", fn=fn)


def status(expected: str = "done") -> Check:
    """The run ended with this status (`done`, `failed` or `stopped`).

    Example:
        >>> status().name
        "status('done')"
    """
    def fn(o: Outcome) -> CheckResult:
        got = getattr(o.result, "status", None)
        why = getattr(o.result, "stop_reason", None) or getattr(o.result, "error", None)
        return _result(f"status({expected!r})", got == expected,
                       f"status {got!r}" + (f" ({why})" if why else ""))

    return Check(name=f"status({expected!r})", fn=fn)


def spans(predicate: Callable[[Any], bool], *, name: str | None = None) -> Check:
    """A predicate over the run's spans (`anb.spans(run_id)`, a DataFrame) holds.

    Example:
        >>> spans(lambda df: len(df) > 0, name="has spans").name
        'has spans'
    """
    label = name or f"spans({getattr(predicate, '__name__', 'predicate')})"

    def fn(o: Outcome) -> CheckResult:
        from agentnb import tracing

        run_id = getattr(o.result, "run_id", None)
        if not run_id:
            return _result(label, False, "the result has no run_id")
        tracing.flush()
        df = tracing.spans(run_id)
        return _result(label, bool(predicate(df)), f"{len(df)} span(s)")

    return Check(name=label, fn=fn)


# -- cost, latency, world, custom ------------------------------------------------------------


def max_cost(usd: float | Decimal | str) -> Check:
    """The run cost at most `usd` (an unpriced run fails: its cost is unknown).

    Example:
        >>> max_cost(0.01).name
        'max_cost(0.01)'
    """
    limit = Decimal(str(usd))

    def fn(o: Outcome) -> CheckResult:
        spent = getattr(getattr(o.result, "usage", None), "usd", None)
        if spent is None:
            return _result(f"max_cost({usd})", False, "cost unknown (an unpriced model call)")
        return _result(f"max_cost({usd})", Decimal(str(spent)) <= limit, f"cost {spent} USD")

    return Check(name=f"max_cost({usd})", fn=fn)


def max_latency(s: float) -> Check:
    """The run took at most `s` seconds of wall time.

    Example:
        >>> max_latency(2.0).name
        'max_latency(2.0)'
    """
    def fn(o: Outcome) -> CheckResult:
        return _result(f"max_latency({s})", o.latency_s <= s, f"took {o.latency_s:.3f}s")

    return Check(name=f"max_latency({s})", fn=fn)


def _call_user(fn: Callable[..., Any], arg: Any, label: str) -> Any:
    value = fn(arg)
    if isinstance(value, CheckResult):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        return _result(label, bool(value[0]), str(value[1]))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _result(label, value >= 0.5, f"score {value}", score=float(value))
    return _result(label, bool(value), "returned " + repr(value)[:80])


def custom(fn: Callable[[Outcome], Any], *, name: str | None = None) -> Check:
    """Any function of the `Outcome`: returns a bool, a (bool, reason) pair, a 0..1 score, or a
    `CheckResult`.

    Example:
        >>> custom(lambda o: "42" in o.text, name="mentions 42").name
        'mentions 42'
    """
    label = name or f"custom({getattr(fn, '__name__', 'fn')})"
    return Check(name=label, fn=lambda o: _call_user(fn, o, label))


def env_check(fn: Callable[[Any], Any], *, name: str | None = None) -> Check:
    """A function of the run's world after the run (`lambda env: env.refunds[42] == 12.5`).

    A `KeyError` or `AttributeError` inside counts as a failure with its message.

    Example:
        >>> env_check(lambda env: 42 in env.refunds, name="refunded 42").name
        'refunded 42'
    """
    label = name or f"env_check({getattr(fn, '__name__', 'fn')})"

    def check(o: Outcome) -> CheckResult:
        if o.environment is None:
            return _result(label, False, "the scenario ran without an environment")
        try:
            return _call_user(fn, o.environment, label)
        except (KeyError, AttributeError, IndexError) as exc:
            return _result(label, False, f"{type(exc).__name__}: {exc}")

    return Check(name=label, fn=check)


def judge(rubric: str | Judge | Panel, *, model: Any = "sim:expert",
          threshold: float = 0.5) -> Check:
    """An LLM judge grades the output against `rubric` (or pass a `Judge` / `Judge.vote` panel).

    Example:
        >>> judge("Is the answer polite?").name
        "judge('Is the answer polite?')"
    """
    from agentnb.evals._judge import Judge, Panel

    grader: Judge | Panel = (rubric if isinstance(rubric, (Judge, Panel))
                             else Judge(rubric, model=model, threshold=threshold))
    label = f"judge({grader.rubric[:60]!r})"

    async def fn(o: Outcome) -> CheckResult:
        verdict = await grader.ajudge(task=o.scenario.task, output=o.text,
                                      expected=o.scenario.expected, trajectory=o.trajectory())
        return CheckResult(name=label, passed=verdict.passed, score=verdict.score,
                           reason=verdict.reason, cost_usd=verdict.cost_usd)

    return Check(name=label, fn=fn)
