"""LLM judges (validated verdicts, retry, cache, budget, voting) and their calibration."""

from __future__ import annotations

import json
import random
import re
from decimal import Decimal

import pytest

import agentnb as anb
from agentnb.core import Message
from agentnb.evals import (
    Judge,
    JudgeError,
    UntrustworthyJudge,
    calibrate,
    cohen_kappa,
    load_labelled,
)
from agentnb.evals._judge import parse_verdict
from agentnb.models import FunctionInfo, FunctionModel

DATA = load_labelled()


def _answer(messages: list[Message]) -> str:
    return messages[-1].text.split("<<<")[1].split(">>>")[0].strip().lower()


def refund_heuristic(messages: list[Message], info: FunctionInfo) -> str:
    """A rule-based judge written from the rubric alone (before reading the labels)."""
    answer = _answer(messages)
    amount = re.search(r"\$\s?\d+(?:\.\d\d)?|\d+(?:\.\d\d)? dollars", answer) is not None
    polite = re.search(r"\b(thank|thanks|sorry|apolog\w*|please)\b", answer) is not None
    blame = re.search(r"your fault|you should have|you must have|if you had", answer) is not None
    ok = amount and polite and not blame
    return json.dumps({"passed": ok, "reason": f"amount={amount} polite={polite} blame={blame}"})


def test_labelled_set_is_real_and_balanced() -> None:
    """The packaged set has >= 30 hand-labelled replies with both labels."""
    assert len(DATA.cases) >= 30
    labels = [c.label for c in DATA.cases]
    assert 0.3 < sum(labels) / len(labels) < 0.7
    assert DATA.rubric
    assert all(c.task == DATA.task for c in DATA.cases)


def test_heuristic_judge_is_trustworthy() -> None:
    """A content-based judge agrees with the human labels (kappa >= 0.6), no warning."""
    judge = Judge(DATA.rubric, model=FunctionModel(refund_heuristic, name="heuristic"),
                  cache=False)
    report = calibrate(judge, DATA)
    assert report.n == len(DATA.cases)
    assert report.trustworthy
    assert report.kappa >= 0.6
    assert report.accuracy >= 0.8
    c = report.confusion
    assert c["tp"] + c["fp"] + c["fn"] + c["tn"] == report.n
    assert len(report.disagreements) == c["fp"] + c["fn"]
    matrix = report.confusion_matrix()
    assert int(matrix.loc["human: pass", "judge: pass"]) == c["tp"]


@pytest.mark.parametrize("name", ["always_pass", "coin"])
def test_bad_judges_are_flagged(name: str) -> None:
    """An always-pass judge and a coin-flip judge get kappa near 0 and a warning."""
    def always(messages: list[Message], info: FunctionInfo) -> str:
        return '{"passed": true, "reason": "looks fine"}'

    def coin(messages: list[Message], info: FunctionInfo) -> str:
        return json.dumps({"passed": random.Random(_answer(messages)).random() < 0.5,
                           "reason": "coin"})

    fn = always if name == "always_pass" else coin
    judge = Judge(DATA.rubric, model=FunctionModel(fn, name=name), cache=False)
    with pytest.warns(UntrustworthyJudge, match=name):
        report = calibrate(judge, DATA)
    assert not report.trustworthy
    assert abs(report.kappa) < 0.3


def test_cohen_kappa_known_values() -> None:
    """Kappa is 1 for perfect agreement, 0 for a constant rater, negative below chance."""
    assert cohen_kappa([True, False, True], [True, False, True]) == 1.0
    assert cohen_kappa([True, False, True, False], [True, True, True, True]) == 0.0
    assert cohen_kappa([True, False], [False, True]) < 0


def test_verdict_parsing_tolerates_fences_and_rejects_junk() -> None:
    """Fenced and embedded JSON parse; scores outside 0..1 or missing fields are invalid."""
    assert parse_verdict('Sure!\n```json\n{"passed": false, "reason": "x"}\n```').passed is False
    assert parse_verdict('verdict: {"score": 0.7, "reason": "ok"} done').score == 0.7
    for bad in ('{"score": 3}', '{"reason": "only"}', "no json here"):
        with pytest.raises(ValueError):
            parse_verdict(bad)


def test_invalid_reply_is_retried_once() -> None:
    """A first invalid reply gets one retry with the error; a second failure raises."""
    replies = iter(["I think it passes", '{"score": 0.8, "reason": "mostly"}'])
    judge = Judge("ok?", model=FunctionModel(lambda m, i: next(replies), name="flaky"),
                  cache=False, threshold=0.7)
    verdict = judge.judge(output="answer")
    assert verdict.passed
    assert verdict.score == 0.8
    never = Judge("ok?", model=FunctionModel(lambda m, i: "nope", name="never"), cache=False)
    with pytest.raises(JudgeError, match="after a retry"):
        never.judge(output="answer")


def test_verdicts_are_cached_by_content() -> None:
    """The same prompt is judged once; the second verdict is a free cache hit."""
    calls: list[str] = []

    def counting(messages: list[Message], info: FunctionInfo) -> str:
        calls.append(messages[-1].text)
        return '{"passed": true, "reason": "fine"}'

    model = FunctionModel(counting, name="counting", input_per_mtok=1, output_per_mtok=1)
    judge = Judge("ok?", model=model)
    first = judge.judge(output="same answer")
    second = judge.judge(output="same answer")
    third = judge.judge(output="another answer")
    assert len(calls) == 2
    assert not first.cached
    assert second.cached
    assert not third.cached
    assert first.cost_usd > 0
    assert second.cost_usd == 0


def test_judge_cost_draws_from_the_budget() -> None:
    """A judge's calls settle in the enclosing budget scope; an exhausted scope stops it."""
    judge = Judge("Is the answer polite?", model="sim:expert", cache=False)
    with anb.budget(usd=1.0) as scope:
        verdict = judge.judge(output="Thank you, your refund is on its way.")
        assert scope.spent_summary().usd == Decimal(str(verdict.cost_usd))
    with anb.budget(usd=Decimal("0.000001")), pytest.raises(anb.BudgetExceeded):
        judge.judge(output="Thank you, your refund is on its way.")


def test_sim_judge_depends_on_content() -> None:
    """The sim judge's verdict depends on the answer it reads."""
    judge = Judge("Is the answer polite?", model="sim:expert", cache=False)
    assert judge.judge(output="Thanks, your refund is done.").passed
    assert not judge.judge(output="That is not my problem.").passed


def test_panel_votes() -> None:
    """Majority, unanimous and any rules combine verdicts; costs add up."""
    yes = Judge("ok?", model=FunctionModel(lambda m, i: '{"passed": true, "reason": "y"}',
                                           name="yes"), cache=False)
    no = Judge("ok?", model=FunctionModel(lambda m, i: '{"passed": false, "reason": "n"}',
                                          name="no"), cache=False)
    assert Judge.vote([yes, yes, no]).judge(output="a").passed
    assert not Judge.vote([yes, no, no]).judge(output="a").passed
    assert not Judge.vote([yes, no], rule="unanimous").judge(output="a").passed
    verdict = Judge.vote([no, yes], rule="any").judge(output="a")
    assert verdict.passed
    assert "1/2 passed" in verdict.reason
    with pytest.raises(JudgeError):
        Judge.vote([yes], rule="plurality")  # type: ignore[arg-type]


def test_judge_check_reports_reason() -> None:
    """checks.judge puts the judge's reason and cost in the CheckResult."""
    from agentnb.evals import Outcome, Scenario, checks

    strict = Judge("Mentions the amount.", model=FunctionModel(refund_heuristic, name="h"),
                   cache=False)
    o = Outcome(scenario=Scenario("s", DATA.task), result=type("R", (), {"output": "Done."})())
    result = checks.judge(strict).evaluate(o)
    assert not result.passed
    assert "amount=False" in result.reason
