"""`OpenAIModel`: OpenAI Chat Completions and every compatible server, over httpx.

Works with api.openai.com and with vLLM, Ollama, llama.cpp, LM Studio, LiteLLM, Groq and
OpenRouter. Streamed (SSE) and plain requests give the same `ModelResponse`. The wire quirks it
absorbs are the documented ones and the common ones: tool-call argument fragments interleaved by
`index`, ids and names repeated in later fragments, arguments `""` then `"{}"`, usage that only
arrives in a final `choices: []` chunk, refusals, reasoning text, and errors that arrive inside a
200 stream (`data: {"error": ...}` or `event: error`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from agentnb.core import (
    ConfigError,
    Message,
    ModelHTTPError,
    RefusalPart,
    TextPart,
    ToolCallPart,
    ToolDefinition,
    ToolResultPart,
    UnexpectedModelOutput,
    compact_json,
    loads_json,
)
from agentnb.models._base import (
    ModelBase,
    ModelInfo,
    ModelResponse,
    ModelSettings,
    StreamCallback,
    wire_count,
)
from agentnb.models._openai_parse import (
    Accumulator,
    choice_from_message,
    hint_format,
    response_from,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

    import httpx

    from agentnb.models._http import RetryHook

__all__ = ["OpenAIModel"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


# In-stream error `type`/`code` values and the HTTP status they stand for.
_ERROR_STATUS = {
    "rate_limit_exceeded": 429, "rate_limit_error": 429, "requests": 429, "tokens": 429,
    "insufficient_quota": 429, "overloaded_error": 529, "overloaded": 529,
    "server_error": 500, "api_error": 500, "internal_error": 500, "timeout": 408,
    "invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
    "not_found_error": 404, "context_length_exceeded": 400,
}


class OpenAIModel(ModelBase):
    """A model behind an OpenAI-compatible Chat Completions endpoint.

    Both `request()` and `stream()` return a complete `ModelResponse`; with `stream=True`,
    `request()` streams too (same result, lower time to first token on the wire).

    Retries: 408/409/429/5xx and connection errors are retried up to `max_retries` times with
    exponential backoff and jitter, honouring `Retry-After`; other 4xx never are. Each attempt has
    its own `timeout_s`. `on_retry(attempt, error, sleep_s)` is called before each retry sleep;
    set it on the model (the `on_retry` attribute) or pass it per call, so the runtime can record
    retry spans.

    Example:
        >>> from agentnb.core import Message, run_sync
        >>> from agentnb.testing.openai_server import FakeOpenAIServer
        >>> with FakeOpenAIServer(["Hello!"]) as server:
        ...     model = OpenAIModel("gpt-fake", base_url=server.url, api_key="sk-test")
        ...     answer = run_sync(model.request([Message.user("Hi")]))
        ...     run_sync(model.aclose())
        >>> answer.text
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
        headers: Mapping[str, str] | None = None,
        system_name: str = "openai",
        on_retry: RetryHook | None = None,
    ) -> None:
        # Lazy: httpx and tenacity are slow to import and `import agentnb` must stay fast.
        from agentnb.models._http import ClientPool, check_base_url

        self.base_url = check_base_url(
            (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/"),
            what="OpenAI base URL", example="http://127.0.0.1:8000/v1",
            source="argument" if base_url else "OPENAI_BASE_URL or the default")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not self.api_key and "api.openai.com" in self.base_url:
            msg = f"No API key for model 'openai:{name}' at {self.base_url!r}."
            raise ConfigError(
                msg, source="OPENAI_API_KEY",
                hint="Set the OPENAI_API_KEY environment variable or pass `api_key=`; for a "
                "local server (vLLM, Ollama, ...) pass `base_url=` (or set OPENAI_BASE_URL), "
                "which needs no key.",
            )
        self.stream_default = stream
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.headers = dict(headers or {})
        self.on_retry: RetryHook | None = on_retry
        """Called before each retry sleep with (attempt, error, sleep_s); None for no hook."""
        self._pool = ClientPool(timeout_s=timeout_s, given=http_client, base_url=self.base_url)
        self._explicit_price = input_per_mtok is not None or output_per_mtok is not None
        self._priced: tuple[Any, ModelInfo] | None = None
        self._info = ModelInfo(
            provider="openai", name=name, system=system_name,
            input_per_mtok=_decimal(input_per_mtok), output_per_mtok=_decimal(output_per_mtok),
            max_output_tokens=max_tokens or 4096,
        )

    @property
    def url(self) -> str:
        """The Chat Completions endpoint."""
        return f"{self.base_url}/chat/completions"

    @property
    def info(self) -> ModelInfo:
        """Name, provider and prices (looked up on each access, so `set_price` applies)."""
        if self._explicit_price:
            return self._info
        from agentnb.models._pricing import lookup_price

        price = lookup_price(self._info.provider, self._info.name)
        cached = self._priced
        if cached is not None and cached[0] is price:
            return cached[1]
        info = _with_price(self._info, price)
        self._priced = (price, info)
        return info

    async def aclose(self) -> None:
        """Close the HTTP client of the running loop (a given `http_client` is left open)."""
        await self._pool.aclose()

    # -- request building ------------------------------------------------------------------

    def build_body(self, messages: Sequence[Message], *, tools: Sequence[ToolDefinition] = (),
                   settings: ModelSettings | None = None, stream: bool = False) -> dict[str, Any]:
        """The JSON body sent for these messages, tools and settings.

        Example:
            >>> m = OpenAIModel("m", base_url="http://127.0.0.1:1/v1")
            >>> m.build_body([Message.user("hi")])["messages"]
            [{'role': 'user', 'content': 'hi'}]
        """
        s = settings or ModelSettings()
        body: dict[str, Any] = {"model": self._info.name, "messages": _messages(messages)}
        max_tokens = s.max_tokens or self.max_tokens or self._info.max_output_tokens
        # `max_tokens`, not `max_completion_tokens`: vLLM, Ollama and llama.cpp read this one.
        body["max_tokens"] = max_tokens
        temperature = s.temperature if s.temperature is not None else self.temperature
        if temperature is not None:
            body["temperature"] = temperature
        if s.n is not None:
            body["n"] = s.n
        if s.seed is not None:
            body["seed"] = s.seed
        if s.stop:
            body["stop"] = list(s.stop)
        if tools:
            body["tools"] = [
                {"type": "function", "function": {"name": t.name, "description": t.description,
                                                  "parameters": t.parameters}}
                for t in tools
            ]
            # OpenAI rejects `parallel_tool_calls` when no tools are offered.
            if s.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = s.parallel_tool_calls
        if s.tool_choice is not None:
            if s.tool_choice in ("auto", "none", "required"):
                body["tool_choice"] = s.tool_choice
            else:
                body["tool_choice"] = {"type": "function", "function": {"name": s.tool_choice}}
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        if s.extra_body:
            body.update(s.extra_body)
        return body

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        headers.update(self.headers)
        return headers

    # -- calls -----------------------------------------------------------------------------

    async def request(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        settings: ModelSettings | None = None,
        on_retry: RetryHook | None = None,
    ) -> ModelResponse:
        """Send one request and return the whole answer (streamed when `stream=True`).

        Raises:
            ModelHTTPError: the server answered an HTTP error, or an error inside a stream.
            ModelTimeout: an attempt took longer than `timeout_s`.
            ModelConnectionError: the server could not be reached.
            UnexpectedModelOutput: the answer is not Chat Completions JSON.
        """
        if self.stream_default:
            return await self.stream(messages, tools=tools, settings=settings, on_retry=on_retry)
        from agentnb.models._http import raise_for_status, send_with_retries

        body = self.build_body(messages, tools=tools, settings=settings)
        info = self.info
        # Encoded once for every attempt: the text httpx's `json=` writes (compact, UTF-8),
        # by orjson (a fifth of the time on a long conversation).
        content = compact_json(body).encode()
        headers = self._headers()
        url = self.url

        async def attempt() -> ModelResponse:
            response = await self._pool.post(url, content=content, headers=headers)
            raw = response.content
            if response.status_code >= 400:
                raise_for_status(response, raw.decode("utf-8", "replace"), model=info.id)
            return self._parse_body(raw, info, messages, tools)

        return await send_with_retries(
            attempt, model=info.id, url=self.url, max_retries=self.max_retries,
            timeout_s=self.timeout_s, on_retry=on_retry or self.on_retry,
        )

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        settings: ModelSettings | None = None,
        on_event: StreamCallback | None = None,
        on_retry: RetryHook | None = None,
    ) -> ModelResponse:
        """Send one streamed request; report deltas to `on_event`; return the whole answer.

        An error inside the stream is retried (when its kind is retryable) only if no delta was
        reported yet, so `on_event` never sees an answer twice.

        Raises:
            ModelHTTPError: the server answered an HTTP error, or an error inside the stream.
            ModelTimeout: an attempt took longer than `timeout_s`.
            ModelConnectionError: the server could not be reached or dropped the stream.
            UnexpectedModelOutput: a chunk or body is not Chat Completions JSON.
        """
        from agentnb.models._http import (
            aiter_sse,
            raise_for_status,
            send_with_retries,
        )

        body = self.build_body(messages, tools=tools, settings=settings, stream=True)
        info = self.info

        async def attempt() -> ModelResponse:
            client = self._pool.get()
            async with client.stream("POST", self.url, json=body,
                                     headers=self._headers()) as response:
                if response.status_code >= 400:
                    raw = (await response.aread()).decode("utf-8", "replace")
                    raise_for_status(response, raw, model=info.id)
                ctype = response.headers.get("content-type", "")
                if "text/event-stream" not in ctype:
                    # Some servers ignore `stream: true` and answer plain JSON.
                    raw = (await response.aread()).decode("utf-8", "replace")
                    return self._parse_body(raw, info, messages, tools)
                acc = Accumulator(on_event)
                async for event in aiter_sse(_lines(response)):
                    data = event.data.strip()
                    if data == "[DONE]":
                        break
                    if event.event == "error":
                        raise self._stream_error(_loads_or_text(data), acc.emitted, info)
                    chunk = _loads_or_none(data)
                    if not isinstance(chunk, dict):
                        msg = (f"Model {info.id!r} at {self.base_url!r} sent a stream chunk "
                               f"that is not JSON: {data[:200]!r}.")
                        raise UnexpectedModelOutput(msg, body=data, model=info.id,
                                                    hint=hint_format())
                    if "error" in chunk and not chunk.get("choices"):
                        raise self._stream_error(chunk, acc.emitted, info)
                    acc.add(chunk)
                return acc.response(info, messages, tools)

        return await send_with_retries(
            attempt, model=info.id, url=self.url, max_retries=self.max_retries,
            timeout_s=self.timeout_s, on_retry=on_retry or self.on_retry,
        )

    # -- parsing ---------------------------------------------------------------------------

    def _parse_body(self, text: str | bytes, info: ModelInfo, messages: Sequence[Message],
                    tools: Sequence[ToolDefinition]) -> ModelResponse:
        data = _loads_or_none(text)
        if isinstance(text, bytes) and not (isinstance(data, dict) and data.get("choices")):
            text = text.decode("utf-8", "replace")  # only the error paths below need text
        if not isinstance(data, dict):
            msg = (f"Model {info.id!r} at {self.base_url!r} answered with a body that is not "
                   f"JSON: {text[:200]!r}.")
            raise UnexpectedModelOutput(msg, body=_text(text), model=info.id,
                                        hint=hint_format())
        if "error" in data and not data.get("choices"):
            raise self._stream_error(data, emitted=False, info=info)
        raw_choices = data.get("choices")
        if not isinstance(raw_choices, list) or not raw_choices:
            msg = f"Model {info.id!r} at {self.base_url!r} answered without `choices`."
            raise UnexpectedModelOutput(msg, body=_text(text), model=info.id,
                                        hint=hint_format())
        choices = sorted((choice_from_message(c) for c in raw_choices), key=lambda c: c.index)
        raw_finish = {wire_count(c.get("index")): c.get("finish_reason")
                      for c in raw_choices if isinstance(c, dict)}.get(choices[0].index)
        return response_from(choices, data.get("usage"), provider_id=data.get("id"),
                             model_name=data.get("model"), info=info, messages=messages,
                             tools=tools, raw_finish=raw_finish)

    def _stream_error(self, payload: Any, emitted: bool, info: ModelInfo) -> ModelHTTPError:
        error = payload.get("error", payload) if isinstance(payload, dict) else payload
        body = json.dumps(payload) if isinstance(payload, (dict, list)) else str(payload)
        status = _error_status(error)
        retryable = (status in (408, 409, 429) or status >= 500) and not emitted
        message = error.get("message") if isinstance(error, dict) else None
        text = f"Model {info.id!r} sent an error inside its response (as HTTP {status}): "
        text += str(message or body)[:300]
        return ModelHTTPError(status_code=status, body=body, model=info.id, retryable=retryable,
                              message=text)


# -- helpers (module level so the stream and the plain path share them) -----------------------


def _decimal(value: Decimal | float | str | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _with_price(info: ModelInfo, price: Any) -> ModelInfo:
    if price is None:
        return info
    return dataclasses.replace(
        info, input_per_mtok=price.input_per_mtok, output_per_mtok=price.output_per_mtok,
        cached_input_per_mtok=price.cached_input_per_mtok,
        cache_write_per_mtok=price.cache_write_per_mtok,
        context_window=price.context_window or info.context_window,
    )


async def _lines(response: httpx.Response) -> AsyncIterator[str]:
    async for line in response.aiter_lines():
        yield line


def _loads_or_none(text: str | bytes) -> Any:
    try:
        return loads_json(text)
    except ValueError:
        return None


def _loads_or_text(text: str) -> Any:
    value = _loads_or_none(text)
    return text if value is None else value


def _error_status(error: Any) -> int:
    if not isinstance(error, dict):
        return 500
    for key in ("status", "status_code", "code"):
        value = error.get(key)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
        if isinstance(value, str) and value.isdigit() and 100 <= int(value) <= 599:
            return int(value)
    for key in ("type", "code"):
        value = error.get(key)
        if isinstance(value, str) and value in _ERROR_STATUS:
            return _ERROR_STATUS[value]
    return 500


def _messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        results = [p for p in m.parts if isinstance(p, ToolResultPart)]
        out.extend({"role": "tool", "tool_call_id": r.call_id, "content": r.content}
                   for r in results)
        text = "".join(p.text for p in m.parts if isinstance(p, (TextPart, RefusalPart)))
        calls = [p for p in m.parts if isinstance(p, ToolCallPart)]
        if m.role == "assistant":
            if not text and not calls:
                continue
            msg: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                msg["tool_calls"] = [
                    {"id": c.id, "type": "function",
                     "function": {"name": c.name, "arguments": c.arguments or "{}"}}
                    for c in calls
                ]
            out.append(msg)
        elif text or (m.role != "tool" and not results):
            role = "user" if m.role == "tool" else m.role
            out.append({"role": role, "content": text})
    return out


def _text(body: str | bytes) -> str:
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else body
