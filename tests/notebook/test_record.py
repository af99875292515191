"""`record` / `collect`: values glued into executed notebooks and read back into a DataFrame."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import pytest

from agentnb.core import UsageError
from agentnb.notebook import MIME_RECORD, collect, read_records, record, record_payload
from agentnb.notebook._record import decode

from ._kernel import execute, make_notebook


def test_payload_types() -> None:
    """Numbers, text, JSON, DataFrames, figures and None each get a type and a JSON value."""
    import pandas as pd
    from matplotlib.figure import Figure

    assert record_payload("n", 3)["type"] == "number"
    assert record_payload("d", Decimal("0.25"))["value"] == 0.25
    assert record_payload("nan", math.nan)["value"] is None
    assert record_payload("b", True) == {"name": "b", "value": True, "type": "bool"}
    assert record_payload("t", "hi")["type"] == "text"
    assert record_payload("none", None)["type"] == "null"
    assert record_payload("j", {"a": (1, 2)})["value"] == {"a": [1, 2]}
    frame = pd.DataFrame({"model": ["a", "b"], "score": [0.5, 0.9]})
    payload = record_payload("df", frame)
    assert payload["type"] == "dataframe"
    assert payload["value"]["columns"] == ["model", "score"]
    pd.testing.assert_frame_equal(decode(payload), frame)
    fig_payload = record_payload("fig", Figure(figsize=(1, 1)))
    assert fig_payload["type"] == "figure"
    assert fig_payload["value"].startswith("iVBOR")


def test_payload_rejects_what_has_no_json_form() -> None:
    """An empty name or an unstorable object raises UsageError with a hint."""
    with pytest.raises(UsageError, match="non-empty name"):
        record_payload("", 1)
    with pytest.raises(UsageError, match="cannot store a object"):
        record_payload("x", object())
    with pytest.raises(UsageError, match="cannot store this dict"):
        record_payload("x", {"a": object()})


def test_record_outside_a_kernel_keeps_the_value() -> None:
    """Without IPython, record keeps the last value in the process."""
    from agentnb.notebook import _record

    record("score", 0.5)
    record("score", 0.75)
    assert _record._RECORDED["score"]["value"] == 0.75


@pytest.mark.notebook
def test_record_in_a_kernel_then_collect(tmp_path: Path) -> None:
    """Values recorded in real kernels come back one row per notebook, with papermill params."""
    import papermill

    source = make_notebook(
        "from agentnb.notebook import record\n"
        "import pandas as pd\n"
        "from matplotlib.figure import Figure\n"
        "record('pass_rate', 0.5 if model == 'sim:cheap' else 0.9)\n"
        "record('model_name', model)\n"
        "record('table', pd.DataFrame({'x': [1, 2]}))\n"
        "record('fig', Figure(figsize=(1, 1)))",
        parameters="model = 'sim:careful'")
    execute(source.copy(), tmp_path / "plain.ipynb")
    import nbformat

    nbformat.write(source, tmp_path / "template.ipynb")
    out = tmp_path / "runs"
    out.mkdir()
    papermill.execute_notebook(str(tmp_path / "template.ipynb"), str(out / "cheap.ipynb"),
                               parameters={"model": "sim:cheap"}, progress_bar=False,
                               kernel_name="python3", cwd=str(tmp_path))
    (tmp_path / "plain.ipynb").rename(out / "plain.ipynb")

    stored = nbformat.read(out / "plain.ipynb", as_version=4)
    outputs = [o for c in stored.cells for o in c.get("outputs", [])]
    assert any(MIME_RECORD in o.get("data", {}) for o in outputs)
    assert all(set(o.get("data", {})) <= {MIME_RECORD} for o in outputs)  # hidden: no text

    df = collect(out)
    assert list(df["path"]) == [str(out / "cheap.ipynb"), str(out / "plain.ipynb")]
    assert list(df["pass_rate"]) == [0.5, 0.9]
    assert list(df["model_name"]) == ["sim:cheap", "sim:careful"]
    assert df["parameters"][0] == {"model": "sim:cheap"}
    assert df["parameters"][1] == {}
    assert list(df["table"][0]["x"]) == [1, 2]
    assert df["fig"][1].startswith("iVBOR")
    assert read_records(out / "plain.ipynb")["pass_rate"] == 0.9
    assert len(collect([out / "plain.ipynb"])) == 1


def test_collect_errors_name_the_path(tmp_path: Path) -> None:
    """A missing path or a file that is not a notebook raises UsageError naming it."""
    with pytest.raises(UsageError, match="nothing at"):
        collect(tmp_path / "missing")
    bad = tmp_path / "bad.ipynb"
    bad.write_text("not json")
    with pytest.raises(UsageError, match="bad.ipynb"):
        collect(bad)
