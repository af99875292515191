"""Batches: a grid of parameters becomes jobs on a local process pool or a Dask cluster.

The coordinator (this process) holds the batch's USD limit in a `BudgetScope` of kind `batch`.
Before a job starts it *grants* the job an allotment, `min(unreserved / free slots, per-job
cap)`; the job's kernel spends at most that (its own root scope is limited to it); when the job
ends the coordinator settles the allotment with the spend in the job's ledger and takes the
rest back. One coordinator round trip per job, no lock shared with the workers.

A job that does not come back cleanly (its worker died, the scheduler lost it, its wall time
ran out mid-cell) is charged its **whole allotment, for good**: calls it had in flight may have
been paid and we cannot know. So the total recorded spend, which is what the limit is checked
against (also across `--resume`), never exceeds the batch limit. Its job folder keeps its
ledger for an audit.

`runs/<batch-id>/manifest.json` records every job (parameters, status, spend, attempts, output
notebook) and is rewritten atomically after every change. `--resume` re-runs jobs that are
pending, running (the coordinator died) or lost, and never re-runs done, failed or stopped
ones. A `STOP` file in the batch folder (`agentnb stop BATCH_ID`) stops scheduling, and the
engine stops running jobs between cells.

Every job has one agentnb home, `jobs/<key>/home/`, shared by all its attempts (each attempt
keeps its ledger in `jobs/<key>/attempt-<n>/`). Its kernels run with the response cache on,
so an attempt re-run by `--resume` gets every model response the lost attempt already paid
for from `home/cache.db`, at no cost. No SQLite file is shared between jobs: as each job ends
(done, failed, stopped or lost) the coordinator merges its `traces.db` into the batch's
`runs/<batch-id>/traces.db` and its audit chain into `runs/<batch-id>/audit/audit.jsonl`
(each record tagged with the job's key); both merges are idempotent.

The manifest, its job records, the grid and the result live in `_manifest.py`; this module runs
the jobs: the worker function, the two executors and the coordinator.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future
from decimal import Decimal
from pathlib import Path
from typing import Any

from agentnb.core import AgentnbError, ConfigError, UsageError, new_id
from agentnb.jobs._collect import job_home, merge_job
from agentnb.jobs._manifest import (
    _ZERO,
    FINISHED,
    MANIFEST,
    STOP_FLAG,
    BatchManifest,
    BatchResult,
    JobRecord,
    _save,
    load_grid,
    load_manifest,
)

__all__ = ["run_batch"]


# -- the worker side -------------------------------------------------------------------------

def execute_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one job of a batch in a worker (process pool or Dask); return a JSON-able record.

    Refuses to run the same attempt twice: a scheduler that retries a task after its worker
    died would otherwise spend the same allotment again.
    """
    from agentnb.jobs._run import run_notebook

    job_dir = Path(spec["job_dir"])
    job_dir.mkdir(parents=True, exist_ok=True)
    marker = job_dir.parent / f"attempt-{spec['attempt']}.started"
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return {"status": "lost", "error": f"attempt {spec['attempt']} was started before "
                "(a scheduler retried it after its worker died); not run again"}
    try:
        result = run_notebook(
            spec["notebook"], spec["out"], parameters=spec["params"],
            budget_usd=spec["budget_usd"], max_steps=spec["max_steps"], wall_s=spec["wall_s"],
            approvals=spec["approvals"], kernel_name=spec["kernel_name"],
            job_id=spec["job_id"], job_dir=job_dir, job_kind="batch",
            stop_file=spec["stop_file"], home=spec.get("home"))
    except AgentnbError as exc:
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "exact": True}
    return {"status": result.status, "stop_reason": result.stop_reason,
            "spend_usd": str(result.spend_usd), "steps": result.steps,
            "duration_s": result.duration_s, "output_path": result.output_path,
            "error": result.error, "failed_cell": result.failed_cell,
            "exact": result.spend_exact}


# -- executors -------------------------------------------------------------------------------

class _LocalPool:
    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = self._new()

    def _new(self) -> Any:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, spec: dict[str, Any]) -> Any:
        return self.pool.submit(execute_job, spec)

    def wait(self, futures: list[Any], timeout: float) -> set[Any]:
        from concurrent.futures import wait

        done, _ = wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
        return done

    def result(self, future: Future[Any]) -> dict[str, Any]:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return future.result()
        except BrokenProcessPool:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new()
            return {"status": "lost", "error": "the worker process died (BrokenProcessPool)"}

    def abandon(self, futures: list[Any]) -> None:
        # A job past its deadline cannot be cancelled in a process pool: end the workers (their
        # kernels follow), so every job in flight comes back as lost and is charged in full.
        for process in list(getattr(self.pool, "_processes", {}).values()):
            process.kill()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class _DaskPool:
    def __init__(self, address: str, workers: int) -> None:
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("`--dask` needs dask.distributed, which is not installed.",
                              source="argument", hint="pip install 'agentnb[dask]'") from None
        self.cluster: Any = None
        if address == "local":
            # A task whose worker died must not be re-run by the scheduler: its allotment was
            # charged in full, and a re-run would spend it again (execute_job also refuses).
            with dask.config.set(  # pyright: ignore[reportPrivateImportUsage]
                    {"distributed.scheduler.allowed-failures": 0}):
                self.cluster = LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True,
                    dashboard_address=None)  # pyright: ignore[reportArgumentType]
            self.client = Client(self.cluster)
        else:
            self.client = Client(address)
        self.workers = workers

    def submit(self, spec: dict[str, Any]) -> Any:
        return self.client.submit(execute_job, spec, pure=False, key=f"{spec['job_id']}")

    def wait(self, futures: list[Any], timeout: float) -> set[Any]:
        from distributed import wait
        from distributed.client import FIRST_COMPLETED as DASK_FIRST

        try:
            done, _ = wait(  # pyright: ignore[reportGeneralTypeIssues]
                futures, timeout=timeout, return_when=DASK_FIRST)
        except TimeoutError:
            return set()
        return set(done)

    def result(self, future: Any) -> dict[str, Any]:
        try:
            return future.result()
        except Exception as exc:
            # KilledWorker and friends: no result came back from the cluster.
            return {"status": "lost", "error": f"{type(exc).__name__}: {exc}"}

    def abandon(self, futures: list[Any]) -> None:
        self.client.cancel(futures)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


# -- the coordinator -------------------------------------------------------------------------

def _progress(total: int, initial: int, quiet: bool) -> Any:
    from tqdm import tqdm

    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=total, initial=initial, disable=disable, unit="job", desc="batch",
                file=sys.stderr)


def _budget_scope(manifest: BatchManifest) -> Any:
    from agentnb.runtime import Budget, BudgetScope

    if manifest.budget_usd is None:
        return None
    left = max(manifest.budget_usd - manifest.spent_usd, _ZERO)
    return BudgetScope(Budget(usd=left), name=manifest.batch_id, kind="batch")


def _allotment(scope: Any, cap: Decimal | None, free_slots: int) -> Decimal | None:
    """The next job's slice, or -1 sentinel (Decimal(-1)) when the batch has nothing left."""
    if scope is None:
        return cap
    unreserved = scope.remaining()["usd"]
    share = unreserved / max(free_slots, 1)
    share = share.quantize(Decimal("0.000001"), rounding="ROUND_DOWN")
    if cap is not None:
        share = min(share, cap)
    return share


def run_batch(
    notebook: str | Path,
    grid: str | Path | Mapping[str, Any] | list[Any] | None = None,
    *,
    workers: int = 2,
    dask: str | None = None,
    budget_usd: Decimal | float | str | None = None,
    job_budget_usd: Decimal | float | str | None = None,
    max_steps: int | None = None,
    wall_s: float | None = None,
    approvals: str = "deny",
    kernel_name: str | None = None,
    out: str | Path = "runs",
    batch_id: str | None = None,
    resume: str | None = None,
    quiet: bool = False,
    report: bool = True,
    on_update: Callable[[BatchManifest], None] | None = None,
) -> BatchResult:
    """Run a notebook once per row of a parameter grid, under one batch budget.

    Args:
        notebook: The input notebook.
        grid: A YAML file, a mapping of lists (product) or a list of rows; not needed to resume.
        workers: Jobs at once (process pool size, or Dask LocalCluster workers).
        dask: A scheduler address, or `local` for a `LocalCluster`; None for the process pool.
        budget_usd: USD limit over the whole batch (every attempt of every job).
        job_budget_usd: Cap on one job's allotment.
        max_steps: Step limit per job.
        wall_s: Wall time per job.
        approvals: `deny`, `allow` or a YAML rules file, for every job.
        kernel_name: The Jupyter kernel.
        out: The folder holding `<batch-id>/`.
        batch_id: The new batch's id; default a new one.
        resume: Continue this batch: re-run its unfinished jobs only.
        quiet: No progress bar.
        report: Write `results.parquet` and `report.html` at the end.
        on_update: Called with the manifest after every change (tests, dashboards).

    Raises:
        NotebookInvalid: the notebook is invalid (exit 2).
        UsageError: a grid row has an unknown parameter or a wrong type, naming it (exit 2).

    Example:
        >>> # run_batch("nb.ipynb", {"n": [1, 2, 3]}, workers=2, budget_usd=1.0)
    """
    from agentnb.jobs._run import _approvals_spec, _check_limits
    from agentnb.jobs._validate import check_parameters, validate_notebook

    if workers < 1:
        raise UsageError(f"workers={workers!r} must be at least 1.")
    root = Path(out)
    if resume is not None:
        batch_dir = root / resume
        manifest = load_manifest(batch_dir)
        if budget_usd is not None:
            manifest.budget_usd = _check_limits(budget_usd, None, None)
        with contextlib.suppress(FileNotFoundError):
            (batch_dir / STOP_FLAG).unlink()
        for job in manifest.jobs:
            if job.status == "running":
                # The coordinator died with this attempt in flight: charge it in full.
                job.spend_usd += _unknown_spend(batch_dir, job)
                job.status, job.error = "lost", "the coordinator exited while it ran"
                merge_job(batch_dir.resolve(), job)
    else:
        if grid is None:
            raise UsageError("A new batch needs a grid.", hint="Pass `--grid grid.yaml`.")
        rows = load_grid(grid)
        if not rows:
            raise UsageError("The grid has no rows.", hint="Give at least one value per name.")
        report_ = validate_notebook(notebook)
        report_.raise_for_problems()
        for index, row in enumerate(rows):
            try:
                check_parameters(report_, row)
            except UsageError as exc:
                exc.message = f"Grid row {index} ({row!r}): {exc.message}"
                exc.args = (exc.message,)
                raise
        batch_id = batch_id or new_id("batch")
        batch_dir = root / batch_id
        if (batch_dir / MANIFEST).exists():
            raise UsageError(f"Batch {batch_id!r} already exists in {str(root)!r}.",
                             hint=f"Resume it with `--resume {batch_id}`.")
        batch_dir.mkdir(parents=True, exist_ok=True)
        manifest = BatchManifest(
            batch_id=batch_id, notebook=str(Path(notebook).resolve()),
            budget_usd=_check_limits(budget_usd, max_steps, wall_s),
            job_budget_usd=_check_limits(job_budget_usd, None, None),
            max_steps=max_steps, wall_s=wall_s, approvals=_approvals_spec(approvals),
            jobs=[JobRecord(key=f"job-{i + 1:04d}", params=row) for i, row in enumerate(rows)])
    batch_dir = batch_dir.resolve()
    manifest.status = "running"
    _save(batch_dir, manifest)
    coordinator = _Coordinator(manifest, batch_dir, kernel_name=kernel_name,
                               on_update=on_update)
    executor: Any = _DaskPool(dask, workers) if dask else _LocalPool(workers)
    try:
        coordinator.run(executor, workers, quiet=quiet)
    finally:
        executor.close()
    report_path = None
    if report:
        from agentnb.jobs._report import build_report

        report_path = str(build_report(batch_dir))
    return BatchResult(batch_id=manifest.batch_id, batch_dir=str(batch_dir),
                       status=manifest.status, counts=manifest.counts(),
                       spend_usd=manifest.spent_usd, report_path=report_path)


class _Coordinator:
    def __init__(self, manifest: BatchManifest, batch_dir: Path, *, kernel_name: str | None,
                 on_update: Callable[[BatchManifest], None] | None) -> None:
        self.manifest = manifest
        self.batch_dir = batch_dir
        self.kernel_name = kernel_name
        self.on_update = on_update
        self.scope = _budget_scope(manifest)
        self.stop_reason: str | None = None

    def _changed(self) -> None:
        _save(self.batch_dir, self.manifest)
        if self.on_update is not None:
            self.on_update(self.manifest)

    def _todo(self) -> Iterator[JobRecord]:
        return iter([j for j in self.manifest.jobs if j.status not in FINISHED])

    def _spec(self, job: JobRecord, allotment: Decimal | None) -> dict[str, Any]:
        m = self.manifest
        return {
            "notebook": m.notebook, "params": job.params,
            "out": str(self.batch_dir / "notebooks" / f"{job.key}.ipynb"),
            "job_dir": str(self.batch_dir / "jobs" / job.key / f"attempt-{job.attempts}"),
            "home": str(job_home(self.batch_dir, job.key)),
            "job_id": f"{m.batch_id}-{job.key}-a{job.attempts}", "attempt": job.attempts,
            "budget_usd": None if allotment is None else str(allotment),
            "max_steps": m.max_steps, "wall_s": m.wall_s, "approvals": m.approvals,
            "kernel_name": self.kernel_name, "stop_file": str(self.batch_dir / STOP_FLAG),
        }

    def run(self, executor: Any, workers: int, *, quiet: bool) -> None:
        todo = self._todo()
        finished = sum(1 for j in self.manifest.jobs if j.status in FINISHED)
        bar = _progress(len(self.manifest.jobs), finished, quiet)
        running: dict[Any, tuple[JobRecord, Any]] = {}
        started: dict[Any, float] = {}
        wall = self.manifest.wall_s
        # A job past its wall time plus a kernel-start grace is hung: give up on it.
        deadline_s = None if wall is None else wall + 120.0
        pending = next(todo, None)
        try:
            while pending is not None or running:
                if (self.batch_dir / STOP_FLAG).exists() and self.stop_reason is None:
                    self.stop_reason = "stop_requested"
                while pending is not None and len(running) < workers and not self.stop_reason:
                    grant = self._grant(pending, workers - len(running))
                    if grant is False:
                        self.stop_reason = "budget"
                        break
                    pending.attempts += 1
                    pending.status = "running"
                    allotment = None if grant is None else grant.limits.usd
                    pending.allotment_usd = allotment
                    future = executor.submit(self._spec(pending, allotment))
                    running[future] = (pending, grant)
                    started[future] = time.monotonic()
                    self._changed()
                    pending = next(todo, None)
                if not running:
                    break
                now = time.monotonic()
                late = [f for f in running if deadline_s is not None
                        and now - started[f] > deadline_s]
                if late:
                    executor.abandon(late)
                for future in executor.wait(list(running), timeout=0.5):
                    job, grant = running.pop(future)
                    started.pop(future, None)
                    self._finish(job, grant, executor.result(future))
                    bar.update(1)
                    counts = self.manifest.counts()
                    bar.set_postfix(done=counts.get("done", 0), failed=counts.get("failed", 0),
                                    spend=f"${self.manifest.spent_usd:.4f}")
        finally:
            bar.close()
            for job, grant in running.values():
                # The coordinator is leaving with jobs in flight: charge them in full.
                self._finish(job, grant, {"status": "lost", "error": "coordinator exited"})
        counts = self.manifest.counts()
        if self.stop_reason is not None and (counts.get("pending") or counts.get("running")):
            self.manifest.status = "stopped"
        elif set(counts) <= FINISHED:
            self.manifest.status = "done"
        else:
            self.manifest.status = "incomplete"
        self._changed()

    def _grant(self, job: JobRecord, free_slots: int) -> Any:
        from agentnb.core import BudgetExceeded
        from agentnb.runtime import Budget

        cap = self.manifest.job_budget_usd
        slice_ = _allotment(self.scope, cap, free_slots)
        if self.scope is None:
            return None if slice_ is None else _FixedGrant(slice_)
        if slice_ is None or slice_ <= 0:
            return False
        try:
            return self.scope.grant(f"{self.manifest.batch_id}-{job.key}", Budget(usd=slice_),
                                    kind="batch")
        except BudgetExceeded:
            return False

    def _finish(self, job: JobRecord, grant: Any, outcome: dict[str, Any]) -> None:
        status = outcome.get("status", "lost")
        exact = bool(outcome.get("exact")) and status != "lost"
        spend = Decimal(str(outcome.get("spend_usd") or 0))
        if not exact:
            spend = max(spend, _unknown_spend(self.batch_dir, job))
        if grant is not None and not isinstance(grant, _FixedGrant):
            grant.charge(usd=spend)
            grant.close()
        job.spend_usd += spend
        job.status = status
        job.stop_reason = outcome.get("stop_reason")
        job.steps = int(outcome.get("steps") or 0)
        job.duration_s = float(outcome.get("duration_s") or 0.0)
        job.output_path = outcome.get("output_path") or job.output_path
        job.error = outcome.get("error")
        job.failed_cell = outcome.get("failed_cell")
        merge_job(self.batch_dir, job)
        self._changed()


def _unknown_spend(batch_dir: Path, job: JobRecord) -> Decimal:
    """What an attempt that did not come back counts as: its allotment, at least its ledger."""
    from agentnb.runtime._job import read_ledger

    ledger = read_ledger(batch_dir / "jobs" / job.key / f"attempt-{job.attempts}")
    seen = ledger.spent_usd if ledger is not None else _ZERO
    return max(seen, job.allotment_usd or _ZERO)


class _FixedGrant:
    """A per-job cap when the batch itself has no USD limit (nothing to take back)."""

    def __init__(self, usd: Decimal) -> None:
        from agentnb.runtime import Budget

        self.limits = Budget(usd=usd)
