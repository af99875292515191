"""Batches in real kernels: 12 jobs on 2 workers (process pool and Dask), a killed job, resume."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agentnb.jobs import BatchResult, load_manifest, run_batch

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
BUDGET = Decimal("0.60")
CAP = Decimal("0.05")


def _grid(marker: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"cost": 0.01, "calls": 1 + i % 3, "quality": i / 12}
                                  for i in range(12)]
    rows[4]["kill_marker"] = str(marker)
    return rows


def _batch(tmp: Path, dask: str | None) -> tuple[BatchResult, dict[str, float], BatchResult]:
    out = tmp / "runs"
    first = run_batch(NOTEBOOKS / "spend.ipynb", _grid(tmp / "killed.marker"), workers=2,
                      dask=dask, budget_usd=BUDGET, job_budget_usd=CAP, wall_s=60.0, out=out,
                      quiet=True)
    manifest = load_manifest(first.batch_dir)
    mtimes = {j.key: os.path.getmtime(j.output_path) for j in manifest.jobs
              if j.status == "done" and j.output_path}
    second = run_batch(NOTEBOOKS / "spend.ipynb", workers=2, dask=dask, out=out,
                       resume=first.batch_id, quiet=True)
    return first, mtimes, second


@pytest.fixture(scope="module")
def pool_batch(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One pool batch with a killed job, then its resume (shared by the tests below)."""
    return _batch(tmp_path_factory.mktemp("pool"), None)


@pytest.fixture(scope="module")
def dask_batch(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One Dask LocalCluster batch with a killed job, then its resume."""
    pytest.importorskip("distributed")
    return _batch(tmp_path_factory.mktemp("dask"), "local")


def _check(batch: Any) -> None:
    first, mtimes, second = batch
    assert first.status == "incomplete"
    assert first.counts.get("lost", 0) >= 1
    assert first.exit_code == 1
    assert second.status == "done"
    assert second.counts == {"done": 12}
    assert second.exit_code == 0
    manifest = load_manifest(second.batch_dir)
    killed = manifest.jobs[4]
    assert killed.status == "done"
    assert killed.attempts == 2
    # Finished jobs were not repeated: one attempt each, output untouched by the resume.
    for job in manifest.jobs:
        if job.key in mtimes:
            assert job.attempts == 1
            assert os.path.getmtime(job.output_path or "") == mtimes[job.key]
    # A lost attempt is charged its whole allotment, and the total stays within the limit.
    assert killed.spend_usd >= CAP
    assert manifest.spent_usd <= BUDGET
    done_spend = sum(Decimal("0.01") * (1 + i % 3) for i in range(12))
    assert manifest.spent_usd >= done_spend
    assert (Path(second.batch_dir) / "results.parquet").is_file()
    assert (Path(second.batch_dir) / "report.html").is_file()


@pytest.mark.slow
def test_pool_batch_killed_job_resumes_without_repeating(pool_batch: Any) -> None:
    """12 jobs on a 2-worker pool: a killed job is lost, --resume completes only what is left."""
    _check(pool_batch)


@pytest.mark.slow
def test_dask_batch_killed_job_resumes_without_repeating(dask_batch: Any) -> None:
    """12 jobs on a 2-worker Dask LocalCluster: a killed worker's job is re-run by --resume."""
    _check(dask_batch)


@pytest.mark.slow
def test_batch_budget_runs_out_and_total_stays_within(tmp_path: Path) -> None:
    """A batch budget too small for every job stops the batch (exit 3); spend <= limit."""
    result = run_batch(NOTEBOOKS / "spend.ipynb", {"cost": [0.01], "calls": [3, 3, 3, 3]},
                       workers=2, budget_usd="0.07", wall_s=60.0, out=tmp_path, quiet=True,
                       report=False)
    manifest = load_manifest(result.batch_dir)
    assert manifest.spent_usd <= Decimal("0.07")
    statuses = [j.status for j in manifest.jobs]
    assert statuses[:2] == ["done", "done"]
    assert "done" not in statuses[2:]
    assert result.exit_code == 3
