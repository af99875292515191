"""The hand-made dumps of a step and of a usage are exactly pydantic's JSON-mode dumps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentnb.core import (
    Message,
    RefusalPart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)
from agentnb.core._messages import parts_json
from agentnb.models import FunctionModel, ModelResponse
from agentnb.models._base import Choice
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


@given(_calls)
def test_tool_call_record_json_dict_is_model_dump(call: ToolCallRecord) -> None:
    assert call.json_dict() == call.model_dump(mode="json")
    assert list(call.json_dict()) == list(ToolCallRecord.model_fields)


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


_str = st.text(max_size=12)


def _parts_of(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Any message part, its free texts drawn from `text` (ids and names from `_str`)."""
    return st.one_of(
        st.builds(TextPart, text=text),
        st.builds(ThinkingPart, text=text, signature=st.one_of(st.none(), text)),
        st.builds(RefusalPart, text=text),
        st.builds(ToolCallPart, id=_str, name=_str, arguments=text,
                  reason=st.one_of(st.none(), text)),
        st.builds(ToolResultPart, call_id=_str, name=_str, content=text,
                  is_error=st.booleans()))


_parts = _parts_of(_str)
_finish = st.sampled_from([None, "stop", "length", "tool_calls", "content_filter", "refusal",
                           "error"])


@given(role=st.sampled_from(["system", "user", "assistant", "tool"]),
       parts=st.lists(_parts, max_size=4))
def test_message_json_dict_is_model_dump(role: Any, parts: list[Any]) -> None:
    message = Message(role=role, parts=tuple(parts))
    assert message.json_dict() == message.model_dump(mode="json")
    assert parts_json(parts) == [p.model_dump(mode="json") for p in parts]


@given(parts=st.lists(_parts, max_size=3), usage=_usages, finish=_finish,
       raw=st.one_of(st.none(), _str), name=_str, provider=st.one_of(st.none(), _str),
       extra=st.lists(st.builds(Choice, index=st.integers(0, 5),
                                parts=st.lists(_parts, max_size=2).map(tuple),
                                finish_reason=_finish), max_size=2))
def test_response_json_dict_is_model_dump(*, parts: list[Any], usage: Usage, finish: Any,
                                          raw: str | None, name: str, provider: str | None,
                                          extra: list[Choice]) -> None:
    response = ModelResponse(parts=tuple(parts), usage=usage, finish_reason=finish,
                             raw_finish_reason=raw, model_name=name, provider_id=provider,
                             extra_choices=tuple(extra))
    made = response.json_dict()
    assert made == response.model_dump(mode="json")
    assert list(made) == list(ModelResponse.model_fields)


# Text that is sometimes a secret, or holds one: what the redacted dumps must catch.
_secretish = st.one_of(_str, st.builds(lambda a, b: f"{a} sk-proj-{'x' * 20} {b}", _str, _str),
                       st.builds(lambda a: f"Authorization: Bearer abcdefgh{a}", _str))
_secret_parts = _parts_of(_secretish)


@given(parts=st.lists(_secret_parts, max_size=4))
def test_redact_parts_is_the_redacted_parts_json(parts: list[Any]) -> None:
    _hooks.configure_once(Agent(model=FunctionModel(lambda m, i: "hi")).resolved_settings)
    made = _hooks.redact_parts(parts)
    assert made == _hooks.redact_obj(parts_json(parts))
    assert "sk-proj-x" not in str(made)
    assert "Bearer abcdefgh" not in str(made)


@given(parts=st.lists(_secret_parts, max_size=3), usage=_usages, finish=_finish,
       raw=st.one_of(st.none(), _secretish), name=_secretish,
       provider=st.one_of(st.none(), _secretish),
       extra=st.lists(st.builds(Choice, index=st.integers(0, 5),
                                parts=st.lists(_secret_parts, max_size=2).map(tuple),
                                finish_reason=_finish), max_size=2))
def test_redact_response_is_the_redacted_json_dict(*, parts: list[Any], usage: Usage,
                                                   finish: Any, raw: str | None, name: str,
                                                   provider: str | None,
                                                   extra: list[Choice]) -> None:
    _hooks.configure_once(Agent(model=FunctionModel(lambda m, i: "hi")).resolved_settings)
    response = ModelResponse(parts=tuple(parts), usage=usage, finish_reason=finish,
                             raw_finish_reason=raw, model_name=name, provider_id=provider,
                             extra_choices=tuple(extra))
    made = _hooks.redact_response(response)
    expected = _hooks.redact_obj(response.json_dict())
    assert made == expected
    assert list(made) == list(expected)
    assert "sk-proj-x" not in str(made)
    assert "Bearer abcdefgh" not in str(made)
