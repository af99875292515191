"""How a view is shown: a live widget, static HTML, or plain text (`choose()`).

- `widget`: an IPython kernel is live, ipywidgets is installed, and `AGENTNB_HEADLESS` is off.
- `html`: IPython is running but cannot host widgets, or headless is on (`agentnb run` sets
  `AGENTNB_HEADLESS=1`, so widgets render as the static HTML of the same view).
- `plain`: no IPython at all (a script, a terminal).

The runtime wires `Run._repr_mimebundle_` to `run_mimebundle` and `Run._ipython_display_` to
`display_run`; `show(run_id)` does the same for a stored run.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Literal

from agentnb.core import resolve
from agentnb.notebook._html import RunView

__all__ = ["DisplayMode", "choose", "display_run", "run_mimebundle", "run_view", "show"]

DisplayMode = Literal["widget", "html", "plain"]
"""How a view is rendered: a live widget, static HTML, or text."""


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the notebook extra
        return None
    return get_ipython()


def choose(*, headless: bool | None = None) -> DisplayMode:
    """Pick the display mode for this process.

    Args:
        headless: force static rendering on or off (default: the `headless` setting,
            `AGENTNB_HEADLESS`).

    Example:
        >>> choose()  # a plain Python process: no IPython shell
        'plain'
    """
    shell = _shell()
    if shell is None:
        return "plain"
    if headless is None:
        headless = resolve().headless
    if headless:
        return "html"
    live_kernel = getattr(shell, "kernel", None) is not None
    if live_kernel and importlib.util.find_spec("ipywidgets") is not None:
        return "widget"
    return "html"


def run_mimebundle(run: Any, include: Any = None, exclude: Any = None) -> dict[str, Any]:
    """`text/plain` + self-contained `text/html` of a live `Run` (its static picture).

    Example:
        >>> from agentnb.models import FunctionModel
        >>> from agentnb.runtime import Agent
        >>> run = Agent(model=FunctionModel(lambda m, i: "hi")).start("greet")
        >>> sorted(run_mimebundle(run))
        ['text/html', 'text/plain']
    """
    return RunView.from_run(run)._repr_mimebundle_(include=include, exclude=exclude)


def display_run(run: Any) -> None:
    """Show a `Run`: the step-through widget in a live kernel, else its static HTML.

    This is what `Run._ipython_display_` calls.
    """
    mode = choose()
    if mode == "plain":
        print(RunView.from_run(run).to_text())
        return
    from IPython.display import display

    if mode == "widget":
        from agentnb.notebook._widgets import RunWidget

        display(RunWidget(run))
        return
    display(run_mimebundle(run), raw=True)


def run_view(run_id: str, *, home: Any = None) -> RunView:
    """The static view of a stored run (summary, trace tree, timeline, budget over steps).

    Example:
        >>> run_view("run_missing").to_text()
        'run run_missing: no spans stored'
    """
    return RunView.from_store(run_id, home=home)


def show(run_id: str, *, home: Any = None) -> None:
    """Show a stored run: its static view, plus the run widget in a live kernel.

    The widget needs the run's agent defined in this kernel (`Run.load`); without it only the
    static view is shown. Outside IPython the text form is printed.

    Example:
        >>> show("run_missing")
        run run_missing: no spans stored
    """
    view = run_view(run_id, home=home)
    mode = choose()
    if mode == "plain":
        print(view.to_text())
        return
    from IPython.display import display

    display(view)
    if mode == "widget":
        try:
            from agentnb.runtime import Run

            run = Run.load(run_id, home=home)
        except Exception:  # the agent is not defined here, or no checkpoint: static only
            return
        from agentnb.notebook._widgets import RunWidget

        display(RunWidget(run, show_trace=False))
