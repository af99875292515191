"""Layer 5: scenarios, checks, LLM judges and their calibration, synthetic environments, suites.

`anb.checks` and `anb.envs` are the public namespaces `checks` and `envs` of this package; the
pytest plugin is `agentnb.evals.pytest_plugin` (`pytest --agentnb`).
"""

from __future__ import annotations

import importlib
from typing import Any as _Any

# name -> defining module; loaded on first use so `import agentnb.evals.pytest_plugin` (a pytest
# entry point, imported before coverage starts) and `import agentnb` stay light.
_LAZY: dict[str, str] = {
    "acalibrate": "agentnb.evals._calibration",
    "calibrate": "agentnb.evals._calibration",
    "CalibrationReport": "agentnb.evals._calibration",
    "Check": "agentnb.evals._checks",
    "CheckResult": "agentnb.evals._checks",
    "checks": "agentnb.evals.checks",
    "cohen_kappa": "agentnb.evals._calibration",
    "envs": "agentnb.evals.envs",
    "EvalError": "agentnb.evals._errors",
    "gate_notebook": "agentnb.evals._gate",
    "Judge": "agentnb.evals._judge",
    "JudgeError": "agentnb.evals._judge",
    "JudgeVerdict": "agentnb.evals._judge",
    "Labelled": "agentnb.evals._calibration",
    "LabelledSet": "agentnb.evals._calibration",
    "load_labelled": "agentnb.evals._calibration",
    "notebook_hash": "agentnb.evals._gate",
    "Outcome": "agentnb.evals._scenario",
    "Panel": "agentnb.evals._judge",
    "Provenance": "agentnb.evals._gate",
    "Regression": "agentnb.evals._report",
    "RegressionDetected": "agentnb.evals._errors",
    "Scenario": "agentnb.evals._scenario",
    "Suite": "agentnb.evals._suite",
    "SuiteFailed": "agentnb.evals._errors",
    "SuiteReport": "agentnb.evals._report",
    "UntrustworthyJudge": "agentnb.evals._calibration",
    "Verdict": "agentnb.evals._judge",
    "VoteRule": "agentnb.evals._judge",
    "wilson_interval": "agentnb.evals._report",
}

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


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if name in ("checks", "envs") else getattr(module, name)
        globals()[name] = value
        return value
    msg = f"module 'agentnb.evals' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
