"""Spans for the store alone: the OpenTelemetry `Span` API without the SDK's bookkeeping.

When spans go only to the embedded store (no live OTLP exporter, tracing on), the SDK's
`Tracer.start_span` builds for each span a sampler decision, a lock, a `BoundedAttributes`
(cleaning every value under its own lock), bounded event and link lists and a resource
reference, and calls the processor chain at start and end; all of that is read once, by
`StoreProcessor`, which copies the span into a flat tuple for the store's queue. `LeanTracer`
makes spans that are that tuple's fields from the start: random 128-bit trace ids as the SDK
makes them, span ids counting up from a random start (`_SpanIds`), parents from the OTel
context, attributes cleaned as the SDK cleans them, events, exception events and status with
the SDK's semantics, and `end()` queues the same record. It is an `opentelemetry.trace.Tracer`,
so `use_span`, `get_current_span` and context propagation work unchanged, and mixing with SDK
spans (an exporter added mid-run) keeps parents and run ids.

With an exporter configured, or tracing off, `agentnb.tracing.tracer()` hands out the SDK
tracer instead (exporters need SDK `ReadableSpan`s; the SDK's non-recording spans cost least).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from agentnb.tracing import _semconv as sc
from agentnb.tracing._queue import WAKE_AT

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.util.types import Attributes

    from agentnb.tracing._queue import SpanQueue

__all__ = ["LeanEvent", "LeanSpan", "LeanTracer", "active_span"]

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_PRIMITIVE = (str, bool, int, float)
_MASK64 = (1 << 64) - 1


class _SpanIds:
    """Span ids of this process: a random 64-bit start, then counting up.

    The store's primary key is the span id: consecutive ids insert at the end of its index
    (one page per commit), where random ids land on a page each (377 against 223 us per
    15-span commit on a 30k-span table). Ranges from random starts also collide less than
    random points do: two processes clash only if their ranges overlap (about 2 * spans / 2**64
    per pair), where n random ids meet somewhere with probability about n**2 / 2**65. A forked
    child draws a new start. (OTel asks span ids to be unique and non-zero, not random; trace
    ids stay random.)
    """

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self._counter = itertools.count(random.getrandbits(64) & ~0xFFFF_FFFF)

    def next(self) -> int:
        value = next(self._counter) & _MASK64  # next() on a count is atomic under the GIL
        return value or self.next()


_span_ids = _SpanIds()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_span_ids.reseed)


def _clean(value: Any) -> Any:
    """An attribute value as the SDK keeps it: primitives as they are, sequences as tuples,
    mappings as dicts, anything else as its `str`."""
    if value is None or isinstance(value, (*_PRIMITIVE, bytes)):
        return value
    if isinstance(value, Sequence):
        return tuple(_clean(v) for v in value)  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    return str(value)


def _cleaned(attributes: Attributes) -> dict[str, Any]:
    if not attributes:
        return {}
    return {k: v if type(v) in _PRIMITIVE else _clean(v) for k, v in attributes.items() if k}


class LeanEvent:
    """A span event: name, attributes, timestamp (what the store and `_plain` read).

    Example:
        >>> LeanEvent("retry", {"attempt": 2}, 1).attributes["attempt"]
        2
    """

    __slots__ = ("attributes", "name", "timestamp")

    def __init__(self, name: str, attributes: dict[str, Any], timestamp: int) -> None:
        self.name = name
        self.attributes = attributes
        self.timestamp = timestamp


class LeanSpan(trace.Span):
    """A recording span whose `end()` queues its record for the trace store.

    Example:
        >>> from agentnb.tracing._queue import SpanQueue
        >>> span = LeanTracer(SpanQueue()).start_span("demo", attributes={"a": [1, 2]})
        >>> span.set_attribute("b", "x")
        >>> (span.attributes["a"], span.is_recording())
        ((1, 2), True)
    """

    __slots__ = ("_attributes", "_context", "_end_ns", "_events", "_kind", "_name",
                 "_processor", "_status", "parent", "run_id", "start_time")

    def __init__(self, processor: SpanQueue, name: str, context: SpanContext, *,
                 parent: SpanContext | None, kind: SpanKind, attributes: dict[str, Any],
                 start_time: int, run_id: str | None) -> None:
        self._processor = processor
        self._name = name
        self._context = context
        self.parent = parent
        self._kind = kind
        self._attributes = attributes
        self._events: list[LeanEvent] = []
        self._status: Status | None = None
        self.start_time = start_time
        self._end_ns: int | None = None
        self.run_id = run_id

    @property
    def name(self) -> str:
        """The span's name."""
        return self._name

    @property
    def attributes(self) -> Mapping[str, Any]:
        """The attributes so far (read-only)."""
        return MappingProxyType(self._attributes)

    @property
    def events(self) -> tuple[LeanEvent, ...]:
        """The events so far."""
        return tuple(self._events)

    def get_span_context(self) -> SpanContext:
        """The span's context (trace id, span id, sampled)."""
        return self._context

    def is_recording(self) -> bool:
        """True until `end()`."""
        return self._end_ns is None

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Set several attributes (ignored once the span ended, as in the SDK)."""
        if self._end_ns is None:
            self._attributes.update(_cleaned(attributes))

    def set_attribute(self, key: str, value: Any) -> None:
        """Set one attribute."""
        if self._end_ns is None and key:
            self._attributes[key] = value if type(value) in _PRIMITIVE else _clean(value)

    def add_event(self, name: str, attributes: Attributes = None,
                  timestamp: int | None = None) -> None:
        """Add an event (now, unless `timestamp` is given)."""
        if self._end_ns is None:
            self._events.append(LeanEvent(name, _cleaned(attributes),
                                          time.time_ns() if timestamp is None else timestamp))

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        """Links are not stored by the trace store; accepted and dropped."""

    def update_name(self, name: str) -> None:
        """Rename the span."""
        if self._end_ns is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """Set the status; OK is final and UNSET is ignored (the SDK's rules)."""
        if self._end_ns is not None or (
                self._status is not None and self._status.status_code is StatusCode.OK):
            return
        if isinstance(status, Status):
            if status.status_code is not StatusCode.UNSET:
                self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def record_exception(self, exception: BaseException, attributes: Attributes = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        """Add the `exception` event with the SDK's attributes."""
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        attrs: dict[str, Any] = {
            "exception.type": f"{module}.{qualname}" if module and module != "builtins"
            else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            attrs.update(attributes)
        self.add_event("exception", attrs, timestamp)

    def end(self, end_time: int | None = None) -> None:
        """End the span and queue its record for the store (a second call does nothing)."""
        if self._end_ns is not None:
            return
        self._end_ns = end = time.time_ns() if end_time is None else end_time
        ctx, parent, status = self._context, self.parent, self._status
        processor = self._processor
        processor._run_of.pop(ctx.span_id, None)  # pyright: ignore[reportPrivateUsage]
        if not processor.store_enabled:
            return
        queue = processor.queue
        queue.append((
            ctx.span_id, ctx.trace_id, parent.span_id if parent is not None else None,
            self.run_id, self._name, self.start_time, end, self._attributes, self._events,
            "UNSET" if status is None else status.status_code.name,
            None if status is None else status.description, self._kind.name, "agentnb"))
        if len(queue) >= WAKE_AT and not processor.wake.is_set():
            processor.wake.set()

    def __exit__(self, exc_type: Any, exc_val: BaseException | None, exc_tb: Any) -> None:
        """End the span, recording an escaping exception and an ERROR status first."""
        if exc_val is not None and self._end_ns is None:
            self.record_exception(exc_val, escaped=True)
            self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        self.end()

    def __repr__(self) -> str:
        return f"LeanSpan({self._name!r}, span_id={self._context.span_id:016x})"


class LeanTracer(trace.Tracer):
    """Starts `LeanSpan`s into a `SpanQueue`.

    Example:
        >>> from agentnb.tracing._queue import SpanQueue
        >>> processor = SpanQueue()
        >>> with LeanTracer(processor).start_as_current_span("outer") as outer:
        ...     inner = LeanTracer(processor).start_span("inner")
        ...     inner.end()
        >>> inner.parent.span_id == outer.get_span_context().span_id, len(processor.queue)
        (True, 2)
    """

    def __init__(self, processor: SpanQueue) -> None:
        self._processor = processor

    def start_span(  # noqa: PLR0917 - the OTel Tracer signature
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Any = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> LeanSpan:
        """Start a span, a child of the current span of `context` (default: the current one)."""
        parent_span = trace.get_current_span(context)
        parent = parent_span.get_span_context()
        attrs = _cleaned(attributes)
        run_id = attrs.get(sc.AGENTNB_RUN_ID)
        if parent.is_valid:
            trace_id = parent.trace_id
            if run_id is None:
                run_id = (parent_span.run_id if isinstance(parent_span, LeanSpan)
                          else self._processor._run_of.get(parent.span_id))  # pyright: ignore[reportPrivateUsage]
        else:
            parent = None
            trace_id = random.getrandbits(128)
        span_id = _span_ids.next()
        self._processor._run_of[span_id] = run_id  # pyright: ignore[reportPrivateUsage]  # for SDK children
        return LeanSpan(self._processor, name,
                        SpanContext(trace_id, span_id, is_remote=False, trace_flags=_SAMPLED),
                        parent=parent, kind=kind, attributes=attrs, run_id=run_id,
                        start_time=time.time_ns() if start_time is None else start_time)

    @contextlib.contextmanager  # the API's own decorator is private; same protocol
    def start_as_current_span(  # noqa: PLR0917  # pyright: ignore[reportIncompatibleMethodOverride]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Any = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[LeanSpan]:
        """Start a span and make it current for the block (ended on exit by default)."""
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace.use_span(span, end_on_exit=end_on_exit, record_exception=record_exception,
                            set_status_on_exception=set_status_on_exception) as current:
            yield current  # type: ignore[misc]


class active_span:
    """`trace.use_span(span, end_on_exit=False)` as a small class: the span is current inside
    the block, and an `Exception` leaving it is recorded on the span with an ERROR status.

    OTel's `use_span` is a generator-based context manager, built anew on every use: this does
    the same for half the cost, and a run enters three per step.

    Example:
        >>> from agentnb.tracing._queue import SpanQueue
        >>> span = LeanTracer(SpanQueue()).start_span("s")
        >>> with active_span(span):
        ...     trace.get_current_span() is span
        True
    """

    __slots__ = ("_span", "_token")

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def __enter__(self) -> trace.Span:
        self._token = context_api.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        context_api.detach(self._token)
        # As `use_span`: only `Exception`s (not GeneratorExit, CancelledError...) are errors.
        if isinstance(exc, Exception) and self._span.is_recording():
            self._span.record_exception(exc)
            self._span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
