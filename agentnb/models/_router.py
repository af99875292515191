"""`Router` picks a model per call; `Fallback` tries models in order until one answers.

Both are models themselves, so an `Agent` takes them wherever it takes a model. The response
they return is the answering model's own: its `usage` (tokens and `usd`) is what that model
charged, and its `model_name` names that model (`"provider:name"`), so traces and costs stay
true to what actually ran.

Their `info` is the default (Router) or first (Fallback) model's identity, with the *highest*
input and output prices among the models it may use, so that a budget reserving a call's worst
case before sending it can never be overspent by a route to a dearer model (DESIGN invariant
1). If any of them is unpriced, so is the info.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from agentnb.core import ConfigError, Message, ModelError, ToolDefinition
from agentnb.models._base import (
    Model,
    ModelBase,
    ModelInfo,
    ModelResponse,
    ModelSettings,
    StreamCallback,
)
from agentnb.models._registry import get_model

if TYPE_CHECKING:
    from decimal import Decimal

__all__ = ["Fallback", "Router", "RoutePredicate"]

RoutePredicate = Callable[[Sequence[Message], Sequence[ToolDefinition]], bool]
"""Decides from (messages, tools) whether a route applies."""

ChooseFunction = Callable[[Sequence[Message], Sequence[ToolDefinition]], "str | Model"]
"""Returns the model (or model string) to use for (messages, tools)."""


def _worst_case_info(first: ModelInfo, models: Sequence[Model]) -> ModelInfo:
    infos = [m.info for m in models]

    def highest(values: list[Decimal | None]) -> Decimal | None:
        return None if any(v is None for v in values) else max(v for v in values if v is not None)

    return dataclasses.replace(
        first,
        input_per_mtok=highest([i.input_per_mtok for i in infos]),
        output_per_mtok=highest([i.output_per_mtok for i in infos]),
        cached_input_per_mtok=highest([i.cached_input_per_mtok or i.input_per_mtok
                                       for i in infos]),
        cache_write_per_mtok=highest([i.cache_write_per_mtok or i.input_per_mtok
                                      for i in infos]),
        max_output_tokens=max(i.max_output_tokens for i in infos),
    )


def _named(response: ModelResponse, model: Model) -> ModelResponse:
    info = model.info
    name = response.model_name
    if name in ("", info.name, info.id):
        name = info.id
    elif not name.startswith(f"{info.provider}:"):
        name = f"{info.provider}:{name}"
    return response.model_copy(update={"model_name": name})


class Router(ModelBase):
    """Choose the model for each call by rules or by a function.

    Args:
        default: the model used when no route applies (required with `routes`).
        routes: `(predicate, model)` pairs tried in order; the first predicate that returns True
            for `(messages, tools)` picks its model.
        choose: instead of routes, a function of `(messages, tools)` returning a model or string.
        name: the router's name in `info` is the default model's; this names it in `repr`.

    Raises:
        ConfigError: neither `default` nor `choose` given, or both `routes` and `choose`.

    Example:
        >>> from agentnb.core import Message, run_sync
        >>> r = Router(default="sim:cheap",
        ...            routes=[(lambda msgs, tools: "hard" in msgs[-1].text, "sim:expert")])
        >>> run_sync(r.request([Message.user("a hard one")])).model_name
        'sim:expert'
    """

    def __init__(
        self,
        default: str | Model | None = None,
        routes: Sequence[tuple[RoutePredicate, str | Model]] = (),
        *,
        choose: ChooseFunction | None = None,
        name: str = "router",
    ) -> None:
        if choose is not None and routes:
            msg = "Router takes `routes=` or `choose=`, not both."
            raise ConfigError(msg, source="argument",
                              hint="Fold the rules into the `choose` function.")
        if default is None and choose is None:
            msg = "Router needs a `default=` model (or a `choose=` function)."
            raise ConfigError(msg, source="argument",
                              hint="For example `Router(default='sim:cheap', routes=[...])`.")
        self.name = name
        self.choose = choose
        self._by_string: dict[str, Model] = {}
        self.default = get_model(default) if default is not None else None
        self.routes = [(predicate, get_model(model)) for predicate, model in routes]
        models = [m for m in (self.default, *(m for _, m in self.routes)) if m is not None]
        self._info = (_worst_case_info(models[0].info, models) if models
                      else ModelInfo(provider="router", name=name))

    def pick(self, messages: Sequence[Message], tools: Sequence[ToolDefinition] = ()) -> Model:
        """The model this router would use for `(messages, tools)`."""
        if self.choose is not None:
            chosen = self.choose(messages, tools)
            if chosen is None and self.default is not None:
                return self.default
            if isinstance(chosen, str):
                # Resolve each string once: settings resolution reads files and the environment.
                model = self._by_string.get(chosen)
                if model is None:
                    model = self._by_string[chosen] = get_model(chosen)
                return model
            return get_model(chosen)
        for predicate, model in self.routes:
            if predicate(messages, tools):
                return model
        if self.default is None:  # pragma: no cover - __init__ requires default without choose
            msg = "Router has no default model."
            raise ConfigError(msg, source="argument")
        return self.default

    async def request(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        """Send the request to the chosen model."""
        model = self.pick(messages, tools)
        return _named(await model.request(messages, tools=tools, settings=settings), model)

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        settings: ModelSettings | None = None,
        on_event: StreamCallback | None = None,
    ) -> ModelResponse:
        """Stream from the chosen model."""
        model = self.pick(messages, tools)
        response = await model.stream(messages, tools=tools, settings=settings, on_event=on_event)
        return _named(response, model)

    def __repr__(self) -> str:
        routes = [m.info.id for _, m in self.routes]
        default = self.default.info.id if self.default is not None else None
        return f"Router(default={default!r}, routes={routes!r}, choose={self.choose is not None})"


def _exhausted(failures: list[tuple[Model, Exception]]) -> Exception:
    last = failures[-1][1]
    tried = "; ".join(f"{m.info.id}: {type(e).__name__}" for m, e in failures)
    last.add_note(f"Fallback: every model failed ({tried}).")
    return last


class Fallback(ModelBase):
    """Try models in order; return the first answer, moving on when one fails.

    Args:
        models: the models (or model strings), preferred first.
        on: which failures move on to the next model: exception classes (default: any
            `ModelError`, which covers HTTP errors, timeouts and connection failures), or a
            predicate on the exception, e.g. `lambda e: getattr(e, "retryable", False)`.
            Other exceptions propagate at once.

    Raises:
        ConfigError: no models given.

    A streamed call that fails part-way has already reported some deltas from the failed model
    before the next one starts; the returned response is the next model's alone.

    Example:
        >>> from agentnb.core import Message, ModelHTTPError, run_sync
        >>> from agentnb.models.function import FunctionModel
        >>> def down(messages, info):
        ...     raise ModelHTTPError(status_code=503, body="busy", model="function:down")
        >>> fb = Fallback([FunctionModel(down, name="down"), "sim:cheap"])
        >>> run_sync(fb.request([Message.user("hi")])).model_name
        'sim:cheap'
    """

    def __init__(
        self,
        models: Sequence[str | Model],
        *,
        on: tuple[type[BaseException], ...] | type[BaseException]
        | Callable[[BaseException], bool] = (ModelError,),
    ) -> None:
        if not models:
            msg = "Fallback needs at least one model."
            raise ConfigError(msg, source="argument",
                              hint="For example `Fallback(['openai:gpt-4o-mini', 'sim:careful'])`.")
        self.models = [get_model(m) for m in models]
        self.on = on
        self._info = _worst_case_info(self.models[0].info, self.models)

    def _falls_back(self, exc: BaseException) -> bool:
        on = self.on
        if isinstance(on, type):
            return isinstance(exc, on)
        if isinstance(on, tuple):
            return isinstance(exc, on)
        return bool(on(exc))

    async def request(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        """Ask each model in turn until one answers; re-raise the last failure if none does."""
        failures: list[tuple[Model, Exception]] = []
        for model in self.models:
            try:
                response = await model.request(messages, tools=tools, settings=settings)
            except Exception as exc:
                if not self._falls_back(exc):
                    raise
                failures.append((model, exc))
                continue
            return _named(response, model)
        raise _exhausted(failures)

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        settings: ModelSettings | None = None,
        on_event: StreamCallback | None = None,
    ) -> ModelResponse:
        """Stream from each model in turn until one answers."""
        failures: list[tuple[Model, Exception]] = []
        for model in self.models:
            try:
                response = await model.stream(messages, tools=tools, settings=settings,
                                              on_event=on_event)
            except Exception as exc:
                if not self._falls_back(exc):
                    raise
                failures.append((model, exc))
                continue
            return _named(response, model)
        raise _exhausted(failures)

    def __repr__(self) -> str:
        return f"Fallback({[m.info.id for m in self.models]!r})"
