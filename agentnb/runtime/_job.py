"""The kernel side of a notebook job: one budget scope over every run, and a ledger file.

`agentnb run` / `agentnb batch` start the kernel with `AGENTNB_JOB_ID`, `AGENTNB_JOB_DIR` and
the job's limits in the environment. `job_context()` turns them, once per process, into a
root `BudgetScope` (kind `notebook` for a single run, `batch` for a job spending an allotment
granted by a batch coordinator) and a `ledger.json` in the job folder. The runtime parents
every top-level run on that scope and calls `record_run` when a run ends; inside IPython a
`post_run_cell` hook also writes the ledger after every cell, so spend made through the budget
API directly is seen too. The engine in the parent process reads the ledger between cells.

The ledger is written atomically (temp file + `os.replace`), so a reader never sees half a
file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentnb.core import RunStopped, Settings, resolve
from agentnb.runtime._budget import Budget, BudgetScope

__all__ = ["JobContext", "Ledger", "LedgerRun", "job_context", "job_scope", "read_ledger"]

LEDGER_NAME = "ledger.json"
"""The ledger's file name inside the job folder."""

_BUDGET_REASONS = frozenset({"budget", "wall_time"})


class LedgerRun(BaseModel):
    """One finished run as the ledger records it."""

    model_config = ConfigDict(extra="ignore")
    run_id: str
    """The run's id."""
    status: str
    """done, failed or stopped."""
    stop_reason: str | None = None
    """Which kill switch stopped it."""
    usd: Decimal | None = None
    """What the run cost (None when unpriced)."""
    steps: int = 0
    """Steps the run took."""


class Ledger(BaseModel):
    """What a job has spent so far, as written in `ledger.json`.

    Example:
        >>> Ledger(job_id="job_1").budget_stopped
        False
    """

    model_config = ConfigDict(extra="ignore")
    job_id: str
    """The job's id."""
    spent_usd: Decimal = Decimal(0)
    """Settled USD over every run in the kernel."""
    tokens: int = 0
    """Input plus output tokens."""
    steps: int = 0
    """Run steps."""
    model_calls: int = 0
    """Model calls sent."""
    tool_calls: int = 0
    """Tool calls executed."""
    runs: list[LedgerRun] = Field(default_factory=list)
    """Every run recorded, in order."""
    budget_stopped: bool = False
    """True once a run (or a cell) was stopped by the job's budget or wall time."""
    stop_reason: str | None = None
    """The kill switch that stopped the job, when one did."""
    cells: int = 0
    """Cells that finished since the kernel started (written by the post-cell hook)."""
    updated: float = 0.0
    """Wall-clock time of the last write (seconds since the epoch)."""


def read_ledger(job_dir: str | Path) -> Ledger | None:
    """Read a job folder's ledger; None when there is none yet (nothing used agentnb).

    Example:
        >>> read_ledger("/nonexistent-folder") is None
        True
    """
    path = Path(job_dir) / LEDGER_NAME
    try:
        return Ledger.model_validate_json(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None


@dataclasses.dataclass(kw_only=True, slots=True, eq=False)
class JobContext:
    """The job a kernel runs in: its budget scope and its ledger.

    Example:
        >>> import tempfile
        >>> from agentnb.core import resolve
        >>> ctx = JobContext.from_settings(resolve(job_id="job_1", job_dir=tempfile.mkdtemp(),
        ...                                         job_budget_usd="0.10", env={}))
        >>> ctx.scope.kind, ctx.scope.limits.usd
        ('notebook', Decimal('0.10'))
        >>> ctx.flush().spent_usd
        Decimal('0')
    """

    job_id: str
    """The job's id (`AGENTNB_JOB_ID`)."""
    job_dir: Path
    """The job folder holding `ledger.json`."""
    scope: BudgetScope
    """The root scope every top-level run of the kernel draws from."""
    runs: dict[str, LedgerRun] = dataclasses.field(default_factory=dict)
    stop_reason: str | None = None
    cells: int = 0
    # Guards `runs`, `stop_reason` and the ledger file: runs may end on several threads.
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @classmethod
    def from_settings(cls, settings: Settings) -> JobContext:
        """Build the context from resolved settings (which must carry a `job_id`)."""
        assert settings.job_id is not None
        job_dir = settings.job_dir or settings.home / "jobs" / settings.job_id
        job_dir.mkdir(parents=True, exist_ok=True)
        limits = Budget(usd=settings.job_budget_usd, steps=settings.job_max_steps,
                        wall_s=settings.job_wall_s)
        kind = "batch" if settings.job_kind == "batch" else "notebook"
        scope = BudgetScope(limits, name=settings.job_id, kind=kind)
        return cls(job_id=settings.job_id, job_dir=job_dir, scope=scope)

    @property
    def ledger_path(self) -> Path:
        """Where the ledger is written."""
        return self.job_dir / LEDGER_NAME

    def record_run(self, result: Any, *, stopped_by_job: bool = True) -> Ledger:
        """Record a finished run (a `RunResult`) and write the ledger.

        Recording the same run id twice keeps the last record, so a run recorded by the
        runtime and again by notebook code counts once. A budget or wall-time stop ends the
        job only when the job's own scope refused (`stopped_by_job`); a run that hit its own
        `Budget` stops alone. Callers that cannot tell keep the default: stop the job.
        """
        usage = getattr(result, "usage", None)
        entry = LedgerRun(
            run_id=str(getattr(result, "run_id", "") or f"run-{len(self.runs)}"),
            status=str(getattr(result, "status", "done")),
            stop_reason=getattr(result, "stop_reason", None),
            usd=getattr(usage, "usd", None),
            steps=len(getattr(result, "steps", ()) or ()),
        )
        with self.lock:
            self.runs[entry.run_id] = entry
            if (entry.stop_reason in _BUDGET_REASONS and stopped_by_job
                    and self.stop_reason is None):
                self.stop_reason = entry.stop_reason
        return self.flush()

    def record_stop(self, reason: str) -> Ledger:
        """Mark the job as stopped by `reason` (e.g. `budget`) and write the ledger."""
        with self.lock:
            if self.stop_reason is None:
                self.stop_reason = reason
        return self.flush()

    def ledger(self) -> Ledger:
        """The ledger as it stands now (not written)."""
        spent = self.scope.spent_summary()
        with self.lock:
            return Ledger(
                job_id=self.job_id, spent_usd=spent.usd, tokens=spent.tokens, steps=spent.steps,
                model_calls=spent.model_calls, tool_calls=spent.tool_calls,
                runs=list(self.runs.values()),
                budget_stopped=self.stop_reason in _BUDGET_REASONS,
                stop_reason=self.stop_reason, cells=self.cells, updated=time.time(),
            )

    def flush(self) -> Ledger:
        """Write the ledger atomically and return it."""
        ledger = self.ledger()
        data = ledger.model_dump_json(indent=1).encode()
        with self.lock:
            fd, tmp = tempfile.mkstemp(prefix=".ledger-", dir=self.job_dir)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, self.ledger_path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        return ledger

    def _post_run_cell(self, result: Any) -> None:
        error = getattr(result, "error_in_exec", None)
        with self.lock:
            self.cells += 1
            if isinstance(error, RunStopped) and self.stop_reason is None:
                reason = str(getattr(error, "reason", "") or "")
                by_job = getattr(error, "scope_name", None) == self.scope.name
                if reason in _BUDGET_REASONS and by_job:
                    self.stop_reason = reason
        self.flush()
        # The cell's finished spans go to disk now, not at the kernel's exit: a kernel that
        # hangs on its way out (ipykernel's control thread, now and then) is ended with
        # SIGTERM before any atexit handler runs.
        from agentnb.tracing import flush as flush_spans

        flush_spans()


_CONTEXT: JobContext | None = None
_BUILT = False
_BUILD_LOCK = threading.Lock()


def job_context() -> JobContext | None:
    """The job this process runs in, built once from `resolve()`; None outside a job.

    Inside IPython it also registers a `post_run_cell` hook that writes the ledger after
    every cell.

    Example:
        >>> job_context() is None  # not started by `agentnb run`
        True
    """
    global _CONTEXT, _BUILT
    if _BUILT:
        return _CONTEXT
    with _BUILD_LOCK:
        if _BUILT:
            return _CONTEXT
        settings = resolve()
        if settings.job_id is not None:
            _CONTEXT = JobContext.from_settings(settings)
            _CONTEXT.flush()
            _register_cell_hook(_CONTEXT)
        _BUILT = True
    return _CONTEXT


def job_scope() -> BudgetScope | None:
    """The job's root budget scope, or None outside a job (cheap after the first call).

    Example:
        >>> job_scope() is None
        True
    """
    ctx = job_context()
    return None if ctx is None else ctx.scope


def _register_cell_hook(ctx: JobContext) -> None:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - the kernel always has IPython
        return
    shell = get_ipython()
    if shell is not None:
        shell.events.register("post_run_cell", ctx._post_run_cell)


def _reset_for_tests() -> None:
    """Forget the process's job context (tests build several in one process)."""
    global _CONTEXT, _BUILT
    with _BUILD_LOCK:
        _CONTEXT, _BUILT = None, False


def ledger_json(ledger: Ledger) -> dict[str, Any]:
    """The ledger as plain JSON data."""
    return json.loads(ledger.model_dump_json())
