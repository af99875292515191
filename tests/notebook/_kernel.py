"""Build and execute small notebooks in a real kernel (nbclient / papermill)."""

from __future__ import annotations

from pathlib import Path

import nbformat


def make_notebook(*sources: str, parameters: str | None = None) -> nbformat.NotebookNode:
    """A notebook of code cells; `parameters` becomes a cell tagged `parameters`."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def execute(nb: nbformat.NotebookNode, path: Path) -> nbformat.NotebookNode:
    """Execute in a fresh python3 kernel (cwd = the notebook's folder) and save to `path`."""
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)
    return nb
