"""Layer 6: the notebook experience: run widget, approval cards, static HTML views, plots,
`record` / `collect`.

ipywidgets, matplotlib, pandas and nbformat are imported lazily, inside the functions that
need them. The runtime's `Run` displays through `display_run` / `run_mimebundle`.
"""

from agentnb.notebook._display import (
    DisplayMode,
    choose,
    display_run,
    run_mimebundle,
    run_view,
    show,
)
from agentnb.notebook._html import BudgetChart, RunView, Timeline, TraceTree
from agentnb.notebook._plots import figure_png, figure_svg, pareto_frontier, plot_cost_quality
from agentnb.notebook._record import MIME_RECORD, collect, read_records, record, record_payload
from agentnb.notebook._widgets import ApprovalCard, RunWidget, WidgetApprover, decide_approval

__all__ = [
    "ApprovalCard",
    "BudgetChart",
    "choose",
    "collect",
    "decide_approval",
    "display_run",
    "DisplayMode",
    "figure_png",
    "figure_svg",
    "MIME_RECORD",
    "pareto_frontier",
    "plot_cost_quality",
    "read_records",
    "record",
    "record_payload",
    "run_mimebundle",
    "run_view",
    "RunView",
    "RunWidget",
    "show",
    "Timeline",
    "TraceTree",
    "WidgetApprover",
]

# `Run` objects display through this layer; the runtime only holds the seam.
from agentnb.runtime import register_display as _register_display

_register_display("mimebundle", run_mimebundle)
_register_display("display", display_run)


def _flush_after_each_cell() -> None:
    """In a kernel, write finished spans at the end of every cell (DESIGN: flushed per cell)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the notebook extra
        return
    shell = get_ipython()
    if shell is None:
        return
    from agentnb.tracing import flush

    def flush_spans(_result: object = None) -> None:
        flush()

    shell.events.register("post_run_cell", flush_spans)


_flush_after_each_cell()
