"""Plots: functions return a matplotlib `Figure` and never call `plt.show()`.

Figures are built with `matplotlib.figure.Figure` (no pyplot, so no global state and no GUI
backend) and rendered to PNG or SVG through the Agg canvas when static HTML needs them.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

from agentnb.core import ConfigError, UsageError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["figure_png", "figure_svg", "pareto_frontier", "plot_cost_quality"]


def _matplotlib() -> Any:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        msg = "Plots need matplotlib, which is not installed."
        raise ConfigError(msg, hint='`pip install "agentnb[notebook]"`.') from None
    return matplotlib, Figure


def pareto_frontier(costs: Any, qualities: Any) -> list[int]:
    """Indices of the points no other point beats (cheaper or as cheap, and better or as good).

    Returned in increasing cost. A point dominated by another (lower or equal cost and higher or
    equal quality, one of them strictly) is not on the frontier; exact duplicates both are.

    Example:
        >>> pareto_frontier([1.0, 2.0, 3.0, 2.5], [0.5, 0.7, 0.9, 0.6])
        [0, 1, 2]
    """
    points = [(float(c), float(q), i) for i, (c, q) in enumerate(zip(costs, qualities,
                                                                      strict=True))]
    points.sort(key=lambda p: (p[0], -p[1]))
    frontier: list[int] = []
    best = float("-inf")
    last: tuple[float, float] | None = None
    for cost, quality, i in points:
        if quality > best or (last is not None and (cost, quality) == last):
            frontier.append(i)
            best = max(best, quality)
            last = (cost, quality)
    return frontier


def plot_cost_quality(df: Any, x: str = "cost", y: str = "quality", *, label: str = "model",
                      title: str | None = None, log_x: bool = False) -> Figure:
    """Cost per task against quality, one point per row, with the Pareto frontier marked.

    Args:
        df: a pandas DataFrame (or anything `pandas.DataFrame(...)` accepts) with the columns.
        x: the cost column (USD per task).
        y: the quality column (a score or pass rate; higher is better).
        label: the column naming each point (model or configuration).
        title: the figure title.
        log_x: a logarithmic cost axis.

    Returns:
        A matplotlib `Figure`; the frontier's points are ringed, joined and labelled.

    Raises:
        UsageError: a named column is missing or the frame is empty.

    Example:
        >>> fig = plot_cost_quality({"model": ["sim:cheap", "sim:careful", "sim:expert"],
        ...                          "cost": [0.001, 0.004, 0.02], "quality": [0.5, 0.8, 0.9]})
        >>> fig.axes[0].get_xlabel()
        'cost (USD per task)'
    """
    import pandas as pd

    _, figure_cls = _matplotlib()
    frame = df if isinstance(df, pd.DataFrame) else pd.DataFrame(df)
    missing = [c for c in (x, y, label) if c not in frame.columns]
    if missing:
        msg = (f"plot_cost_quality needs the columns {missing!r}; "
               f"the frame has {list(frame.columns)!r}.")
        raise UsageError(msg, hint="Pass `x=`, `y=` and `label=` naming your columns.")
    frame = frame.dropna(subset=[x, y])
    if frame.empty:
        msg = f"plot_cost_quality got no rows with both {x!r} and {y!r} set."
        raise UsageError(msg, hint="Run an evaluation first, e.g. `suite.run(...)`.")
    costs = [float(v) for v in frame[x]]
    qualities = [float(v) for v in frame[y]]
    labels = [str(v) for v in frame[label]]
    front = set(pareto_frontier(costs, qualities))
    fig = figure_cls(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    others = [i for i in range(len(costs)) if i not in front]
    ax.scatter([costs[i] for i in others], [qualities[i] for i in others], s=40,
               color="#adb5bd", label="dominated", zorder=2)
    ordered = sorted(front, key=lambda i: costs[i])
    ax.plot([costs[i] for i in ordered], [qualities[i] for i in ordered], "-", color="#3b5bdb",
            linewidth=1.5, zorder=1, label="Pareto frontier")
    ax.scatter([costs[i] for i in ordered], [qualities[i] for i in ordered], s=70,
               color="#3b5bdb", edgecolor="white", zorder=3)
    for i in range(len(costs)):
        ax.annotate(labels[i], (costs[i], qualities[i]), xytext=(5, 5),
                    textcoords="offset points", fontsize=9,
                    color="#1c3faa" if i in front else "#868e96",
                    fontweight="bold" if i in front else "normal")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("cost (USD per task)" if x == "cost" else x)
    ax.set_ylabel(y)
    ax.set_title(title or "Cost versus quality")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.frontier = [labels[i] for i in ordered]  # type: ignore[attr-defined]
    _register_formatter()
    return fig


def _register_formatter() -> None:
    """Let IPython show a bare `Figure` (no pyplot import needed) as PNG."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with every kernel
        return
    shell = get_ipython()
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["image/png"]
    formatter.for_type_by_name("matplotlib.figure", "Figure", figure_png_bytes)


def _agg(fig: Figure) -> None:
    """Give a bare `Figure` the Agg canvas; a pyplot figure keeps its own."""
    from matplotlib.backend_bases import FigureCanvasBase
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if type(fig.canvas) is FigureCanvasBase:
        FigureCanvasAgg(fig)


def figure_png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """Render a figure to PNG bytes with the Agg canvas."""
    _agg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def figure_png(fig: Figure, dpi: int = 100) -> str:
    """A figure as base64 PNG text (for `record` and `<img src="data:...">`).

    Example:
        >>> from matplotlib.figure import Figure
        >>> figure_png(Figure(figsize=(1, 1)))[:8]
        'iVBORw0K'
    """
    return base64.b64encode(figure_png_bytes(fig, dpi)).decode("ascii")


def figure_svg(fig: Figure) -> str:
    """A figure as inline SVG markup (no XML prolog), for static HTML.

    Example:
        >>> from matplotlib.figure import Figure
        >>> figure_svg(Figure(figsize=(1, 1))).startswith("<svg")
        True
    """
    _agg(fig)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]
