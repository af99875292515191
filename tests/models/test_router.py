"""Router and Fallback: per-call choice, fallback on errors, usage of the model that answered."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agentnb.core import (
    ConfigError,
    Message,
    ModelHTTPError,
    ModelTimeout,
    UsageError,
    run_sync,
)
from agentnb.models._base import Model, StreamEvent
from agentnb.models._router import Fallback, Router
from agentnb.models.function import FunctionInfo, FunctionModel


def _answer(text: str, name: str, price: int = 1) -> FunctionModel:
    return FunctionModel(lambda messages, info: text, name=name, input_per_mtok=price,
                         output_per_mtok=price * 4)


def _failing(exc: Exception, name: str, calls: list[str]) -> FunctionModel:
    def fail(messages: list[Message], info: FunctionInfo) -> str:
        calls.append(name)
        raise exc

    return FunctionModel(fail, name=name)


def test_router_routes_by_predicate_and_default() -> None:
    """The first matching route answers; otherwise the default does."""
    cheap, strong = _answer("cheap", "cheap"), _answer("strong", "strong", price=10)
    router = Router(default=cheap, routes=[(lambda msgs, tools: "hard" in msgs[-1].text, strong)])
    assert isinstance(router, Model)
    hard = run_sync(router.request([Message.user("a hard task")]))
    easy = run_sync(router.request([Message.user("an easy task")]))
    assert (hard.text, hard.model_name) == ("strong", "function:strong")
    assert (easy.text, easy.model_name) == ("cheap", "function:cheap")
    # Usage is the answering model's own: the strong model costs ten times as much.
    assert easy.usage.usd is not None
    assert hard.usage.usd == easy.usage.usd * 10


def test_router_info_is_the_default_with_worst_case_prices() -> None:
    """info names the default model but carries the highest prices it may route to."""
    router = Router(default=_answer("a", "a"), routes=[(lambda m, t: False, _answer("b", "b", 7))])
    assert router.info.id == "function:a"
    assert (router.info.input_per_mtok, router.info.output_per_mtok) == (Decimal(7), Decimal(28))
    unpriced = FunctionModel(lambda m, i: "x", name="u", input_per_mtok=None)
    assert Router(default=unpriced).info.input_per_mtok is None


def test_router_choose_callable_takes_strings_and_models() -> None:
    """A choose function may return a model string or a Model."""
    special = _answer("special", "special")
    router = Router(choose=lambda msgs, tools: special if tools else "sim:cheap")
    plain = run_sync(router.request([Message.user("hello")]))
    assert plain.model_name == "sim:cheap"
    from agentnb.core import ToolDefinition

    with_tools = run_sync(router.request([Message.user("x")], tools=[ToolDefinition(name="t")]))
    assert with_tools.text == "special"


def test_router_streams_through_the_chosen_model() -> None:
    """stream() reports the chosen model's deltas and names it."""
    events: list[StreamEvent] = []
    router = Router(default="sim:expert")
    r = run_sync(router.stream([Message.user("hello there")], on_event=events.append))
    assert r.model_name == "sim:expert"
    assert "".join(e.delta for e in events) == r.text


def test_router_configuration_errors() -> None:
    """A router with neither default nor choose, or with both routes and choose, is refused."""
    with pytest.raises(ConfigError, match="default"):
        Router()
    with pytest.raises(ConfigError, match="not both"):
        Router(choose=lambda m, t: "sim:cheap", routes=[(lambda m, t: True, "sim:expert")])
    with pytest.raises(ConfigError, match="nope:x"):
        Router(default="nope:x")


def test_fallback_moves_on_after_model_errors() -> None:
    """HTTP errors and timeouts move on to the next model; the first success answers."""
    calls: list[str] = []
    fb = Fallback([
        _failing(ModelHTTPError(status_code=503, body="busy", model="function:a"), "a", calls),
        _failing(ModelTimeout("slow", model="function:b", timeout_s=1), "b", calls),
        _answer("ok", "c", price=2),
    ])
    r = run_sync(fb.request([Message.user("hi")]))
    assert (r.text, r.model_name, calls) == ("ok", "function:c", ["a", "b"])
    assert r.usage.usd is not None
    assert r.usage.usd > 0


def test_fallback_propagates_errors_outside_on() -> None:
    """An error that `on` does not cover propagates at once; later models are not tried."""
    calls: list[str] = []
    fb = Fallback([_failing(UsageError("bug"), "a", calls), _failing(UsageError("x"), "b", calls)])
    with pytest.raises(UsageError, match="bug"):
        run_sync(fb.request([Message.user("hi")]))
    assert calls == ["a"]


def test_fallback_predicate_only_retryable() -> None:
    """A predicate `on` falls back on retryable HTTP errors only."""
    calls: list[str] = []
    fb = Fallback([
        _failing(ModelHTTPError(status_code=400, body="bad", model="function:a"), "a", calls),
        _answer("ok", "b"),
    ], on=lambda e: getattr(e, "retryable", False))
    with pytest.raises(ModelHTTPError) as info:
        run_sync(fb.request([Message.user("hi")]))
    assert info.value.status_code == 400
    assert calls == ["a"]
    fb2 = Fallback([_failing(ModelHTTPError(status_code=429, body="", model="a"), "a", calls),
                    _answer("ok", "b")], on=ModelHTTPError)
    assert run_sync(fb2.request([Message.user("hi")])).text == "ok"


def test_fallback_exhausted_raises_the_last_error_with_a_note() -> None:
    """When every model fails, the last error is raised with a note listing the attempts."""
    calls: list[str] = []
    fb = Fallback([
        _failing(ModelHTTPError(status_code=500, body="a down", model="function:a"), "a", calls),
        _failing(ModelHTTPError(status_code=502, body="b down", model="function:b"), "b", calls),
    ])
    with pytest.raises(ModelHTTPError) as info:
        run_sync(fb.request([Message.user("hi")]))
    assert info.value.status_code == 502
    assert any("function:a" in n and "function:b" in n for n in info.value.__notes__)
    with pytest.raises(ModelHTTPError):
        run_sync(fb.stream([Message.user("hi")]))


def test_fallback_stream_and_info() -> None:
    """stream() falls back too; info is the first model's with the highest prices."""
    calls: list[str] = []
    fb = Fallback([_failing(ModelHTTPError(status_code=503, body="", model="a"), "a", calls),
                   "sim:expert"])
    events: list[StreamEvent] = []
    r = run_sync(fb.stream([Message.user("hello")], on_event=events.append))
    assert r.model_name == "sim:expert"
    assert events
    assert fb.info.id == "function:a"
    assert fb.info.output_per_mtok == Decimal(20)
    with pytest.raises(ConfigError):
        Fallback([])
