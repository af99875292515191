"""`Run`: the state of one execution, a state machine advanced one transition at a time.

    ready -> model call -> (tool calls proposed) -> approval? -> tool calls -> model call -> ...
          -> done | failed | stopped

Every mode is built on `astep()`: `agent.run`, step-through, `rewind`, `resume` and `replay`.
The state is plain data kept ready for a checkpoint: messages and steps are appended once and
their JSON dumps are cached as they are appended, so a checkpoint never re-serialises or
deep-copies the history.
"""

from __future__ import annotations

import contextvars
import hashlib
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from agentnb.core import (
    UNSET,
    AgentnbError,
    BudgetExceeded,
    Message,
    RetriesExhausted,
    RunStopped,
    StopReason,
    ToolCallPart,
    Usage,
    UsageError,
    canonical_json,
    content_hash,
    new_id,
    run_sync,
)
from agentnb.runtime import _hooks, _stepping
from agentnb.runtime._budget import BudgetScope
from agentnb.runtime._cache import _dumps
from agentnb.runtime._checkpoint import RunStore, run_store
from agentnb.runtime._delta import DELTA_PREFIX
from agentnb.runtime._journal import StepJournal
from agentnb.runtime._killswitch import LoopDetector
from agentnb.runtime._scopes import current_scope, use_scope
from agentnb.runtime._state import default_home, dump_output, restore_fields
from agentnb.runtime._step import RunResult, RunState, Step, StepKind
from agentnb.runtime._writer import STEPS
from agentnb.tracing import semconv as sc
from agentnb.tracing._lean import active_span

if TYPE_CHECKING:
    from agentnb.runtime._agent import Agent
    from agentnb.runtime._context import RunContext

__all__ = ["CURRENT_RUN", "Run"]

STATE_VERSION = 1
DEFAULT_RETRIES = 5
"""Retries a run may use when no budget scope limits `retries`."""

_TERMINAL = frozenset({"done", "failed", "stopped"})
CURRENT_RUN: contextvars.ContextVar[Run | None] = contextvars.ContextVar(
    "agentnb_current_run", default=None)


def _now() -> datetime:
    return datetime.now(UTC)


class Run:
    """The state of one execution of an agent on a task. Create it with `agent.start(task)`.

    Example:
        >>> from agentnb.models import FunctionModel
        >>> from agentnb.runtime import Agent
        >>> run = Agent(model=FunctionModel(lambda m, i: "done")).start("task")
        >>> run.step().kind, run.state, run.result.output
        ('model', 'done', 'done')
    """

    def __init__(self, agent: Agent, task: str, *, deps: Any = None, environment: Any = None,
                 run_id: str | None = None, parent_run_id: str | None = None,
                 parent_scope: BudgetScope | Any | None = UNSET) -> None:
        self.agent = agent
        """The agent definition this run executes."""
        self.task = task
        """The task as given."""
        self.run_id = run_id or new_id("run")
        """The key for traces, checkpoints and replay."""
        self.parent_run_id = parent_run_id
        """The parent run (delegation) or the run this one was forked from (rewind)."""
        self.deps = deps
        self.environment = environment
        self._state: RunState = "ready"
        self._messages: list[Message] = []
        self._message_dumps: list[dict[str, Any]] = []
        self._chain: list[str] = []
        self._steps: list[Step] = []
        self._step_dumps: list[dict[str, Any]] = []
        # The JSON text of the dumps above, by list name (both lists only ever grow).
        self._encoded: dict[str, list[str]] = {"messages": [], "steps": []}
        # (step, messages, steps, step of the last whole state) of this run's last checkpoint
        # written from this object: the base of the next delta.
        self._saved: tuple[int, int, int, int] | None = None
        # (redaction epoch, loop detector's dump, its redacted copy) of the last state_dict.
        self._loop_dump: tuple[int, dict[str, Any], Any] | None = None
        self.pending: list[ToolCallPart] = []
        self.decisions: dict[str, dict[str, Any]] = {}
        self.sticky: dict[str, str] = {}
        self.usage = Usage()
        self.retries = 0
        self.occurrences: dict[str, int] = {}
        self.loop = LoopDetector(threshold=agent.loop_threshold)
        self.output: Any = None
        self.stop_reason: StopReason | None = None
        self.error: str | None = None
        self.stop_error: RunStopped | None = None
        self.wrap_note: tuple[int, str] | None = None
        self.model_mark = 0
        self.forked_from: tuple[str, int] | None = None
        self._elapsed_prior = 0.0
        self._prior_usage: dict[str, Any] | None = None
        if parent_scope is UNSET:
            # current_scope() falls back to the job's scope under `agentnb run`.
            parent_scope = current_scope()
        self._parent_scope = parent_scope
        self.scope: BudgetScope | None = None
        self._span: trace.Span | None = None
        self._started: float | None = None
        self._busy = False
        self._driving = False  # in `arun_to_end`: some checkpoints may wait for the next step
        self._stop_flag = False
        self.children: list[Run] = []
        self.consult_recordings = False
        self.needs_initial_checkpoint = True
        self.journal = StepJournal()
        self.replay_source: str | None = None
        self.replay_plan: dict[str, Any] = {}
        self.append_message(Message.user(task))

    # -- public state ------------------------------------------------------------------------

    @property
    def state(self) -> RunState:
        """`ready`, `awaiting_approval`, `done`, `failed` or `stopped`."""
        return self._state

    @property
    def steps(self) -> list[Step]:
        """The steps so far, in order (a copy)."""
        return list(self._steps)

    @property
    def messages(self) -> list[Message]:
        """The conversation so far, without the system prompt (a copy)."""
        return list(self._messages)

    @property
    def message_count(self) -> int:
        """How many messages the history holds (no copy)."""
        return len(self._messages)

    @property
    def stopping(self) -> bool:
        """True once `stop()` was called (the run stops before its next step)."""
        return self._stop_flag

    @property
    def finished(self) -> bool:
        """True once the run is done, failed or stopped."""
        return self._state in _TERMINAL

    @property
    def store(self) -> RunStore:
        """Where checkpoints and recordings go."""
        resolved = self.agent._resolved
        store = resolved.get("store")
        if store is None:
            # Looked up once per agent: finding the store resolves its path on the filesystem.
            store = resolved["store"] = run_store(self.agent.resolved_settings.home)
        return store

    @property
    def pending_approvals(self) -> list[Any]:
        """The `ApprovalRequest`s waiting for a decision."""
        from agentnb.runtime._toolstep import approval_requests

        return approval_requests(self) if self._state == "awaiting_approval" else []

    @property
    def result(self) -> RunResult | None:
        """The `RunResult` once the run finished, else None."""
        if not self.finished:
            return None
        return RunResult(output=self.output, status=self._state,  # type: ignore[arg-type]
                         stop_reason=self.stop_reason, usage=self.usage, run_id=self.run_id,
                         steps=tuple(self._steps), error=self.error)

    def __repr__(self) -> str:
        return (f"<Run {self.run_id} agent={self.agent.agent_name!r} state={self._state!r} "
                f"steps={len(self._steps)}>")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        view = _hooks.display_hook("mimebundle")
        if view is None:
            return {"text/plain": repr(self)}
        return view(self, include=include, exclude=exclude)  # type: ignore[no-any-return]

    def _ipython_display_(self) -> None:
        view = _hooks.display_hook("display")
        if view is None:
            from IPython.display import display

            display({"text/plain": repr(self)}, raw=True)
            return
        view(self)

    # -- bookkeeping shared with the step modules ----------------------------------------------

    def append_message(self, message: Message, *, dump: dict[str, Any] | None = None,
                       text: str | None = None) -> None:
        """Append to the history, caching its redacted dump and the rolling request hash.

        `dump` is the message's redacted dump when the caller has it already, `text` its
        `canonical_json`: the text the hash covers is also the one checkpoints store."""
        kept: dict[str, Any] = _hooks.redact_message(message) if dump is None else dump
        if text is None:
            text = canonical_json(kept)
        try:
            data = text.encode()
        except UnicodeEncodeError as exc:  # a lone surrogate: nothing can store or hash it
            near = text[max(0, exc.start - 30):exc.start + 10]
            msg = (f"A {message.role} message of run {self.run_id!r} holds text that is not "
                   f"valid Unicode ({exc.reason}, near {near!r}).")
            raise UsageError(msg, hint="Decode bytes with errors='replace' (not "
                             "'surrogateescape') before they reach a task, a tool result or "
                             "a model.") from None
        self._messages.append(message)
        self._message_dumps.append(kept)
        self._chain.append(hashlib.sha256(
            (self._chain[-1] if self._chain else "").encode() + data).hexdigest())
        done = self._encoded["messages"]
        if len(done) == len(self._message_dumps) - 1:
            done.append(text)

    def model_key(self) -> str:
        """Content hash of the next model request (model, system, tools, settings, history)."""
        agent = self.agent
        resolved = agent._resolved
        fixed = resolved.get("request_hash")
        if fixed is None:
            fixed = resolved["request_hash"] = content_hash({
                "model": agent.resolved_model.info.id, "system": agent.system_prompt,
                "tools": [t.model_dump(mode="json", exclude={"effects"})
                          for t in agent.tool_definitions],
                "settings": resolved["model_settings"].model_dump(mode="json",
                                                                  exclude_none=True)})
        return content_hash([fixed, self._chain[-1] if self._chain else ""])

    def request_messages(self) -> list[Message]:
        """System prompt + history, as sent to the model."""
        resolved = self.agent._resolved
        if "system_message" not in resolved:
            system = self.agent.system_prompt
            resolved["system_message"] = Message.system(system) if system else None
        head = resolved["system_message"]
        return [head, *self._messages] if head is not None else list(self._messages)

    def new_messages_since_model(self) -> list[dict[str, Any]]:
        """Dumps of the messages added since the previous model call (for replay diffs)."""
        return self._message_dumps[self.model_mark:]

    def next_occurrence(self, kind: str, key: str) -> int:
        """Take the next occurrence index of a request key (identical requests in one run)."""
        slot = f"{kind}:{key}"
        occ = self.occurrences.get(slot, 0)
        self.occurrences[slot] = occ + 1
        return occ

    def use_retries(self, n: int, last_error: str) -> None:
        """Count `n` retries against the budget; raise `RetriesExhausted` past the cap."""
        if n <= 0:
            return
        self.retries += n
        assert self.scope is not None
        try:
            self.scope.consume(retries=n)
        except BudgetExceeded:
            raise RetriesExhausted(
                f"Run {self.run_id!r} used up its retries ({self.retries}); last: {last_error}",
                attempts=self.retries, last_error=last_error, run_id=self.run_id) from None
        if self.scope.left("retries") is None and self.retries > DEFAULT_RETRIES:
            raise RetriesExhausted(
                f"Run {self.run_id!r} used {self.retries} retries, more than the default cap "
                f"of {DEFAULT_RETRIES}; last: {last_error}",
                attempts=self.retries, last_error=last_error, run_id=self.run_id)

    def add_usage(self, usage: Usage) -> None:
        """Add to the run's totals."""
        self.usage = self.usage + usage

    def set_state(self, state: RunState) -> None:
        """Move the state machine (the step modules decide where to)."""
        self._state = state

    def context_for(self, step: int, call_id: str) -> RunContext:
        """The `RunContext` a tool sees."""
        from agentnb.runtime._context import RunContext

        return RunContext(run_id=self.run_id, agent=self.agent.agent_name, deps=self.deps,
                          environment=self.environment, usage=self.usage, step=step,
                          call_id=call_id)

    def elapsed_s(self) -> float:
        """Wall time spent in this run, across resumes."""
        if self._started is None:
            return self._elapsed_prior
        return self._elapsed_prior + time.monotonic() - self._started

    # -- serialisation -----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The run's state as JSON-able data (what each checkpoint holds)."""
        # Messages and steps were redacted once, as they were appended; the rest is small, and
        # after most steps empty (only what is there is walked).
        redact_obj = _hooks.redact_obj
        small: dict[str, Any] = {
            "pending": _hooks.redact_parts(self.pending) if self.pending else [],
            "decisions": redact_obj(self.decisions) if self.decisions else {},
            "sticky": redact_obj(self.sticky) if self.sticky else {},
            "output": None if self.output is None else redact_obj(dump_output(self.output)),
            "error": None if self.error is None else _hooks.redact(self.error),
            "task": _hooks.redact(self.task)}
        # The loop detector's counts change at model steps only: redacted again when they do.
        loop, epoch = self.loop.to_dict(), _hooks.redaction_epoch()
        kept = self._loop_dump
        if kept is None or kept[0] != epoch or kept[1] != loop:
            kept = self._loop_dump = (epoch, loop, self.loop.redacted_dict(_hooks.redact))
        small["loop"] = kept[2]
        return {
            "v": STATE_VERSION, "run_id": self.run_id, "parent_run_id": self.parent_run_id,
            "agent": self.agent.agent_name, "state": self._state,
            "messages": list(self._message_dumps), "chain": list(self._chain),
            "steps": list(self._step_dumps), **small,
            "usage": self.usage.json_dict(), "retries": self.retries,
            "occurrences": dict(self.occurrences),
            "stop_reason": self.stop_reason,
            "elapsed_s": self.elapsed_s(),
            "wrap_note": list(self.wrap_note) if self.wrap_note else None,
            "model_mark": self.model_mark,
            "forked_from": list(self.forked_from) if self.forked_from else None,
        }

    def state_json(self) -> str:
        """`state_dict()` as JSON text (a whole checkpoint), built without encoding the history
        again: each message and step is encoded once, at its first checkpoint."""
        return self._state_text(None)

    def _state_text(self, base: tuple[int, int, int] | None) -> str:
        """The whole state, or with `base` = (step, messages, steps) of an earlier checkpoint
        of this run, the delta on it (`_delta.DELTA_PREFIX`): every field but the
        messages, chain and steps whole, and of those only what came after `base`."""
        state = self.state_dict()
        what = f"state of run {self.run_id!r}"
        n = m = 0
        if base is not None:
            n, m = base[1], base[2]
            state["v"] = STATE_VERSION + 1
            state["chain"] = state["chain"][n:]
        parts = []
        for name, dumps, start in (("messages", state.pop("messages"), n),
                                   ("steps", state.pop("steps"), m)):
            done = self._encoded[name]
            done.extend(_dumps(d, what) for d in dumps[len(done):])
            parts.append(f'"{name}":[{",".join(done[start:])}]')
        body = f"{_dumps(state, what)[1:-1]},{','.join(parts)}}}"
        if base is None:
            return "{" + body
        return f'{DELTA_PREFIX}{{"base":{base[0]},"messages":{n},"steps":{m}}},{body}'

    @classmethod
    def from_state(cls, agent: Agent, state: dict[str, Any], *, run_id: str | None = None,
                   parent_run_id: str | Any | None = UNSET, deps: Any = UNSET) -> Run:
        """Rebuild a run from `state_dict()` output (nothing is executed).

        Example:
            >>> from agentnb.models import FunctionModel
            >>> from agentnb.runtime import Agent
            >>> run = Agent(model=FunctionModel(lambda m, i: "x")).start("t")
            >>> Run.from_state(run.agent, run.state_dict()).task
            't'
        """
        if state.get("v") != STATE_VERSION:
            msg = f"Checkpoint state version {state.get('v')!r} is not {STATE_VERSION}."
            raise UsageError(msg, hint="Load it with the agentnb version that wrote it.")
        run = cls.__new__(cls)
        Run.__init__(run, agent, state["task"], deps=agent.deps if deps is UNSET else deps,
                     run_id=run_id or state["run_id"],
                     parent_run_id=(state.get("parent_run_id") if parent_run_id is UNSET
                                    else parent_run_id))
        restore_fields(run, agent, state)
        return run

    @classmethod
    async def aload(cls, run_id: str, *, agent: Agent | None = None, step: int | None = None,
                    home: Any = None) -> Run:
        """Async twin of `load`."""
        from agentnb.runtime._agent import registered_agent

        store = run_store(home if home is not None else default_home(agent))
        checkpoint = await store.aload_checkpoint(run_id, step)
        found = agent or registered_agent(checkpoint.agent)
        if found is None:
            msg = f"Run {run_id!r} belongs to agent {checkpoint.agent!r}, which is not defined."
            raise UsageError(msg, hint="Define the agent again (run its cell) or pass `agent=`.")
        run = cls.from_state(found, checkpoint.state)
        run.consult_recordings = True
        run.needs_initial_checkpoint = False
        return run

    @classmethod
    def load(cls, run_id: str, *, agent: Agent | None = None, step: int | None = None,
             home: Any = None) -> Run:
        """Load a run from its newest checkpoint (or the one after `step`), e.g. after a crash.

        The agent is found by name among the agents defined in this process, or passed.

        Raises:
            StoreError: no checkpoint for `run_id`.
            UsageError: the agent is not defined in this process.
        """
        return run_sync(cls.aload(run_id, agent=agent, step=step, home=home))

    # -- driving -----------------------------------------------------------------------------

    def step(self) -> Step:
        """Perform exactly one transition and return the `Step` it recorded."""
        return run_sync(self.astep())

    async def astep(self) -> Step:
        """Async twin of `step`.

        Raises:
            UsageError: the run already finished, or a step is already in progress.
            ReplayDiverged: replaying, and the run asked for something not recorded.
        """
        if self.finished:
            msg = f"Run {self.run_id!r} is {self._state}; it takes no more steps."
            raise UsageError(msg, hint="Use `run.rewind(k)` to fork it, or start a new run.")
        if self._busy:
            msg = f"Run {self.run_id!r} is already executing a step."
            raise UsageError(msg, hint="Await the step in progress before the next one.")
        self._busy = True
        try:
            with STEPS:
                return await self._astep()
        finally:
            self._busy = False

    async def _astep(self) -> Step:
        _stepping.begin(self)
        assert self.scope is not None
        if self.needs_initial_checkpoint:
            self.needs_initial_checkpoint = False
            await _stepping.checkpoint(self)
        with use_scope(self.scope), active_span(self._span or trace.INVALID_SPAN):
            return await _stepping.step_once(self)

    async def arun_to_end(self, *, raise_on_stop: bool = False) -> RunResult:
        """Step until the run finishes (async twin of `run_to_end`)."""
        self._driving = True
        try:
            while not self.finished:
                await self.astep()
        finally:
            self._driving = False
            # A drive that ends between steps (cancelled, or a write that failed) leaves no
            # checkpoint held in memory.
            _stepping.flush_journal(self)
        if raise_on_stop and self._state == "stopped" and self.stop_error is not None:
            raise self.stop_error
        result = self.result
        assert result is not None
        return result

    def run_to_end(self, *, raise_on_stop: bool = False) -> RunResult:
        """Step until the run finishes and return its result."""
        return run_sync(self.arun_to_end(raise_on_stop=raise_on_stop))

    async def aresume(self, *, raise_on_stop: bool = False) -> RunResult:
        """Async twin of `resume`."""
        return await self.arun_to_end(raise_on_stop=raise_on_stop)

    def resume(self, *, raise_on_stop: bool = False) -> RunResult:
        """Continue a loaded run to the end.

        Before calling the model or a tool it consults the run's recordings, so a call that
        completed before the crash is neither repeated nor paid for again.
        """
        return run_sync(self.aresume(raise_on_stop=raise_on_stop))

    def decide(self, call_id: str, decision: str = "approve", *,
               arguments: dict[str, Any] | None = None, message: str | None = None,
               approver: str = "user", sticky: bool = False) -> None:
        """Decide a pending approval (`approve`, `edit`, `deny`, `terminate`) without waiting.

        The next `step()` applies it. See `pending_approvals` for what waits.

        Raises:
            UsageError: no call `call_id` waits for approval.
        """
        from agentnb.governance import Approval
        from agentnb.runtime._toolstep import decide

        decide(self, call_id, Approval(decision=decision, arguments=arguments,  # type: ignore[arg-type]
                                       message=message, approver=approver, sticky=sticky))

    async def approve(self, call_id: str, decision: str = "approve", *,
                      arguments: dict[str, Any] | None = None, message: str | None = None,
                      approver: str = "user", sticky: bool = False) -> None:
        """Async twin of `decide`, for widget callbacks on the kernel's loop."""
        self.decide(call_id, decision, arguments=arguments, message=message,
                    approver=approver, sticky=sticky)

    def stop(self) -> None:
        """Ask the run (and its delegates' runs) to stop before their next step."""
        self._stop_flag = True
        for child in self.children:
            child.stop()

    def rewind(self, step: int) -> Run:
        """Fork a new run from the checkpoint after step `step`; this run is kept unchanged.

        The fork has a new run id and `parent_run_id` set to this run. `rewind(0)` starts over.
        """
        return run_sync(self.arewind(step))

    async def arewind(self, step: int) -> Run:
        """Async twin of `rewind`."""
        if step < 0 or step > len(self._steps):
            msg = f"Cannot rewind run {self.run_id!r} to step {step}: it has {len(self._steps)}."
            raise UsageError(msg, hint=f"Pass 0..{len(self._steps)}.")
        if self.journal.held is not None and self.journal.held.step <= step:
            _stepping.flush_journal(self, held_only=True)  # a driven run's waiting checkpoint
        checkpoint = await self.store.aload_checkpoint(self.run_id, step)
        fork = Run.from_state(self.agent, checkpoint.state, run_id=new_id("run"),
                              parent_run_id=self.run_id, deps=self.deps)
        fork.environment = self.environment
        fork.forked_from = (self.run_id, step)
        fork._parent_scope = self._parent_scope
        return fork

    # -- the one transition --------------------------------------------------------------------

    def stopped_step(self, kind: StepKind, index: int, started_at: datetime, t0: float,
                     err: RunStopped, **fields: Any) -> Step:
        """Stop the run on a kill switch and build the step that says why."""
        err.run_id = err.run_id or self.run_id
        err.checkpoint = index
        self._state = "stopped"
        self.stop_reason = err.reason
        self.error = str(err)
        self.stop_error = err
        span = trace.get_current_span()
        span.add_event("stop", {sc.AGENTNB_KIND: "stop", sc.AGENTNB_STOP_REASON: err.reason,
                                "message": _hooks.redact(err.message)})
        return Step(kind=kind, index=index, status="stopped", started_at=started_at,
                    duration_s=time.perf_counter() - t0, stop_reason=err.reason,
                    error=_hooks.redact(str(err)), **fields)

    def failed_step(self, kind: StepKind, index: int, started_at: datetime, t0: float,
                    err: AgentnbError) -> Step:
        """Fail the run on an error it cannot continue past (a model that keeps failing)."""
        self._state = "failed"
        self.error = f"{type(err).__name__}: {err}"
        trace.get_current_span().record_exception(err)
        return Step(kind=kind, index=index, status="failed", started_at=started_at,
                    duration_s=time.perf_counter() - t0, error=_hooks.redact(self.error))
