"""Layer 5: scenarios, checks, LLM judges and their calibration, synthetic environments, suites.

`anb.checks` and `anb.envs` are the public namespaces `checks` and `envs` of this package; the
pytest plugin is `agentnb.evals.pytest_plugin` (`pytest --agentnb`).
"""

from agentnb.evals import checks, envs
from agentnb.evals._calibration import (
    acalibrate,
    calibrate,
    CalibrationReport,
    cohen_kappa,
    Labelled,
    LabelledSet,
    load_labelled,
    UntrustworthyJudge,
)
from agentnb.evals._checks import Check, CheckResult
from agentnb.evals._errors import EvalError, RegressionDetected, SuiteFailed
from agentnb.evals._gate import gate_notebook, notebook_hash, Provenance
from agentnb.evals._judge import Judge, JudgeError, JudgeVerdict, Panel, Verdict, VoteRule
from agentnb.evals._report import Regression, SuiteReport, wilson_interval
from agentnb.evals._scenario import Outcome, Scenario
from agentnb.evals._suite import Suite

__all__ = [
    "acalibrate",
    "calibrate",
    "CalibrationReport",
    "Check",
    "CheckResult",
    "checks",
    "cohen_kappa",
    "envs",
    "EvalError",
    "gate_notebook",
    "Judge",
    "JudgeError",
    "JudgeVerdict",
    "Labelled",
    "LabelledSet",
    "load_labelled",
    "notebook_hash",
    "Outcome",
    "Panel",
    "Provenance",
    "Regression",
    "RegressionDetected",
    "Scenario",
    "Suite",
    "SuiteFailed",
    "SuiteReport",
    "UntrustworthyJudge",
    "Verdict",
    "VoteRule",
    "wilson_interval",
]
