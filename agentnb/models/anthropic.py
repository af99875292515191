"""`AnthropicModel`: the Anthropic Messages API (`POST /v1/messages`) over httpx.

Streamed (SSE) and plain requests give the same `ModelResponse`. Choices made where the wire
format and our messages do not line up one to one:

- System messages, wherever they sit in the conversation, are joined (blank line between) into
  the top-level `system` field: the Messages API has no system role.
- Tool results (`role="tool"`) become `tool_result` blocks of a `user` message; consecutive
  messages of the same role are merged, with `tool_result` blocks first, as the API requires.
- A `ToolCallPart` whose `arguments` are not a JSON object is sent back with `input: {}`: the API
  only accepts an object there, and the runtime's error result for that call already tells the
  model what was wrong. Sending the raw text under an invented key would teach it a fake argument.
- `thinking` blocks are returned as `ThinkingPart`s with their signature and are sent back
  unchanged. `redacted_thinking` blocks become a `ThinkingPart` with empty text whose signature
  is the block's `data` prefixed with `anthropic-redacted:`. A `ThinkingPart` without a signature
  (from another provider) is not sent: the API would reject it.
- `stop_reason` maps to `finish_reason`: `end_turn`/`stop_sequence` -> "stop", `tool_use` ->
  "tool_calls", `max_tokens` and `model_context_window_exceeded` -> "length", `refusal` ->
  "refusal", and `pause_turn` -> "length" (the turn is incomplete: send the response back as the
  assistant message to let the model continue). The raw value is kept in `raw_finish_reason`.
- A `refusal` keeps whatever text arrived and adds a `RefusalPart` describing the refusal. When
  such a message is sent back, the `RefusalPart` is dropped if the message has text.
- Usage: Anthropic's `input_tokens` excludes cache reads and writes; our `Usage.input_tokens`
  includes them (`cached_tokens` = cache reads, `cache_write_tokens` = cache creation).
- An `error` event inside a 200 stream raises `ModelHTTPError` with the status the same error
  would have had as an HTTP answer (`overloaded_error` -> 529, retried; `invalid_request_error`
  -> 400, not retried).

Retries: when an attempt fails and is retried, deltas it already reported through `on_event`
were real; the `on_retry` hook is called before the retry sleeps, so a consumer can reset.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from agentnb.core import (
    AgentnbError,
    ConfigError,
    FinishReason,
    Message,
    ModelConnectionError,
    ModelHTTPError,
    RefusalPart,
    TextPart,
    ToolDefinition,
    UnexpectedModelOutput,
    Usage,
    UsageError,
)
from agentnb.models._anthropic_wire import (
    Accumulator,
    to_wire_messages,
    tool_choice,
)
from agentnb.models._base import (
    ModelBase,
    ModelInfo,
    ModelResponse,
    ModelSettings,
    StreamEvent,
    wire_count,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

    import httpx

    from agentnb.models._base import StreamCallback
    from agentnb.models._http import RetryHook

__all__ = ["ANTHROPIC_VERSION", "AnthropicModel"]

ANTHROPIC_VERSION = "2023-06-01"
"""The `anthropic-version` header sent with every request."""

DEFAULT_BASE_URL = "https://api.anthropic.com"

_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "pause_turn": "length",
    "refusal": "refusal",
}

# The HTTP status each documented error type is answered with, for errors inside a 200 stream.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


_ODD_SHAPE = (TypeError, ValueError, AttributeError, KeyError, IndexError)
"""What reading a field of an unexpected type raises (pydantic's ValidationError is a
ValueError): turned into one `UnexpectedModelOutput` that shows the body."""


def _http() -> ModuleType:
    # httpx and tenacity load on first use, so `import agentnb` stays fast.
    from agentnb.models import _http as http

    return http


def _decimal(value: Decimal | float | str | None) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def _table_price(name: str) -> dict[str, Any]:
    """Prices and context window from the price table (with `set_price` overrides), or nothing."""
    from agentnb.models._pricing import lookup_price

    try:
        found: Any = lookup_price("anthropic", name)
    except (LookupError, ValueError, AgentnbError):
        return {}
    if found is None:
        return {}
    out: dict[str, Any] = {}
    for field, aliases in (
        ("input_per_mtok", ("input_per_mtok",)),
        ("output_per_mtok", ("output_per_mtok",)),
        ("cached_input_per_mtok", ("cached_input_per_mtok", "cache_read_per_mtok")),
        ("cache_write_per_mtok", ("cache_write_per_mtok",)),
        ("context_window", ("context_window",)),
    ):
        for alias in aliases:
            value = found.get(alias) if isinstance(found, dict) else getattr(found, alias, None)
            if value is not None:
                out[field] = value
                break
    return out


class AnthropicModel(ModelBase):
    """A Claude model over the Anthropic Messages API.

    Args:
        name: The model name, e.g. `"claude-sonnet-4-5"`.
        base_url: Server root; defaults to `ANTHROPIC_BASE_URL` or `https://api.anthropic.com`.
            Requests go to `{base_url}/v1/messages` (a `base_url` ending in `/v1` works too).
        api_key: Sent as `x-api-key`; defaults to `ANTHROPIC_API_KEY`. Required for
            api.anthropic.com; optional for other servers (proxies, fakes).
        stream: Make every request a streamed one; results are the same.
        max_tokens: Output cap when a call does not set one (the API requires one).
        temperature: Sampling temperature when a call does not set one.
        timeout_s: Per-attempt timeout, streaming included.
        max_retries: Retries after the first attempt for 429, 5xx, 529 and connection errors.
        http_client: Your own `httpx.AsyncClient` (e.g. with a `MockTransport`); never closed.
        input_per_mtok: USD per million input tokens; otherwise from the price table.
        output_per_mtok: USD per million output tokens; otherwise from the price table.
        headers: Extra headers (e.g. `anthropic-beta`); they win over ours.
        thinking_budget_tokens: Enable extended thinking with this budget (must be below
            `max_tokens`).
        on_retry: Called as `on_retry(attempt, error, sleep_s)` before each retry sleeps.
        backoff_base_s: First backoff step; later ones double, with full jitter.

    Example:
        >>> from agentnb.core import Message, run_sync
        >>> from agentnb.testing.anthropic_server import FakeAnthropicServer
        >>> async def ask(model: AnthropicModel, text: str) -> str:
        ...     try:
        ...         return (await model.request([Message.user(text)])).text
        ...     finally:
        ...         await model.aclose()
        >>> with FakeAnthropicServer(["Hello!"]) as server:
        ...     run_sync(ask(AnthropicModel("claude-sonnet-4-5", base_url=server.url), "Hi"))
        'Hello!'
    """

    def __init__(
        self,
        name: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        stream: bool = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        http_client: httpx.AsyncClient | None = None,
        input_per_mtok: Decimal | float | str | None = None,
        output_per_mtok: Decimal | float | str | None = None,
        headers: dict[str, str] | None = None,
        thinking_budget_tokens: int | None = None,
        on_retry: RetryHook | None = None,
        backoff_base_s: float = 0.5,
    ) -> None:
        source = "argument" if base_url else "ANTHROPIC_BASE_URL"
        root = (base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.base_url = _http().check_base_url(root, what="Anthropic base URL", source=source,
                                               example="https://api.anthropic.com")
        self.url = f"{root}/messages" if root.endswith("/v1") else f"{root}/v1/messages"
        self.api_key = api_key or os.environ.get("ANTHROPIC_API_KEY") or None
        if self.api_key is None and urlsplit(root).hostname == "api.anthropic.com":
            msg = f"No API key for Anthropic model {name!r} at {root}."
            raise ConfigError(msg, source="ANTHROPIC_API_KEY",
                              hint="Set ANTHROPIC_API_KEY or pass `api_key=`.")
        if thinking_budget_tokens is not None and max_tokens is not None \
                and max_tokens <= thinking_budget_tokens:
            msg = (f"max_tokens={max_tokens!r} must exceed thinking_budget_tokens="
                   f"{thinking_budget_tokens!r} for model {name!r}.")
            raise ConfigError(msg, source="argument", hint="Raise `max_tokens=`.")
        self.stream_requests = stream
        self.temperature = temperature
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.headers = dict(headers or {})
        self.thinking_budget_tokens = thinking_budget_tokens
        self.on_retry = on_retry
        """Called as `on_retry(attempt, error, sleep_s)` before each retry; settable later."""
        self.backoff_base_s = backoff_base_s
        self._pool = _http().ClientPool(timeout_s=timeout_s, given=http_client,
                                        base_url=self.base_url)
        table = _table_price(name) if input_per_mtok is None or output_per_mtok is None else {}
        default_max = 4096 if thinking_budget_tokens is None else thinking_budget_tokens + 4096
        self._info = ModelInfo(
            provider="anthropic",
            name=name,
            input_per_mtok=_decimal(input_per_mtok if input_per_mtok is not None
                                    else table.get("input_per_mtok")),
            output_per_mtok=_decimal(output_per_mtok if output_per_mtok is not None
                                     else table.get("output_per_mtok")),
            cached_input_per_mtok=_decimal(table.get("cached_input_per_mtok")),
            cache_write_per_mtok=_decimal(table.get("cache_write_per_mtok")),
            context_window=table.get("context_window"),
            max_output_tokens=max_tokens or default_max,
            system="anthropic",
        )

    # -- public protocol ---------------------------------------------------------------------

    async def request(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        """Send one request and return the whole answer (streamed when `stream=True`)."""
        if self.stream_requests:
            return await self.stream(messages, tools=tools, settings=settings)
        body = self.build_body(messages, tools=tools, settings=settings, stream=False)
        return await self._send(body, None)

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        settings: ModelSettings | None = None,
        on_event: StreamCallback | None = None,
    ) -> ModelResponse:
        """Send one streamed request; report deltas to `on_event`; return the whole answer."""
        body = self.build_body(messages, tools=tools, settings=settings, stream=True)
        return await self._send(body, on_event)

    async def aclose(self) -> None:
        """Close the HTTP client this model made for the running loop."""
        await self._pool.aclose()

    # -- request -----------------------------------------------------------------------------

    def request_headers(self) -> dict[str, str]:
        """The headers sent with every request (the API key included)."""
        headers = {"anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        headers.update(self.headers)
        return headers

    def build_body(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        settings: ModelSettings | None = None,
        stream: bool = False,
    ) -> dict[str, Any]:
        """The JSON body of a `/v1/messages` request.

        Raises:
            UsageError: a setting the Messages API cannot honour (`n` > 1).
            ConfigError: `max_tokens` does not exceed the thinking budget.
        """
        s = settings or ModelSettings()
        if s.n is not None and s.n > 1:
            msg = f"Anthropic model {self.info.name!r} cannot return n={s.n!r} choices."
            raise UsageError(msg, hint="Send several requests instead of setting `n`.")
        max_tokens = s.max_tokens or self.info.max_output_tokens
        if self.thinking_budget_tokens is not None and max_tokens <= self.thinking_budget_tokens:
            msg = (f"max_tokens={max_tokens!r} must exceed thinking_budget_tokens="
                   f"{self.thinking_budget_tokens!r} for model {self.info.name!r}.")
            raise ConfigError(msg, source="settings", hint="Raise `max_tokens`.")
        system, wire = to_wire_messages(messages)
        body: dict[str, Any] = {"model": self.info.name, "max_tokens": max_tokens,
                                "messages": wire}
        if system:
            body["system"] = system
        temperature = s.temperature if s.temperature is not None else self.temperature
        if temperature is not None:
            body["temperature"] = temperature
        if s.stop:
            body["stop_sequences"] = list(s.stop)
        if tools:
            body["tools"] = [{"name": t.name, "description": t.description,
                              "input_schema": t.parameters} for t in tools]
            choice = tool_choice(s)
            if choice is not None:
                body["tool_choice"] = choice
        if self.thinking_budget_tokens is not None:
            body["thinking"] = {"type": "enabled", "budget_tokens": self.thinking_budget_tokens}
        if stream:
            body["stream"] = True
        if s.extra_body:
            body.update(s.extra_body)
        return body

    async def _send(self, body: dict[str, Any], on_event: StreamCallback | None) -> ModelResponse:
        streamed = bool(body.get("stream"))

        async def attempt() -> ModelResponse:
            client = self._pool.get()
            request = client.build_request("POST", self.url, json=body,
                                           headers=self.request_headers())
            response = await client.send(request, stream=streamed)
            try:
                return await self._read(response, on_event)
            finally:
                await response.aclose()

        return await _http().send_with_retries(
            attempt, model=self.info.id, url=self.url, max_retries=self.max_retries,
            timeout_s=self.timeout_s, backoff_base_s=self.backoff_base_s, on_retry=self.on_retry,
        )

    async def _read(self, response: httpx.Response, on_event: StreamCallback | None
                    ) -> ModelResponse:
        content_type = response.headers.get("content-type", "")
        if response.status_code >= 400 or "text/event-stream" not in content_type:
            text = (await response.aread()).decode(response.encoding or "utf-8", "replace")
            _http().raise_for_status(response, text, model=self.info.id)
            return self.parse_message(text)
        return await self._parse_stream(response, on_event)

    # -- responses ---------------------------------------------------------------------------

    def parse_message(self, text: str) -> ModelResponse:
        """Parse a non-streamed `/v1/messages` answer.

        Raises:
            UnexpectedModelOutput: the body is not a Messages API message.
            ModelHTTPError: the body is an `error` object.
        """
        data = self._json(text, text)
        if not isinstance(data, dict):
            self._unexpected("a JSON object", text)
        if data.get("type") == "error":
            raise self._error(data, text)
        content = data.get("content")
        if not isinstance(content, list):
            self._unexpected("a message with a `content` list", text)
        acc = Accumulator()
        for block in content:
            if not isinstance(block, dict):
                self._unexpected("content blocks as objects", text)
        try:
            acc.start(data)
            for index, block in enumerate(content):
                acc.block_start(index, block)
                if block.get("type") == "tool_use":
                    acc.args[index] = [json.dumps(block.get("input") or {}, ensure_ascii=False)]
            acc.stop_reason = data.get("stop_reason")
            return self._finish(acc)
        except _ODD_SHAPE:
            raise self._unexpected_error(
                "a Messages API message with fields of the documented types", text) from None

    async def _parse_stream(self, response: httpx.Response, on_event: StreamCallback | None
                            ) -> ModelResponse:
        acc = Accumulator()
        stopped = False
        async for sse in _http().aiter_sse(response.aiter_lines()):
            data = self._json(sse.data, sse.data)
            if not isinstance(data, dict):
                self._unexpected("JSON objects in stream events", sse.data)
            kind = data.get("type", sse.event)
            if kind == "ping":
                continue
            if kind == "error":
                raise self._error(data, sse.data)
            if kind == "message_stop":
                stopped = True
                break
            try:
                event = self._apply(acc, kind, data)
            except _ODD_SHAPE:
                raise self._unexpected_error(
                    "stream events with fields of the documented types", sse.data) from None
            if on_event is not None and event is not None:
                on_event(event)  # outside the try: the caller's errors stay theirs
        if not stopped:
            msg = (f"The stream from model {self.info.id!r} at {self.url} ended before "
                   "`message_stop`.")
            raise ModelConnectionError(msg, model=self.info.id, url=self.url)
        try:
            return self._finish(acc)
        except _ODD_SHAPE:
            raise self._unexpected_error(
                "a stream whose message has fields of the documented types", "") from None

    @staticmethod
    def _apply(acc: Accumulator, kind: Any, data: dict[str, Any]) -> StreamEvent | None:
        """Fold one stream event into `acc`; the event to tell the caller about, if any."""
        if kind == "message_start":
            acc.start(data.get("message") or {})
        elif kind == "content_block_start":
            index, block = data.get("index", 0), data.get("content_block") or {}
            acc.block_start(index, block)
            if block.get("type") == "tool_use":
                return StreamEvent(kind="tool_call", delta="", index=index,
                                   name=block.get("name"))
        elif kind == "content_block_delta":
            return acc.delta(data.get("index", 0), data.get("delta") or {})
        elif kind == "message_delta":
            acc.stop_reason = (data.get("delta") or {}).get("stop_reason", acc.stop_reason)
            acc.add_usage(data.get("usage") or {})
        return None

    def _finish(self, acc: Accumulator) -> ModelResponse:
        parts = acc.parts()
        raw = None if acc.stop_reason is None else str(acc.stop_reason)
        finish: FinishReason | None = None if raw is None else _STOP_REASONS.get(raw, "stop")
        if raw == "refusal":
            text = "".join(p.text for p in parts if isinstance(p, TextPart)).strip()
            note = "The model declined to continue (Anthropic stop_reason 'refusal')"
            parts = (*parts, RefusalPart(text=f"{note}: {text}" if text else f"{note}."))
        u = acc.usage
        cache_read = wire_count(u.get("cache_read_input_tokens"))
        cache_write = wire_count(u.get("cache_creation_input_tokens"))
        input_tokens = wire_count(u.get("input_tokens")) + cache_read + cache_write
        output_tokens = wire_count(u.get("output_tokens"))
        usd = self.info.cost(input_tokens=input_tokens, output_tokens=output_tokens,
                             cached_tokens=cache_read, cache_write_tokens=cache_write)
        usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens,
                      cached_tokens=cache_read, cache_write_tokens=cache_write,
                      model_calls=1, usd=usd)
        return ModelResponse(parts=parts, usage=usage, finish_reason=finish,
                             raw_finish_reason=raw,
                             model_name=str(acc.model) if acc.model else self.info.name,
                             provider_id=str(acc.id) if acc.id else None)

    def _json(self, text: str, body: str) -> Any:
        try:
            return json.loads(text)
        except ValueError:
            self._unexpected("JSON", body)

    def _unexpected(self, what: str, body: str) -> NoReturn:
        raise self._unexpected_error(what, body)

    def _unexpected_error(self, what: str, body: str) -> UnexpectedModelOutput:
        snippet = body if len(body) <= 200 else body[:200] + "..."
        msg = f"Model {self.info.id!r} at {self.url} answered with something other than {what}: "
        return UnexpectedModelOutput(msg + repr(snippet), body=body, model=self.info.id,
                                     hint="Check that `base_url=` points at an Anthropic "
                                     "Messages API server.")

    def _error(self, data: dict[str, Any], body: str) -> ModelHTTPError:
        error = data.get("error") or {}
        kind = str(error.get("type", "api_error")) if isinstance(error, dict) else "api_error"
        status = _ERROR_STATUS.get(kind, 500)
        detail = error.get("message", "") if isinstance(error, dict) else str(error)
        msg = f"Model {self.info.id!r} sent an error in its answer: {kind}: {detail}"
        return ModelHTTPError(status_code=status, body=body, model=self.info.id, message=msg)
