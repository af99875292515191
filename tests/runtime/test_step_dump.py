"""The hand-made dumps of a step and of a usage are exactly pydantic's JSON-mode dumps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentnb.core import Message, Usage
from agentnb.models import FunctionModel
from agentnb.runtime import Agent, _hooks
from agentnb.runtime._step import Step, ToolCallRecord
from agentnb.runtime._stepping import step_dump

_counts = st.integers(min_value=0, max_value=2**40)
_usd = st.one_of(st.none(), st.decimals(allow_nan=False, allow_infinity=False, places=8,
                                        min_value=Decimal(0), max_value=Decimal(10**6)),
                 st.sampled_from([Decimal("1E-7"), Decimal("0E-8"), Decimal("1E+2")]))
_usages = st.builds(Usage, input_tokens=_counts, output_tokens=_counts, cached_tokens=_counts,
                    cache_write_tokens=_counts, reasoning_tokens=_counts, model_calls=_counts,
                    tool_calls=_counts, usd=_usd)
_text = st.one_of(st.none(), st.text(max_size=20))
_calls = st.builds(
    ToolCallRecord, id=st.text(max_size=8), name=st.text(max_size=8),
    arguments=st.text(max_size=20), reason=_text, result=_text,
    status=st.sampled_from(["ok", "error", "retry", "denied", "pending", "approved", "edited"]),
    decision=_text, duration_s=st.floats(allow_nan=False), replayed=st.booleans())
_times = st.one_of(
    st.datetimes(timezones=st.just(UTC)), st.datetimes(),
    st.datetimes(timezones=st.sampled_from([timezone(timedelta(hours=2)),
                                            timezone(timedelta(hours=-5, minutes=-30)),
                                            timezone(timedelta(0))])))


@given(_usages)
def test_usage_json_dict_is_model_dump(usage: Usage) -> None:
    assert usage.json_dict() == usage.model_dump(mode="json")
    assert list(usage.json_dict()) == list(Usage.model_fields)


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(["model", "approval", "tools"]),
       status=st.sampled_from(["ok", "retry", "stopped", "failed"]), usage=_usages,
       calls=st.lists(_calls, max_size=3), reason=_text, started=_times,
       duration=st.floats(allow_nan=False), cache_hit=st.booleans(),
       stop_reason=st.sampled_from([None, "budget", "loop", "stop_requested"]), error=_text)
def test_step_dump_is_the_redacted_model_dump(*, kind: Any, status: Any, usage: Usage,
                                              calls: list[ToolCallRecord], reason: str | None,
                                              started: datetime, duration: float,
                                              cache_hit: bool, stop_reason: Any,
                                              error: str | None) -> None:
    run = Agent(model=FunctionModel(lambda m, i: "hi")).start("say hi")
    run.append_message(Message.user("one"))
    run.append_message(Message.user("two"))
    step = Step(kind=kind, index=3, status=status, usage=usage,
                messages=tuple(run._messages[-2:]),  # pyright: ignore[reportPrivateUsage]
                tool_calls=tuple(calls), reason=reason, started_at=started,
                duration_s=duration, cache_hit=cache_hit, stop_reason=stop_reason, error=error)
    made = step_dump(run, step)
    expected = _hooks.redact_obj(step.model_dump(mode="json"))
    assert made == expected
    assert list(made) == list(expected)
    assert made["messages"] == run._message_dumps[-2:]  # pyright: ignore[reportPrivateUsage]
