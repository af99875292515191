"""A batch in real kernels: per-job homes, the response cache on resume, merged traces and audit.

One batch of two jobs runs real agents (`sim:expert` with a `read` tool, so every run writes
audit records). Job 1 kills its worker after its first cell has paid for some model calls;
`--resume` re-runs it in the same job home, where those calls come from the cache.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat import v4

from agentnb.governance import AuditLog, merge_audit
from agentnb.governance.audit import iter_records, verify
from agentnb.jobs import load_manifest, run_batch
from agentnb.jobs._collect import job_home
from agentnb.runtime._job import read_ledger
from agentnb.tracing import merge_store, traces
from agentnb.tracing import semconv as sc

BUDGET = Decimal("0.50")
CAP = Decimal("0.10")

AGENT = '''\
import agentnb as anb


@anb.tool(effects={'read'})
def lookup(key: str) -> str:
    """Look a key up."""
    return f'value-{key}'


agent = anb.Agent(model='sim:expert', tools=[lookup], policy=anb.Policy(allow={'read'}))
first = [agent.run(f'What does key {i} hold?').output for i in range(n)]
'''
KILL = '''\
import os
import signal
import time

if kill_marker and not os.path.exists(kill_marker):
    open(kill_marker, 'w').close()
    os.kill(os.getppid(), signal.SIGKILL)  # the worker dies mid-job, after the first cell paid
    time.sleep(30)
'''
SECOND = "second = [agent.run(f'What does key {i} hold?').output for i in range(n, 2 * n)]"


def _notebook(folder: Path) -> Path:
    cells = [v4.new_code_cell("n = 2\nkill_marker = ''", metadata={"tags": ["parameters"]}),
             v4.new_code_cell(AGENT), v4.new_code_cell(KILL), v4.new_code_cell(SECOND)]
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"agents-{index}"
    path = folder / "agents.ipynb"
    nbformat.write(nb, str(path))
    return path


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two jobs on one worker: job 1 is killed after its first cell; then `--resume`."""
    tmp = tmp_path_factory.mktemp("merge")
    notebook = _notebook(tmp)
    rows = [{"n": 2, "kill_marker": str(tmp / "killed.marker")}, {"n": 2}]
    first = run_batch(notebook, rows, workers=1, budget_usd=BUDGET, job_budget_usd=CAP,
                      wall_s=90.0, out=tmp / "runs", quiet=True, report=False)
    lost = load_manifest(first.batch_dir).jobs[0].model_copy(deep=True)
    second = run_batch(notebook, workers=1, out=tmp / "runs", resume=first.batch_id, quiet=True)
    return {"first": first, "lost": lost, "second": second,
            "batch_dir": Path(second.batch_dir)}


def _model_spans(batch_dir: Path, run_ids: list[str]) -> list[dict[str, Any]]:
    from agentnb.tracing import store

    marks = ",".join("?" * len(run_ids))
    rows = store(batch_dir).query(
        f"SELECT attributes FROM spans WHERE kind = 'model_call' AND run_id IN ({marks})",
        run_ids)
    return [json.loads(r[0]) for r in rows]


@pytest.mark.slow
def test_resumed_job_never_repays_a_call_the_killed_attempt_paid(batch: dict[str, Any]) -> None:
    """The killed attempt's paid calls come from the job's cache on resume, at zero cost."""
    first, lost, second = batch["first"], batch["lost"], batch["second"]
    batch_dir: Path = batch["batch_dir"]
    assert first.counts == {"lost": 1, "done": 1}
    assert second.counts == {"done": 2}
    manifest = load_manifest(batch_dir)
    job = manifest.jobs[0]
    assert job.attempts == 2
    assert job.merge_error is None
    jobs = batch_dir / "jobs" / job.key
    paid_before = read_ledger(jobs / "attempt-1")
    paid_after = read_ledger(jobs / "attempt-2")
    assert paid_before is not None
    assert paid_after is not None
    assert paid_before.model_calls >= 2  # the first cell's runs were paid, then the worker died
    # Attempt 2 ran the same first cell again: every one of those calls was a cache hit.
    resumed = [r for r in job.run_ids if r not in lost.run_ids]
    assert len(lost.run_ids) == 2
    assert len(resumed) == 4
    spans = _model_spans(batch_dir, resumed)
    hits = [a for a in spans if a.get(sc.AGENTNB_CACHE_HIT)]
    assert len(hits) == paid_before.model_calls
    assert all(not a.get(sc.AGENTNB_COST_USD) for a in hits)
    # Only the calls nobody had paid for were paid by the resumed attempt.
    assert paid_after.model_calls == len(spans) - len(hits)
    paid_costs = sum(Decimal(str(a.get(sc.AGENTNB_COST_USD) or 0)) for a in spans
                     if not a.get(sc.AGENTNB_CACHE_HIT))
    assert paid_costs > 0
    assert paid_after.spent_usd == pytest.approx(paid_costs, abs=Decimal("0.000001"))
    # The lost attempt was charged its whole allotment; the batch stays within its limit.
    assert job.spend_usd >= CAP
    assert manifest.spent_usd <= BUDGET


@pytest.mark.slow
def test_batch_traces_hold_every_job_and_merging_is_idempotent(batch: dict[str, Any]) -> None:
    """`runs/<id>/traces.db` holds every run of every job; merging a job again adds nothing."""
    batch_dir: Path = batch["batch_dir"]
    manifest = load_manifest(batch_dir)
    frame = traces(home=batch_dir)
    merged = set(frame["run_id"])
    expected = {r for j in manifest.jobs for r in j.run_ids}
    assert len(expected) == 6 + 4  # job 1: 2 lost + 4 resumed runs; job 2: 4 runs
    assert merged == expected
    for job in manifest.jobs:
        home = job_home(batch_dir, job.key)
        assert set(traces(home=home)["run_id"]) == set(job.run_ids)
        assert merge_store(home, batch_dir) == 0
    assert set(traces(home=batch_dir)["run_id"]) == expected
    assert "run_ids" in __import__("pandas").read_parquet(batch_dir / "results.parquet").columns


@pytest.mark.slow
def test_merged_audit_chain_verifies_and_holds_every_job(batch: dict[str, Any]) -> None:
    """The batch's audit chain verifies, tags records by job, and a second merge adds nothing."""
    batch_dir: Path = batch["batch_dir"]
    path = batch_dir / "audit" / "audit.jsonl"
    assert verify(path).ok
    records = list(iter_records(path))
    by_job: dict[str, int] = {}
    for record in records:
        by_job[record["source"]] = by_job.get(record["source"], 0) + 1
    manifest = load_manifest(batch_dir)
    for job in manifest.jobs:
        source = job_home(batch_dir, job.key) / "audit" / "audit.jsonl"
        assert verify(source).ok
        assert by_job[job.key] == verify(source).records > 0
        assert merge_audit(source, AuditLog(path, redactor=None), source=job.key) == 0
    assert verify(path).records == len(records)
    run_ids = {r for j in manifest.jobs for r in j.run_ids}
    assert {r["run_id"] for r in records if "run_id" in r} <= run_ids
