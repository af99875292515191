"""`record(name, value)` glues a value into the executed notebook; `collect(...)` reads them back.

A recorded value is a display output with only our MIME type, so Jupyter, nbviewer and
nbconvert show nothing for it (a hidden output) while the `.ipynb` file keeps it:

    {"output_type": "display_data",
     "data": {"application/vnd.agentnb.record+json": {"name": ..., "value": ..., "type": ...}}}

Types: `number`, `bool`, `text`, `json` (lists and dicts), `dataframe` (`{"columns", "records"}`),
`figure` (PNG, base64) and `null`. `collect` turns many executed notebooks (a batch folder) into
one DataFrame: one row per notebook with its path, its papermill parameters and one column per
recorded name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentnb.core import UsageError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MIME_RECORD", "collect", "read_records", "record", "record_payload"]

MIME_RECORD = "application/vnd.agentnb.record+json"
"""The MIME type of a recorded value's output."""

_RECORDED: dict[str, dict[str, Any]] = {}
"""Payloads recorded outside a kernel (a plain script), by name: the last one wins."""


def _clean_float(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else value


def record_payload(name: str, value: Any) -> dict[str, Any]:
    """The JSON payload `record` displays for `value`.

    Raises:
        UsageError: the name is empty, or the value has no JSON form.

    Example:
        >>> record_payload("pass_rate", 0.75)
        {'name': 'pass_rate', 'value': 0.75, 'type': 'number'}
        >>> record_payload("notes", {"a": [1, 2]})["type"]
        'json'
    """
    if not isinstance(name, str) or not name:
        msg = f"record() needs a non-empty name, got {name!r}."
        raise UsageError(msg, hint='Call `anb.record("accuracy", value)`.')
    kind, data = _encode(name, value)
    return {"name": name, "value": data, "type": kind}


def _encode(name: str, value: Any) -> tuple[str, Any]:
    if value is None:
        return "null", None
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, int):
        return "number", value
    if isinstance(value, float | Decimal):
        return "number", _clean_float(float(value))
    if isinstance(value, str):
        return "text", value
    module = type(value).__module__
    if module.startswith("pandas"):
        return _encode_pandas(value)
    if module.startswith("matplotlib") and hasattr(value, "savefig"):
        from agentnb.notebook._plots import figure_png

        return "figure", figure_png(value)
    if module.startswith("numpy") and hasattr(value, "tolist"):
        return _encode(name, value.tolist())
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return "json", dump(mode="json")
    if isinstance(value, list | tuple | dict):
        try:
            return "json", json.loads(json.dumps(value, allow_nan=False, default=_default))
        except (TypeError, ValueError) as exc:
            msg = f"record({name!r}, ...) cannot store this {type(value).__name__}: {exc}."
            raise UsageError(msg, hint="Record numbers, text, lists/dicts of them, "
                                       "DataFrames or matplotlib figures.") from None
    msg = f"record({name!r}, ...) cannot store a {type(value).__name__}."
    raise UsageError(msg, hint="Record numbers, text, lists/dicts of them, DataFrames or "
                               "matplotlib figures; convert other objects first.")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _encode_pandas(value: Any) -> tuple[str, Any]:
    import pandas as pd

    frame = value.to_frame() if isinstance(value, pd.Series) else value
    frame = frame.reset_index() if not isinstance(frame.index, pd.RangeIndex) else frame
    records = json.loads(frame.to_json(orient="records", date_format="iso") or "[]")
    return "dataframe", {"columns": [str(c) for c in frame.columns], "records": records}


def record(name: str, value: Any) -> None:
    """Store `value` under `name` in the executed notebook (a hidden output).

    In a kernel it displays an output of type `application/vnd.agentnb.record+json` that
    nothing renders; `anb.collect(folder)` reads it back. Outside IPython the value is kept in
    the process (last one wins).

    Example:
        >>> record("pass_rate", 0.75)
        >>> record("answers", ["yes", "no"])
    """
    payload = record_payload(name, value)
    shell = _shell()
    if shell is None:
        _RECORDED[name] = payload
        return
    from IPython.display import display

    display({MIME_RECORD: payload}, raw=True, metadata={MIME_RECORD: {"name": name}})


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is part of the notebook extra
        return None
    return get_ipython()


def decode(payload: dict[str, Any]) -> Any:
    """Turn a stored payload back into its value (a DataFrame for `dataframe`).

    Example:
        >>> decode(record_payload("n", 3))
        3
    """
    kind, value = payload.get("type"), payload.get("value")
    if kind == "dataframe" and isinstance(value, dict):
        import pandas as pd

        return pd.DataFrame(value["records"], columns=value["columns"])
    return value


def read_records(path: str | Path) -> dict[str, Any]:
    """The recorded values of one notebook file, by name (the last record of a name wins).

    Raises:
        UsageError: the file cannot be read as a notebook.
    """
    return _read(Path(path))[1]


def _read(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from agentnb.core._lazyimports import defer_rfc3987_syntax

    defer_rfc3987_syntax()
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except (OSError, ValueError) as exc:
        msg = f"Cannot read notebook {str(path)!r}: {exc}."
        raise UsageError(msg, hint="Pass executed .ipynb files or a folder holding them.") from None
    params = dict(nb.metadata.get("papermill", {}).get("parameters", {}) or {})
    found: dict[str, Any] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            payload = output.get("data", {}).get(MIME_RECORD)
            if isinstance(payload, str):
                payload = json.loads(payload)
            if isinstance(payload, dict) and "name" in payload:
                found[payload["name"]] = decode(payload)
    return params, found


def _paths(source: str | Path | Iterable[str | Path]) -> list[Path]:
    if isinstance(source, str | Path):
        root = Path(source)
        if root.is_dir():
            return sorted(p for p in root.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        if root.is_file():
            return [root]
        msg = f"collect() found nothing at {str(root)!r}."
        raise UsageError(msg, hint="Pass a folder of executed notebooks, a notebook, or a list.")
    return [Path(p) for p in source]


def collect(source: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Read the recorded values of many executed notebooks into one DataFrame.

    Args:
        source: a folder (searched recursively for `.ipynb`), one notebook, or a list of paths.

    Returns:
        One row per notebook: `path`, `parameters` (the papermill parameters as a dict), one
        column per parameter (unless a recorded value has the same name) and one column per
        recorded name (missing values are NaN).

    Example:
        >>> import tempfile
        >>> list(collect(tempfile.mkdtemp()).columns)
        ['path', 'parameters']
    """
    import pandas as pd

    rows = []
    for path in _paths(source):
        params, found = _read(path)
        row: dict[str, Any] = {"path": str(path), "parameters": params}
        row.update({k: v for k, v in params.items() if k not in found and k not in row})
        row.update(found)
        rows.append(row)
    columns = ["path", "parameters"]
    for row in rows:
        columns += [k for k in row if k not in columns]
    return pd.DataFrame(rows, columns=columns)
