"""`run_notebook` in a real kernel through papermill and the `agentnb` engine."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from agentnb.core import JobFailed, NotebookInvalid, RunStopped, UsageError
from agentnb.jobs import JobResult, run_notebook

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


def _run(name: str, tmp_path: Path, **kw: object) -> tuple[JobResult, nbformat.NotebookNode]:
    out = tmp_path / f"{name}-out.ipynb"
    result = run_notebook(NOTEBOOKS / f"{name}.ipynb", out, **kw)  # type: ignore[arg-type]
    return result, nbformat.read(str(out), as_version=4)


def test_ok_notebook_with_parameters(tmp_path: Path) -> None:
    """A passing notebook exits 0; parameters reach the kernel; cells carry agentnb metadata."""
    result, nb = _run("ok", tmp_path, parameters={"n": 3})
    assert (result.status, result.exit_code, result.failed_cell) == ("done", 0, None)
    assert nb.cells[-1].outputs[0]["data"]["text/plain"] == "63"
    assert all(c.metadata["agentnb"]["status"] == "ok" for c in nb.cells)
    assert nb.metadata["agentnb"]["status"] == "done"
    assert (Path(result.job_dir or "") / "ledger.json").exists() is False  # agentnb unused


def test_raises_in_cell_3_points_at_the_cell(tmp_path: Path) -> None:
    """A cell error fails the job (exit 1) naming the input notebook's cell index and error."""
    result, nb = _run("raises_cell3", tmp_path)
    assert (result.status, result.exit_code, result.failed_cell) == ("failed", 1, 3)
    assert result.error == "ValueError: bad value 2"
    statuses = [c.metadata.get("agentnb", {}).get("status") for c in nb.cells
                if c.cell_type == "code"]
    assert statuses == ["ok", "ok", "ok", "error", "skipped"]
    with pytest.raises(JobFailed) as info:
        result.raise_for_status()
    assert info.value.cell_index == 3
    assert info.value.ename == "ValueError"


def test_sys_exit_0_is_success_and_stops_early(tmp_path: Path) -> None:
    """`sys.exit(0)` ends the job successfully; later cells do not run."""
    result, nb = _run("exit0", tmp_path)
    assert (result.status, result.exit_code) == ("done", 0)
    assert nb.cells[-1].metadata["agentnb"]["status"] == "skipped"
    assert nb.cells[-1].outputs == []


def test_sys_exit_1_is_a_failure(tmp_path: Path) -> None:
    """`sys.exit(1)` fails the job at that cell."""
    result, _ = _run("exit1", tmp_path)
    assert (result.status, result.exit_code, result.failed_cell) == ("failed", 1, 1)
    assert result.error == "SystemExit: 1"


def test_no_parameters_cell_injects_at_top(tmp_path: Path) -> None:
    """Without a parameters cell the notebook still runs (parameters go on top)."""
    result, nb = _run("no_params", tmp_path)
    assert result.exit_code == 0
    assert nb.cells[-1].outputs[0]["data"]["text/plain"] == "42"


def test_v3_notebook_runs_upgraded(tmp_path: Path) -> None:
    """A v3 notebook is upgraded and executed."""
    result, nb = _run("v3_format", tmp_path)
    assert result.exit_code == 0
    assert nb.nbformat == 4
    assert nb.cells[0].outputs[0]["data"]["text/plain"] == "1"


@pytest.mark.parametrize("name", ["invalid_schema", "duplicate_ids"])
def test_invalid_notebooks_are_refused_before_a_kernel(name: str, tmp_path: Path) -> None:
    """Schema errors and duplicate cell ids raise NotebookInvalid (exit 2); nothing is written."""
    with pytest.raises(NotebookInvalid):
        run_notebook(NOTEBOOKS / f"{name}.ipynb", tmp_path / "out.ipynb")
    assert not (tmp_path / "out.ipynb").exists()


@pytest.mark.parametrize(("params", "named"), [({"nope": 1}, "nope"), ({"n": "x"}, "n")])
def test_bad_parameters_name_the_parameter(params: dict[str, object], named: str,
                                           tmp_path: Path) -> None:
    """An unknown parameter or a wrong type is a UsageError naming it."""
    with pytest.raises(UsageError, match=repr(named)):
        run_notebook(NOTEBOOKS / "ok.ipynb", tmp_path / "out.ipynb", parameters=params)


def test_bad_limits_and_approvals_are_usage_errors(tmp_path: Path) -> None:
    """Negative budgets and an approvals value that is not deny/allow/a file are refused."""
    with pytest.raises(UsageError, match="budget_usd"):
        run_notebook(NOTEBOOKS / "ok.ipynb", budget_usd="-1")
    with pytest.raises(UsageError, match="approvals"):
        run_notebook(NOTEBOOKS / "ok.ipynb", approvals=str(tmp_path / "missing.yaml"))


def test_over_budget_stops_with_spend_within_limit(tmp_path: Path) -> None:
    """A job that would pass its budget stops (exit 3); spend <= budget; per-cell spend recorded."""
    result, nb = _run("over_budget", tmp_path, budget_usd="0.05")
    assert (result.status, result.stop_reason, result.exit_code) == ("stopped", "budget", 3)
    assert Decimal(0) < result.spend_usd <= Decimal("0.05")
    cells = [c.metadata["agentnb"] for c in nb.cells if c.cell_type == "code"]
    assert [c["status"] for c in cells] == ["ok", "ok", "ok", "stopped", "skipped"]
    assert cells[2]["spend_usd"] == pytest.approx(0.02)
    assert cells[2]["steps"] == 2
    assert result.failed_cell == 3
    assert sum(c["spend_usd"] for c in cells) == pytest.approx(float(result.spend_usd))
    assert nb.metadata["agentnb"]["spend_usd"] == pytest.approx(float(result.spend_usd))
    with pytest.raises(RunStopped):
        result.raise_for_status()


def test_max_steps_limits_the_job(tmp_path: Path) -> None:
    """`max_steps` is a job-wide limit too."""
    result, _ = _run("over_budget", tmp_path, max_steps=3)
    assert (result.status, result.stop_reason, result.steps) == ("stopped", "budget", 3)


@pytest.mark.slow
def test_wall_time_stops_the_whole_notebook(tmp_path: Path) -> None:
    """A notebook past its wall time is stopped (exit 3, wall_time); the output is readable."""
    result, nb = _run("slow", tmp_path, wall_s=4.0)
    assert (result.status, result.stop_reason, result.exit_code) == ("stopped", "wall_time", 3)
    assert result.duration_s < 15
    assert not result.spend_exact
    assert nb.cells[-1].metadata["agentnb"]["status"] == "skipped"


def test_needs_approval_is_denied_headless(tmp_path: Path) -> None:
    """Under a job, a tool needing approval is decided by `approvals=` (deny) without blocking."""
    import agentnb

    if not hasattr(agentnb, "Agent"):
        pytest.skip("needs the runtime's anb.Agent")
    result, nb = _run("needs_approval", tmp_path, budget_usd="1.0", wall_s=60.0)
    assert result.exit_code == 0, result.error
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert text.split()[0] in {"done", "stopped"}


def test_the_kernel_talks_over_unix_sockets_not_tcp(tmp_path: Path) -> None:
    """A job's kernel uses IPC sockets in a folder of its own (kernels started together cannot
    race for the same TCP port), and the folder is removed when the job ends."""
    import tempfile

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from ipykernel.kernelapp import IPKernelApp\n"
        "app = IPKernelApp.instance()\n"
        "app.transport, app.ip")]
    path = tmp_path / "transport.ipynb"
    nbformat.write(nb, str(path))
    # Folders are named after the process that makes them: other processes' (a concurrent
    # test run) may come and go meanwhile.
    mine = f"agentnb-kernel-{os.getpid()}-*"
    before = set(Path(tempfile.gettempdir()).glob(mine))
    result = run_notebook(path, tmp_path / "out.ipynb")
    assert result.exit_code == 0
    out = nbformat.read(str(tmp_path / "out.ipynb"), as_version=4)
    transport, ip = eval(out.cells[-1].outputs[0]["data"]["text/plain"])  # a tuple's repr
    assert transport == "ipc"
    assert Path(ip).parent.name.startswith(f"agentnb-kernel-{os.getpid()}-")
    assert not Path(ip).parent.exists()
    assert set(Path(tempfile.gettempdir()).glob(mine)) <= before


def test_kernel_folders_left_by_killed_workers_are_removed() -> None:
    """A worker killed with its kernel leaves its socket folder; the next job's kernel removes
    it once the process is gone and the folder is over a minute old, and nothing else."""
    import shutil
    import subprocess
    import sys
    import tempfile
    import time

    from agentnb.jobs._engine import kernel_dir

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    tmp = Path(tempfile.gettempdir())
    stale = tmp / f"agentnb-kernel-{dead}-stale"
    young = tmp / f"agentnb-kernel-{dead}-young"
    alive = tmp / f"agentnb-kernel-{os.getppid()}-alive"
    odd = tmp / "agentnb-kernel-notapid-x"
    # The older naming (no process id): removed once a day old, kept before.
    old_format = tmp / f"agentnb-kernel-oldfmt{os.getpid()}"
    old_format_young = tmp / f"agentnb-kernel-oldfmty{os.getpid()}"
    made: list[Path] = []
    try:
        for folder in (stale, young, alive, odd, old_format, old_format_young):
            folder.mkdir()
            made.append(folder)
            (folder / "k-1").write_text("")
        old = time.time() - 3600
        for folder in (stale, alive, odd, old_format_young):
            os.utime(folder, (old, old))
        os.utime(old_format, (old - 86_400, old - 86_400))
        mine = Path(kernel_dir())
        made.append(mine)
        assert mine.name.startswith(f"agentnb-kernel-{os.getpid()}-")
        assert not stale.exists()
        assert young.exists()
        assert alive.exists()
        assert odd.exists()
        assert not old_format.exists()
        assert old_format_young.exists()
    finally:
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)


def test_a_kernel_that_does_not_exit_is_ended_after_a_second() -> None:
    """jupyter_client sends SIGTERM half of `shutdown_wait_time` after the shutdown request;
    a job kernel's is SHUTDOWN_WAIT_S (2 s: 1 s), not jupyter_client's 5 s."""
    from agentnb.jobs import _engine

    client = _engine.AgentnbNotebookClient(SimpleNamespace(nb=nbformat.v4.new_notebook()))
    km = client.create_kernel_manager()
    assert km.shutdown_wait_time == _engine.SHUTDOWN_WAIT_S == 2.0
