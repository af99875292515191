"""The `agentnb` command: parse, call the public API, map errors to exit codes. No logic here."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from agentnb.core import AgentnbError, JobFailed, NotebookInvalid, RunStopped, UsageError

F = TypeVar("F", bound=Callable[..., Any])

# One table: which error ends the command with which exit code (API.md § Command line).
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (RunStopped, 3),
    (NotebookInvalid, 2),
    (UsageError, 2),
    (JobFailed, 1),
    (AgentnbError, 1),
)


def _exit_code(exc: BaseException) -> int:
    for kind, code in EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return 1


def _handle_errors(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AgentnbError as exc:
            click.echo(f"agentnb: {type(exc).__name__}: {exc}", err=True)
            sys.exit(_exit_code(exc))

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="agentnb")
def cli() -> None:
    """agentnb: LLM agents from a notebook prototype to a budget-limited batch job."""


@cli.command()
@click.option("--model", default="sim:careful", show_default=True,
              help="Model as provider:model; sim: models run offline.")
@click.option("--task", default="What does key 7 hold in the catalogue?", show_default=True,
              help="The task for the demo agent.")
@_handle_errors
def demo(model: str, task: str) -> None:
    """Run the offline demo: an agent with a tool answers a task on a sim: model."""
    from agentnb._demo import run_demo

    run_demo(model=model, task=task, echo=click.echo)


@cli.command()
@click.argument("run_or_batch_id")
@click.option("--out", default="runs", show_default=True,
              help="The folder holding batch folders.")
@_handle_errors
def stop(run_or_batch_id: str, out: str) -> None:
    """Ask a running run (or batch) to stop at its next step (a batch: between cells)."""
    from pathlib import Path

    batch_dir = Path(out) / run_or_batch_id
    if (batch_dir / "manifest.json").is_file():
        from agentnb.jobs import request_batch_stop

        request_batch_stop(batch_dir)
        click.echo(f"Stop requested for batch {run_or_batch_id}.")
        return
    try:
        from agentnb.runtime import request_stop  # type: ignore[attr-defined]
    except ImportError:
        from agentnb.runtime import run_store

        request_stop = run_store().request_stop
    request_stop(run_or_batch_id)
    click.echo(f"Stop requested for {run_or_batch_id}.")


@cli.command()
@click.option("--run", "run_id", default=None, help="Show the spans of one run.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "otlp"]), default="table",
              show_default=True, help="otlp: send the spans to --endpoint instead of printing.")
@click.option("--limit", default=50, show_default=True, help="Most recent runs to list.")
@click.option("--endpoint", default=None,
              help="OTLP/HTTP traces endpoint for --format otlp (default AGENTNB_OTLP_ENDPOINT).")
@_handle_errors
def traces(run_id: str | None, fmt: str, limit: int, endpoint: str | None) -> None:
    """List stored runs, or the spans of one run; or export them over OTLP."""
    from agentnb import tracing

    if fmt == "otlp":
        ids = [run_id] if run_id else list(tracing.traces(limit=limit)["run_id"])
        sent = tracing.export_stored(ids, endpoint=endpoint)
        click.echo(f"Exported {sent} spans of {len(ids)} runs over OTLP.")
        return

    frame = tracing.spans(run_id) if run_id else tracing.traces(limit=limit)
    click.echo(tracing.format_traces(frame, fmt="json" if fmt == "json" else "table"))


@cli.command()
@click.argument("run_id")
@_handle_errors
def replay(run_id: str) -> None:
    """Re-execute a run from its recorded responses; exit 1 if it diverges."""
    from agentnb.runtime import replay as replay_run

    result = replay_run(run_id)
    click.echo(f"Replayed {run_id}: {len(result.steps)} steps, identical trajectory.")


@cli.group()
def audit() -> None:
    """Inspect the hash-chained audit log."""


@audit.command("verify")
@click.argument("path", required=False)
@_handle_errors
def audit_verify(path: str | None) -> None:
    """Verify an audit log's hash chain; exit 1 at the first bad line."""
    from pathlib import Path

    from agentnb.core import resolve
    from agentnb.governance import audit as audit_module

    target = Path(path) if path else resolve().home / "audit" / "audit.jsonl"
    report = audit_module.verify(target)
    if report.ok:
        click.echo(f"{target}: OK, {report.records} records, chain intact.")
        return
    click.echo(f"{target}: BROKEN at line {report.line}: {report.problem}", err=True)
    sys.exit(1)


# -- notebook jobs (layer 7) ----------------------------------------------------------------

_BUDGET_USD = click.option("--budget-usd", type=str, default=None,
                           help="USD limit over every run in the kernel (a batch: in total).")
_MAX_STEPS = click.option("--max-steps", type=click.IntRange(min=0), default=None,
                          help="Step limit over every run in the kernel (per job).")
_WALL_S = click.option("--wall-s", type=click.FloatRange(min=0, min_open=True), default=None,
                       help="Whole-notebook wall time in seconds (per job).")
_APPROVALS = click.option("--approvals", default="deny", show_default=True,
                          help="Headless approvals: deny, allow, or a YAML rules file.")
_KERNEL = click.option("--kernel", "kernel_name", default=None,
                       help="Jupyter kernel name; default the notebook's own.")


def _params(pairs: tuple[tuple[str, str], ...], files: tuple[str, ...]) -> dict[str, Any]:
    from agentnb.jobs import load_params_file, merge_params, parse_param_value

    merged: dict[str, Any] = {}
    for path in files:
        merged = merge_params(merged, load_params_file(path))
    return merge_params(merged, {name: parse_param_value(value) for name, value in pairs})


@cli.command()
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.option("-p", "--parameter", "pairs", type=(str, str), multiple=True,
              metavar="NAME VALUE", help="Check a parameter value against the notebook.")
@click.option("-f", "--parameters-file", "files", multiple=True, type=click.Path(),
              help="A YAML file of parameters to check (`-p` wins).")
@click.option("--suite", default=None, metavar="FILE.py:NAME|MODULE:NAME",
              help="Gate promotion: run this eval suite and stamp the notebook's provenance "
              "only when it passes (exit 1 otherwise).")
@click.option("--model", "models", multiple=True,
              help="With --suite: a model to evaluate (repeatable); default the suite's.")
@click.option("--repeats", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --suite: runs per scenario and model.")
@click.option("--suite-budget-usd", type=float, default=None,
              help="With --suite: USD limit for the suite run.")
@click.option("--baseline", type=click.Path(dir_okay=False), default=None,
              help="With --suite: a saved report the run must not regress against.")
@_handle_errors
def validate(*, notebook: str, pairs: tuple[tuple[str, str], ...], files: tuple[str, ...],
             suite: str | None, models: tuple[str, ...], repeats: int,
             suite_budget_usd: float | None, baseline: str | None) -> None:
    """Validate a notebook: schema, cell ids, the parameters cell; exit 1 with reasons.

    With --suite, also run an eval suite and stamp the notebook with a provenance hash
    (notebook, parameters, model ids, price table version) only when the suite passes.
    """
    from agentnb.jobs import validate_notebook

    try:
        report = validate_notebook(notebook, _params(pairs, files))
    except NotebookInvalid as exc:
        click.echo(f"{notebook}: INVALID: {exc}", err=True)
        sys.exit(1)
    for problem in report.problems:
        click.echo(f"{notebook}: {problem}", err=problem.severity == "error")
    params = ", ".join(f"{p.name}: {p.type} = {p.default!r}" for p in report.parameters.values())
    if not report.ok:
        click.echo(f"{notebook}: INVALID ({len(report.errors)} errors).", err=True)
        sys.exit(1)
    click.echo(f"{notebook}: OK (nbformat {report.nbformat}; parameters: {params or 'none'}).")
    if suite is None:
        return
    from agentnb.evals import SuiteFailed, gate_notebook

    try:
        provenance = gate_notebook(notebook, suite, models=list(models) or None,
                                   parameters=_params(pairs, files), repeats=repeats,
                                   budget=suite_budget_usd, baseline=baseline)
    except SuiteFailed as exc:
        click.echo(f"{notebook}: NOT PROMOTED: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{notebook}: PROMOTED, provenance {provenance.notebook_sha256}.")


@cli.command()
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.argument("out", required=False, type=click.Path(dir_okay=False))
@click.option("-p", "--parameter", "pairs", type=(str, str), multiple=True,
              metavar="NAME VALUE", help="A parameter; the value is read as YAML (3, 0.5, true).")
@click.option("-f", "--parameters-file", "files", multiple=True, type=click.Path(),
              help="A YAML file of parameters (`-p` wins).")
@_BUDGET_USD
@_MAX_STEPS
@_WALL_S
@_APPROVALS
@_KERNEL
@_handle_errors
def run(*, notebook: str, out: str | None, pairs: tuple[tuple[str, str], ...],
        files: tuple[str, ...], budget_usd: str | None, max_steps: int | None,
        wall_s: float | None, approvals: str, kernel_name: str | None) -> None:
    """Execute a notebook as a budget-limited job (exit 0 done, 1 cell error, 3 stopped)."""
    from agentnb.jobs import run_notebook

    result = run_notebook(notebook, out, parameters=_params(pairs, files),
                          budget_usd=budget_usd, max_steps=max_steps, wall_s=wall_s,
                          approvals=approvals, kernel_name=kernel_name)
    click.echo(f"{result.status}: spent ${result.spend_usd:.6f} in {result.steps} steps, "
               f"{result.duration_s:.1f} s; output {result.output_path}")
    result.raise_for_status()


@cli.command()
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.option("--grid", type=click.Path(dir_okay=False), default=None,
              help="YAML: a mapping of parameter lists (product) or a list of rows.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Jobs at once.")
@click.option("--dask", "dask_address", default=None, metavar="ADDRESS|local",
              help="Run on a Dask scheduler, or `local` for a LocalCluster.")
@_BUDGET_USD
@click.option("--job-budget-usd", type=str, default=None, help="Cap on one job's allotment.")
@_MAX_STEPS
@_WALL_S
@_APPROVALS
@_KERNEL
@click.option("--resume", "resume", default=None, metavar="BATCH_ID",
              help="Continue a batch: re-run its unfinished jobs only.")
@click.option("--out", default="runs", show_default=True, help="Folder for batch folders.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_handle_errors
def batch(*, notebook: str, grid: str | None, workers: int, dask_address: str | None,
          budget_usd: str | None, job_budget_usd: str | None, max_steps: int | None,
          wall_s: float | None, approvals: str, kernel_name: str | None, resume: str | None,
          out: str, quiet: bool) -> None:
    """Run a notebook over a parameter grid on a process pool or Dask, under one budget."""
    from agentnb.jobs import run_batch

    result = run_batch(notebook, grid, workers=workers, dask=dask_address,
                       budget_usd=budget_usd, job_budget_usd=job_budget_usd,
                       max_steps=max_steps, wall_s=wall_s, approvals=approvals,
                       kernel_name=kernel_name, out=out, resume=resume, quiet=quiet)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts.items()))
    click.echo(f"batch {result.batch_id}: {result.status} ({counts}); spent "
               f"${result.spend_usd:.6f}; report {result.report_path}")
    if result.exit_code:
        sys.exit(result.exit_code)


@cli.command()
@click.argument("batch_dir", type=click.Path(file_okay=False))
@_handle_errors
def report(batch_dir: str) -> None:
    """Write a batch's results.parquet and report.html."""
    from agentnb.jobs import build_report

    click.echo(f"Wrote {build_report(batch_dir)}")


def main() -> None:
    """Entry point of the `agentnb` console script."""
    cli(prog_name="agentnb")
