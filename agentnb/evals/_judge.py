"""LLM judges: a rubric prompt, a structured verdict validated with pydantic, cached, voting.

A judge runs as a tiny `Agent` (no tools), so its calls reserve and settle through the budget
scope that is open around it (the suite's), land in the traces, and are priced like any call.
Its verdict is asked for as JSON (fenced JSON is accepted); an invalid reply gets one retry with
the validation error, then the judge gives up with a `JudgeError`. Verdicts are cached by the
content hash of (judge, rubric, prompt) in the runtime's `ResponseCache` (`cache.db`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from agentnb.core import content_hash, run_sync
from agentnb.evals._errors import EvalError

__all__ = ["Judge", "JudgeError", "JudgeVerdict", "Panel", "Verdict", "VoteRule"]

VoteRule = Literal["majority", "unanimous", "any", "mean"]
"""How a panel combines verdicts: most pass, all pass, one passes, or mean score >= threshold."""


class JudgeError(EvalError):
    """A judge gave no valid verdict (twice), or could not run."""


class Verdict(BaseModel):
    """The JSON a judge model must reply with: pass/fail and/or a 0..1 score, and a reason."""

    passed: bool | None = None
    """Whether the answer meets the rubric."""
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    """How well it meets the rubric, 0..1."""
    reason: str = ""
    """One sentence on why."""

    @model_validator(mode="after")
    def _one_of(self) -> Verdict:
        if self.passed is None and self.score is None:
            msg = "give `passed` (true/false) or `score` (0..1)"
            raise ValueError(msg)
        return self


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class JudgeVerdict:
    """A judge's decision on one answer, with what it cost."""

    passed: bool
    """The decision."""
    score: float
    """0..1 (1.0/0.0 when the judge gave only pass/fail)."""
    reason: str
    """The judge's reason."""
    judge: str
    """Which judge (its name)."""
    cost_usd: float = 0.0
    """What judging cost (0 on a cache hit)."""
    cached: bool = False
    """True when the verdict came from the cache."""


_SYSTEM = """You are a strict grader. You grade one answer against a rubric.
Reply with a single JSON object and nothing else, matching this JSON schema:
{schema}
Use "passed" for the decision and "reason" for one short sentence."""

_PROMPT = """Rubric: {rubric}

Task given to the assistant:
{task}

Answer to grade:
<<<
{output}
>>>
{expected}
Decide whether the answer passed the rubric."""

_SCHEMA = {"type": "object",
           "properties": {"passed": {"type": "boolean"},
                          "score": {"type": "number", "minimum": 0, "maximum": 1, "default": None},
                          "reason": {"type": "string"}},
           "required": ["passed", "reason"]}


def parse_verdict(text: str) -> Verdict:
    """Read a verdict from a reply: bare JSON, fenced JSON, or the first JSON object in the text.

    Raises:
        ValueError: no JSON object in the text, or it does not fit `Verdict`.

    Example:
        >>> parse_verdict('```json\\n{"passed": true, "reason": "ok"}\\n```').passed
        True
    """
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    candidate = fenced.group(1) if fenced else text
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", candidate):
        try:
            obj, _ = decoder.raw_decode(candidate, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict):
            try:
                return Verdict.model_validate(obj)
            except ValidationError as exc:
                msg = f"the JSON does not fit the verdict schema: {exc.errors(include_url=False)}"
                raise ValueError(msg) from None
    msg = f"no JSON object in the reply {text[:200]!r}"
    raise ValueError(msg)


class Judge:
    """An LLM judge: grades an answer against a rubric with a validated JSON verdict.

    Args:
        rubric: what a passing answer must do, in plain words.
        model: `"provider:model"` or a `Model` (a `FunctionModel` for a heuristic judge).
        threshold: a score at or above it passes, when the judge gives only a score.
        name: shown in reports (default: the model id).
        cache: reuse verdicts for identical (judge, rubric, prompt) from `cache.db`.
        max_tokens: output cap per judge call (budgets reserve it).

    Example:
        >>> from agentnb.models import FunctionModel
        >>> strict = Judge("Mentions a refund.", model=FunctionModel(
        ...     lambda m, i: '{"passed": %s, "reason": "checked"}'
        ...     % str("refund" in m[-1].text.split("<<<")[1]).lower()), cache=False)
        >>> strict.judge(output="We sent your refund.").passed
        True
    """

    def __init__(self, rubric: str, model: Any = "sim:expert", *, threshold: float = 0.5,
                 name: str | None = None, cache: bool = True, max_tokens: int = 300) -> None:
        if not rubric or not rubric.strip():
            msg = "A Judge needs a rubric, got an empty one."
            raise JudgeError(msg, hint='Pass e.g. `Judge("Is the answer polite?")`.')
        self.rubric = rubric.strip()
        self.model = model
        self.threshold = threshold
        self.cache = cache
        self.max_tokens = max_tokens
        self._name = name
        self._agent: Any = None

    def _build(self) -> Any:
        if self._agent is None:
            from agentnb.runtime import Agent

            system = _SYSTEM.format(schema=json.dumps(_SCHEMA))
            self._agent = Agent(model=self.model, instructions=system,
                                name=f"judge-{self.name}"[:60], max_tokens=self.max_tokens,
                                cache=False, loop_threshold=0)
        return self._agent

    @property
    def name(self) -> str:
        """The judge's name (default: its model id)."""
        if self._name:
            return self._name
        if isinstance(self.model, str):
            return self.model
        info = getattr(self.model, "info", None)
        return getattr(info, "id", None) or type(self.model).__name__

    def __repr__(self) -> str:
        return f"Judge({self.rubric[:40]!r}, model={self.name!r})"

    def prompt(self, *, task: str = "", output: str, expected: Any = None) -> str:
        """The user message the judge model receives."""
        ref = f"Reference answer: {expected}\n" if expected is not None else ""
        return _PROMPT.format(rubric=self.rubric, task=task or "(none given)", output=output,
                              expected=ref)

    async def ajudge(self, *, task: str = "", output: str, expected: Any = None,
                     trajectory: str | None = None) -> JudgeVerdict:
        """Grade one answer (async twin of `judge`).

        Raises:
            JudgeError: two invalid replies in a row, or the judge's run did not finish.
            BudgetExceeded: the enclosing budget cannot pay for the judge's call.
        """
        del trajectory  # the answer is graded; the trajectory is for the failure report
        agent = self._build()
        prompt = self.prompt(task=task, output=output, expected=expected)
        key = content_hash({"v": 1, "judge": self.name, "model": agent.resolved_model.info.id,
                            "system": agent.system_prompt, "prompt": prompt})
        store = None
        if self.cache:
            from agentnb.runtime import response_cache

            store = response_cache()
            hit = await store.aget(key)
            if hit is not None:
                return self._verdict(Verdict.model_validate(hit), cost=0.0, cached=True)
        cost = 0.0
        message = prompt
        problem = ""
        for _attempt in range(2):
            result = await agent.arun(message, raise_on_stop=True)
            cost += float(result.usage.usd or 0)
            if result.status != "done":
                msg = f"Judge {self.name!r} did not finish: {result.error or result.status}."
                raise JudgeError(msg)
            text = result.output if isinstance(result.output, str) else str(result.output)
            try:
                verdict = parse_verdict(text)
            except ValueError as exc:
                problem = str(exc)
                message = (f"{prompt}\n\nYour previous reply was invalid ({problem}). "
                           "Reply with only the JSON object.")
                continue
            if store is not None:
                await store.aput(key, verdict.model_dump(mode="json"), kind="judge")
            return self._verdict(verdict, cost=cost, cached=False)
        msg = f"Judge {self.name!r} gave no valid verdict after a retry: {problem}"
        raise JudgeError(msg, hint="Use a stronger judge model, or check its prompt.")

    def judge(self, *, task: str = "", output: str, expected: Any = None) -> JudgeVerdict:
        """Grade one answer against the rubric."""
        return run_sync(self.ajudge(task=task, output=output, expected=expected))

    def _verdict(self, v: Verdict, *, cost: float, cached: bool) -> JudgeVerdict:
        score = v.score if v.score is not None else float(bool(v.passed))
        passed = v.passed if v.passed is not None else score >= self.threshold
        return JudgeVerdict(passed=passed, score=score, reason=v.reason or "(no reason given)",
                            judge=self.name, cost_usd=cost, cached=cached)

    @staticmethod
    def vote(judges: Sequence[Judge], rule: VoteRule = "majority", *,
             threshold: float = 0.5) -> Panel:
        """Several judges grade together; `rule` combines their verdicts.

        Example:
            >>> from agentnb.models import FunctionModel
            >>> yes = Judge("ok?", model=FunctionModel(lambda m, i: '{"passed": true}'),
            ...             cache=False)
            >>> no = Judge("ok?", model=FunctionModel(lambda m, i: '{"passed": false}', name="no"),
            ...            cache=False)
            >>> Judge.vote([yes, yes, no]).judge(output="x").passed
            True
        """
        return Panel(judges, rule=rule, threshold=threshold)


class Panel:
    """Judges voting on one answer (`Judge.vote`). Same interface as a `Judge`."""

    def __init__(self, judges: Sequence[Judge], *, rule: VoteRule = "majority",
                 threshold: float = 0.5) -> None:
        if not judges:
            msg = "A judge panel needs at least one judge."
            raise JudgeError(msg)
        if rule not in ("majority", "unanimous", "any", "mean"):
            msg = f"Unknown vote rule {rule!r}."
            raise JudgeError(msg, hint="Use 'majority', 'unanimous', 'any' or 'mean'.")
        self.judges = list(judges)
        self.rule = rule
        self.threshold = threshold

    @property
    def rubric(self) -> str:
        """The first judge's rubric."""
        return self.judges[0].rubric

    @property
    def name(self) -> str:
        """`rule(judge, judge, ...)`."""
        return f"{self.rule}({', '.join(j.name for j in self.judges)})"

    async def ajudge(self, *, task: str = "", output: str, expected: Any = None,
                     trajectory: str | None = None) -> JudgeVerdict:
        """Every judge grades concurrently; the rule decides."""
        verdicts = await asyncio.gather(*(j.ajudge(task=task, output=output, expected=expected,
                                                   trajectory=trajectory) for j in self.judges))
        yes = sum(v.passed for v in verdicts)
        score = sum(v.score for v in verdicts) / len(verdicts)
        passed = {"majority": yes * 2 > len(verdicts), "unanimous": yes == len(verdicts),
                  "any": yes > 0, "mean": score >= self.threshold}[self.rule]
        reasons = "; ".join(f"{v.judge}: {'pass' if v.passed else 'fail'} ({v.reason})"
                            for v in verdicts)
        return JudgeVerdict(passed=passed, score=score, judge=self.name,
                            reason=f"{yes}/{len(verdicts)} passed [{self.rule}]: {reasons}",
                            cost_usd=sum(v.cost_usd for v in verdicts),
                            cached=all(v.cached for v in verdicts))

    def judge(self, *, task: str = "", output: str, expected: Any = None) -> JudgeVerdict:
        """Sync twin of `ajudge`."""
        return run_sync(self.ajudge(task=task, output=output, expected=expected))
