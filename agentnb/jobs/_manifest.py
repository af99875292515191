"""A batch's records and files: the grid it reads, the manifest it keeps, the result it returns.

`load_grid` turns a grid into rows, one job each. `runs/<batch-id>/manifest.json` holds a
`BatchManifest` (one `JobRecord` per job), rewritten atomically (`_save`) after every change;
`FINISHED` are the statuses `--resume` does not re-run. `request_batch_stop` writes the `STOP`
flag a running batch checks. `BatchResult` is what `run_batch` (`_batch.py`) returns.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import tempfile
import time
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentnb.core import UsageError

__all__ = ["BatchManifest", "BatchResult", "JobRecord", "load_grid", "load_manifest",
           "request_batch_stop"]

RecordStatus = Literal["pending", "running", "done", "failed", "stopped", "lost"]
"""A job in a manifest: not started, in flight, or how it ended (`lost`: no result came back)."""

FINISHED: frozenset[str] = frozenset({"done", "failed", "stopped"})
"""Statuses `--resume` does not re-run."""

MANIFEST = "manifest.json"
STOP_FLAG = "STOP"
_ZERO = Decimal(0)


class JobRecord(BaseModel):
    """One job of a batch, as the manifest records it."""

    model_config = ConfigDict(extra="ignore")
    key: str
    """`job-0001`, ... in grid order."""
    params: dict[str, Any]
    """The parameters of this job."""
    status: RecordStatus = "pending"
    """Where the job stands."""
    stop_reason: str | None = None
    """Why a stopped job stopped (`budget`, `wall_time`, `stop_requested`)."""
    spend_usd: Decimal = _ZERO
    """USD charged to the batch for this job, over every attempt (a lost attempt: its allotment)."""
    allotment_usd: Decimal | None = None
    """The slice granted to the last attempt; None when the batch has no USD limit."""
    steps: int = 0
    """Run steps of the last attempt."""
    duration_s: float = 0.0
    """Wall time of the last attempt."""
    attempts: int = 0
    """How many times the job was started."""
    output_path: str | None = None
    """The executed notebook of the last attempt."""
    error: str | None = None
    """What went wrong, for a failed, stopped or lost job."""
    failed_cell: int | None = None
    """The failing cell of a failed job."""
    run_ids: list[str] = Field(default_factory=list)
    """The runs of every attempt, as merged into the batch's `traces.db`."""
    merge_error: str | None = None
    """Why the job's traces or audit records could not be merged into the batch's."""


class BatchManifest(BaseModel):
    """`runs/<batch-id>/manifest.json`."""

    model_config = ConfigDict(extra="ignore")
    batch_id: str
    """The batch's id (its folder name)."""
    notebook: str
    """The input notebook (absolute path)."""
    budget_usd: Decimal | None = None
    """The batch's USD limit over every attempt of every job."""
    job_budget_usd: Decimal | None = None
    """The cap on one job's allotment."""
    max_steps: int | None = None
    """Step limit per job."""
    wall_s: float | None = None
    """Wall time per job."""
    approvals: str = "deny"
    """Headless approvals for every job."""
    created: float = Field(default_factory=time.time)
    """When the batch was created (seconds since the epoch)."""
    status: str = "running"
    """running, done (every job finished), stopped (budget or stop flag), incomplete (lost jobs)."""
    jobs: list[JobRecord] = Field(default_factory=list)
    """Every job, in grid order."""

    @property
    def spent_usd(self) -> Decimal:
        """USD charged to the batch so far."""
        return sum((j.spend_usd for j in self.jobs), _ZERO)

    def counts(self) -> dict[str, int]:
        """Jobs per status."""
        out: dict[str, int] = {}
        for job in self.jobs:
            out[job.status] = out.get(job.status, 0) + 1
        return out


class BatchResult(BaseModel):
    """What `run_batch` returns.

    Example:
        >>> BatchResult(batch_id="b", batch_dir="runs/b", status="done", counts={"done": 2},
        ...             spend_usd="0.1").exit_code
        0
    """

    model_config = ConfigDict(frozen=True)
    batch_id: str
    """The id to pass to `--resume` and `agentnb stop`."""
    batch_dir: str
    """`runs/<batch-id>`."""
    status: str
    """done, stopped or incomplete."""
    counts: dict[str, int]
    """Jobs per status."""
    spend_usd: Decimal
    """USD charged to the batch, over every invocation."""
    report_path: str | None = None
    """The batch's `report.html`."""

    @property
    def exit_code(self) -> int:
        """0 when every job is done; 1 when one failed or was lost; 3 when a budget or a stop
        request ended the batch or a job."""
        if self.counts.get("failed") or self.counts.get("lost"):
            return 1
        if self.status == "stopped" or self.counts.get("stopped") or self.counts.get("pending"):
            return 3
        return 0


def read_yaml(path: str | Path, label: str) -> Any:  # Any: whatever the YAML holds
    """The YAML (or JSON) file at `path`, parsed; `label` names it in errors ("grid").

    Raises:
        UsageError: the file is missing or not valid YAML.

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "p.yaml"
        >>> _ = f.write_text("n: 3")
        >>> read_yaml(f, "parameters")
        {'n': 3}
    """
    import yaml

    where = str(path)
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"No {label} file at {where!r}.", hint="Check the path.") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{label.capitalize()} file {where!r} is not valid YAML: {exc}"
                         ) from None


def load_grid(source: str | Path | Mapping[str, Any] | list[Any]) -> list[dict[str, Any]]:
    """Turn a grid into rows: a mapping of lists is a product, a list is explicit rows.

    Raises:
        UsageError: the file is missing, not YAML, or neither shape.

    Example:
        >>> load_grid({"model": ["a", "b"], "n": [1]})
        [{'model': 'a', 'n': 1}, {'model': 'b', 'n': 1}]
        >>> load_grid([{"n": 1}, {"n": 5}])
        [{'n': 1}, {'n': 5}]
    """
    data: Any = read_yaml(source, "grid") if isinstance(source, (str, Path)) else source
    if isinstance(data, Mapping):
        names = list(data)
        values = [v if isinstance(v, list) else [v] for v in data.values()]
        if not all(isinstance(n, str) for n in names):
            raise UsageError(f"Grid names must be strings, got {names!r}.")
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]
    if isinstance(data, list) and all(isinstance(r, Mapping) for r in data):
        return [dict(r) for r in data]
    raise UsageError(
        f"A grid must be a mapping of parameter lists or a list of rows, not {data!r:.80}.",
        hint="Write `n: [1, 2, 3]` lines (a product), or `- {n: 1}` rows.")


def request_batch_stop(batch_dir: str | Path) -> Path:
    """Write the stop flag a running batch checks; running jobs stop between cells.

    Example:
        >>> import tempfile
        >>> request_batch_stop(tempfile.mkdtemp()).name
        'STOP'
    """
    flag = Path(batch_dir) / STOP_FLAG
    flag.write_text(f"stop requested at {time.time()}\n", encoding="utf-8")
    return flag


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _save(batch_dir: Path, manifest: BatchManifest) -> None:
    _write_atomic(batch_dir / MANIFEST, manifest.model_dump_json(indent=1))


def load_manifest(batch_dir: str | Path) -> BatchManifest:
    """Read a batch's manifest.

    Raises:
        UsageError: there is no batch there.
    """
    path = Path(batch_dir) / MANIFEST
    try:
        return BatchManifest.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise UsageError(f"No batch manifest at {str(path)!r}.",
                         hint="Pass the batch folder, `runs/<batch-id>`.") from None


def manifest_json(batch_dir: str | Path) -> dict[str, Any]:
    """The manifest as plain JSON data."""
    return json.loads((Path(batch_dir) / MANIFEST).read_text(encoding="utf-8"))
