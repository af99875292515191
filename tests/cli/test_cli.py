"""The `agentnb` command: validate, run, batch, report, stop; exit codes from one table."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

from agentnb.cli import EXIT_CODES, cli
from agentnb.core import JobFailed

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_every_command_has_help() -> None:
    """validate, run, batch, report and stop document themselves."""
    for command in ("validate", "run", "batch", "report", "stop"):
        code, text = _invoke(command, "--help")
        assert code == 0
        assert "Usage:" in text


def test_job_failed_maps_to_exit_1() -> None:
    """JobFailed is in the exit-code table as 1."""
    assert (JobFailed, 1) in EXIT_CODES


def test_validate_ok_and_warning() -> None:
    """A valid notebook exits 0 listing its parameters; a missing parameters cell warns."""
    code, text = _invoke("validate", str(NOTEBOOKS / "ok.ipynb"))
    assert code == 0
    assert "n: int = 2" in text
    code, text = _invoke("validate", str(NOTEBOOKS / "no_params.ipynb"))
    assert code == 0
    assert "warning" in text


@pytest.mark.parametrize("name", ["invalid_schema", "duplicate_ids"])
def test_validate_invalid_exits_1_with_reasons(name: str) -> None:
    """An invalid notebook exits 1 and names the cell."""
    code, text = _invoke("validate", str(NOTEBOOKS / f"{name}.ipynb"))
    assert code == 1
    assert "cell" in text


def test_validate_unreadable_exits_1(tmp_path: Path) -> None:
    """A truncated file is one clear line, exit 1."""
    bad = tmp_path / "bad.ipynb"
    bad.write_text('{"cells": [', encoding="utf-8")
    code, text = _invoke("validate", str(bad))
    assert code == 1
    assert "not valid JSON" in text


def test_validate_bad_parameter_exits_2_naming_it() -> None:
    """A parameter of the wrong type exits 2 and names the parameter."""
    code, text = _invoke("validate", str(NOTEBOOKS / "ok.ipynb"), "-p", "n", "many")
    assert code == 2
    assert "'n'" in text


def test_run_params_file_merged_under_p(tmp_path: Path) -> None:
    """`-f` values are overridden by `-p`; values are parsed as YAML scalars."""
    params = tmp_path / "p.yaml"
    params.write_text("n: 1\nlabel: from-file\n", encoding="utf-8")
    out = tmp_path / "out.ipynb"
    code, text = _invoke("run", str(NOTEBOOKS / "ok.ipynb"), str(out), "-f", str(params),
                         "-p", "n", "5")
    assert code == 0, text
    nb = nbformat.read(str(out), as_version=4)
    assert nb.cells[-1].outputs[0]["data"]["text/plain"] == "105"
    assert "label = \"from-file\"" in "".join(c.source for c in nb.cells)


def test_run_over_budget_exits_3(tmp_path: Path) -> None:
    """Over budget: exit 3, spend <= budget, the output notebook is readable with cell spend."""
    out = tmp_path / "out.ipynb"
    code, text = _invoke("run", str(NOTEBOOKS / "over_budget.ipynb"), str(out),
                         "--budget-usd", "0.04")
    assert code == 3, text
    nb = nbformat.read(str(out), as_version=4)
    assert nb.metadata["agentnb"]["spend_usd"] <= 0.04
    assert any(c.metadata.get("agentnb", {}).get("spend_usd") for c in nb.cells)


def test_run_failing_exits_1_pointing_at_cell(tmp_path: Path) -> None:
    """A cell error exits 1 with a message naming cell 3 and the error."""
    code, text = _invoke("run", str(NOTEBOOKS / "raises_cell3.ipynb"), str(tmp_path / "o.ipynb"))
    assert code == 1
    assert "cell 3" in text
    assert "ValueError" in text


def test_run_unknown_parameter_exits_2() -> None:
    """An unknown `-p` exits 2 naming it, before any kernel starts."""
    code, text = _invoke("run", str(NOTEBOOKS / "ok.ipynb"), "-p", "zzz", "1")
    assert code == 2
    assert "'zzz'" in text


def test_batch_needs_a_grid_and_report_needs_a_batch(tmp_path: Path) -> None:
    """`batch` without --grid and `report` on a non-batch folder exit 2."""
    code, _ = _invoke("batch", str(NOTEBOOKS / "ok.ipynb"))
    assert code == 2
    code, text = _invoke("report", str(tmp_path))
    assert code == 2
    assert "manifest" in text


def test_stop_writes_the_batch_flag(tmp_path: Path) -> None:
    """`agentnb stop BATCH_ID` writes the STOP flag the coordinator checks."""
    batch = tmp_path / "runs" / "batch_x"
    batch.mkdir(parents=True)
    (batch / "manifest.json").write_text(json.dumps({"batch_id": "batch_x", "notebook": "n"}),
                                         encoding="utf-8")
    code, text = _invoke("stop", "batch_x", "--out", str(tmp_path / "runs"))
    assert code == 0
    assert (batch / "STOP").is_file()
    assert "batch_x" in text


def test_batch_cli_small_grid_end_to_end(tmp_path: Path) -> None:
    """`agentnb batch` on a 2-row grid exits 0 and writes the report; `report` rewrites it."""
    grid = tmp_path / "grid.yaml"
    grid.write_text("- {cost: 0.01, calls: 1}\n- {cost: 0.02, calls: 1}\n", encoding="utf-8")
    code, text = _invoke("batch", str(NOTEBOOKS / "spend.ipynb"), "--grid", str(grid),
                         "--workers", "2", "--budget-usd", "0.5", "--out",
                         str(tmp_path / "runs"), "--quiet")
    assert code == 0, text
    batch_dir = next((tmp_path / "runs").iterdir())
    assert (batch_dir / "report.html").is_file()
    code, text = _invoke("report", str(batch_dir))
    assert code == 0
    assert "report.html" in text


def _all_commands() -> list[tuple[str, ...]]:
    import click

    found: list[tuple[str, ...]] = []

    def walk(group: click.Group, prefix: tuple[str, ...]) -> None:
        for name, command in group.commands.items():
            path = (*prefix, name)
            if isinstance(command, click.Group):
                walk(command, path)
            else:
                found.append(path)

    walk(cli, ())
    return found


@pytest.mark.parametrize("path", _all_commands(), ids=" ".join)
def test_every_command_is_documented_in_the_readme(path: tuple[str, ...]) -> None:
    """Every command has a help summary and appears in the README's command list."""
    code, text = _invoke(*path, "--help")
    assert code == 0
    assert "Usage:" in text
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert f"agentnb {' '.join(path)}" in readme
