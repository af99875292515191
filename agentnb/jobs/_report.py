"""Batch reports: `results.parquet` (one row per job) and a self-contained `report.html`.

Recorded values come from the executed notebooks: outputs with the MIME type
`application/vnd.agentnb.record+json` (what `anb.record(name, value)` displays), holding
`{"name": ..., "value": ...}` or a mapping of names to values.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from agentnb.core import ConfigError

__all__ = ["RECORD_MIME", "build_report", "collect_results", "read_records"]

RECORD_MIME = "application/vnd.agentnb.record+json"
"""The MIME type of a value recorded into an executed notebook."""

_BASE_COLUMNS = ("job", "status", "stop_reason", "spend_usd", "steps", "duration_s", "attempts",
                 "failed_cell", "error", "output_path", "run_ids")


def read_records(notebook: str | Path) -> dict[str, Any]:
    """The values recorded in an executed notebook (the last one wins per name).

    Example:
        >>> read_records("/nonexistent.ipynb")
        {}
    """
    import nbformat

    try:
        nb = nbformat.read(str(notebook), as_version=4)
    except (OSError, ValueError):
        return {}
    found: dict[str, Any] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", ()) or ():
            data = (output.get("data") or {}).get(RECORD_MIME)
            if isinstance(data, dict) and "name" in data and "value" in data:
                found[str(data["name"])] = data["value"]
            elif isinstance(data, dict):
                found.update({str(k): v for k, v in data.items()})
    return found


def collect_results(batch_dir: str | Path) -> Any:
    """One row per job of a batch: parameters, status, cost, steps, duration, recorded values.

    Returns:
        A pandas DataFrame.
    """
    import pandas as pd

    from agentnb.jobs._manifest import load_manifest

    manifest = load_manifest(batch_dir)
    rows = []
    for job in manifest.jobs:
        row: dict[str, Any] = {
            "job": job.key, "status": job.status, "stop_reason": job.stop_reason,
            "spend_usd": float(job.spend_usd), "steps": job.steps,
            "duration_s": job.duration_s, "attempts": job.attempts,
            "failed_cell": job.failed_cell, "error": job.error, "output_path": job.output_path,
            "run_ids": " ".join(job.run_ids),
        }
        for name, value in job.params.items():
            row[name if name not in row else f"param.{name}"] = value
        records = read_records(job.output_path) if job.output_path else {}
        for name, value in records.items():
            row[name if name not in row else f"record.{name}"] = value
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in frame.columns:
        # parquet needs one type per column: mixed objects become their JSON-ish text.
        mixed = bool(frame[column].map(type).nunique() > 1)
        if frame[column].dtype == object and mixed:
            frame[column] = frame[column].map(lambda v: None if v is None else str(v))
    return frame


def _quality_column(frame: Any) -> str | None:
    import pandas as pd

    candidates = [c for c in frame.columns if c not in _BASE_COLUMNS
                  and pd.api.types.is_numeric_dtype(frame[c]) and not
                  pd.api.types.is_bool_dtype(frame[c])]
    for preferred in ("quality", "score", "accuracy", "pass_rate"):
        if preferred in candidates:
            return preferred
    return candidates[-1] if candidates else None


def _scatter_svg(frame: Any) -> str:
    quality = _quality_column(frame)
    if quality is None or frame.empty:
        return "<p>No numeric recorded value to plot against cost.</p>"
    try:
        from matplotlib.backends.backend_svg import FigureCanvasSVG
        from matplotlib.figure import Figure
    except ImportError:
        return "<p>Install matplotlib (`pip install 'agentnb[notebook]'`) for the plot.</p>"
    import io

    fig = Figure(figsize=(6, 4))
    FigureCanvasSVG(fig)
    ax = fig.add_subplot()
    for status, group in frame.groupby("status"):
        ax.scatter(group["spend_usd"], group[quality], label=str(status), alpha=0.8)
    for _, row in frame.iterrows():
        ax.annotate(str(row["job"]), (row["spend_usd"], row[quality]), fontsize=6,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("cost per job (USD)")
    ax.set_ylabel(quality)
    ax.set_title(f"cost vs {quality}")
    ax.legend(fontsize=7)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _table_html(frame: Any, batch_dir: Path) -> str:
    columns = list(frame.columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for _, row in frame.iterrows():
        cells = []
        for column in columns:
            value = row[column]
            if column == "output_path" and isinstance(value, str) and value:
                href = os.path.relpath(value, batch_dir)
                text = f'<a href="{html.escape(href)}">{html.escape(Path(value).name)}</a>'
            elif column == "spend_usd":
                text = f"${float(value):.6f}"
            else:
                text = html.escape("" if value is None else str(value))
            cells.append(f"<td class='{html.escape(str(column))}'>{text}</td>")
        body.append(f"<tr class='{html.escape(str(row['status']))}'>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;
font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}
tr.failed{background:#fdd}tr.stopped{background:#ffd}tr.lost{background:#eee}"""


def build_report(batch_dir: str | Path) -> Path:
    """Write `results.parquet` and a self-contained `report.html` into a batch folder.

    Returns:
        The path of `report.html`.

    Raises:
        UsageError: there is no batch manifest in `batch_dir`.
        ConfigError: pandas or pyarrow is missing.
    """
    from agentnb.jobs._manifest import load_manifest

    folder = Path(batch_dir).resolve()
    manifest = load_manifest(folder)
    try:
        frame = collect_results(folder)
        frame.to_parquet(folder / "results.parquet", index=False)
    except ImportError as exc:
        raise ConfigError(f"Batch reports need pandas and pyarrow: {exc}.",
                          hint="pip install 'agentnb[jobs]'") from None
    counts = ", ".join(f"{n} {s}" for s, n in sorted(manifest.counts().items()))
    limit = "no limit" if manifest.budget_usd is None else f"limit ${manifest.budget_usd}"
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>agentnb batch {html.escape(manifest.batch_id)}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>Batch {html.escape(manifest.batch_id)}</h1>"
        f"<p>Notebook <code>{html.escape(manifest.notebook)}</code>; status "
        f"<b>{html.escape(manifest.status)}</b>; jobs: {html.escape(counts)}; spend "
        f"${manifest.spent_usd:.6f} ({html.escape(limit)}).</p>"
        f"<h2>Cost vs quality</h2>{_scatter_svg(frame)}"
        f"<h2>Jobs</h2>{_table_html(frame, folder)}</body></html>"
    )
    target = folder / "report.html"
    target.write_text(page, encoding="utf-8")
    return target
