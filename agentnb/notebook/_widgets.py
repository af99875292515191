"""The run widget (step-through, approvals, budget meters) and the widget approver.

Never block a cell on a click (DESIGN invariant 5): every button handler schedules a coroutine
as a task on the kernel's running event loop and returns at once; the run advances inside that
task and the widget's panes are refreshed after each step. ipywidgets is imported lazily.

The approval card decides through the run's approval API (`decide_approval`), and the approval
step that follows applies the decision, writes the audit record and the span event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Coroutine
from typing import Any

from agentnb.core import AgentnbError, ConfigError
from agentnb.governance import Approval, ApprovalRequest
from agentnb.notebook import _fragments, _html

__all__ = ["ApprovalCard", "RunWidget", "WidgetApprover", "decide_approval"]


def _widgets() -> Any:
    try:
        import ipywidgets
    except ImportError:
        msg = "The run widget needs ipywidgets, which is not installed."
        raise ConfigError(msg, hint='`pip install "agentnb[notebook]"`.') from None
    return ipywidgets


def decide_approval(run: Any, call_id: str, approval: Approval) -> None:
    """Record a decision for one pending call of `run`; the next step applies and audits it.

    Goes through `Run.decide`, which records it for the approval step (audit log, span event).
    """
    method = getattr(run, "decide", None)
    if callable(method):
        method(call_id, approval.decision, arguments=approval.arguments,
               message=approval.message, approver=approval.approver, sticky=approval.sticky)
        return
    from agentnb.runtime._toolstep import decide

    decide(run, call_id, approval)


def _schedule(coro: Coroutine[Any, Any, Any], tasks: set[asyncio.Task[Any]],
              on_error: Callable[[BaseException], None]) -> asyncio.Task[Any] | None:
    """Run `coro` as a task on the running loop and return at once (sync fallback: no loop)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        # No event loop (a plain script): nothing to block, so run it to the end here.
        from agentnb.core import run_sync

        try:
            run_sync(coro)
        except Exception as exc:
            on_error(exc)
        return None
    task = loop.create_task(coro)
    tasks.add(task)

    def done(t: asyncio.Task[Any]) -> None:
        tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            on_error(t.exception())  # type: ignore[arg-type]

    task.add_done_callback(done)
    return task


class ApprovalCard:
    """Approve, edit the arguments of, or deny one tool call; calls `on_decision` once.

    Example:
        >>> from agentnb.governance import ApprovalRequest
        >>> req = ApprovalRequest(run_id="r", tool="save", call_id="c1", arguments={"x": 1},
        ...                       rule="approve:write")
        >>> got = []
        >>> card = ApprovalCard(req, lambda r, a: got.append(a.decision))
        >>> card.approve()
        >>> got
        ['approve']
    """

    def __init__(self, request: ApprovalRequest,
                 on_decision: Callable[[ApprovalRequest, Approval], None], *,
                 approver: str = "widget") -> None:
        w = _widgets()
        self.request = request
        """The call waiting."""
        self.approver = approver
        self.decision: Approval | None = None
        """The decision, once made."""
        self._on_decision = on_decision
        effects = ", ".join(request.effects) or "none declared"
        reason = (f'<div class="anb-reason">model\'s reason: {_fragments.esc(request.reason)}</div>'
                  if request.reason else "")
        self.header = w.HTML(_fragments.wrap(
            f'<div class="anb-head" style="background:#fff4e6">'
            f"{_fragments.badge('approval needed', '#e67700')} tool "
            f"<code>{_fragments.esc(request.tool)}</code> · effects: "
            f"{_fragments.esc(effects)} · rule: "
            f"<code>{_fragments.esc(request.rule)}</code></div>{reason}"))
        self.editor = w.Textarea(value=json.dumps(request.arguments, indent=2, ensure_ascii=False),
                                 description="arguments",
                                 layout=w.Layout(width="98%", height="90px"))
        self.message = w.Text(placeholder="message the model sees on deny", description="message",
                              layout=w.Layout(width="60%"))
        self.approve_button = w.Button(description="Approve", button_style="success",
                                       icon="check", tooltip="Run the call as proposed")
        self.edit_button = w.Button(description="Edit & approve", button_style="warning",
                                    icon="edit", tooltip="Run the call with the edited JSON")
        self.deny_button = w.Button(description="Deny", button_style="danger", icon="times",
                                    tooltip="Do not run it; the model sees the message")
        self.error = w.HTML()
        for button, name in ((self.approve_button, "approve"), (self.edit_button, "edit"),
                             (self.deny_button, "deny")):
            button.add_class(f"anb-btn-{name}")
            button.layout.width = "auto"
        self.approve_button.on_click(self.approve)
        self.edit_button.on_click(self.edit)
        self.deny_button.on_click(self.deny)
        self.box = w.VBox([self.header, self.editor,
                           w.HBox([self.approve_button, self.edit_button, self.deny_button,
                                   self.message]), self.error],
                          layout=w.Layout(border="2px solid #e67700", padding="4px",
                                          margin="4px 0"))
        self.box.add_class("anb-approval")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        return self.box._repr_mimebundle_(include=include, exclude=exclude)

    def _decide(self, approval: Approval) -> None:
        if self.decision is not None:
            return
        self.decision = approval
        for button in (self.approve_button, self.edit_button, self.deny_button):
            button.disabled = True
        self.error.value = f"<i>decided: {_fragments.esc(approval.decision)}</i>"
        self._on_decision(self.request, approval)

    def approve(self, _: Any = None) -> None:
        """Run the call as proposed."""
        self._decide(Approval(decision="approve", approver=self.approver))

    def edit(self, _: Any = None) -> None:
        """Run the call with the editor's JSON (an object); invalid JSON is reported, not sent."""
        try:
            arguments = json.loads(self.editor.value)
        except ValueError as exc:
            self.error.value = (f'<span style="color:#c92a2a">Invalid JSON: '
                                f"{_fragments.esc(exc)}</span>")
            return
        if not isinstance(arguments, dict):
            self.error.value = ('<span style="color:#c92a2a">The arguments must be a JSON '
                                "object ({...}).</span>")
            return
        self._decide(Approval(decision="edit", arguments=arguments, approver=self.approver))

    def deny(self, _: Any = None) -> None:
        """Do not run the call; the model sees the message."""
        message = self.message.value.strip() or "Denied in the notebook."
        self._decide(Approval(decision="deny", message=message, approver=self.approver))


class WidgetApprover:
    """An interactive `Approver`: shows a card per request and awaits the click.

    Use it as `Agent(approver=WidgetApprover())` for runs driven by a task on the kernel's loop
    (the run widget, or `asyncio.ensure_future(agent.arun(...))`). A sync `agent.run()` cannot
    receive a click, so the runtime replaces it with the non-interactive default.

    Example:
        >>> import asyncio
        >>> from agentnb.governance import Approval, ApprovalRequest, Approver
        >>> approver = WidgetApprover(display=False)
        >>> isinstance(approver, Approver), approver.interactive
        (True, True)
        >>> req = ApprovalRequest(run_id="r", tool="t", call_id="c1", arguments={}, rule="x")
        >>> async def main():
        ...     waiting = asyncio.ensure_future(approver.approve(req))
        ...     await asyncio.sleep(0)
        ...     approver.resolve("c1", Approval(decision="approve", approver="widget"))
        ...     return (await waiting).decision
        >>> asyncio.run(main())
        'approve'
    """

    interactive = True

    def __init__(self, *, name: str = "widget", display: bool = True) -> None:
        self.name = name
        """Recorded as the approver."""
        self.display = display
        """Display a card for each request (False: decide with `resolve`)."""
        self.cards: dict[str, ApprovalCard] = {}
        self._futures: dict[str, asyncio.Future[Approval]] = {}
        self._requests: dict[str, ApprovalRequest] = {}

    @property
    def pending(self) -> list[ApprovalRequest]:
        """Requests waiting for a click."""
        return list(self._requests.values())

    async def approve(self, request: ApprovalRequest) -> Approval:
        """Show the card and wait for its decision."""
        future: asyncio.Future[Approval] = asyncio.get_running_loop().create_future()
        self._futures[request.call_id] = future
        self._requests[request.call_id] = request
        if self.display:
            card = ApprovalCard(request, lambda r, a: self.resolve(r.call_id, a),
                                approver=self.name)
            self.cards[request.call_id] = card
            from IPython.display import display

            display(card)
        try:
            return await future
        finally:
            self._futures.pop(request.call_id, None)
            self._requests.pop(request.call_id, None)
            self.cards.pop(request.call_id, None)

    def resolve(self, call_id: str, approval: Approval) -> None:
        """Answer the request for `call_id` (what a card's button does)."""
        future = self._futures.get(call_id)
        if future is not None and not future.done():
            future.get_loop().call_soon_threadsafe(_set, future, approval)


def _set(future: asyncio.Future[Approval], approval: Approval) -> None:
    if not future.done():
        future.set_result(approval)


class RunWidget:
    """Step through a `Run`: Step, Continue, Continue to a breakpoint, Stop, Rewind; approvals.

    Each button schedules the work as a task on the kernel's event loop and returns at once.
    The panes show the state, every step (messages, tool calls with arguments and results, the
    model's reason, tokens, USD, latency), a meter per budget scope and, when the run ends, the
    trace tree and timeline.

    Example:
        >>> from agentnb.models import FunctionModel
        >>> from agentnb.runtime import Agent
        >>> widget = RunWidget(Agent(model=FunctionModel(lambda m, i: "hi")).start("greet"))
        >>> widget.step_button.description, widget.run.state
        ('Step', 'ready')
    """

    def __init__(self, run: Any, *, show_trace: bool = True) -> None:
        w = _widgets()
        self.run = run
        """The run shown (a rewind replaces it with the fork)."""
        self.show_trace = show_trace
        self.tasks: set[asyncio.Task[Any]] = set()
        """Tasks in flight (kept referenced until done)."""
        self.busy = False
        """True while a step is executing."""
        self.note = ""
        self.cards: dict[str, ApprovalCard] = {}
        self._handle: Any = None
        self._final_sent = False
        self.header = w.HTML()
        self.status = w.HTML()
        self.meters = w.HTML()
        self.steps = w.HTML()
        self.trace = w.HTML()
        self.approvals = w.VBox()
        self.step_button = w.Button(description="Step", icon="step-forward",
                                    tooltip="Perform exactly one transition")
        self.continue_button = w.Button(description="Continue", icon="play",
                                        tooltip="Step until done or an approval is needed")
        self.breakpoint = w.Text(placeholder="tool name or step kind",
                                 layout=w.Layout(width="170px"))
        self.to_breakpoint_button = w.Button(description="Continue to", icon="forward",
                                             tooltip="Continue, pausing after a step of this "
                                                     "kind or one that proposes this tool")
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="danger",
                                    tooltip="Stop before the next step")
        self.rewind_to = w.BoundedIntText(value=0, min=0, max=0, layout=w.Layout(width="64px"))
        self.rewind_button = w.Button(description="Rewind to", icon="undo",
                                      tooltip="Fork a new run from the checkpoint after step k")
        for button, name in ((self.step_button, "step"), (self.continue_button, "continue"),
                             (self.to_breakpoint_button, "continue-to"),
                             (self.stop_button, "stop"), (self.rewind_button, "rewind")):
            button.layout.width = "auto"
            button.add_class(f"anb-btn-{name}")  # stable hooks for tests and styling
        self.step_button.on_click(self.on_step)
        self.continue_button.on_click(self.on_continue)
        self.to_breakpoint_button.on_click(self.on_continue_to)
        self.stop_button.on_click(self.on_stop)
        self.rewind_button.on_click(self.on_rewind)
        toolbar = w.HBox([self.step_button, self.continue_button, self.to_breakpoint_button,
                          self.breakpoint, self.stop_button, self.rewind_button, self.rewind_to])
        self.box = w.VBox([self.header, toolbar, self.status, self.approvals, self.meters,
                           self.steps, self.trace])
        self.box.add_class("anb-run-widget")
        self.refresh()

    # -- display ---------------------------------------------------------------------------------

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        bundle = dict(self.box._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["text/html"] = _html.RunView.from_run(self.run).to_html()
        bundle["text/plain"] = repr(self.run)
        return bundle

    def _ipython_display_(self) -> None:
        from IPython.display import display

        self._handle = display(self._repr_mimebundle_(), raw=True, display_id=True)

    # -- handlers: schedule and return ----------------------------------------------------------

    def schedule(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
        """Run `coro` as a task on the kernel's loop (refused while a step executes)."""
        if self.busy:
            coro.close()
            self.note = "A step is executing; wait for it."
            self.refresh()
            return None
        self.busy = True
        self.refresh()
        return _schedule(self._guard(coro), self.tasks, self._failed)

    async def _guard(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        except AgentnbError as exc:
            self.note = str(exc)
        finally:
            self.busy = False
            self.refresh()

    def _failed(self, exc: BaseException) -> None:
        self.note = f"{type(exc).__name__}: {exc}"
        self.busy = False
        self.refresh()

    def on_step(self, _: Any = None) -> asyncio.Task[Any] | None:
        """Step button: one transition."""
        self.note = ""
        return self.schedule(self._step())

    def on_continue(self, _: Any = None) -> asyncio.Task[Any] | None:
        """Continue button: step until the run ends or waits for an approval."""
        self.note = ""
        return self.schedule(self._continue(None))

    def on_continue_to(self, _: Any = None) -> asyncio.Task[Any] | None:
        """Continue-to button: like Continue, pausing at the breakpoint."""
        self.note = ""
        return self.schedule(self._continue(self.breakpoint.value.strip() or None))

    def on_stop(self, _: Any = None) -> asyncio.Task[Any] | None:
        """Stop button: the kill switch; an idle run records its stop step at once."""
        if self.run.finished:
            return None
        self.run.stop()
        self.note = "Stop requested."
        if self.busy:
            self.refresh()
            return None
        return self.schedule(self._step())

    def on_rewind(self, _: Any = None) -> asyncio.Task[Any] | None:
        """Rewind button: fork from the checkpoint after step k and show the fork."""
        return self.schedule(self._rewind(int(self.rewind_to.value)))

    # -- the work, inside tasks ------------------------------------------------------------------

    async def _step(self) -> None:
        await self.run.astep()
        self.refresh()

    async def _continue(self, breakpoint_: str | None) -> None:
        while not self.run.finished and self.run.state != "awaiting_approval":
            step = await self.run.astep()
            self.refresh()
            if breakpoint_ and (step.kind == breakpoint_
                                or any(c.name == breakpoint_ for c in step.tool_calls)):
                self.note = f"Paused at breakpoint {breakpoint_!r} after step {step.index}."
                return

    async def _rewind(self, k: int) -> None:
        old = self.run
        self.run = await old.arewind(k)
        self.cards.clear()
        self._final_sent = False
        self.note = f"Rewound: new run forked from {old.run_id} after step {k}."

    async def _after_approval(self) -> None:
        await self.run.astep()  # the approval step: applies the decisions and audits them
        self.refresh()
        if self.run.state == "ready" and self.run.pending:
            await self.run.astep()  # the tool calls, so the result is visible at once

    def _on_decision(self, request: ApprovalRequest, approval: Approval) -> None:
        try:
            decide_approval(self.run, request.call_id, approval)
        except Exception as exc:  # a click handler's error is otherwise lost in the kernel log
            self.note = f"{type(exc).__name__}: {exc}"
            self.refresh()
            return
        waiting = [r for r in self.run.pending_approvals if r.call_id not in self._decided()]
        if not waiting:
            self.schedule(self._after_approval())
        else:
            self.refresh()

    def _decided(self) -> set[str]:
        return {cid for cid, card in self.cards.items() if card.decision is not None}

    # -- panes -----------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Redraw every pane from the run's current state."""
        run = self.run
        header = _fragments.run_header(run)
        if self.busy:
            header["state"] = "running"
        self.header.value = _fragments.wrap(_fragments.header_html(header, run.run_id))
        finished = run.finished
        waiting = run.state == "awaiting_approval"
        for button in (self.step_button, self.continue_button, self.to_breakpoint_button):
            button.disabled = self.busy or finished or waiting
        self.stop_button.disabled = finished
        self.rewind_to.max = len(run.steps)
        self.rewind_button.disabled = self.busy or not run.steps
        note = self.note or ("Waiting for your decision below." if waiting else "")
        self.status.value = (f'<div style="color:#495057;font-style:italic">{_fragments.esc(note)}'
                             f"</div>" if note else "")
        self._refresh_cards(waiting)
        self.meters.value = _fragments.wrap(_fragments.meters_html(_fragments.run_snapshots(run)),
                                            title="Budget")
        self.steps.value = _fragments.wrap(_fragments.steps_html(run.steps), title="Steps")
        if finished and self.show_trace:
            self._refresh_trace()
        elif not finished:
            self.trace.value = ""

    def _refresh_cards(self, waiting: bool) -> None:
        if not waiting:
            if self.cards:
                self.cards.clear()
                self.approvals.children = ()
            return
        for request in self.run.pending_approvals:
            if request.call_id not in self.cards:
                self.cards[request.call_id] = ApprovalCard(request, self._on_decision)
        self.approvals.children = tuple(c.box for c in self.cards.values())

    def _refresh_trace(self) -> None:
        view = _html.RunView.from_run(self.run)
        if not view.spans:
            return
        self.trace.value = _fragments.wrap(
            "<h4>Trace</h4>" + _html.TraceTree(view.spans).body_html()
            + "<h4>Timeline</h4>" + _html.Timeline(view.spans).body_html())
        if self._handle is not None and not self._final_sent:
            self._final_sent = True
            with contextlib.suppress(Exception):  # a closed front end must not break the run
                self._handle.update(self._repr_mimebundle_(), raw=True)
