"""Every example notebook runs top to bottom in a real kernel through `agentnb run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    """Example notebooks are committed clean: no outputs, no execution counts."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    dirty = [i for i, c in enumerate(nb["cells"])
             if c.get("outputs") or c.get("execution_count") is not None]
    assert dirty == []


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_under_agentnb_run(path: Path, tmp_path: Path) -> None:
    """`agentnb run` executes the notebook on sim: models within a small budget, exit 0."""
    out = tmp_path / path.name
    agentnb = Path(sys.executable).with_name("agentnb")
    proc = subprocess.run(
        [str(agentnb), "run", str(path), str(out), "--budget-usd", "1.00", "--wall-s", "600"],
        capture_output=True, text=True, timeout=900, check=False, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    executed = json.loads(out.read_text(encoding="utf-8"))
    errors = [o for c in executed["cells"] for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors == []
