"""The pytest plugin, run in a subprocess on `example_suite/suite_shop.py`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent / "example_suite" / "suite_shop.py"


def pytest_run(tmp_path: Path, *args: str, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    """Run pytest on the example file with the plugin, as a user would."""
    # The installed `pytest11` entry point registers the plugin as `agentnb`; `-p no:agentnb`
    # lets the explicit `-p agentnb.evals.pytest_plugin` load it under its module name instead.
    cmd = [sys.executable, "-m", "pytest", "-p", "no:agentnb", "-p", "agentnb.evals.pytest_plugin",
           str(EXAMPLE), "-q", "-p", "no:cacheprovider", *args]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, check=False)


@pytest.mark.slow
def test_plugin_pass_fail_and_regression(tmp_path: Path) -> None:
    """Evals pass; a failure prints checks, judge reason and trajectory; regressions fail."""
    skipped = pytest_run(tmp_path)
    assert skipped.returncode == 0, skipped.stdout
    assert "3 skipped" in skipped.stdout

    ok = pytest_run(tmp_path, "--agentnb", "--agentnb-model", "sim:expert", "-k", "not tone",
                    "--agentnb-save", "base.json")
    assert ok.returncode == 0, ok.stdout
    assert "2 passed" in ok.stdout
    assert "agentnb evals" in ok.stdout
    assert (tmp_path / "base.json").exists()

    failed = pytest_run(tmp_path, "--agentnb", "--agentnb-model", "sim:expert", "-k", "tone")
    assert failed.returncode == 1
    out = failed.stdout
    assert "FAILED judge('The reply opens by greeting the customer.')" in out
    assert "instead of greeting the customer" in out
    assert "lookup_order({\"order_id\": 42}) [ok]" in out
    assert "trajectory:" in out

    regressed = pytest_run(tmp_path, "--agentnb", "--agentnb-model", "sim:expert", "-k",
                           "not tone", "--agentnb-baseline", "base.json",
                           env={"SHOP_POLICY": "strict"})
    assert regressed.returncode == 1, regressed.stdout
    assert "2 passed" in regressed.stdout
    assert "REGRESSION against base.json" in regressed.stdout
    assert "test_shop::refund-41: pass rate 0.00 < baseline 1.00" in regressed.stdout

    same = pytest_run(tmp_path, "--agentnb", "--agentnb-model", "sim:expert", "-k", "not tone",
                      "--agentnb-baseline", "base.json")
    assert same.returncode == 0, same.stdout
    assert "no regression against base.json" in same.stdout
