"""Batch pieces without a kernel: grids, allotments, manifests, stop flags, reports."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from agentnb.core import UsageError
from agentnb.jobs import (
    RECORD_MIME,
    BatchManifest,
    JobRecord,
    build_report,
    load_grid,
    load_manifest,
    read_records,
    request_batch_stop,
    run_batch,
)
from agentnb.jobs._batch import _allotment, _budget_scope
from agentnb.jobs._manifest import _save

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


def test_grid_mapping_is_a_product_and_list_is_rows(tmp_path: Path) -> None:
    """A mapping of lists gives every combination; a list of rows is taken as written."""
    path = tmp_path / "grid.yaml"
    path.write_text("model: [a, b]\nn: [1, 2, 3]\nfixed: x\n", encoding="utf-8")
    rows = load_grid(path)
    assert len(rows) == 6
    assert rows[0] == {"model": "a", "n": 1, "fixed": "x"}
    path.write_text("- {n: 1}\n- {n: 5, m: 2}\n", encoding="utf-8")
    assert load_grid(path) == [{"n": 1}, {"n": 5, "m": 2}]


@pytest.mark.parametrize("text", ["3", "[1, 2]", "a: [1\n"])
def test_bad_grids_are_usage_errors(text: str, tmp_path: Path) -> None:
    """A scalar, a list of non-rows or broken YAML is a UsageError."""
    path = tmp_path / "grid.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError):
        load_grid(path)
    with pytest.raises(UsageError, match="No grid file"):
        load_grid(tmp_path / "missing.yaml")


def test_grid_row_with_unknown_parameter_names_row_and_parameter(tmp_path: Path) -> None:
    """Every row is checked before any job starts; the error names the row and the parameter."""
    with pytest.raises(UsageError, match=r"Grid row 1 .*'bogus'"):
        run_batch(NOTEBOOKS / "spend.ipynb", [{"cost": 0.01}, {"bogus": 1}], out=tmp_path)
    assert not any(tmp_path.iterdir())


def test_allotment_splits_unreserved_over_free_slots_with_cap() -> None:
    """The next slice is unreserved / free slots, capped per job; grants never pass the limit."""
    manifest = BatchManifest(batch_id="b", notebook="nb.ipynb", budget_usd=Decimal("1.00"))
    scope = _budget_scope(manifest)
    assert _allotment(scope, None, 4) == Decimal("0.25")
    assert _allotment(scope, Decimal("0.1"), 4) == Decimal("0.1")
    from agentnb.runtime import Budget

    grants = [scope.grant(f"j{i}", Budget(usd=_allotment(scope, None, 3 - i))) for i in range(3)]
    assert scope.remaining()["usd"] == 0
    grants[0].charge(usd=Decimal("0.05"))
    grants[0].close()
    assert scope.remaining()["usd"] == Decimal("0.283333")


def test_budget_scope_on_resume_subtracts_recorded_spend() -> None:
    """A resumed batch only has the limit minus what every earlier attempt was charged."""
    manifest = BatchManifest(batch_id="b", notebook="nb.ipynb", budget_usd=Decimal("0.5"),
                             jobs=[JobRecord(key="job-0001", params={},
                                             spend_usd=Decimal("0.2"))])
    assert _budget_scope(manifest).remaining()["usd"] == Decimal("0.3")
    assert _budget_scope(BatchManifest(batch_id="c", notebook="x")) is None


def test_stop_flag_and_missing_manifest(tmp_path: Path) -> None:
    """request_batch_stop writes the flag; a folder without a manifest is a UsageError."""
    assert request_batch_stop(tmp_path).is_file()
    with pytest.raises(UsageError, match="No batch manifest"):
        load_manifest(tmp_path)


def _executed(path: Path, records: list[dict[str, object]]) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("display_data", data={RECORD_MIME: r})
                    for r in records]
    nb.cells.append(cell)
    nbformat.write(nb, str(path))
    return path


def test_report_writes_parquet_and_self_contained_html(tmp_path: Path) -> None:
    """results.parquet has a row per job with params and records; report.html has SVG and links."""
    batch = tmp_path / "b1"
    (batch / "notebooks").mkdir(parents=True)
    jobs = []
    for i, (status, q) in enumerate([("done", 0.9), ("done", 0.4), ("failed", 0.1)]):
        out = _executed(batch / "notebooks" / f"job-{i}.ipynb",
                        [{"name": "quality", "value": q}, {"tokens_used": 10 * i}])
        jobs.append(JobRecord(key=f"job-{i}", params={"model": f"m{i}"}, status=status,
                              spend_usd=Decimal("0.01") * (i + 1), attempts=1,
                              output_path=str(out)))
    _save(batch, BatchManifest(batch_id="b1", notebook="nb.ipynb", jobs=jobs, status="done"))
    page = build_report(batch).read_text(encoding="utf-8")
    frame = pd.read_parquet(batch / "results.parquet")
    assert list(frame["job"]) == ["job-0", "job-1", "job-2"]
    assert list(frame["quality"]) == [0.9, 0.4, 0.1]
    assert list(frame["model"]) == ["m0", "m1", "m2"]
    assert frame["spend_usd"].tolist() == pytest.approx([0.01, 0.02, 0.03])
    assert "<svg" in page
    assert 'href="notebooks/job-1.ipynb"' in page
    assert "cost vs quality" in page


def test_read_records_of_missing_notebook_is_empty(tmp_path: Path) -> None:
    """A job without an output notebook has no recorded values."""
    assert read_records(tmp_path / "none.ipynb") == {}
