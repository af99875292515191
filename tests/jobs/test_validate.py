"""Notebook validation: every nbformat version, schema, ids, parameters cell, passed parameters."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from agentnb.core import NotebookInvalid, UsageError
from agentnb.jobs import validate_notebook


def _write(path: Path, cells: list[nbformat.NotebookNode]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nbformat.write(nb, str(path))
    return path


def _params_cell(source: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source, metadata={"tags": ["parameters"]})


def test_ok_notebook_with_parameters(tmp_path: Path) -> None:
    """Types are inferred from literals and annotations; the report is ok."""
    path = _write(tmp_path / "ok.ipynb", [
        nbformat.v4.new_markdown_cell("# title"),
        _params_cell('model = "sim:careful"\nrepeats = 3\nrate = 0.5\nverbose: bool = False\n'
                     'tags = ["a"]\nlimit: int | None = None'),
        nbformat.v4.new_code_cell("print(model)"),
    ])
    report = validate_notebook(path, {"model": "sim:cheap", "repeats": 5, "rate": 1,
                                      "limit": None})
    assert report.ok
    assert report.parameters_cell == 1
    types = {n: s.type for n, s in report.parameters.items()}
    assert types == {"model": "str", "repeats": "int", "rate": "float", "verbose": "bool",
                     "tags": "list", "limit": "int | None"}


def test_pydantic_declared_parameters(tmp_path: Path) -> None:
    """Parameters declared as fields of a pydantic model in the cell are read without running it."""
    path = _write(tmp_path / "p.ipynb", [_params_cell(
        "from pydantic import BaseModel\n"
        "class Params(BaseModel):\n    n: int = 2\n    name: str\n")])
    report = validate_notebook(path)
    assert report.parameters["n"].type == "int"
    assert report.parameters["name"].declared
    with pytest.raises(UsageError, match="'n'"):
        validate_notebook(path, {"n": "two"})


def test_unknown_and_mistyped_parameters_name_the_parameter(tmp_path: Path) -> None:
    """Unknown names and wrong types raise UsageError naming the parameter and the cell."""
    path = _write(tmp_path / "ok.ipynb", [_params_cell("repeats = 3\nflag = True")])
    with pytest.raises(UsageError, match="Unknown parameter 'repeat'") as info:
        validate_notebook(path, {"repeat": 3})
    assert "repeats" in (info.value.hint or "")
    with pytest.raises(UsageError, match="'repeats'.*expects int, got str"):
        validate_notebook(path, {"repeats": "3"})
    with pytest.raises(UsageError, match="'repeats'.*got bool"):
        validate_notebook(path, {"repeats": True})


def test_no_parameters_cell_is_a_warning(tmp_path: Path) -> None:
    """Without a parameters cell the report warns that parameters go at the top."""
    path = _write(tmp_path / "none.ipynb", [nbformat.v4.new_code_cell("x = 1")])
    report = validate_notebook(path, {"anything": 1})
    assert report.ok
    assert any("injected at the top" in p.message for p in report.problems)


def test_v3_notebook_is_upgraded(tmp_path: Path) -> None:
    """An nbformat 3 notebook is read, upgraded and validated."""
    v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {"name": "old"}, "worksheets": [
        {"cells": [{"cell_type": "code", "input": "n = 1", "language": "python",
                    "outputs": [], "metadata": {"tags": ["parameters"]}}], "metadata": {}}]}
    path = tmp_path / "v3.ipynb"
    path.write_text(json.dumps(v3))
    report = validate_notebook(path)
    assert report.nbformat == "3.0"
    assert report.ok, report.problems
    assert report.parameters["n"].type == "int"


def test_invalid_schema_points_at_the_cell(tmp_path: Path) -> None:
    """A schema violation is reported with the cell index."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("a = 1"), nbformat.v4.new_code_cell("b = 2")]
    raw = json.loads(nbformat.writes(nb))
    raw["cells"][1]["execution_count"] = "seven"
    path = tmp_path / "bad.ipynb"
    path.write_text(json.dumps(raw))
    report = validate_notebook(path)
    assert not report.ok
    assert report.errors[0].cell_index == 1
    with pytest.raises(NotebookInvalid, match="cell 1") as info:
        report.raise_for_problems()
    assert info.value.problems[0][0] == 1


def test_duplicate_cell_ids(tmp_path: Path) -> None:
    """Two cells with one id are reported, naming both cells."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("a = 1"), nbformat.v4.new_code_cell("b = 2")]
    raw = json.loads(nbformat.writes(nb))
    raw["cells"][1]["id"] = raw["cells"][0]["id"]
    path = tmp_path / "dup.ipynb"
    path.write_text(json.dumps(raw))
    report = validate_notebook(path)
    assert any("duplicate cell id" in p.message and p.cell_index == 1 for p in report.errors)


@pytest.mark.parametrize(("content", "match"), [
    ("", "empty"),
    ('{"cells": [', "not valid JSON"),
    ("hello", "not valid JSON"),
    ("[1, 2]", "not a notebook"),
])
def test_broken_files_give_one_clear_error(tmp_path: Path, content: str, match: str) -> None:
    """Empty, truncated and non-JSON files raise NotebookInvalid, not a traceback."""
    path = tmp_path / "broken.ipynb"
    path.write_text(content)
    with pytest.raises(NotebookInvalid, match=match):
        validate_notebook(path)


def test_missing_file(tmp_path: Path) -> None:
    """A missing path says so."""
    with pytest.raises(NotebookInvalid, match="No notebook"):
        validate_notebook(tmp_path / "nope.ipynb")


def test_bad_parameters_cell_syntax(tmp_path: Path) -> None:
    """A parameters cell that is not Python is an error on that cell."""
    path = _write(tmp_path / "syn.ipynb", [_params_cell("n = = 1")])
    report = validate_notebook(path)
    assert report.errors[0].cell_index == 0
    assert "not valid Python" in report.errors[0].message
