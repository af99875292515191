"""`plot_cost_quality` and the Pareto frontier."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentnb.core import UsageError
from agentnb.notebook import figure_png, figure_svg, pareto_frontier, plot_cost_quality


def _dominated(i: int, costs: list[float], quals: list[float]) -> bool:
    return any(costs[j] <= costs[i] and quals[j] >= quals[i]
               and (costs[j] < costs[i] or quals[j] > quals[i]) for j in range(len(costs)))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=12))
def test_frontier_is_exactly_the_non_dominated_points(points: list[tuple[int, int]]) -> None:
    """A point is on the frontier iff no other point is at least as cheap and as good."""
    costs = [float(c) for c, _ in points]
    quals = [float(q) for _, q in points]
    front = pareto_frontier(costs, quals)
    expected = {i for i in range(len(points)) if not _dominated(i, costs, quals)}
    assert set(front) == expected
    assert [costs[i] for i in front] == sorted(costs[i] for i in front)


def test_plot_marks_and_labels_the_frontier() -> None:
    """The figure joins the frontier's points and labels every point by model."""
    import pandas as pd

    df = pd.DataFrame({"model": ["sim:cheap", "sim:careful", "sim:expert", "wasteful"],
                       "cost": [0.001, 0.004, 0.02, 0.03], "quality": [0.5, 0.8, 0.9, 0.6]})
    fig = plot_cost_quality(df)
    assert fig.frontier == ["sim:cheap", "sim:careful", "sim:expert"]  # type: ignore[attr-defined]
    ax = fig.axes[0]
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "Pareto frontier")
    assert list(line.get_xdata()) == [0.001, 0.004, 0.02]
    assert {t.get_text() for t in ax.texts} == set(df["model"])
    assert figure_svg(fig).startswith("<svg")
    assert base64.b64decode(figure_png(fig))[:4] == b"\x89PNG"


def test_plot_takes_other_column_names_and_log_axis() -> None:
    """x=, y=, label= pick the columns; log_x sets a log axis."""
    fig = plot_cost_quality({"cfg": ["a", "b"], "usd": [0.1, 1.0], "pass_rate": [0.2, 0.9]},
                            x="usd", y="pass_rate", label="cfg", log_x=True, title="t")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_ylabel() == "pass_rate"
    assert ax.get_title() == "t"


def test_plot_rejects_missing_columns_and_empty_frames() -> None:
    """A missing column or no usable row raises UsageError naming it."""
    with pytest.raises(UsageError, match="quality"):
        plot_cost_quality({"model": ["a"], "cost": [1.0]})
    with pytest.raises(UsageError, match="no rows"):
        plot_cost_quality({"model": ["a"], "cost": [None], "quality": [None]})


def test_no_pyplot_show_in_the_notebook_package() -> None:
    """Plots never call plt.show() (or import pyplot at all)."""
    from pathlib import Path

    import agentnb.notebook as nb

    for path in Path(nb.__file__).parent.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "plt.show(" not in text.replace("`plt.show()`", ""), path.name
        assert "import pyplot" not in text, path.name
