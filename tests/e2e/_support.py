"""Shared helpers for the end-to-end tests: notebooks, subprocesses, audit records, file bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
from nbformat import v4

ROOT = Path(__file__).resolve().parents[2]
AGENTNB = ROOT / ".venv" / "bin" / "agentnb"


def write_notebook(path: Path, parameters: str, *cells: str) -> Path:
    """Write a notebook with a `parameters`-tagged first cell and the given code cells."""
    nb = v4.new_notebook(cells=[v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
                                *[v4.new_code_cell(c) for c in cells]])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"{path.stem}-{index}"
    nbformat.write(nb, str(path))
    return path


def agentnb_run(notebook: Path, out: Path, *args: str, env: dict[str, str] | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `agentnb run NOTEBOOK OUT ARGS...` in a subprocess (the test's environment plus env)."""
    return subprocess.run([str(AGENTNB), "run", str(notebook), str(out), *args],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def python(script: str, *, env: dict[str, str] | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a Python script in a fresh interpreter (so the redactor reads the environment anew)."""
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=timeout, check=False, env={**os.environ, **(env or {})})


def audit_records(home: Path) -> list[dict[str, Any]]:
    """Every record of the audit log under `home/audit/`."""
    path = home / "audit" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Every file under `root` whose raw bytes contain `needle`."""
    return [p for p in sorted(root.rglob("*")) if p.is_file() and needle in p.read_bytes()]


def cell_text(nb_path: Path) -> str:
    """All text outputs (streams, results, errors) of an executed notebook, joined."""
    nb = nbformat.read(str(nb_path), as_version=4)
    out: list[str] = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                out.append(output["text"])
            out.extend(str(v) for k, v in output.get("data", {}).items() if k == "text/plain")
            if output.get("output_type") == "error":
                out.append(f"{output['ename']}: {output['evalue']}")
    return "\n".join(out)


__all__ = ["AGENTNB", "ROOT", "agentnb_run", "audit_records", "cell_text", "files_containing",
           "python", "write_notebook"]
