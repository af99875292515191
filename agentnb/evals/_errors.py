"""The evals layer's errors, under `AgentnbError`.

```
AgentnbError
└─ EvalError                  an eval could not run or did not pass
   ├─ JudgeError              a judge gave no valid verdict (agentnb.evals._judge)
   ├─ RegressionDetected      .regressions: a report fell below its baseline
   └─ SuiteFailed             .summary: a gate's suite did not pass
```
"""

from __future__ import annotations

from typing import Any

from agentnb.core import AgentnbError

__all__ = ["EvalError", "RegressionDetected", "SuiteFailed"]


class EvalError(AgentnbError):
    """An eval could not run or did not pass."""


class RegressionDetected(EvalError):
    """A suite report fell below its baseline by more than the tolerance."""

    def __init__(self, message: str, *, regressions: list[Any], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.regressions = regressions


class SuiteFailed(EvalError):
    """A gate's suite did not pass, so nothing was stamped."""

    def __init__(self, message: str, *, summary: dict[str, Any], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.summary = summary
