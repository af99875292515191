"""One notebook job: validate, execute through papermill with the `agentnb` engine, report.

The parent process validates the notebook and the parameters, then starts the kernel with the
job's identity and limits in its environment (`AGENTNB_JOB_*`, `AGENTNB_APPROVALS`,
`AGENTNB_HEADLESS=1`). The kernel's runs draw from one budget scope (`agentnb.runtime._job`);
the engine reads the kernel's ledger between cells. The output notebook is always written.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from agentnb.core import ConfigError, JobFailed, NotebookInvalid, UsageError, new_id

__all__ = ["JobResult", "JobStatus", "load_params_file", "merge_params", "parse_param_value",
           "run_notebook"]

JobStatus = Literal["done", "failed", "stopped"]
"""How a job ended: finished, a cell failed, or a kill switch (budget, wall time, stop) ended it."""

_EXIT_CODES: dict[str, int] = {"done": 0, "failed": 1, "stopped": 3}


class JobResult(BaseModel):
    """What `run_notebook` returns (and what a batch records per job).

    Example:
        >>> r = JobResult(status="stopped", stop_reason="budget", exit_code=3, spend_usd="0.04",
        ...               steps=4, duration_s=2.5, output_path="out.ipynb")
        >>> r.ok, r.exit_code
        (False, 3)
    """

    model_config = ConfigDict(frozen=True)
    status: JobStatus
    """done, failed or stopped."""
    stop_reason: str | None = None
    """`budget`, `wall_time` or `stop_requested` for a stopped job."""
    exit_code: int
    """0 done, 1 failed, 3 stopped (API.md § Command line)."""
    spend_usd: Decimal = Decimal(0)
    """USD spent by every run in the kernel (exact, from the kernel's ledger)."""
    steps: int = 0
    """Run steps taken in the kernel."""
    duration_s: float = 0.0
    """Wall time of the job, kernel start included."""
    output_path: str
    """The executed notebook (always written)."""
    failed_cell: int | None = None
    """0-based index of the failing (or stopping) cell in the input notebook."""
    error: str | None = None
    """`EName: value` of the failing cell, or why the job stopped."""
    job_id: str = ""
    """The job's id (`AGENTNB_JOB_ID` in the kernel)."""
    job_dir: str | None = None
    """The job folder holding `ledger.json`."""
    parameters: dict[str, Any] = {}
    """The parameters the notebook ran with."""
    spend_exact: bool = True
    """False when the job ended without a final ledger (timeout, dead kernel): the spend may
    be higher than recorded, so a batch counts the whole allotment."""

    @property
    def ok(self) -> bool:
        """True when the notebook ran to the end."""
        return self.status == "done"

    def raise_for_status(self) -> None:
        """Raise `JobFailed` for a failed job and `RunStopped` (exit 3) for a stopped one."""
        from agentnb.core import RunStopped

        if self.status == "failed":
            where = f"cell {self.failed_cell}" if self.failed_cell is not None else "the kernel"
            raise JobFailed(
                f"Notebook job failed at {where}: {self.error}. Output: {self.output_path!r}.",
                notebook=self.output_path, cell_index=self.failed_cell,
                ename=(self.error or ":").split(":", 1)[0] or None,
                evalue=(self.error or ":").split(":", 1)[1].strip() or None)
        if self.status == "stopped":
            raise RunStopped(
                f"Notebook job stopped ({self.stop_reason}) after spending "
                f"${self.spend_usd:.6f}; output written to {self.output_path!r}.",
                reason=self.stop_reason or "budget",  # type: ignore[arg-type]
                hint="Raise `--budget-usd` / `--wall-s`, or lower the work per job.")


def parse_param_value(text: str) -> Any:
    """Parse a `-p NAME VALUE` value as a YAML scalar, like papermill does.

    Example:
        >>> parse_param_value("3"), parse_param_value("0.5"), parse_param_value("true")
        (3, 0.5, True)
        >>> parse_param_value("hello"), parse_param_value("[1, 2]")
        ('hello', [1, 2])
    """
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def load_params_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) mapping of parameters.

    Raises:
        UsageError: the file is missing, not YAML, or not a mapping.
    """
    from agentnb.jobs._manifest import read_yaml

    where = str(path)
    data = read_yaml(path, "parameters")
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise UsageError(f"Parameters file {where!r} must hold a mapping of names to values, "
                         f"not {type(data).__name__}.", hint="Write `name: value` lines.")
    return data


def merge_params(file_params: Mapping[str, Any] | None,
                 pairs: Mapping[str, Any] | None) -> dict[str, Any]:
    """`-p NAME VALUE` pairs win over a `-f params.yaml` file.

    Example:
        >>> merge_params({"a": 1, "b": 2}, {"b": 3})
        {'a': 1, 'b': 3}
    """
    return {**(file_params or {}), **(pairs or {})}


def _engine_registered() -> None:
    from papermill.engines import papermill_engines

    from agentnb.jobs._engine import engine_class

    # The entry point registers it when agentnb is installed; a source checkout may lack it.
    if papermill_engines._engines.get("agentnb") is not engine_class():
        papermill_engines.register("agentnb", engine_class())


def _approvals_spec(approvals: str) -> str:
    if approvals in ("deny", "allow"):
        return approvals
    path = Path(approvals)
    if not path.is_file():
        raise UsageError(f"--approvals {approvals!r} is neither `deny`, `allow` nor a file.",
                         hint="Pass `deny`, `allow`, or the path of a YAML rules file.")
    return str(path.resolve())


def job_env(*, job_id: str, job_dir: Path, budget_usd: Decimal | float | str | None,
            max_steps: int | None, wall_s: float | None, approvals: str,
            kind: str = "notebook", home: Path | None = None) -> dict[str, str]:
    """The environment variables a job's kernel starts with.

    With `home`, the kernel keeps its `traces.db`, `cache.db` and `audit/` there
    (`AGENTNB_HOME`). A `batch` job also gets the response cache (`AGENTNB_CACHE=1`): every
    attempt of the job shares its home, so a re-run attempt takes each model response the
    earlier one paid for from the cache, at no cost. Other jobs keep the user's setting.

    Example:
        >>> env = job_env(job_id="j", job_dir=Path("/tmp/j/a-1"), budget_usd=None,
        ...               max_steps=None, wall_s=None, approvals="deny", kind="batch",
        ...               home=Path("/tmp/j/home"))
        >>> env["AGENTNB_HOME"], env["AGENTNB_CACHE"]
        ('/tmp/j/home', '1')
    """
    env = {"AGENTNB_JOB_ID": job_id, "AGENTNB_JOB_DIR": str(job_dir),
           "AGENTNB_JOB_KIND": kind, "AGENTNB_APPROVALS": approvals, "AGENTNB_HEADLESS": "1"}
    if home is not None:
        env["AGENTNB_HOME"] = str(home)
    if kind == "batch":
        env["AGENTNB_CACHE"] = "1"
    for name, value in (("AGENTNB_JOB_BUDGET_USD", budget_usd),
                        ("AGENTNB_JOB_MAX_STEPS", max_steps), ("AGENTNB_JOB_WALL_S", wall_s)):
        env[name] = "" if value is None else str(value)
    return env


def _check_limits(budget_usd: Any, max_steps: Any, wall_s: Any) -> Decimal | None:
    usd: Decimal | None = None
    if budget_usd is not None:
        try:
            usd = Decimal(str(budget_usd))
        except ArithmeticError:
            usd = None
        if usd is None or not usd.is_finite() or usd < 0:
            raise UsageError(f"Budget budget_usd={budget_usd!r} is not an amount >= 0.",
                             hint="Pass e.g. `--budget-usd 0.50`.")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int)
                                  or max_steps < 0):
        raise UsageError(f"max_steps={max_steps!r} must be a whole number >= 0.")
    if wall_s is not None and (isinstance(wall_s, bool) or not isinstance(wall_s, (int, float))
                               or not wall_s > 0):
        raise UsageError(f"wall_s={wall_s!r} must be a number of seconds > 0.")
    return usd


def run_notebook(
    path: str | Path,
    out: str | Path | None = None,
    *,
    parameters: Mapping[str, Any] | None = None,
    budget_usd: Decimal | float | str | None = None,
    max_steps: int | None = None,
    wall_s: float | None = None,
    approvals: str = "deny",
    kernel_name: str | None = None,
    job_id: str | None = None,
    job_dir: str | Path | None = None,
    job_kind: Literal["notebook", "batch"] = "notebook",
    stop_file: str | Path | None = None,
    cwd: str | Path | None = None,
    home: str | Path | None = None,
) -> JobResult:
    """Execute a notebook as a budget-limited job and return how it ended.

    Args:
        path: The input notebook.
        out: Where to write the executed notebook; default `<stem>-out.ipynb` beside it.
        parameters: Values for the `parameters` cell (checked against it first).
        budget_usd: USD limit over every run in the kernel; None for none.
        max_steps: Step limit over every run in the kernel.
        wall_s: Whole-notebook wall time in seconds (kernel start included).
        approvals: `deny`, `allow` or a YAML rules file: how headless approvals are decided.
        kernel_name: The Jupyter kernel; default the notebook's own.
        job_id: The job's id; default a new one.
        job_dir: The folder for the job's ledger; default `<AGENTNB_HOME>/jobs/<job_id>`.
        job_kind: `batch` when the budget is an allotment granted by a batch.
        stop_file: A file whose appearance stops the job between cells (`agentnb stop`).
        cwd: The kernel's working directory; default the notebook's folder.
        home: The kernel's `AGENTNB_HOME` (its `traces.db`, `cache.db`, `audit/`); default
            the caller's. A batch gives each job one home shared by all its attempts.

    Returns:
        A `JobResult`; it does not raise for a failed or stopped job (see `raise_for_status`).

    Raises:
        NotebookInvalid: the notebook cannot be read or breaks the schema (exit 2).
        UsageError: an unknown parameter, a value of the wrong type, a bad limit (exit 2).

    Example:
        >>> import nbformat, tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> nb = nbformat.v4.new_notebook()
        >>> nb.cells.append(nbformat.v4.new_code_cell("n = 1", metadata={"tags": ["parameters"]}))
        >>> nb.cells.append(nbformat.v4.new_code_cell("n * 2"))
        >>> nbformat.write(nb, os.path.join(folder, "nb.ipynb"))
        >>> result = run_notebook(os.path.join(folder, "nb.ipynb"), parameters={"n": 2})
        >>> result.status, result.exit_code
        ('done', 0)
    """
    from agentnb.core import resolve
    from agentnb.jobs._validate import validate_notebook

    started = time.monotonic()
    params = dict(parameters or {})
    usd = _check_limits(budget_usd, max_steps, wall_s)
    spec = _approvals_spec(approvals)
    report = validate_notebook(path, params)
    report.raise_for_problems()
    source = Path(path)
    language: str | None = None
    if kernel_name is None:
        from agentnb.jobs._validate import read_notebook

        # Old notebooks (v3, hand-written ones) may name no kernel: use the default Python one.
        meta = read_notebook(source)[0].metadata
        kernel_name = (meta.get("kernelspec") or {}).get("name") or "python3"
        language = ((meta.get("kernelspec") or {}).get("language")
                    or (meta.get("language_info") or {}).get("name"))
        if language is None and kernel_name == "python3":
            language = "python"
    target = Path(out) if out is not None else source.with_name(f"{source.stem}-out.ipynb")
    target.parent.mkdir(parents=True, exist_ok=True)
    job_id = job_id or new_id("job")
    folder = Path(job_dir) if job_dir is not None else resolve().home / "jobs" / job_id
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    kernel_home: Path | None = None
    if home is not None:
        kernel_home = Path(home).expanduser().resolve()
        kernel_home.mkdir(parents=True, exist_ok=True)
    env = job_env(job_id=job_id, job_dir=folder, budget_usd=usd, max_steps=max_steps,
                  wall_s=wall_s, approvals=spec, kind=job_kind, home=kernel_home)
    try:
        import papermill
        from papermill.exceptions import PapermillExecutionError
    except ImportError:
        raise ConfigError("Running notebooks needs papermill, which is not installed.",
                          hint="pip install 'agentnb[jobs]'") from None
    _engine_registered()
    error: PapermillExecutionError | None = None
    nb: Any = None
    try:
        nb = papermill.execute_notebook(
            str(source), str(target), parameters=params, engine_name="agentnb",
            kernel_name=kernel_name, language=language, progress_bar=False, log_output=False,
            cwd=str(cwd) if cwd is not None else str(source.resolve().parent),
            agentnb_env=env, agentnb_job_dir=str(folder), agentnb_wall_s=wall_s,
            agentnb_stop_file=str(stop_file) if stop_file else None,
        )
    except PapermillExecutionError as exc:
        error = exc
    except Exception as exc:
        # A kernel that never started, or died in a way nbclient reports outside a cell.
        raise JobFailed(f"Notebook {str(source)!r} could not be executed: "
                        f"{type(exc).__name__}: {exc}", notebook=str(target),
                        ename=type(exc).__name__, evalue=str(exc)) from None
    return _result(nb, target, error, job_id=job_id, job_dir=folder, params=params,
                   duration_s=time.monotonic() - started)


def _read_output(target: Path) -> Any:
    import nbformat

    try:
        return nbformat.read(str(target), as_version=4)
    except (OSError, ValueError) as exc:
        raise NotebookInvalid(f"The output notebook {str(target)!r} cannot be read: {exc}",
                              path=str(target)) from None


def _result(nb: Any, target: Path, error: Any, *, job_id: str, job_dir: Path,
            params: dict[str, Any], duration_s: float) -> JobResult:
    from agentnb.jobs._engine import STOP_ENAMES

    if nb is None:
        nb = _read_output(target)
    meta = dict(nb.metadata.get("agentnb") or {})
    status: str = meta.get("status") or "done"
    stop_reason = meta.get("stop_reason")
    failed_cell = meta.get("failed_cell")
    message: str | None = None
    if meta.get("ename"):
        message = f"{meta['ename']}: {meta.get('evalue') or ''}".strip()
    if error is not None and status == "done":
        # papermill found an error output the engine did not classify (e.g. a re-raised one).
        ename = getattr(error, "ename", "Error")
        if ename in STOP_ENAMES:
            status, stop_reason = "stopped", STOP_ENAMES[ename]
        else:
            status = "failed"
        failed_cell = getattr(error, "cell_index", None)
        message = f"{ename}: {getattr(error, 'evalue', '')}"
    if status == "stopped" and message is None:
        message = f"stopped: {stop_reason}"
    exact = not (status == "stopped" and stop_reason == "wall_time") and not (
        status == "failed" and meta.get("ename") == "DeadKernelError")
    if failed_cell is not None:
        # The engine counts papermill's injected-parameters cell; report the input's index.
        cells = [c for c in nb.cells if "papermill-error-cell-tag"
                 not in (c.get("metadata", {}).get("tags") or [])]
        injected = [i for i, c in enumerate(cells)
                    if "injected-parameters" in (c.get("metadata", {}).get("tags") or [])]
        if injected and injected[0] < failed_cell:
            failed_cell -= 1
    return JobResult(
        status=status,  # type: ignore[arg-type]
        stop_reason=stop_reason, exit_code=_EXIT_CODES[status],
        spend_usd=Decimal(str(meta.get("spend_usd_exact") or meta.get("spend_usd") or 0)),
        steps=int(meta.get("steps") or 0),
        duration_s=round(duration_s, 3), output_path=str(target), failed_cell=failed_cell,
        error=message, job_id=job_id, job_dir=str(job_dir), parameters=params,
        spend_exact=exact,
    )
