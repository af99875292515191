"""`FakeOpenAIServer`: a scripted OpenAI-compatible Chat Completions server on 127.0.0.1.

Use it to test your own agents without a network or a key: script the turns the "model" takes,
point `OpenAIModel(base_url=server.url)` at it, and inject the faults production sees (429 with
`Retry-After`, 500, latency, malformed chunks, errors inside a stream, dropped connections).
It answers both plain JSON and SSE (`stream: true`) with the chunk shapes OpenAI documents.

Example:
    >>> from agentnb.core import Message, run_sync
    >>> from agentnb.models.openai import OpenAIModel
    >>> script = [OpenAIToolCall("lookup", {"key": 7}), "Key 7 holds 'blue'."]
    >>> with FakeOpenAIServer(script) as server:
    ...     model = OpenAIModel("gpt-fake", base_url=server.url, api_key="sk-test")
    ...     first = run_sync(model.request([Message.user("What does key 7 hold?")]))
    ...     second = run_sync(model.request([Message.user("and now?")]))
    ...     run_sync(model.aclose())
    ...     (first.tool_calls[0].name, second.text, server.stats()["ok"])
    ('lookup', "Key 7 holds 'blue'.", 2)
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Union

from agentnb.testing._server import LoopbackServer, RecordedRequest, Reply

__all__ = ["FakeOpenAIServer", "OpenAIToolCall", "OpenAITurn", "TurnLike"]


@dataclasses.dataclass(frozen=True, slots=True)
class OpenAIToolCall:
    """A tool call the fake model makes.

    Example:
        >>> OpenAIToolCall("lookup", {"key": 7}).arguments_json()
        '{"key": 7}'
    """

    name: str
    """The tool's name."""
    arguments: Mapping[str, Any] | str = dataclasses.field(default_factory=dict)
    """The arguments, as a mapping or as raw JSON text (which may be malformed on purpose)."""
    id: str | None = None
    """The call id; `call_<n>` when None."""

    def arguments_json(self) -> str:
        """The arguments as JSON text."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments))


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class OpenAITurn:
    """One scripted answer of the fake model, or one fault.

    Example:
        >>> OpenAITurn(text="Hi", finish_reason="length").finish_reason
        'length'
        >>> OpenAITurn.error(429, retry_after_s=0.1).status
        429
    """

    text: str = ""
    """Assistant text."""
    tool_calls: Sequence[OpenAIToolCall] = ()
    """Tool calls (several make a parallel call)."""
    refusal: str | None = None
    """A refusal instead of an answer."""
    reasoning: str | None = None
    """Reasoning text, sent as `reasoning_content`."""
    finish_reason: str | None = None
    """Defaults to `tool_calls` when there are tool calls, else `stop`."""
    usage: Mapping[str, Any] | None = None
    """The `usage` object to send; estimated from the lengths when None."""
    status: int = 200
    """A non-200 status answers an OpenAI-style error body instead."""
    error_message: str = "Scripted error."
    """The error message of an error turn or a mid-stream error."""
    retry_after_s: float | None = None
    """Send `Retry-After` (and `retry-after-ms`) with an error turn."""
    mid_stream_error: bool = False
    """Streamed: send part of the answer, then `data: {"error": ...}` inside the 200 stream."""
    malformed: bool = False
    """Streamed: one chunk is broken JSON. Plain: the body is HTML, not JSON."""
    drop: bool = False
    """Close the connection: before answering (plain) or halfway through the stream."""
    latency_s: float = 0.0
    """Wait this long before answering."""

    @classmethod
    def error(cls, status: int, message: str = "Scripted error.", *,
              retry_after_s: float | None = None) -> OpenAITurn:
        """An HTTP error answer with an OpenAI-style body."""
        return cls(status=status, error_message=message, retry_after_s=retry_after_s)


TurnLike = Union[str, OpenAIToolCall, Sequence[OpenAIToolCall], OpenAITurn]  # noqa: UP007
"""What a script holds: text, one tool call, parallel tool calls, or a full turn."""

Script = Union[Sequence[TurnLike], Callable[[dict[str, Any]], TurnLike]]  # noqa: UP007
"""A list of turns answered in order, or a function of the request JSON."""


def as_turn(value: TurnLike) -> OpenAITurn:
    """Normalise a script entry into an `OpenAITurn`.

    Example:
        >>> as_turn("hi").text
        'hi'
    """
    if isinstance(value, OpenAITurn):
        return value
    if isinstance(value, str):
        return OpenAITurn(text=value)
    if isinstance(value, OpenAIToolCall):
        return OpenAITurn(tool_calls=(value,))
    if isinstance(value, Sequence) and all(isinstance(c, OpenAIToolCall) for c in value):
        return OpenAITurn(tool_calls=tuple(value))
    msg = f"Not a scripted turn: {value!r}; use a str, OpenAIToolCall(s) or OpenAITurn."
    raise TypeError(msg)


class _DroppingChunks(list[bytes | str]):
    """SSE chunks that end the connection after `keep` of them, without the final chunk."""

    def __init__(self, chunks: list[bytes | str], keep: int) -> None:
        super().__init__(chunks)
        self.keep = keep

    def __iter__(self) -> Iterator[bytes | str]:
        yield from itertools.islice(super().__iter__(), self.keep)
        # The loopback server closes the socket on ConnectionError: the stream ends mid-body.
        raise ConnectionResetError("FakeOpenAIServer dropped the stream on purpose.")


class FakeOpenAIServer:
    """A scripted OpenAI-compatible server on 127.0.0.1 (port 0), in a background thread.

    Args:
        script: turns answered in order (a `str`, an `OpenAIToolCall`, a list of them for
            parallel calls, or an `OpenAITurn`), or a function of the request JSON returning one.
        model: the `model` field of responses; the request's model when None.
        error_429_rate: probability that a request gets a 429 instead of its turn.
        error_500_rate: probability that a request gets a 500 instead of its turn.
        retry_after_s: `Retry-After` sent with injected 429s (None sends none).
        latency_s: delay before each answer: a number, or a `(low, high)` range drawn at random.
        seed: seeds the fault and latency draws, so runs repeat exactly.
        chunk_chars: characters of text or arguments per streamed delta.
        sse_split_bytes: re-split the SSE byte stream into pieces this long (cuts events mid-JSON).
        api_key: when set, requests must carry `Authorization: Bearer <api_key>` or get a 401.

    Example:
        >>> import httpx
        >>> ping = {"model": "m", "messages": [{"role": "user", "content": "ping"}]}
        >>> with FakeOpenAIServer(["pong"]) as server:
        ...     r = httpx.post(server.url + "/chat/completions", json=ping)
        ...     r.json()["choices"][0]["message"]["content"]
        'pong'
    """

    __test__ = False

    def __init__(
        self,
        script: Script = (),
        *,
        model: str | None = None,
        error_429_rate: float = 0.0,
        error_500_rate: float = 0.0,
        retry_after_s: float | None = None,
        latency_s: float | tuple[float, float] = 0.0,
        seed: int = 0,
        chunk_chars: int = 8,
        sse_split_bytes: int | None = None,
        api_key: str | None = None,
    ) -> None:
        self.model = model
        self.error_429_rate = error_429_rate
        self.error_500_rate = error_500_rate
        self.retry_after_s = retry_after_s
        self.latency_s = latency_s
        self.chunk_chars = max(1, chunk_chars)
        self.sse_split_bytes = sse_split_bytes
        self.api_key = api_key
        self._rng = random.Random(seed)
        self._script_fn = script if callable(script) else None
        self._queue: deque[TurnLike] = deque() if callable(script) else deque(script)
        self._served = 0
        self._counts: Counter[int] = Counter()
        self._requests: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        # One lock guards the queue, the counters and the RNG: the server thread and test
        # threads touch them concurrently.
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._handle)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL to give `OpenAIModel(base_url=...)`: `http://127.0.0.1:PORT/v1`."""
        return self._server.url + "/v1"

    def start(self) -> FakeOpenAIServer:
        """Start serving; returns once the port is bound."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- script and counters ------------------------------------------------------------------

    def add(self, *turns: TurnLike) -> None:
        """Append turns to the script."""
        with self._lock:
            self._queue.extend(turns)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The JSON bodies received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> dict[str, Any]:
        """The last JSON body received.

        Raises:
            LookupError: nothing was received yet.
        """
        with self._lock:
            if not self._requests:
                msg = "FakeOpenAIServer has not received a request yet."
                raise LookupError(msg)
            return self._requests[-1]

    def stats(self) -> dict[str, Any]:
        """Counters: `requests`, `ok` (200 answers), `by_status` and `remaining` turns."""
        with self._lock:
            return {"requests": sum(self._counts.values()), "ok": self._counts[200],
                    "by_status": dict(self._counts), "remaining": len(self._queue)}

    # -- serving ------------------------------------------------------------------------------

    def _handle(self, request: RecordedRequest) -> Reply:
        reply = self._answer(request)
        with self._lock:
            self._counts[reply.status] += 1
        return reply

    def _answer(self, request: RecordedRequest) -> Reply:
        if request.method != "POST" or not request.path.rstrip("/").endswith("/chat/completions"):
            return _error_reply(404, f"Unknown path {request.path!r}; POST /v1/chat/completions.",
                                "invalid_request_error")
        if self.api_key is not None and (
            request.headers.get("authorization") != f"Bearer {self.api_key}"
        ):
            return _error_reply(401, "Incorrect API key provided.", "invalid_request_error")
        try:
            body = request.json()
        except ValueError:
            return _error_reply(400, "The request body is not JSON.", "invalid_request_error")
        if not isinstance(body, dict):
            return _error_reply(400, "The request body is not a JSON object.",
                                "invalid_request_error")
        with self._lock:
            self._requests.append(body)
            latency = self._draw_latency()
            fault = self._draw_fault()
            turn: TurnLike | None = None
            if fault is None and self._script_fn is None:
                turn = self._queue.popleft() if self._queue else None
            served = self._served
            self._served += 1
        if fault is not None:
            reply = fault
        else:
            if self._script_fn is not None:
                turn = self._script_fn(body)
            if turn is None:
                reply = _error_reply(
                    400, f"FakeOpenAIServer's script is exhausted (request #{served + 1}); "
                    "add more turns.", "invalid_request_error")
            else:
                try:
                    reply = self._reply(as_turn(turn), body)
                except TypeError as exc:
                    reply = _error_reply(500, f"FakeOpenAIServer: {exc}", "server_error")
        reply.delay_s += latency
        return reply

    def _draw_latency(self) -> float:
        if isinstance(self.latency_s, tuple):
            return self._rng.uniform(*self.latency_s)
        return self.latency_s

    def _draw_fault(self) -> Reply | None:
        roll = self._rng.random()
        if roll < self.error_429_rate:
            return _error_reply(429, "Rate limit reached for requests.", "requests",
                                code="rate_limit_exceeded", retry_after_s=self.retry_after_s)
        if roll < self.error_429_rate + self.error_500_rate:
            return _error_reply(500, "The server had an error while processing your request.",
                                "server_error")
        return None

    def _reply(self, turn: OpenAITurn, body: dict[str, Any]) -> Reply:
        if turn.status != 200:
            kind = "requests" if turn.status == 429 else (
                "server_error" if turn.status >= 500 else "invalid_request_error")
            reply = _error_reply(turn.status, turn.error_message, kind,
                                 retry_after_s=turn.retry_after_s)
            reply.delay_s = turn.latency_s
            return reply
        if turn.drop and not body.get("stream"):
            return Reply(drop=True, delay_s=turn.latency_s)
        model = self.model or str(body.get("model") or "fake-model")
        n = int(body.get("n") or 1)
        response_id = f"chatcmpl-fake{next(self._ids)}"
        usage = dict(turn.usage) if turn.usage is not None else _estimate_usage(turn, body, n)
        if body.get("stream"):
            return self._stream_reply(turn, body, response_id=response_id, model=model, n=n,
                                     usage=usage)
        if turn.malformed:
            return Reply(body="<html><body>Bad gateway</body></html>",
                         headers={"content-type": "text/html"}, delay_s=turn.latency_s)
        choices = [{"index": i, "message": _message(turn), "logprobs": None,
                    "finish_reason": _finish(turn)} for i in range(n)]
        return Reply(json={"id": response_id, "object": "chat.completion",
                           "created": int(time.time()), "model": model, "choices": choices,
                           "usage": usage, "system_fingerprint": "fp_fake"},
                     delay_s=turn.latency_s)

    def _stream_reply(self, turn: OpenAITurn, body: dict[str, Any], *, response_id: str,
                      model: str, n: int, usage: dict[str, Any]) -> Reply:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": response_id, "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model, "system_fingerprint": "fp_fake"}

        def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
            data: dict[str, Any] = {**base, "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if include_usage:
                data["usage"] = None
            return f"data: {json.dumps(data)}\n\n".encode()

        events: list[bytes] = []
        for i in range(n):
            events.append(chunk(i, {"role": "assistant", "content": "",
                                    "refusal": None if turn.refusal is None else ""}))
            events += [chunk(i, {"reasoning_content": p}) for p in self._pieces(turn.reasoning)]
            events += [chunk(i, {"content": p}) for p in self._pieces(turn.text)]
            events += [chunk(i, {"refusal": p}) for p in self._pieces(turn.refusal)]
            for k, call in enumerate(turn.tool_calls):
                events.append(chunk(i, {"tool_calls": [{
                    "index": k, "id": call.id or f"call_{k}", "type": "function",
                    "function": {"name": call.name, "arguments": ""}}]}))
                events += [chunk(i, {"tool_calls": [{"index": k, "function": {"arguments": p}}]})
                           for p in self._pieces(call.arguments_json())]
            events.append(chunk(i, {}, _finish(turn)))
        if turn.malformed:
            events.insert(len(events) // 2, b'data: {"id": "broken", "choices": [{"delta": \n\n')
        if turn.mid_stream_error:
            events = events[: max(2, len(events) // 2)]
            error = {"error": {"message": turn.error_message, "type": "server_error",
                               "param": None, "code": None}}
            events.append(f"data: {json.dumps(error)}\n\n".encode())
        else:
            if include_usage:
                events.append(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
                              .encode())
            events.append(b"data: [DONE]\n\n")
        chunks: list[bytes | str] = list(events)
        if self.sse_split_bytes:
            stream = b"".join(events)
            size = self.sse_split_bytes
            chunks = [stream[j:j + size] for j in range(0, len(stream), size)]
        if turn.drop:
            chunks = _DroppingChunks(chunks, keep=max(1, len(chunks) // 2))
        return Reply(sse=chunks, delay_s=turn.latency_s,
                     headers={"content-type": "text/event-stream; charset=utf-8"})

    def _pieces(self, text: str | None) -> list[str]:
        if not text:
            return []
        size = self.chunk_chars
        return [text[j:j + size] for j in range(0, len(text), size)]


def _finish(turn: OpenAITurn) -> str:
    if turn.finish_reason is not None:
        return turn.finish_reason
    return "tool_calls" if turn.tool_calls else "stop"


def _message(turn: OpenAITurn) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn.text or None,
                               "refusal": turn.refusal}
    if turn.reasoning:
        message["reasoning_content"] = turn.reasoning
    if turn.tool_calls:
        message["tool_calls"] = [
            {"id": c.id or f"call_{k}", "type": "function",
             "function": {"name": c.name, "arguments": c.arguments_json()}}
            for k, c in enumerate(turn.tool_calls)
        ]
    return message


def _estimate_usage(turn: OpenAITurn, body: dict[str, Any], n: int) -> dict[str, Any]:
    prompt = max(1, len(json.dumps(body.get("messages", []))) // 4)
    out_chars = len(turn.text) + len(turn.refusal or "") + len(turn.reasoning or "") + sum(
        len(c.name) + len(c.arguments_json()) for c in turn.tool_calls)
    completion = n * max(1, out_chars // 4)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


def _error_reply(status: int, message: str, kind: str, *, code: str | None = None,
                 retry_after_s: float | None = None) -> Reply:
    headers: dict[str, str] = {}
    if retry_after_s is not None:
        headers["retry-after"] = str(max(0, round(retry_after_s)))
        headers["retry-after-ms"] = str(int(retry_after_s * 1000))
    return Reply(status=status, headers=headers, json={
        "error": {"message": message, "type": kind, "param": None, "code": code}})
