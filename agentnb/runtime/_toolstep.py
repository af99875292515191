"""The approval and tools steps: policy, approvers, workspace and network confinement, audit,
and the bounded, cancellation-safe execution of a batch of tool calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pydantic
from opentelemetry import trace

from agentnb.core import (
    Message,
    RunStopped,
    ToolCallPart,
    ToolResultPart,
    Usage,
    UsageError,
    WorkspaceViolation,
    content_hash,
    in_agentnb_loop,
    parsed_arguments,
)
from agentnb.governance import audit
from agentnb.runtime import _hooks
from agentnb.runtime._step import Step, ToolCallRecord
from agentnb.runtime._tool import ToolOutcome, _retry_text
from agentnb.tracing import semconv as sc
from agentnb.tracing._lean import active_span

if TYPE_CHECKING:
    from agentnb.governance import Approval, ApprovalRequest
    from agentnb.runtime._run import Run

__all__ = ["approval_requests", "approval_step", "decide", "propose", "tools_step"]


def _args(call: ToolCallPart) -> dict[str, Any]:
    """The call's parsed arguments ({} when malformed); shared, so read only."""
    args = parsed_arguments(call)
    return {} if args is None else args


def _tool_key(call: ToolCallPart) -> str:
    args: Any = parsed_arguments(call)
    if args is None:
        args = call.arguments
    # Keyed on the redacted arguments: recorded model replies are redacted, so a replay proposes
    # the redacted call and must find the same recording.
    return content_hash({"tool": call.name, "args": _hooks.redact_obj(args)})


def _audit(run: Run, records: list[tuple[str, dict[str, Any]]]) -> None:
    """Keep audit records for the step's checkpoint (which appends them before it commits)."""
    if run.agent.policy is None or not records or run.replay_source is not None:
        return
    run.journal.audit(records)


# -- policy ------------------------------------------------------------------------------------


async def propose(run: Run, calls: list[ToolCallPart]) -> bool:
    """Pass each proposed call through the policy; return True when one needs an approval."""
    policy = run.agent.policy
    needs = False
    audits: list[tuple[str, dict[str, Any]]] = []
    for call in calls:
        tool = run.agent.tool_map.get(call.name)
        if tool is None:
            run.decisions[call.id] = {"decision": "unknown", "rule": "", "reason": ""}
            continue
        if policy is None:
            run.decisions[call.id] = {"decision": "allow", "rule": "no-policy", "reason": ""}
            continue
        try:
            verdict = policy.decide(call.name, tool.effects, dict(_args(call)))
        except UsageError as exc:
            # A rule's `when` raised: the call cannot be shown to be allowed, so it is denied.
            entry: dict[str, Any] = {"decision": "deny", "rule": "rule-error",
                                     "reason": exc.message}
        else:
            entry = {"decision": verdict.decision, "rule": verdict.rule, "reason": verdict.reason}
        if entry["decision"] == "approve":
            remembered = run.sticky.get(call.name)
            if remembered is not None:
                entry["approval"] = {"decision": remembered, "approver": "sticky",
                                     "message": None, "arguments": None, "sticky": True}
            else:
                needs = True
        run.decisions[call.id] = entry
        audits.append((audit.TOOL_CALL_REQUESTED, {
            "run_id": run.run_id, "tool": call.name, "call_id": call.id,
            "arguments": _args(call), "reason": call.reason}))
        audits.append((audit.POLICY_DECISION, {
            "run_id": run.run_id, "tool": call.name, "call_id": call.id,
            "arguments": _args(call), "effects": sorted(tool.effects), **entry}))
    _audit(run, audits)
    return needs


def approval_requests(run: Run) -> list[ApprovalRequest]:
    """The calls of the pending batch that wait for an approver's decision."""
    from agentnb.governance import ApprovalRequest

    out = []
    for call in run.pending:
        entry = run.decisions.get(call.id, {})
        if entry.get("decision") == "approve" and "approval" not in entry:
            tool = run.agent.tool_map[call.name]
            out.append(ApprovalRequest(
                run_id=run.run_id, tool=call.name, call_id=call.id,
                arguments=_hooks.redact_obj(_args(call)), effects=sorted(tool.effects),
                reason=call.reason, rule=str(entry.get("rule", ""))))
    return out


def decide(run: Run, call_id: str, approval: Approval) -> None:
    """Record an approval decided outside the run (a notebook widget)."""
    entry = run.decisions.get(call_id)
    if run.state != "awaiting_approval" or entry is None or entry.get("decision") != "approve":
        msg = f"Run {run.run_id!r} has no tool call {call_id!r} waiting for approval."
        raise UsageError(msg, hint="See `run.pending_approvals` for the calls that wait.")
    entry["approval"] = approval.model_dump(mode="json")


def _approver(run: Run) -> Any:
    from agentnb.governance import ParameterApprover, headless_approver

    approver = run.agent.approver
    if approver is None:
        # Headless default (`agentnb run --approvals ...`): deny unless the job says otherwise.
        spec = run.agent.resolved_settings.approvals
        approver = None if spec == "deny" else ParameterApprover(spec)
    if approver is None or in_agentnb_loop():
        # A blocking call can never receive a click (STYLE B5): interactive approvers become
        # the recorded deny, whose message says how to approve interactively.
        return headless_approver(approver)
    return approver


async def approval_step(run: Run, index: int, started_at: datetime, t0: float) -> Step:
    """Ask the approver about every call that waits; apply the decisions."""
    from agentnb.governance import Approval

    requests = {r.call_id: r for r in approval_requests(run)}
    approver = _approver(run) if requests else None
    records: list[ToolCallRecord] = []
    audits: list[tuple[str, dict[str, Any]]] = []
    terminate: Approval | None = None
    for call in list(run.pending):
        entry = run.decisions.get(call.id, {})
        if entry.get("decision") != "approve":
            continue
        key = "approval:" + _tool_key(call)
        occurrence = run.next_occurrence("approval", key)
        approval: Approval | None = None
        if "approval" in entry:
            approval = Approval.model_validate(entry["approval"])
        else:
            source = run.replay_source or (run.run_id if run.consult_recordings else None)
            if source is not None:
                payload = await run.store.arecorded(source, "tool", key, occurrence)
                if payload is not None:
                    approval = Approval.model_validate(payload)
            if approval is None:
                assert approver is not None
                approval = await approver.approve(requests[call.id])
        assert approval is not None
        if run.replay_source is None:
            await run.store.arecord(run.run_id, "tool", key, occurrence,
                                    _hooks.redact_obj(approval.model_dump(mode="json")))
        entry["approval"] = approval.model_dump(mode="json")
        if approval.sticky and approval.decision in ("approve", "deny"):
            run.sticky[call.name] = approval.decision
        if approval.decision == "edit" and approval.arguments is not None:
            edited = call.model_copy(update={"arguments": json.dumps(approval.arguments)})
            run.pending[run.pending.index(call)] = edited
        if approval.decision == "terminate" and terminate is None:
            terminate = approval
        trace.get_current_span().add_event("approval", {
            sc.AGENTNB_KIND: "approval", sc.GEN_AI_TOOL_CALL_ID: call.id,
            sc.AGENTNB_APPROVAL_DECISION: approval.decision,
            sc.AGENTNB_APPROVER: approval.approver})
        audits.append((audit.APPROVAL, {"run_id": run.run_id, "tool": call.name, "call_id": call.id,
                                    "decision": approval.decision, "approver": approval.approver,
                                    "message": approval.message}))
        status = {"approve": "approved", "edit": "edited"}.get(approval.decision, "denied")
        records.append(ToolCallRecord(id=call.id, name=call.name, arguments=call.arguments,
                                      reason=call.reason, status=status,  # type: ignore[arg-type]
                                      decision=f"{approval.decision} by {approval.approver}",
                                      result=approval.message))
    _audit(run, audits)
    run.set_state("ready")
    if terminate is not None:
        err = RunStopped(f"Approver {terminate.approver!r} terminated run {run.run_id!r}"
                         + (f": {terminate.message}" if terminate.message else "."),
                         reason="policy", run_id=run.run_id)
        return run.stopped_step("approval", index, started_at, t0, err, tool_calls=tuple(records))
    return Step(kind="approval", index=index, started_at=started_at,
                duration_s=time.perf_counter() - t0, tool_calls=tuple(records))


# -- tools -------------------------------------------------------------------------------------


def _leaves(group: BaseException) -> list[BaseException]:
    if isinstance(group, BaseExceptionGroup):
        return [leaf for e in group.exceptions for leaf in _leaves(e)]
    return [group]


async def tools_step(run: Run, index: int, started_at: datetime, t0: float) -> Step:
    """Run the pending calls concurrently (at most `max_concurrency` at a time)."""
    calls = list(run.pending)
    run.journal.may_hold = True  # until a call records at once (see `_save`)
    plan = [(call, _tool_key(call)) for call in calls]
    plan_occ = [(call, key, run.next_occurrence("tool", key)) for call, key in plan]
    outcomes: list[tuple[ToolOutcome, bool, bool] | None] = [None] * len(calls)
    gate = asyncio.Semaphore(run.agent.max_concurrency)
    try:
        async with asyncio.TaskGroup() as group:
            for i, (call, key, occ) in enumerate(plan_occ):
                group.create_task(_one(run, index, i, call, key=key, occurrence=occ,
                                           gate=gate, outcomes=outcomes))
    except BaseExceptionGroup as eg:
        leaves = _leaves(eg)
        stop = next((e for e in leaves if isinstance(e, RunStopped)), None)
        if stop is None:
            first = next((e for e in leaves if not isinstance(e, asyncio.CancelledError)),
                         leaves[0])
            raise first from None
        done = tuple(_record(call, o) for call, o in zip(calls, outcomes, strict=True)
                     if o is not None)
        return run.stopped_step("tools", index, started_at, t0, stop, tool_calls=done)
    parts: list[ToolResultPart] = []
    records: list[ToolCallRecord] = []
    executed = 0
    for call, result in zip(run.pending, outcomes, strict=True):
        assert result is not None
        outcome, replayed, ran = result
        executed += ran or replayed
        parts.append(ToolResultPart(call_id=call.id, name=call.name, content=outcome.content,
                                    is_error=outcome.is_error))
        records.append(_record(call, result, run.decisions.get(call.id)))
    _audit(run, [(audit.TOOL_RESULT, {
        "run_id": run.run_id, "tool": r.name, "call_id": r.id, "status": r.status,
        "replayed": r.replayed, "result": (r.result or "")[:500]}) for r in records])
    message = Message.tool_results(*parts)
    run.append_message(message)
    usage = Usage(tool_calls=executed)
    run.add_usage(usage)
    for call in calls:
        run.decisions.pop(call.id, None)
    run.pending = []
    run.set_state("ready")
    retries = [r for r in records if r.status == "retry"]
    fields: dict[str, Any] = {"usage": usage, "messages": (message,),
                              "tool_calls": tuple(records)}
    if retries:
        try:
            run.use_retries(len(retries), f"{retries[0].name}: {retries[0].result}")
        except RunStopped as err:
            return run.stopped_step("tools", index, started_at, t0, err, **fields)
    return Step(kind="tools", index=index, started_at=started_at, status="retry" if retries
                else "ok", duration_s=time.perf_counter() - t0, **fields)


def _record(call: ToolCallPart, result: tuple[ToolOutcome, bool, bool],
            decision: dict[str, Any] | None = None) -> ToolCallRecord:
    outcome, replayed, _ = result
    label = None
    if decision and decision.get("decision") not in (None, "unknown"):
        label = f"{decision['decision']} ({decision.get('rule')})"
    return ToolCallRecord(id=call.id, name=call.name, arguments=call.arguments,
                          reason=call.reason, result=_hooks.redact(outcome.content),
                          status=outcome.status, decision=label,
                          duration_s=outcome.duration_s, replayed=replayed)


async def _one(run: Run, index: int, i: int, call: ToolCallPart, *, key: str,
               occurrence: int, gate: asyncio.Semaphore, outcomes: list[Any]) -> None:
    async with gate:
        agent = run.agent
        tool = agent.tool_map.get(call.name)
        entry = run.decisions.get(call.id, {})
        attrs: dict[str, Any] = {
            sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.AGENTNB_KIND: "tool_call",
            sc.GEN_AI_TOOL_NAME: call.name, sc.GEN_AI_TOOL_CALL_ID: call.id,
            sc.AGENTNB_RUN_ID: run.run_id,
            sc.AGENTNB_POLICY_DECISION: entry.get("decision"),
            sc.AGENTNB_POLICY_RULE: entry.get("rule") or None,
            sc.AGENTNB_TOOL_REASON: call.reason,
            sc.AGENTNB_TOOL_EFFECTS: sorted(tool.effects) if tool else None,
        }
        if agent.resolved_settings.record_content:
            attrs[sc.GEN_AI_TOOL_CALL_ARGUMENTS] = _hooks.redact(call.arguments)
        span = _hooks.tracer().start_span(
            f"execute_tool {call.name}", attributes={k: v for k, v in attrs.items()
                                                     if v is not None})
        try:
            with active_span(span):
                result = await _execute(run, index, call, key=key, occurrence=occurrence,
                                        entry=entry)
            outcome = result[0]
            span.set_attribute(sc.AGENTNB_TOOL_STATUS, outcome.status)
            if outcome.error_type:
                span.set_attribute(sc.ERROR_TYPE, outcome.error_type)
                span.add_event("tool_error", {"error.type": outcome.error_type,
                                              "message": _hooks.redact(outcome.content)})
            if agent.resolved_settings.record_content:
                span.set_attribute(sc.GEN_AI_TOOL_CALL_RESULT, _hooks.redact(outcome.content))
            outcomes[i] = result
        except BaseException as err:
            span.set_attribute(sc.AGENTNB_TOOL_STATUS, "error")
            span.record_exception(err)
            raise
        finally:
            span.end()


async def _execute(run: Run, index: int, call: ToolCallPart, *, key: str, occurrence: int,
                   entry: dict[str, Any]) -> tuple[ToolOutcome, bool, bool]:
    """Run one call: (outcome, replayed from a recording, counted as an executed call)."""
    from agentnb.runtime._run import CURRENT_RUN

    agent = run.agent
    tool = agent.tool_map.get(call.name)
    if tool is None:
        names = sorted(agent.tool_map)
        return ToolOutcome(content=f"There is no tool {call.name!r}. Available tools: {names}.",
                           status="retry"), False, False
    denied = _denied(entry)
    if denied is not None:
        return ToolOutcome(content=denied, status="denied"), False, False
    source = run.replay_source or (run.run_id if run.consult_recordings else None)
    if source is not None:
        payload = await run.store.arecorded(source, "tool", key, occurrence)
        if payload is not None:
            return ToolOutcome(content=payload["content"], status=payload["status"],
                               error_type=payload.get("error_type")), True, False
        if run.replay_source is not None:
            from agentnb.runtime._modelstep import diverged_error

            recorded = [r.payload.get("call") for r in await run.store.arecordings(source)
                        if r.kind == "tool" and r.payload.get("step") == index]
            raise diverged_error(run, index, "tool call", recorded,
                                 {"name": call.name, "arguments": _args(call)})
    policy = agent.policy
    try:
        values = tool.validate(call.arguments)
    except pydantic.ValidationError as exc:
        outcome = ToolOutcome(content=_retry_text(tool.name, exc), status="retry",
                              error_type="ValidationError")
        await _save(run, index, call, key=key, occurrence=occurrence, outcome=outcome)
        return outcome, False, False
    if policy is not None and policy.workspace is not None and tool.path_params:
        from agentnb.governance import check_workspace

        try:
            values = check_workspace(values, tool.path_params, policy.workspace, tool.name)
        except WorkspaceViolation as exc:
            _audit(run, [(audit.WORKSPACE_VIOLATION, {
                "run_id": run.run_id, "tool": call.name, "call_id": call.id, "decision": "deny",
                "path": exc.path, "workspace": exc.workspace, "message": exc.message})])
            return ToolOutcome(content=str(exc), status="denied",
                               error_type="WorkspaceViolation"), False, False
    assert run.scope is not None
    reservation = run.scope.reserve(tool_calls=1)
    calls_before = run.scope.model_calls_made()
    token = CURRENT_RUN.set(run)
    try:
        network = (contextlib.nullcontext() if policy is None or policy.network is None
                   else _network(run, policy.network, call))
        with network:
            outcome = await tool.execute(call.arguments, run.context_for(index, call.id),
                                         validated=values)
    finally:
        CURRENT_RUN.reset(token)
        # The call ran (perhaps partly) whatever happened, so it counts.
        reservation.settle(tool_calls=1)
    # A delegate, or an agent run inside the tool, paid for model calls under this run's scope.
    paid = run.scope.model_calls_made() != calls_before
    await _save(run, index, call, key=key, occurrence=occurrence, outcome=outcome,
                effects=tool.effects, paid=paid)
    return outcome, False, True


def _network(run: Run, hosts: Any, call: ToolCallPart) -> Any:
    from agentnb.governance import NetworkDecision, network_scope

    home = run.agent.resolved_settings.home

    def on_decision(decision: NetworkDecision) -> None:
        if not decision.allowed and run.replay_source is None:
            # Rare (a refusal), and perhaps on a sync tool's worker thread: written directly.
            _hooks.audit(home, audit.NETWORK_BLOCKED, run_id=run.run_id, call_id=call.id,
                         tool=call.name, host=decision.host, url=decision.url,
                         reason=decision.reason)

    return network_scope(hosts, on_decision=on_decision, tool=call.name)


def _denied(entry: dict[str, Any]) -> str | None:
    decision = entry.get("decision")
    if decision == "deny":
        reason = (entry.get("reason") or "not allowed").rstrip(".")
        return (f"Denied by policy ({entry.get('rule')}): {reason}."
                " Do not retry this call; find another way or explain the limitation.")
    if decision == "approve":
        approval = entry.get("approval") or {}
        if approval.get("decision") in ("approve", "edit"):
            return None
        message = approval.get("message") or "The approver denied this call."
        return f"Denied by {approval.get('approver', 'the approver')}: {message}"
    return None


async def _save(run: Run, index: int, call: ToolCallPart, *, key: str, occurrence: int,
                outcome: ToolOutcome, effects: frozenset[str] = frozenset(),
                paid: bool = False) -> None:
    """Record a call's outcome: at once when it had effects beyond `read` or paid for model
    calls (so a crash before the step's checkpoint cannot make a resumed run repeat it or pay
    again), else with the checkpoint."""
    if run.replay_source is not None:
        return
    # Texts and the arguments redacted; the status (a literal) and the step as they are.
    redact = _hooks.redact
    payload = {"content": redact(outcome.content), "status": outcome.status,
               "error_type": None if outcome.error_type is None else redact(outcome.error_type),
               "step": index,
               "call": {"name": redact(call.name), "arguments": _hooks.redact_obj(_args(call))}}
    if paid or effects - {"read"}:
        run.journal.may_hold = False
        await run.store.arecord(run.run_id, "tool", key, occurrence, payload)
    else:
        run.journal.record("tool", key, occurrence, payload)

