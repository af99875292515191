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
    FinishReason,
    Message,
    ModelHTTPError,
    Part,
    RefusalPart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolDefinition,
    ToolResultPart,
    UnexpectedModelOutput,
    Usage,
    compact_json,
    loads_json,
)
from agentnb.models._base import (
    Choice,
    ModelBase,
    ModelInfo,
    ModelResponse,
    ModelSettings,
    StreamCallback,
    StreamEvent,
    estimate_tokens,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

    import httpx

    from agentnb.models._http import RetryHook

__all__ = ["OpenAIModel"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "refusal",
    "error": "error",
}

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
                acc = _Accumulator(on_event)
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
                                                    hint=_hint_format())
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
                                        hint=_hint_format())
        if "error" in data and not data.get("choices"):
            raise self._stream_error(data, emitted=False, info=info)
        raw_choices = data.get("choices")
        if not isinstance(raw_choices, list) or not raw_choices:
            msg = f"Model {info.id!r} at {self.base_url!r} answered without `choices`."
            raise UnexpectedModelOutput(msg, body=_text(text), model=info.id,
                                        hint=_hint_format())
        choices = sorted((_choice_from_message(c) for c in raw_choices), key=lambda c: c.index)
        raw_finish = {_index(c.get("index")): c.get("finish_reason")
                      for c in raw_choices if isinstance(c, dict)}.get(choices[0].index)
        return _response(choices, data.get("usage"), provider_id=data.get("id"),
                         model_name=data.get("model"), info=info, messages=messages, tools=tools,
                         raw_finish=raw_finish)

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


def _hint_format() -> str:
    return ("Check that `base_url` points at an OpenAI-compatible API (it usually ends in "
            "`/v1`) and not at a web page or proxy login.")


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


def _finish(raw: str | None, parts: Sequence[Part]) -> FinishReason | None:
    if raw is None:
        return None
    finish = _FINISH.get(raw, "stop")
    if finish == "stop" and any(isinstance(p, ToolCallPart) for p in parts):
        finish = "tool_calls"
    if finish == "stop" and any(isinstance(p, RefusalPart) for p in parts):
        finish = "refusal"
    return finish


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return ""


def _args_text(arguments: Any) -> str:
    if arguments is None or arguments == "":
        return "{}"
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _choice_from_message(raw: Any) -> Choice:
    # Every value is brought to its field's type here, so validating the parts cannot fail
    # (pydantic's validation in Rust is also faster than `model_construct`).
    raw = raw if isinstance(raw, dict) else {}
    message = raw.get("message")
    message = message if isinstance(message, dict) else {}
    parts: list[Part] = []
    thinking = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(thinking, str) and thinking:
        parts.append(ThinkingPart(text=thinking))
    text = _text_of(message.get("content"))
    if text:
        parts.append(TextPart(text=text))
    if message.get("refusal"):
        parts.append(RefusalPart(text=str(message["refusal"])))
    raw_calls = message.get("tool_calls")
    calls = list(raw_calls) if isinstance(raw_calls, list) else []
    if message.get("function_call"):
        calls.append({"function": message["function_call"]})
    for i, item in enumerate(calls):
        call = item if isinstance(item, dict) else {}
        fn = call.get("function")
        fn = fn if isinstance(fn, dict) else {}
        name = fn.get("name")
        parts.append(ToolCallPart(
            id=str(call.get("id") or f"call_{i}"), name=name if isinstance(name, str) else "",
            arguments=_args_text(fn.get("arguments"))))
    raw_finish = raw.get("finish_reason")
    return Choice(
        index=_index(raw.get("index")), parts=tuple(parts),
        finish_reason=_finish(str(raw_finish), parts) if raw_finish else None)


def _index(value: Any) -> int:
    """A count or index from the provider's JSON; 0 when it is missing or not a number."""
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError, OverflowError):
        return 0


def _usage(raw: Any, info: ModelInfo, messages: Sequence[Message],
           tools: Sequence[ToolDefinition], choices: Sequence[Choice]) -> Usage:
    if not isinstance(raw, dict):
        # The server sent no usage: estimate rather than report a silent zero.
        input_tokens = estimate_tokens(messages, tools)
        chars = sum(len(getattr(p, "text", "") or getattr(p, "arguments", ""))
                    for c in choices for p in c.parts)
        output_tokens = max(1, chars // 4)
        return Usage(input_tokens=input_tokens, output_tokens=output_tokens, model_calls=1,
                     usd=info.cost(input_tokens=input_tokens, output_tokens=output_tokens))
    prompt = raw.get("prompt_tokens_details")
    prompt = prompt if isinstance(prompt, dict) else {}
    completion = raw.get("completion_tokens_details")
    completion = completion if isinstance(completion, dict) else {}
    input_tokens = _index(raw.get("prompt_tokens"))
    output_tokens = _index(raw.get("completion_tokens"))
    cached = _index(prompt.get("cached_tokens") or raw.get("prompt_cache_hit_tokens")
                    or raw.get("cache_read_input_tokens"))
    written = _index(prompt.get("cache_write_tokens") or prompt.get("cache_creation_tokens")
                     or raw.get("cache_creation_input_tokens"))
    reasoning = _index(completion.get("reasoning_tokens"))
    usd = info.cost(input_tokens=input_tokens, output_tokens=output_tokens,
                    cached_tokens=cached, cache_write_tokens=written)
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=cached,
                 cache_write_tokens=written, reasoning_tokens=reasoning, model_calls=1, usd=usd)


def _response(choices: Sequence[Choice], usage: Any, *, provider_id: Any, model_name: Any,
              info: ModelInfo, messages: Sequence[Message], tools: Sequence[ToolDefinition],
              raw_finish: str | None = None) -> ModelResponse:
    first = choices[0] if choices else Choice(index=0)
    return ModelResponse(
        parts=first.parts,
        usage=_usage(usage, info, messages, tools, choices),
        finish_reason=first.finish_reason,
        raw_finish_reason=None if raw_finish is None else str(raw_finish),
        model_name=str(model_name or info.name),
        provider_id=str(provider_id) if provider_id else None,
        extra_choices=tuple(choices[1:]),
    )


class _ToolCallBuffer:
    __slots__ = ("arguments", "id", "index", "name")

    def __init__(self, index: int) -> None:
        self.index = index
        self.id = ""
        self.name = ""
        self.arguments = ""


class _ChoiceBuffer:
    def __init__(self, index: int) -> None:
        self.index = index
        self.thinking = ""
        self.text = ""
        self.refusal = ""
        self.calls: list[_ToolCallBuffer] = []
        self.by_index: dict[int, _ToolCallBuffer] = {}
        self.finish: str | None = None

    def parts(self) -> tuple[Part, ...]:
        parts: list[Part] = []
        if self.thinking:
            parts.append(ThinkingPart(text=self.thinking))
        if self.text:
            parts.append(TextPart(text=self.text))
        if self.refusal:
            parts.append(RefusalPart(text=self.refusal))
        parts.extend(
            ToolCallPart(id=c.id or f"call_{i}", name=c.name, arguments=_args_text(c.arguments))
            for i, c in enumerate(self.calls)
        )
        return tuple(parts)


class _Accumulator:
    """Folds `chat.completion.chunk` objects into choices, reporting deltas as they arrive."""

    def __init__(self, on_event: StreamCallback | None) -> None:
        self.on_event = on_event
        self.choices: dict[int, _ChoiceBuffer] = {}
        self.usage: Any = None
        self.id: Any = None
        self.model: Any = None
        self.emitted = False

    def _emit(self, event: StreamEvent) -> None:
        self.emitted = True
        if self.on_event is not None:
            self.on_event(event)

    def add(self, chunk: dict[str, Any]) -> None:
        self.id = self.id or chunk.get("id")
        self.model = self.model or chunk.get("model")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        raw_choices = chunk.get("choices")
        for raw in raw_choices if isinstance(raw_choices, list) else []:
            if not isinstance(raw, dict):
                continue
            index = _index(raw.get("index"))
            buf = self.choices.setdefault(index, _ChoiceBuffer(index))
            delta = raw.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            thinking = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(thinking, str) and thinking:
                buf.thinking += thinking
                if index == 0:
                    self._emit(StreamEvent(kind="thinking", delta=thinking))
            text = _text_of(delta.get("content"))
            if text:
                buf.text += text
                if index == 0:
                    self._emit(StreamEvent(kind="text", delta=text))
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                buf.refusal += refusal
                if index == 0:
                    self._emit(StreamEvent(kind="refusal", delta=refusal))
            fragments = delta.get("tool_calls")
            for frag in fragments if isinstance(fragments, list) else []:
                if isinstance(frag, dict):
                    self._tool_fragment(buf, frag)
            if delta.get("function_call"):
                self._tool_fragment(buf, {"index": 0, "function": delta["function_call"]})
            if raw.get("finish_reason"):
                buf.finish = str(raw["finish_reason"])

    def _tool_fragment(self, buf: _ChoiceBuffer, frag: dict[str, Any]) -> None:
        pos = frag.get("index")
        call_id = frag.get("id") or ""
        call_id = call_id if isinstance(call_id, str) else str(call_id)
        if not isinstance(pos, int) or isinstance(pos, bool):
            # Servers that omit `index`: a new id starts a new call, otherwise extend the last.
            pos = len(buf.calls) - (0 if call_id or not buf.calls else 1)
            pos = max(pos, 0)
        call = buf.by_index.get(pos)
        if call is None or (call_id and call.id and call_id != call.id):
            # A different id at a used index is a new call (some servers number every call 0).
            call = _ToolCallBuffer(len(buf.calls))
            buf.calls.append(call)
            buf.by_index[pos] = call
        fn = frag.get("function")
        fn = fn if isinstance(fn, dict) else {}
        first = not call.name
        if call_id and not call.id:
            call.id = call_id
        name = fn.get("name")
        if isinstance(name, str) and name and name != call.name:
            # Names repeated in later fragments are not appended; split names are.
            call.name += name
        arguments = fn.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = json.dumps(arguments)  # an object (some servers), or junk to show
        if arguments:
            call.arguments += arguments
        if buf.index == 0 and (arguments or first):
            self._emit(StreamEvent(kind="tool_call", delta=arguments or "", index=call.index,
                                   name=call.name if first else None))

    def response(self, info: ModelInfo, messages: Sequence[Message],
                 tools: Sequence[ToolDefinition]) -> ModelResponse:
        if not self.choices and self.id is None:
            msg = f"Model {info.id!r} ended its stream without sending any chunk."
            raise UnexpectedModelOutput(msg, model=info.id, hint=_hint_format())
        choices = []
        for index in sorted(self.choices):
            buf = self.choices[index]
            parts = buf.parts()
            choices.append(Choice(index=index, parts=parts, finish_reason=_finish(buf.finish,
                                                                                  parts)))
        raw_finish = self.choices[min(self.choices)].finish if self.choices else None
        return _response(choices, self.usage, provider_id=self.id, model_name=self.model,
                         info=info, messages=messages, tools=tools, raw_finish=raw_finish)


def _text(body: str | bytes) -> str:
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else body
