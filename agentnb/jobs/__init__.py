"""Layer 7: notebook validation, budget-limited papermill jobs, batches, reports.

papermill, nbclient, pandas and dask are imported inside the functions that need them.
"""

from agentnb.core import _lazyimports
from agentnb.jobs._batch import run_batch
from agentnb.jobs._manifest import (
    BatchManifest,
    BatchResult,
    JobRecord,
    load_grid,
    load_manifest,
    request_batch_stop,
)
from agentnb.jobs._report import RECORD_MIME, build_report, collect_results, read_records
from agentnb.jobs._run import (
    JobResult,
    JobStatus,
    load_params_file,
    merge_params,
    parse_param_value,
    run_notebook,
)
from agentnb.jobs._validate import (
    ParamSpec,
    Problem,
    ValidationReport,
    check_parameters,
    read_notebook,
    validate_notebook,
)

# Before any job imports nbformat (and so jsonschema): ~1.4 s CPU off every job's start.
_lazyimports.defer_rfc3987_syntax()

__all__ = [
    "BatchManifest",
    "BatchResult",
    "build_report",
    "check_parameters",
    "collect_results",
    "JobRecord",
    "JobResult",
    "JobStatus",
    "load_grid",
    "load_manifest",
    "load_params_file",
    "merge_params",
    "ParamSpec",
    "parse_param_value",
    "Problem",
    "read_notebook",
    "read_records",
    "RECORD_MIME",
    "request_batch_stop",
    "run_batch",
    "run_notebook",
    "validate_notebook",
    "ValidationReport",
]
