"""The kernel side of a job: settings, the root budget scope, and the atomic ledger."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

from agentnb.core import BudgetExceeded, ConfigError, Usage, resolve
from agentnb.runtime import _job, use_scope
from agentnb.runtime._job import JobContext, job_context, read_ledger


def _ctx(tmp_path: Path, **limits: object) -> JobContext:
    settings = resolve(env={}, job_id="job_t", job_dir=tmp_path / "job", **limits)
    return JobContext.from_settings(settings)


def test_settings_read_job_variables_and_none(tmp_path: Path) -> None:
    """AGENTNB_JOB_* are converted to their types; empty values mean None."""
    env = {"AGENTNB_JOB_ID": "j1", "AGENTNB_JOB_DIR": str(tmp_path), "AGENTNB_JOB_BUDGET_USD":
           "0.25", "AGENTNB_JOB_MAX_STEPS": "7", "AGENTNB_JOB_WALL_S": "", "AGENTNB_JOB_KIND":
           "batch"}
    s = resolve(env=env)
    assert (s.job_id, s.job_dir, s.job_budget_usd, s.job_max_steps, s.job_wall_s, s.job_kind) == (
        "j1", tmp_path, Decimal("0.25"), 7, None, "batch")
    assert resolve(env={}).job_id is None


@pytest.mark.parametrize(("var", "value"), [("AGENTNB_JOB_MAX_STEPS", "many"),
                                            ("AGENTNB_JOB_BUDGET_USD", "-1"),
                                            ("AGENTNB_JOB_WALL_S", "soon")])
def test_settings_reject_bad_job_values(var: str, value: str) -> None:
    """A bad job variable is a ConfigError naming the variable."""
    with pytest.raises(ConfigError, match=var):
        resolve(env={var: value})


def test_scope_limits_and_kind(tmp_path: Path) -> None:
    """The root scope carries the job's usd, steps and wall time; batch jobs have kind batch."""
    ctx = _ctx(tmp_path, job_budget_usd="0.10", job_max_steps=3, job_wall_s=60.0)
    assert ctx.scope.kind == "notebook"
    assert (ctx.scope.limits.usd, ctx.scope.limits.steps, ctx.scope.limits.wall_s) == (
        Decimal("0.10"), 3, 60.0)
    batch = JobContext.from_settings(resolve(env={}, job_id="b", job_dir=tmp_path / "b",
                                             job_kind="batch"))
    assert batch.scope.kind == "batch"


def test_ledger_counts_spend_through_scope_and_stops_on_budget(tmp_path: Path) -> None:
    """Spend in the scope lands in the ledger; a budget-stopped run marks budget_stopped."""
    ctx = _ctx(tmp_path, job_budget_usd="0.05")
    ctx.scope.reserve(usd=Decimal("0.03"), model_calls=1, steps=1).settle()
    with pytest.raises(BudgetExceeded):
        ctx.scope.reserve(usd=Decimal("0.03"))
    run = SimpleNamespace(run_id="run_1", status="stopped", stop_reason="budget",
                          usage=Usage(input_tokens=1, output_tokens=1, usd=Decimal("0.03")),
                          steps=(1,))
    ledger = ctx.record_run(run)
    assert ledger.budget_stopped
    assert ledger.stop_reason == "budget"
    on_disk = read_ledger(ctx.job_dir)
    assert on_disk is not None
    assert (on_disk.spent_usd, on_disk.steps, on_disk.model_calls) == (Decimal("0.03"), 1, 1)
    assert [r.run_id for r in on_disk.runs] == ["run_1"]


def test_a_runs_own_budget_stop_does_not_stop_the_job(tmp_path: Path) -> None:
    """A run that hit its own Budget stops alone; the job goes on."""
    ctx = _ctx(tmp_path, job_budget_usd="0.05")
    run = SimpleNamespace(run_id="run_own", status="stopped", stop_reason="budget",
                          usage=Usage(usd=Decimal("0.001")), steps=(1,))
    ledger = ctx.record_run(run, stopped_by_job=False)
    assert not ledger.budget_stopped
    assert ledger.stop_reason is None


def test_record_run_twice_counts_once(tmp_path: Path) -> None:
    """A run recorded by the runtime and again by notebook code is one ledger entry."""
    ctx = _ctx(tmp_path)
    run = SimpleNamespace(run_id="run_x", status="done", stop_reason=None, usage=Usage(),
                          steps=())
    ctx.record_run(run)
    assert len(ctx.record_run(run).runs) == 1
    assert not ctx.ledger().budget_stopped


def test_ledger_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    """Repeated flushes leave exactly one ledger file and no temporaries."""
    ctx = _ctx(tmp_path)
    for _ in range(20):
        ctx.flush()
    assert sorted(p.name for p in ctx.job_dir.iterdir()) == ["ledger.json"]


def test_post_cell_hook_marks_budget_stop_from_cell_error(tmp_path: Path) -> None:
    """A cell that raised BudgetExceeded marks the ledger budget_stopped."""
    ctx = _ctx(tmp_path, job_budget_usd="0")
    with pytest.raises(BudgetExceeded) as info:
        ctx.scope.reserve(usd=Decimal("0.01"))
    ctx._post_run_cell(SimpleNamespace(error_in_exec=info.value))
    ledger = read_ledger(ctx.job_dir)
    assert ledger is not None
    assert ledger.budget_stopped
    assert ledger.cells == 1


def test_job_context_is_built_once_from_environment(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """job_context() is None outside a job and one shared object inside."""
    _job._reset_for_tests()
    assert job_context() is None
    _job._reset_for_tests()
    monkeypatch.setenv("AGENTNB_JOB_ID", "job_env")
    monkeypatch.setenv("AGENTNB_JOB_DIR", str(tmp_path / "j"))
    try:
        ctx = job_context()
        assert ctx is not None
        assert ctx is job_context()
        assert ctx.job_id == "job_env"
        assert (tmp_path / "j" / "ledger.json").is_file()
        with use_scope(ctx.scope):
            assert _job.job_scope() is ctx.scope
    finally:
        _job._reset_for_tests()


def test_read_ledger_of_garbage_is_none(tmp_path: Path) -> None:
    """A missing or half-written ledger reads as None, not an exception."""
    assert read_ledger(tmp_path) is None
    (tmp_path / "ledger.json").write_text("{not json", encoding="utf-8")
    assert read_ledger(tmp_path) is None


def test_post_cell_hook_writes_the_cells_finished_spans(tmp_path: Path) -> None:
    """Spans that finished in a cell are on disk when the cell's hook returns, not only at the
    kernel's exit (a kernel that hangs on its way out is ended by SIGTERM, before atexit)."""
    import sqlite3

    from agentnb.tracing import _spans, configure, tracer

    configure(resolve(home=tmp_path / "home"))
    try:
        tracer().start_span("cell work", attributes={"agentnb.kind": "step"}).end()
        assert len(_spans._state().processor.queue) == 1  # waiting for the writer thread
        ctx = _ctx(tmp_path)
        ctx._post_run_cell(SimpleNamespace(error_in_exec=None))
        assert not _spans._state().processor.queue
        with sqlite3.connect(tmp_path / "home" / "traces.db") as conn:  # no flush on reading
            assert conn.execute("SELECT name FROM spans").fetchall() == [("cell work",)]
    finally:
        configure(resolve())
