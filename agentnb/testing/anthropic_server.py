"""`FakeAnthropicServer`: a loopback Anthropic Messages API for testing agents without a key.

It answers `POST /v1/messages` from a script: a queue of turns, or a function of the request's
JSON. Plain requests get a JSON message; `"stream": true` gets the documented SSE sequence
(`message_start`, `content_block_start`, `ping`, deltas, `content_block_stop`, `message_delta`,
`message_stop`), with text and tool input split over several deltas and, optionally, the bytes
split into awkward chunks. Faults can be injected at a rate or scripted turn by turn.

Example:
    >>> from agentnb.core import Message, run_sync
    >>> from agentnb.models.anthropic import AnthropicModel
    >>> script = [AnthropicTurn(tool_calls=[("lookup", {"key": "7"})]), "Key 7 holds a lamp."]
    >>> async def two_turns(model: AnthropicModel):
    ...     try:
    ...         first = await model.request([Message.user("What does key 7 hold?")])
    ...         return first, await model.request([Message.user("And now?")])
    ...     finally:
    ...         await model.aclose()
    >>> with FakeAnthropicServer(script) as server:
    ...     model = AnthropicModel("claude-test", base_url=server.url, stream=True)
    ...     first, second = run_sync(two_turns(model))
    >>> first.tool_calls[0].name, second.text, server.stats.streamed
    ('lookup', 'Key 7 holds a lamp.', 2)
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Union

from agentnb.testing._server import LoopbackServer, RecordedRequest, Reply

__all__ = ["AnthropicError", "AnthropicTurn", "FakeAnthropicServer", "ServerStats", "Turn"]


@dataclasses.dataclass(kw_only=True, slots=True)
class AnthropicTurn:
    """One scripted answer. Blocks are sent in the order thinking, text, tool uses.

    Example:
        >>> AnthropicTurn(text="hi").stop_reason_or_default()
        'end_turn'
        >>> AnthropicTurn(tool_calls=[("f", {})]).stop_reason_or_default()
        'tool_use'
    """

    text: str | None = None
    """The answer's text (one text block)."""
    tool_calls: Sequence[tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], str]] = ()
    """`(name, input)` or `(name, input, id)` per `tool_use` block."""
    thinking: str | None = None
    """A thinking block's text, sent first."""
    signature: str = "sig-fake"
    """The thinking block's signature."""
    stop_reason: str | None = None
    """Defaults to `tool_use` when there are tool calls, else `end_turn`."""
    input_tokens: int | None = None
    """Uncached input tokens; defaults to about a quarter of the request's message characters."""
    output_tokens: int | None = None
    """Defaults to about a quarter of the answer's characters."""
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    model: str | None = None
    """The model named in the answer; defaults to the request's."""
    stream_error: str | None = None
    """Send `event: error` of this type (e.g. `overloaded_error`) after the first block starts."""
    malformed_chunk: bool = False
    """Send a data line that is not JSON after the first block starts."""
    blocks: list[dict[str, Any]] | None = None
    """Exact content blocks (non-streamed shape), replacing text / tool_calls / thinking."""

    def stop_reason_or_default(self) -> str:
        """The stop reason this turn is answered with."""
        if self.stop_reason is not None:
            return self.stop_reason
        return "tool_use" if self.tool_calls else "end_turn"


@dataclasses.dataclass(kw_only=True, slots=True)
class AnthropicError:
    """A scripted HTTP error answer (the documented `{"type": "error", ...}` body)."""

    status: int = 529
    type: str = "overloaded_error"
    message: str = "Overloaded"
    retry_after_s: float | None = None


Turn = Union[str, AnthropicTurn, AnthropicError, Reply]  # noqa: UP007 - a runtime alias
"""A scripted turn: text, a full turn, an HTTP error, or a raw `Reply` (bytes as they are)."""

TurnFunction = Callable[[dict[str, Any]], Turn]


@dataclasses.dataclass(kw_only=True, slots=True)
class ServerStats:
    """Counters, updated as requests arrive."""

    requests: int = 0
    streamed: int = 0
    turns_served: int = 0
    injected: dict[int, int] = dataclasses.field(default_factory=dict)
    """Injected error answers by HTTP status."""


_STATUS_TYPES = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


class FakeAnthropicServer:
    """A scripted Anthropic Messages API on 127.0.0.1, for tests of agents and clients.

    Args:
        script: Turns answered in order, or a function `(request_json) -> turn`. With no script
            the server echoes the last user text.
        error_429_rate: Fraction of requests answered 429 `rate_limit_error`.
        error_500_rate: Fraction answered 500 `api_error`.
        overloaded: Fraction answered 529 `overloaded_error`.
        retry_after_s: `Retry-After` sent with injected errors.
        latency_s: Wait before each answer.
        chunk_size: Split SSE bytes into chunks of this many bytes (awkward places on purpose).
        chunk_delay_s: Wait between SSE chunks.
        delta_chars: Characters per text / tool-input delta.
        gzip: Compress JSON answers with gzip.
        drop_rate: Fraction of requests whose connection is closed without an answer.
        api_key: When set, requests without this `x-api-key` get 401.
        seed: Seed for the fault rates.

    Example:
        >>> import httpx
        >>> with FakeAnthropicServer(["hello"]) as server:
        ...     r = httpx.post(server.url + "/v1/messages",
        ...                    headers={"anthropic-version": "2023-06-01"},
        ...                    json={"model": "m", "max_tokens": 5,
        ...                          "messages": [{"role": "user", "content": "hi"}]})
        >>> r.json()["content"]
        [{'type': 'text', 'text': 'hello'}]
    """

    def __init__(
        self,
        script: Iterable[Turn] | TurnFunction | None = None,
        *,
        error_429_rate: float = 0.0,
        error_500_rate: float = 0.0,
        overloaded: float = 0.0,
        retry_after_s: float | None = 0.0,
        latency_s: float = 0.0,
        chunk_size: int | None = None,
        chunk_delay_s: float = 0.0,
        delta_chars: int = 4,
        gzip: bool = False,
        drop_rate: float = 0.0,
        api_key: str | None = None,
        seed: int = 0,
    ) -> None:
        self._function: TurnFunction | None = None
        self._queue: deque[Turn] | None = None
        if callable(script):
            self._function = script
        elif script is not None:
            self._queue = deque(script)
        self.rates = {429: error_429_rate, 500: error_500_rate, 529: overloaded, 0: drop_rate}
        self.retry_after_s = retry_after_s
        self.latency_s = latency_s
        self.chunk_size = chunk_size
        self.chunk_delay_s = chunk_delay_s
        self.delta_chars = max(1, delta_chars)
        self.gzip = gzip
        self.api_key = api_key
        self.stats = ServerStats()
        self._random = random.Random(seed)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._handle)

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`: pass it as `base_url=`."""
        return self._server.url

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order."""
        return self._server.requests

    def request_json(self, index: int = -1) -> Any:
        """The JSON body of a received request (the last by default)."""
        return self._server.requests[index].json()

    def add(self, *turns: Turn) -> None:
        """Append turns to the script."""
        with self._lock:
            if self._queue is None:
                self._queue = deque()
            self._queue.extend(turns)

    def start(self) -> FakeAnthropicServer:
        """Start serving in a background thread."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    def __enter__(self) -> FakeAnthropicServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answering ---------------------------------------------------------------------------

    def _handle(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.stats.requests += 1
            return self._answer(request)

    def _answer(self, request: RecordedRequest) -> Reply:
        if request.method != "POST" or request.path.split("?")[0] != "/v1/messages":
            return _error_reply(404, "not_found_error", f"Not found: {request.path}")
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            return _error_reply(401, "authentication_error", "invalid x-api-key")
        try:
            body = request.json()
        except ValueError:
            return _error_reply(400, "invalid_request_error", "Request body is not JSON")
        problem = _validate(body, request.headers)
        if problem:
            return _error_reply(400, "invalid_request_error", problem)
        for status in (0, 429, 500, 529):
            if self.rates[status] and self._random.random() < self.rates[status]:
                self.stats.injected[status] = self.stats.injected.get(status, 0) + 1
                if status == 0:
                    return Reply(drop=True)
                return _error_reply(status, _STATUS_TYPES[status], "Injected by the fake server",
                                    self.retry_after_s, self.latency_s)
        turn = self._next_turn(body)
        if turn is None:
            return _error_reply(400, "invalid_request_error",
                                "FakeAnthropicServer: no scripted turn left")
        self.stats.turns_served += 1
        stream = bool(body.get("stream"))
        if stream:
            self.stats.streamed += 1
        if isinstance(turn, Reply):
            return turn
        if isinstance(turn, AnthropicError):
            return _error_reply(turn.status, turn.type, turn.message, turn.retry_after_s,
                                self.latency_s)
        if isinstance(turn, str):
            turn = AnthropicTurn(text=turn)
        message = self._message(turn, body)
        if stream:
            return Reply(sse=self._sse(turn, message), delay_s=self.latency_s,
                         chunk_delay_s=self.chunk_delay_s)
        return Reply(json=message, gzip=self.gzip, delay_s=self.latency_s,
                     headers={"request-id": f"req_fake_{message['id']}"})

    def _next_turn(self, body: dict[str, Any]) -> Turn | None:
        if self._function is not None:
            return self._function(body)
        if self._queue is None:
            return _echo(body)
        return self._queue.popleft() if self._queue else None

    def _message(self, turn: AnthropicTurn, request: dict[str, Any]) -> dict[str, Any]:
        n = next(self._ids)
        if turn.blocks is not None:
            content = turn.blocks
        else:
            content = []
            if turn.thinking is not None:
                content.append({"type": "thinking", "thinking": turn.thinking,
                                "signature": turn.signature})
            if turn.text is not None:
                content.append({"type": "text", "text": turn.text})
            for k, call in enumerate(turn.tool_calls):
                call_id = call[2] if len(call) > 2 else f"toolu_fake_{n:04d}_{k}"
                content.append({"type": "tool_use", "id": call_id, "name": call[0],
                                "input": call[1]})
        chars = len(json.dumps(content))
        usage = {
            "input_tokens": turn.input_tokens if turn.input_tokens is not None
            else max(1, len(json.dumps(request.get("messages"))) // 4),
            "cache_creation_input_tokens": turn.cache_creation_input_tokens,
            "cache_read_input_tokens": turn.cache_read_input_tokens,
            "output_tokens": turn.output_tokens if turn.output_tokens is not None
            else max(1, chars // 4),
        }
        return {"id": f"msg_fake_{n:04d}", "type": "message", "role": "assistant",
                "model": turn.model or request.get("model", "claude-fake"), "content": content,
                "stop_reason": turn.stop_reason_or_default(), "stop_sequence": None,
                "usage": usage}

    def _sse(self, turn: AnthropicTurn, message: dict[str, Any]) -> list[bytes | str]:
        usage = message["usage"]
        start = {**message, "content": [], "stop_reason": None,
                 "usage": {**usage, "output_tokens": 1}}
        events: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": start}),
            ("ping", {"type": "ping"}),
        ]
        for index, block in enumerate(message["content"]):
            events.append(("content_block_start", {"type": "content_block_start",
                                                   "index": index,
                                                   "content_block": _empty(block)}))
            if index == 0 and turn.malformed_chunk:
                events.append(("content_block_delta", {"malformed": True}))
            if index == 0 and turn.stream_error:
                events.append(("error", {"type": "error", "error": {
                    "type": turn.stream_error, "message": "Injected mid-stream error"}}))
            events.extend(("content_block_delta", {"type": "content_block_delta",
                                                   "index": index, "delta": d})
                          for d in self._deltas(block))
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
            if index == 0:
                events.append(("ping", {"type": "ping"}))
        events.append(("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        }))
        events.append(("message_stop", {"type": "message_stop"}))
        pieces: list[bytes | str] = [_event_bytes(name, data) for name, data in events]
        if not self.chunk_size:
            return pieces
        raw, size = b"".join(_event_bytes(name, data) for name, data in events), self.chunk_size
        return [raw[i:i + size] for i in range(0, len(raw), size)]

    def _deltas(self, block: dict[str, Any]) -> list[dict[str, Any]]:
        kind = block.get("type")
        size = self.delta_chars
        if kind == "text":
            text = block.get("text", "")
            return [{"type": "text_delta", "text": text[i:i + size]}
                    for i in range(0, len(text), size)]
        if kind == "thinking":
            text = block.get("thinking", "")
            out = [{"type": "thinking_delta", "thinking": text[i:i + size]}
                   for i in range(0, len(text), size)]
            return [*out, {"type": "signature_delta", "signature": block.get("signature", "")}]
        if kind == "tool_use":
            raw = json.dumps(block.get("input") or {}) if block.get("input") else ""
            out = [{"type": "input_json_delta", "partial_json": ""}]
            return out + [{"type": "input_json_delta", "partial_json": raw[i:i + size]}
                          for i in range(0, len(raw), size)]
        return []


def _empty(block: dict[str, Any]) -> dict[str, Any]:
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": ""}
    if kind == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    if kind == "tool_use":
        return {"type": "tool_use", "id": block.get("id"), "name": block.get("name"), "input": {}}
    return block


def _event_bytes(name: str, data: dict[str, Any]) -> bytes:
    if data.get("malformed"):
        return b'event: content_block_delta\ndata: {"type": "content_block_delta", "ind\n\n'
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _error_reply(status: int, kind: str, message: str, retry_after_s: float | None = None,
                 delay_s: float = 0.0) -> Reply:
    headers = {} if retry_after_s is None else {"retry-after": f"{retry_after_s:g}"}
    return Reply(status=status, json={"type": "error", "error": {"type": kind, "message": message}},
                 headers=headers, delay_s=delay_s)


def _validate(body: Any, headers: dict[str, str]) -> str | None:
    if not isinstance(body, dict):
        return "Request body must be a JSON object"
    if "anthropic-version" not in headers:
        return "anthropic-version: header is required"
    for field in ("model", "max_tokens", "messages"):
        if field not in body:
            return f"{field}: Field required"
    if not isinstance(body["messages"], list):
        return "messages: Input should be a valid list"
    return None


def _echo(body: dict[str, Any]) -> Turn:
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [b.get("text", "") for b in content or [] if b.get("type") == "text"]
        if texts:
            return "".join(texts)
    return "(no user text)"
