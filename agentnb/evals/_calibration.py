"""Judge calibration: agreement with human labels (accuracy, Cohen's kappa, confusion matrix).

A judge is only as good as its agreement with people. `calibrate(judge, labelled)` grades every
labelled answer and compares; below `min_kappa` (0.6, "substantial agreement") or `min_accuracy`
(0.8) the report says `trustworthy=False` and an `UntrustworthyJudge` warning is issued.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from agentnb.core import AgentnbWarning, UsageError, run_sync

if TYPE_CHECKING:
    from agentnb.evals._judge import Judge, Panel

__all__ = [
    "acalibrate",
    "calibrate",
    "CalibrationReport",
    "cohen_kappa",
    "Labelled",
    "LabelledSet",
    "load_labelled",
    "UntrustworthyJudge",
]


class UntrustworthyJudge(AgentnbWarning):
    """A judge's agreement with human labels is below the bar (kappa < 0.6 or accuracy < 0.8)."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Labelled:
    """One answer with a human's pass/fail label."""

    output: str
    """The answer to grade."""
    label: bool
    """The human's verdict."""
    task: str = ""
    """The task the answer was for."""
    expected: Any = None
    """A reference answer, if any."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class LabelledSet:
    """A rubric, the task and labelled answers (what `load_labelled` returns)."""

    rubric: str
    """What the labeller judged against."""
    task: str
    """The task the answers respond to."""
    cases: tuple[Labelled, ...]
    """The labelled answers."""


def load_labelled(path: str | Path | None = None) -> LabelledSet:
    """Read a labelled set from JSON (`{"rubric", "task", "cases": [{"output", "label"}]}`).

    With no path: the packaged example, 38 customer-support replies labelled by hand.

    Example:
        >>> data = load_labelled()
        >>> len(data.cases) >= 30
        True
    """
    default = Path(__file__).parent / "data" / "support_replies.json"
    file = Path(path) if path is not None else default
    raw = json.loads(file.read_text(encoding="utf-8"))
    task = raw.get("task", "")
    cases = tuple(Labelled(output=c["output"], label=bool(c["label"]), task=c.get("task", task),
                           expected=c.get("expected")) for c in raw["cases"])
    return LabelledSet(rubric=raw.get("rubric", ""), task=task, cases=cases)


def _coerce(item: Any) -> Labelled:
    if isinstance(item, Labelled):
        return item
    if isinstance(item, Mapping):
        return Labelled(output=str(item["output"]), label=bool(item["label"]),
                        task=str(item.get("task", "")), expected=item.get("expected"))
    if isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
        return Labelled(output=str(item[0]), label=bool(item[1]))
    msg = f"Cannot read {item!r} as a labelled example."
    raise UsageError(msg, hint="Pass `Labelled(output=..., label=True)`, a dict with `output` and "
                               "`label`, or an `(output, label)` pair.")


def cohen_kappa(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Cohen's kappa between two raters' pass/fail labels (1 = perfect, 0 = chance level).

    Example:
        >>> cohen_kappa([True, True, False, False], [True, False, False, False])
        0.5
    """
    if len(a) != len(b) or not a:
        msg = f"cohen_kappa needs two equally long, non-empty label lists ({len(a)} vs {len(b)})."
        raise UsageError(msg)
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    pa, pb = sum(a) / n, sum(b) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1 - expected)


class CalibrationReport(BaseModel):
    """How well a judge agrees with human labels.

    Example:
        >>> r = CalibrationReport(judge="j", n=2, accuracy=1.0, kappa=1.0,
        ...     confusion={"tp": 1, "fp": 0, "fn": 0, "tn": 1}, trustworthy=True)
        >>> r.trustworthy
        True
    """

    model_config = ConfigDict(frozen=True)
    judge: str
    """Which judge."""
    n: int
    """Labelled examples graded."""
    accuracy: float
    """Share of verdicts equal to the human label."""
    kappa: float
    """Cohen's kappa: agreement beyond chance."""
    confusion: dict[str, int]
    """`tp` (both pass), `fp` (judge passes, human fails), `fn`, `tn`."""
    trustworthy: bool
    """kappa >= min_kappa and accuracy >= min_accuracy."""
    min_kappa: float = 0.6
    """The kappa bar."""
    min_accuracy: float = 0.8
    """The accuracy bar."""
    errors: int = 0
    """Examples where the judge gave no valid verdict (counted as `fail`)."""
    cost_usd: float = 0.0
    """What grading cost."""
    disagreements: list[dict[str, Any]] = []
    """The examples where judge and human differ: output, label, verdict, reason."""

    def confusion_matrix(self) -> Any:
        """The 2x2 confusion matrix as a DataFrame (rows: human, columns: judge)."""
        import pandas as pd

        c = self.confusion
        return pd.DataFrame([[c["tp"], c["fn"]], [c["fp"], c["tn"]]],
                            index=pd.Index(["human: pass", "human: fail"]),
                            columns=pd.Index(["judge: pass", "judge: fail"]))

    def __str__(self) -> str:
        flag = "trustworthy" if self.trustworthy else "NOT trustworthy"
        return (f"{self.judge}: n={self.n} accuracy={self.accuracy:.2f} kappa={self.kappa:.2f} "
                f"({flag}; bars kappa>={self.min_kappa}, accuracy>={self.min_accuracy})")


def _warn(report: CalibrationReport) -> CalibrationReport:
    if not report.trustworthy:
        # Issued on the caller's thread (not agentnb's loop thread) so warning filters apply.
        warnings.warn(f"Judge {report.judge!r} is not trustworthy: kappa {report.kappa:.2f} (bar "
                      f"{report.min_kappa}), accuracy {report.accuracy:.2f} (bar "
                      f"{report.min_accuracy}) on {report.n} labelled examples. Improve its "
                      "rubric or model before relying on its verdicts.", UntrustworthyJudge,
                      stacklevel=3)
    return report


async def acalibrate(judge: Judge | Panel, labelled: Iterable[Any] | LabelledSet, *,
                     min_kappa: float = 0.6, min_accuracy: float = 0.8,
                     concurrency: int = 8) -> CalibrationReport:
    """Async twin of `calibrate`."""
    return _warn(await _grade_all(judge, labelled, min_kappa=min_kappa,
                                  min_accuracy=min_accuracy, concurrency=concurrency))


async def _grade_all(judge: Judge | Panel, labelled: Iterable[Any] | LabelledSet, *,
                     min_kappa: float, min_accuracy: float,
                     concurrency: int) -> CalibrationReport:
    from agentnb.evals._judge import JudgeError

    items = [_coerce(x) for x in (labelled.cases if isinstance(labelled, LabelledSet)
                                  else labelled)]
    if not items:
        msg = "calibrate() needs labelled examples, got none."
        raise UsageError(msg, hint="Pass e.g. `anb.evals.load_labelled()`.")
    gate = asyncio.Semaphore(concurrency)

    async def grade(item: Labelled) -> tuple[bool, str, float, bool]:
        async with gate:
            try:
                v = await judge.ajudge(task=item.task, output=item.output, expected=item.expected)
            except JudgeError as exc:
                return False, f"no verdict: {exc.message}", 0.0, True
            return v.passed, v.reason, v.cost_usd, False

    graded = await asyncio.gather(*(grade(i) for i in items))
    human = [i.label for i in items]
    verdicts = [g[0] for g in graded]
    confusion = {
        "tp": sum(h and j for h, j in zip(human, verdicts, strict=True)),
        "fp": sum((not h) and j for h, j in zip(human, verdicts, strict=True)),
        "fn": sum(h and not j for h, j in zip(human, verdicts, strict=True)),
        "tn": sum((not h) and (not j) for h, j in zip(human, verdicts, strict=True)),
    }
    accuracy = (confusion["tp"] + confusion["tn"]) / len(items)
    kappa = cohen_kappa(human, verdicts)
    trustworthy = kappa >= min_kappa and accuracy >= min_accuracy
    return CalibrationReport(
        judge=judge.name, n=len(items), accuracy=accuracy, kappa=kappa, confusion=confusion,
        trustworthy=trustworthy, min_kappa=min_kappa, min_accuracy=min_accuracy,
        errors=sum(g[3] for g in graded), cost_usd=sum(g[2] for g in graded),
        disagreements=[{"output": i.output, "label": i.label, "verdict": g[0], "reason": g[1]}
                       for i, g in zip(items, graded, strict=True) if g[0] != i.label])


def calibrate(judge: Judge | Panel, labelled: Iterable[Any] | LabelledSet, *,
              min_kappa: float = 0.6, min_accuracy: float = 0.8,
              concurrency: int = 8) -> CalibrationReport:
    """Measure a judge's agreement with human labels; warn when it is not trustworthy.

    Args:
        judge: a `Judge` or a `Judge.vote(...)` panel.
        labelled: `Labelled` items, dicts with `output` and `label`, `(output, label)` pairs, or
            a `LabelledSet`.
        min_kappa: the Cohen's kappa bar.
        min_accuracy: the accuracy bar.
        concurrency: judge calls at once.

    Returns:
        A `CalibrationReport` (accuracy, kappa, confusion, trustworthy, disagreements).

    Example:
        >>> from agentnb.evals import Judge
        >>> from agentnb.models import FunctionModel
        >>> always = Judge("ok?", model=FunctionModel(lambda m, i: '{"passed": true}',
        ...                name="always"), cache=False)
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     r = calibrate(always, [("good", True), ("bad", False)])
        >>> r.accuracy, r.kappa, r.trustworthy
        (0.5, 0.0, False)
    """
    return _warn(run_sync(_grade_all(judge, labelled, min_kappa=min_kappa,
                                     min_accuracy=min_accuracy, concurrency=concurrency)))
