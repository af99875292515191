"""Layer 7: notebook validation, budget-limited papermill jobs, batches, reports."""

from agentnb.jobs._validate import (
    ParamSpec,
    Problem,
    ValidationReport,
    check_parameters,
    read_notebook,
    validate_notebook,
)

__all__ = [
    "check_parameters",
    "ParamSpec",
    "Problem",
    "read_notebook",
    "validate_notebook",
    "ValidationReport",
]
