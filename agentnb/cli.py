"""The `agentnb` command: parse, call the public API, map errors to exit codes. No logic here."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from agentnb.core import AgentnbError, NotebookInvalid, RunStopped, UsageError

F = TypeVar("F", bound=Callable[..., Any])

# One table: which error ends the command with which exit code (API.md § Command line).
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (RunStopped, 3),
    (NotebookInvalid, 2),
    (UsageError, 2),
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
@_handle_errors
def stop(run_or_batch_id: str) -> None:
    """Ask a running run (or batch) to stop at its next step."""
    from agentnb.runtime import request_stop

    request_stop(run_or_batch_id)
    click.echo(f"Stop requested for {run_or_batch_id}.")


@cli.command()
@click.option("--run", "run_id", default=None, help="Show the spans of one run.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("--limit", default=50, show_default=True, help="Most recent runs to list.")
@_handle_errors
def traces(run_id: str | None, fmt: str, limit: int) -> None:
    """List stored runs, or the spans of one run."""
    from agentnb import tracing

    frame = tracing.spans(run_id) if run_id else tracing.traces(limit=limit)
    click.echo(tracing.format_traces(frame, fmt=fmt))


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


def main() -> None:
    """Entry point of the `agentnb` console script."""
    cli(prog_name="agentnb")
