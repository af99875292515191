"""Every notebook in notebooks/ runs top to bottom in a real kernel; its HTML export reads
without a kernel (trace tree, timeline and plot inline)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from agentnb.notebook import collect

from ._kernel import execute

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_stored_without_outputs(path: Path) -> None:
    """Example notebooks are committed clean: no outputs, no execution counts."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.notebook
@pytest.mark.filterwarnings("ignore:Your element with mimetype:UserWarning")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_headless_and_exports_static_html(path: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Executed headless (as `agentnb run` does), the HTML export holds the views inline."""
    from nbconvert import HTMLExporter

    monkeypatch.setenv("AGENTNB_HEADLESS", "1")
    out = tmp_path / path.name
    nb = execute(nbformat.read(path, as_version=4), out)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    body, _ = HTMLExporter().from_notebook_node(nb)
    if path.name == "quickstart.ipynb":
        assert 'class="anb-tree"' in body  # the trace tree
        assert 'class="anb-timeline"' in body  # the timeline SVG
        assert "data:image/png;base64," in body  # the cost-versus-quality plot
        assert "application/vnd.jupyter.widget-view" not in body  # headless: no widgets
        row = collect(out).iloc[0]
        assert row["status"] in ("done", "stopped")
        assert list(row["cost_quality"]["model"]) == ["sim:cheap", "sim:careful", "sim:expert"]
