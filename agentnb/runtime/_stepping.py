"""The one transition of a `Run`: a step, its checkpoint, and the end of the run.

`Run.astep` calls `step_once`, which runs a model, tools or approval step under its span and
the run's budget scope, appends the step, and writes the checkpoint: whole or as a delta on
the previous one (`_delta.FULL_EVERY`), with the step's recordings and audit records
(`_journal`) and every finished span (`agentnb.tracing._shared`) in the same transaction. When
the run ends, its span ends first, so its last checkpoint also stores it and no flush is
waited for.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from agentnb.core import ModelError, ReplayDiverged, RunStopped, StopRequested, UsageError
from agentnb.runtime import _hooks
from agentnb.runtime._budget import BudgetScope
from agentnb.runtime._delta import FULL_EVERY
from agentnb.runtime._job import job_context
from agentnb.runtime._journal import HeldCheckpoint
from agentnb.runtime._state import dump_output, remaining_limits
from agentnb.runtime._step import Step, StepKind, ToolCallRecord
from agentnb.runtime._tool import render_result
from agentnb.runtime._writer import RIDE_SPANS
from agentnb.tracing import semconv as sc
from agentnb.tracing._lean import active_span

if TYPE_CHECKING:
    from collections.abc import Callable

    from agentnb.runtime._run import Run

__all__ = ["begin", "checkpoint", "step_once"]


def _now() -> datetime:
    return datetime.now(UTC)


def begin(run: Run) -> None:
    """Open the run's budget scope and span, once per run object (a resumed run reopens)."""
    if run.scope is not None:
        return
    agent = run.agent
    settings = agent.resolved_settings
    _hooks.configure_once(settings)
    limits = remaining_limits(agent.budget, run._prior_usage, run._elapsed_prior,
                              len(run._steps), run.retries)
    parent = run._parent_scope
    run.scope = (parent.child(run.run_id, "run", limits) if parent is not None
                 else BudgetScope(limits, name=run.run_id, kind="run"))
    run._started = time.monotonic()
    info = agent.resolved_model.info
    attrs = {
        sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.AGENTNB_KIND: "run",
        sc.AGENTNB_RUN_ID: run.run_id, sc.GEN_AI_AGENT_NAME: agent.agent_name,
        sc.GEN_AI_REQUEST_MODEL: info.id, sc.AGENTNB_TASK: _hooks.redact(run.task),
    }
    if run.parent_run_id:
        attrs[sc.AGENTNB_PARENT_RUN_ID] = run.parent_run_id
    run._span = _hooks.tracer().start_span(f"invoke_agent {agent.agent_name}",
                                           attributes=attrs)


async def step_once(run: Run) -> Step:
    """Run the next step, append it and write its checkpoint; end the run when it is over."""
    index = len(run._steps) + 1
    kind: StepKind = ("approval" if run._state == "awaiting_approval"
                      else "tools" if run.pending else "model")
    started_at, t0 = _now(), time.perf_counter()
    run.journal.may_hold = False
    try:
        step = await run_step(run, kind, index, started_at, t0)
    except BaseException:
        flush_journal(run)
        raise
    run._steps.append(step)
    run._step_dumps.append(step_dump(run, step))
    if run.finished:
        # The run's span ends first, so the last checkpoint stores it with the rest.
        end_span(run)
        stored = await checkpoint(run)
        await finish(run, spans_stored=stored)
    else:
        await checkpoint(run)
    return step


async def run_step(run: Run, kind: StepKind, index: int, started_at: datetime,
                   t0: float) -> Step:
    from agentnb.runtime import _modelstep, _toolstep

    span = _hooks.tracer().start_span(f"step {index} {kind}", attributes={
        sc.AGENTNB_KIND: "step", sc.AGENTNB_STEP_INDEX: index, sc.AGENTNB_STEP_KIND: kind,
        sc.AGENTNB_RUN_ID: run.run_id})
    try:
        with active_span(span):
            try:
                await preflight(run, index)
                left = run.scope.left("wall_s") if run.scope else None
                if kind == "model":
                    work = _modelstep.model_step(run, index, started_at, t0)
                elif kind == "tools":
                    work = _toolstep.tools_step(run, index, started_at, t0)
                else:
                    work = _toolstep.approval_step(run, index, started_at, t0)
                if left is None:  # no wall-time limit: no timer to arm and cancel per step
                    step = await work
                else:
                    async with asyncio.timeout(float(left)):
                        step = await work
            except TimeoutError:
                assert run.scope is not None
                try:
                    run.scope.check_wall()
                except RunStopped as err:
                    step = run.stopped_step(kind, index, started_at, t0, err)
                else:
                    raise
            except RunStopped as err:
                step = run.stopped_step(kind, index, started_at, t0, err)
            except ModelError as err:
                step = run.failed_step(kind, index, started_at, t0, err)
            except (ReplayDiverged, UsageError, Exception) as err:
                run._state = "failed"
                run.error = f"{type(err).__name__}: {err}"
                span.record_exception(err)
                await finish(run)
                raise
        span.set_attribute(sc.AGENTNB_STATUS, step.status)
        if step.stop_reason:
            span.set_attribute(sc.AGENTNB_STOP_REASON, step.stop_reason)
    finally:
        span.end()
    return step


STEP_TEXT_FIELDS = frozenset({"tool_calls", "reason", "error"})
"""The fields of a step that can hold text from outside (the model, tools, errors), so the only
ones a step's dump redacts; the others are numbers, flags, literals and a timestamp made here."""


def step_dump(run: Run, step: Step) -> dict[str, Any]:
    """The step's redacted dump; its messages reuse the dumps redacted when appended.

    Made by hand (what `model_dump(mode="json")` gives, field by field, in the model's field
    order: a test compares them): pydantic's dump of a step was the largest single item of a
    model call's profile at C=1."""
    n = len(step.messages)
    recent = run._messages[-n:] if n else []
    if not (n and len(recent) == n and all(a is b for a, b in zip(step.messages, recent,
                                                                  strict=True))):
        return _hooks.redact_obj(step.model_dump(mode="json"))
    redact = _hooks.redact
    started = step.started_at.isoformat()
    if started.endswith("+00:00"):
        started = started[:-6] + "Z"  # as pydantic writes a UTC time
    return {
        "kind": step.kind, "index": step.index, "status": step.status,
        "usage": step.usage.json_dict(), "messages": run._message_dumps[-n:],
        "tool_calls": [_redacted_call(c, redact) for c in step.tool_calls],
        "reason": None if step.reason is None else redact(step.reason),
        "started_at": started, "duration_s": step.duration_s, "cache_hit": step.cache_hit,
        "stop_reason": step.stop_reason,
        "error": None if step.error is None else redact(step.error),
    }


def _redacted_call(c: ToolCallRecord, redact: Callable[[str], str]) -> dict[str, Any]:
    """`redact_obj(c.json_dict())`, made by hand: the texts redacted, the status (a literal of
    the schema), the duration and the flag as they are."""
    return {"id": redact(c.id), "name": redact(c.name), "arguments": redact(c.arguments),
            "reason": None if c.reason is None else redact(c.reason),
            "result": None if c.result is None else redact(c.result), "status": c.status,
            "decision": None if c.decision is None else redact(c.decision),
            "duration_s": c.duration_s, "replayed": c.replayed}


async def preflight(run: Run, index: int) -> None:
    assert run.scope is not None
    if run._stop_flag or (run.replay_source is None
                          and await run.store.astop_requested(run.run_id)):
        raise StopRequested(f"Run {run.run_id!r} was asked to stop before step {index}.",
                            run_id=run.run_id)
    limit = run.replay_plan.get("steps")
    if limit is not None and index > limit:
        reason = run.replay_plan.get("stop_reason") or "stop_requested"
        raise RunStopped(f"The recorded run stopped here ({reason}).", reason=reason,
                         run_id=run.run_id)
    run.scope.check_wall()
    run.scope.consume(steps=1)


def flush_journal(run: Run, *, held_only: bool = False) -> None:
    """Write what the journal keeps (a held checkpoint, recordings, audit records) now: for a
    step that failed or was cancelled before its checkpoint, and a drive that stopped;
    `held_only` for a reader that needs the held checkpoint's row (`Run.rewind`)."""
    journal = run.journal
    if journal.empty or run.replay_source is not None:
        return
    flush = journal.flush_held if held_only else journal.flush_sync
    flush(run.store, run.run_id, run.agent.resolved_settings.home, agent=run.agent.agent_name,
          parent_run_id=run.parent_run_id)


def _may_hold(run: Run) -> bool:
    """True when this checkpoint may wait for the next step's (see `agentnb.runtime._journal`):
    the run is driven straight on, and it is the initial checkpoint (nothing done yet) or the
    step only read and paid for nothing."""
    if not run._driving or run.finished:
        return False
    if not run._steps:
        return True
    last = run._steps[-1]
    return run.journal.may_hold and last.kind == "tools" and last.status == "ok"


async def checkpoint(run: Run) -> bool:
    """Save the step's checkpoint; True for a run's last one when every span that ended
    before it is stored with it (see `RunStore.spans_ride_along` and `RIDE_SPANS`).

    The state goes whole at a run's first checkpoint in this process and every
    `FULL_EVERY` steps, as a delta on this run's previous checkpoint in between: the
    history is written once, not again at every step.

    While `arun_to_end` drives the run straight on to its next step, a step that only read
    may hold its checkpoint for the next one (see `agentnb.runtime._journal`)."""
    journal = run.journal
    recordings, audits = journal.take()
    if run.replay_source is not None:
        return False
    held, journal.held = journal.held, None
    home = run.agent.resolved_settings.home
    store = run.store
    step = len(run._steps)
    saved = run._saved
    if saved is not None and saved[0] < step and step - saved[3] < FULL_EVERY:
        text, full_at = run._state_text(saved[:3]), saved[3]
    else:
        text, full_at = run._state_text(None), step
    saved_now = (step, len(run._message_dumps), len(run._step_dumps), full_at)
    if held is None and _may_hold(run):
        journal.held = HeldCheckpoint(step, text, run._state, recordings, audits)
        store.remember_parent(run.run_id, run.parent_run_id)
        run._saved = saved_now
        return False
    earlier: tuple[tuple[int, str, str], ...] = ()
    if held is not None:
        earlier = ((held.step, held.text, held.status),)
        recordings = held.recordings + recordings
        audits = held.audits + audits
    token = RIDE_SPANS.set(run.finished)  # see RIDE_SPANS: inline, only the last one
    try:
        await store.asave_checkpoint(
            run.run_id, step, text, status=run._state,
            agent=run.agent.agent_name, parent_run_id=run.parent_run_id, earlier=earlier,
            recordings=recordings, audit=(_hooks.audit_log(home), audits) if audits else None)
    except BaseException:
        if held is not None:
            journal.held = held  # not written: the error path writes it (`flush_journal`)
        raise
    finally:
        RIDE_SPANS.reset(token)
    run._saved = saved_now
    return run.finished and store.spans_ride_along()


async def finish(run: Run, *, spans_stored: bool = False) -> None:
    """End the run (span, flush, budget audit, job record); `spans_stored`: the last
    checkpoint stored every span, so no flush is needed."""
    end_span(run)
    if not spans_stored:
        await _hooks.aflush()
    if run.stop_reason == "budget" and run.agent.policy is not None:
        await audit_budget_stop(run)
    job = job_context()
    if job is not None and run.parent_run_id is None and run.finished:
        # Only a refusal by the job's own scope ends the job; a run's own limit does not.
        by_job = getattr(run.stop_error, "scope_name", None) == job.scope.name
        await asyncio.to_thread(job.record_run, run.result, stopped_by_job=by_job)


def end_span(run: Run) -> None:
    if run._started is not None:
        run._elapsed_prior = run.elapsed_s()
        run._started = None
    span, run._span = run._span, None
    if span is not None:
        u = run.usage
        if run.error and run._state == "failed":
            span.set_status(trace.Status(trace.StatusCode.ERROR, run.error))
        _hooks.end_span(span, {
            sc.AGENTNB_STATUS: run._state, sc.AGENTNB_STOP_REASON: run.stop_reason,
            sc.GEN_AI_USAGE_INPUT_TOKENS: u.input_tokens,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: u.output_tokens,
            sc.AGENTNB_COST_USD: None if u.usd is None else float(u.usd),
            sc.AGENTNB_USAGE_MODEL_CALLS: u.model_calls,
            sc.AGENTNB_USAGE_TOOL_CALLS: u.tool_calls,
            sc.AGENTNB_USAGE_STEPS: len(run._steps),
            sc.AGENTNB_OUTPUT: None if run.output is None
            else _hooks.redact(render_result(dump_output(run.output))),
        })


async def audit_budget_stop(run: Run) -> None:
    from agentnb.governance import audit

    err = run.stop_error
    fields = {name: str(getattr(err, name)) for name in
              ("limit_name", "limit", "spent", "requested", "scope", "scope_name")
              if getattr(err, name, None) is not None}
    await asyncio.to_thread(_hooks.audit, run.agent.resolved_settings.home,
                            audit.BUDGET_STOP, run_id=run.run_id, **fields)
