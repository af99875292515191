"""The model step: reserve the worst case, call the model (or reuse a recording), settle.

Order of sources for a response: the run's own recordings (resume, replay), then the response
cache (opt-in), then the model itself. Only the last costs money, and only it reserves budget.
"""

from __future__ import annotations

import difflib
import json
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from pydantic import ValidationError

from agentnb.core import (
    LoopDetected,
    Message,
    ModelError,
    ReplayDiverged,
    Usage,
    canonical_json,
)
from agentnb.models import ModelResponse, estimate_tokens, observe_retries
from agentnb.runtime import _hooks
from agentnb.runtime._step import Step, ToolCallRecord
from agentnb.tracing import semconv as sc
from agentnb.tracing._lean import active_span

if TYPE_CHECKING:
    from agentnb.runtime._agent import Agent
    from agentnb.runtime._cache import ResponseCache
    from agentnb.runtime._run import Run

__all__ = ["diverged_error", "model_step"]


async def model_step(run: Run, index: int, started_at: datetime, t0: float) -> Step:
    """Make one model call and decide where the run goes next."""
    agent = run.agent
    model = agent.resolved_model
    info = model.info
    _maybe_wrap_up(run, index)
    key = run.model_key()
    messages = run.request_messages()
    occurrence = run.next_occurrence("model", key)
    request_info = {"step": index, **_fixed_request_info(agent),
                    "new_messages": run.new_messages_since_model()}
    span = _hooks.tracer().start_span(f"chat {info.name}", attributes={
        sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.AGENTNB_KIND: "model_call",
        sc.GEN_AI_PROVIDER_NAME: info.system or info.provider,
        sc.GEN_AI_REQUEST_MODEL: info.id, sc.AGENTNB_RUN_ID: run.run_id})
    cache_hit = False
    source: str | None = None
    dump: dict[str, Any] | None = None  # the response, redacted once (a fresh call only)
    try:
        with active_span(span):
            response, source = await _reuse(run, key, occurrence, request_info)
            if response is None:
                with observe_retries(_retry_event(span)):
                    response, dump = await _call(run, span, messages, key,
                                                 occurrence=occurrence, request_info=request_info)
            else:
                cache_hit = True
                span.set_attribute(sc.AGENTNB_CACHE_HIT, True)
                span.add_event("cache", {sc.AGENTNB_KIND: "cache", "source": source})
        usage = response.usage if source != "cache" else Usage()
        message = response.message()
        message_dump = _message_dump(message, dump)
        message_text = canonical_json(message_dump)
        _describe(span, response, usage, run, message_text)
    except BaseException as err:
        span.record_exception(err)
        raise
    finally:
        span.end()
    run.add_usage(usage)
    run.append_message(message, dump=message_dump, text=message_text)
    run.model_mark = run.message_count
    calls = response.tool_calls
    reason = next((c.reason for c in calls if c.reason), None)
    fields: dict[str, Any] = {
        "usage": usage, "messages": (message,), "reason": reason, "cache_hit": cache_hit,
        "tool_calls": tuple(ToolCallRecord(id=c.id, name=c.name, arguments=c.arguments,
                                           reason=c.reason) for c in calls)}
    looped = run.loop.observe(calls=calls, text=response.text)
    if looped is not None:
        err = LoopDetected(f"Run {run.run_id!r} is looping: {looped}.", repeated=looped,
                           run_id=run.run_id)
        trace.get_current_span().set_attribute(sc.AGENTNB_LOOP_REPEATED, looped)
        return run.stopped_step("model", index, started_at, t0, err, **fields)
    status = "ok"
    if calls:
        from agentnb.runtime._toolstep import propose

        run.pending = list(calls)
        needs_approval = await propose(run, calls)
        run.set_state("awaiting_approval" if needs_approval else "ready")
    elif agent.output_type is not None:
        try:
            run.output = _parse_output(agent.output_type, response.text)
            run.set_state("done")
        except (ValidationError, ValueError) as exc:
            prompt = Message.user(_output_retry_text(exc))
            run.append_message(prompt)
            fields["messages"] = (message, prompt)
            status = "retry"
            trace.get_current_span().add_event("retry", {
                sc.AGENTNB_KIND: "retry", sc.AGENTNB_RETRY_CAUSE: "output_validation"})
            try:
                run.use_retries(1, str(exc).splitlines()[0])
            except Exception as stop:
                from agentnb.core import RunStopped

                if isinstance(stop, RunStopped):
                    return run.stopped_step("model", index, started_at, t0, stop, **fields)
                raise
    else:
        run.output = response.text
        run.set_state("done")
    return Step(kind="model", index=index, status=status, started_at=started_at,
                duration_s=time.perf_counter() - t0, **fields)


def _fixed_request_info(agent: Agent) -> dict[str, Any]:
    """System prompt and tool definitions as recorded: redacted once per agent (and again
    only when the redactor learns a new secret)."""
    epoch = _hooks.redaction_epoch()
    cached = agent._resolved.get("recorded_request")
    if cached is None or cached[0] != epoch:
        fixed = _hooks.redact_obj({
            "system": agent.system_prompt,
            "tools": [d.model_dump(mode="json", exclude={"effects"})
                      for d in agent.tool_definitions]})
        cached = agent._resolved["recorded_request"] = (epoch, fixed)
    return cached[1]


def _maybe_wrap_up(run: Run, index: int) -> None:
    """Tell the model, once, that its budget is nearly spent and it should finish."""
    if run.replay_source is not None:
        planned = run.replay_plan.get("wrap_note")
        if planned and planned[0] == index and run.wrap_note is None:
            run.wrap_note = (index, planned[1])
            run.append_message(Message.system(planned[1]))
        return
    at = run.agent._resolved["wrap_up_at"]
    if at is None or run.wrap_note is not None or run.scope is None:
        return
    used = run.scope.fraction_used()
    if used < at:
        return
    left = {k: v for k, v in run.scope.remaining().items() if v is not None}
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in left.items())
    text = (f"Budget note: {used:.0%} of this run's budget is used (remaining: {shown}). "
            "Wrap up now: give your best final answer with no further tool calls unless one "
            "is essential.")
    run.wrap_note = (index, text)
    run.append_message(Message.system(text))
    trace.get_current_span().add_event("budget", {sc.AGENTNB_KIND: "budget",
                                                  "fraction_used": used})


async def _reuse(run: Run, key: str, occurrence: int,
                 request_info: dict[str, Any]) -> tuple[ModelResponse | None, str | None]:
    source_run = run.replay_source or (run.run_id if run.consult_recordings else None)
    if source_run is not None:
        payload = await run.store.arecorded(source_run, "model", key, occurrence)
        if payload is not None:
            return ModelResponse.model_validate(payload["response"]), "recording"
        if run.replay_source is not None:
            raise await _diverged(run, request_info)
        # Recordings are written in order: after the first miss, nothing later is recorded.
        run.consult_recordings = False
    if run.agent._resolved["cache"]:
        hit = await _response_cache(run).aget(key)
        if hit is not None:
            return ModelResponse.model_validate(hit), "cache"
    return None, None


async def _call(run: Run, span: trace.Span, messages: list[Message], key: str, *,
                occurrence: int, request_info: dict[str, Any]
                ) -> tuple[ModelResponse, dict[str, Any]]:
    """Make the call under a budget reservation; return it and its redacted dump."""
    agent = run.agent
    model = agent.resolved_model
    info = model.info
    settings = agent._resolved["model_settings"]
    definitions = agent.tool_definitions
    estimate = estimate_tokens(messages, definitions)
    out_tokens = settings.max_tokens or info.max_output_tokens
    worst = info.cost(input_tokens=estimate, output_tokens=out_tokens)
    assert run.scope is not None
    try:
        reservation = run.scope.reserve(usd=worst, tokens=estimate + out_tokens, model_calls=1)
    except BaseException as err:
        span.add_event("budget", {sc.AGENTNB_KIND: "budget", "refused": True,
                                  "message": _hooks.redact(str(err))})
        raise
    if worst is not None:
        span.set_attribute(sc.AGENTNB_BUDGET_RESERVED_USD, float(worst))
    try:
        response = await model.request(messages, tools=definitions, settings=settings)
    except ModelError:
        reservation.release()
        raise
    except BaseException:
        # Cancelled or timed out while the request was in flight: it may have been paid.
        reservation.settle()
        raise
    usage = response.usage
    reservation.settle(usd=usage.usd, tokens=usage.total_tokens, model_calls=1)
    if usage.usd is None:
        _hooks.warn_unpriced(info.id)
    left = run.scope.left("usd")
    if left is not None:
        span.set_attribute(sc.AGENTNB_BUDGET_REMAINING_USD, float(left))
    # The rest of `request_info` is redacted already (system and tools once per agent, the
    # new messages as they were appended), so only the response is redacted here.
    dump = _hooks.redact_response(response)
    if run.replay_source is None:
        # Written with the step's checkpoint (or at once if the step fails before it).
        run.journal.record("model", key, occurrence, {**request_info, "response": dump})
    if agent._resolved["cache"]:
        # cache.db is on disk like the recordings: no secret goes in (a hit gets the
        # redacted text).
        await _response_cache(run).aput(key, dump, kind="model")
    return response, dump


def _response_cache(run: Run) -> ResponseCache:
    resolved = run.agent._resolved
    cache = resolved.get("response_cache")
    if cache is None:
        from agentnb.runtime._cache import response_cache

        cache = resolved["response_cache"] = response_cache(run.agent.resolved_settings.home)
    return cache


def _message_dump(message: Message, response_dump: dict[str, Any] | None) -> dict[str, Any]:
    """The assistant message's redacted dump; its parts reuse the redacted response's."""
    if response_dump is None:
        return _hooks.redact_message(message)
    return {"role": message.role, "parts": response_dump["parts"]}  # a role is a literal


def _describe(span: trace.Span, response: ModelResponse, usage: Usage, run: Run,
              message_text: str) -> None:
    attrs: dict[str, Any] = {
        sc.GEN_AI_RESPONSE_MODEL: response.model_name or None,
        sc.GEN_AI_RESPONSE_ID: response.provider_id,
        sc.GEN_AI_RESPONSE_FINISH_REASONS: [response.finish_reason or "stop"],
        sc.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
        sc.AGENTNB_COST_USD: None if usage.usd is None else float(usage.usd),
    }
    if run.agent.resolved_settings.record_content:
        # Redacted value by value already (a secret is found in a value before JSON escapes it).
        attrs[sc.GEN_AI_OUTPUT_MESSAGES] = f"[{message_text}]"  # canonical_json([dump])
    span.set_attributes({k: v for k, v in attrs.items() if v is not None})


def _parse_output(output_type: type[Any], text: str) -> Any:
    from pydantic import TypeAdapter

    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`")
        body = body.removeprefix("json").strip()
    return TypeAdapter(output_type).validate_json(body)


def _retry_event(span: Any) -> Any:
    """A retry hook that records each provider retry as an event on the model call's span."""

    def hook(attempt: int, error: BaseException, sleep_s: float) -> None:
        status = getattr(error, "status_code", None)
        span.add_event("retry", {
            sc.AGENTNB_KIND: "retry", sc.AGENTNB_RETRY_ATTEMPT: attempt,
            sc.AGENTNB_RETRY_CAUSE: f"http_{status}" if status else type(error).__name__,
            "sleep_s": float(sleep_s)})

    return hook


def _output_retry_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        problems = "\n".join(
            f"- {'.'.join(str(p) for p in e.get('loc', ())) or '(answer)'}: {e.get('msg')}"
            for e in exc.errors(include_url=False))
    else:
        problems = f"- {exc}"
    return ("Your final answer did not match the required JSON schema:\n" + problems
            + "\nReply again with only the corrected JSON object.")


async def _diverged(run: Run, actual: dict[str, Any]) -> ReplayDiverged:
    assert run.replay_source is not None
    recordings = await run.store.arecordings(run.replay_source)
    step = actual["step"]
    expected: dict[str, Any] | None = None
    for rec in recordings:
        if rec.kind == "model" and rec.payload.get("step") == step:
            expected = {k: v for k, v in rec.payload.items() if k != "response"}
            break
    return diverged_error(run, step, "model request", expected, actual)


def diverged_error(run: Run, step: int, what: str, expected: Any, actual: Any) -> ReplayDiverged:
    """Build `ReplayDiverged` with a unified diff between what was recorded and what was asked."""
    exp = json.dumps(expected, indent=2, sort_keys=True, default=str).splitlines()
    act = json.dumps(actual, indent=2, sort_keys=True, default=str).splitlines()
    diff = "\n".join(difflib.unified_diff(exp, act, "recorded", "replay", lineterm="", n=2))
    if expected is None:
        diff = f"(no recorded {what} at step {step})\n{diff}"
    message = (f"Replay of run {run.replay_source!r} diverged at step {step}: the {what} is not "
               f"the recorded one.\n{diff}")
    return ReplayDiverged(message, step=step, expected="\n".join(exp), actual="\n".join(act))

