"""The OpenTelemetry SDK pieces behind `tracer()`: a toggle sampler and the store span processor.

Imported lazily (the SDK costs ~0.1 s to import). The per-span work on the caller's thread is
a dict update in `on_start` and a `deque.append` in `on_end`; turning spans into rows (JSON,
redaction) and writing them happens on the `agentnb-traces` writer thread, which wakes every
`FLUSH_INTERVAL_S` or when the queue holds `WAKE_AT` spans. `BatchSpanProcessor` would copy each
span through an exporter interface and a bounded queue that drops on overflow; the store must not
drop, so this processor keeps an unbounded deque and exporters (OTLP) hang off it separately.
"""


from __future__ import annotations

import collections
import threading
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler, SamplingResult

from agentnb.tracing import _semconv as sc

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opentelemetry.context import Context
    from opentelemetry.trace import Link, SpanKind
    from opentelemetry.trace.span import TraceState
    from opentelemetry.util.types import Attributes

__all__ = ["FLUSH_INTERVAL_S", "WAKE_AT", "StoreProcessor", "ToggleSampler", "make_provider"]

FLUSH_INTERVAL_S = 0.25
"""The writer thread writes whatever has finished at least this often (a killed kernel loses
at most this much)."""
WAKE_AT = 2048
"""Queue length at which `on_end` wakes the writer early."""


SpanRecordTuple = tuple[Any, ...]
"""(span_id, trace_id, parent_span_id, inherited_run_id, name, start_ns, end_ns, attributes,
events, status_code, status_description, span_kind, scope_name) as queued by `StoreProcessor`."""


def _plain(holder: Any) -> dict[str, Any]:
    # The SDK keeps attributes in a BoundedAttributes whose item access takes a lock; its inner
    # dict (frozen once the span ended) is read directly. Falls back to the public mapping.
    inner = getattr(getattr(holder, "_attributes", None), "_dict", None)
    if isinstance(inner, dict):
        return inner
    return dict(holder.attributes or {})


class ToggleSampler(Sampler):
    """Record every span while `enabled`, none otherwise (`AGENTNB_TRACE=0`).

    With tracing off the SDK hands out non-recording spans, which cost almost nothing.
    """

    def __init__(self) -> None:
        self.enabled = True

    def should_sample(  # noqa: PLR0917 - the SDK's Sampler signature
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        """Decide by the flag."""
        inner = ALWAYS_ON if self.enabled else ALWAYS_OFF
        return inner.should_sample(parent_context, trace_id, name, kind, attributes, links,
                                   trace_state)

    def get_description(self) -> str:
        """Name the sampler."""
        return f"AgentnbToggleSampler(enabled={self.enabled})"


class StoreProcessor(SpanProcessor):
    """Queue finished spans for the store; fan out to extra processors (OTLP)."""

    def __init__(self) -> None:
        self.queue: collections.deque[SpanRecordTuple] = collections.deque()
        self.wake = threading.Event()
        self.store_enabled = True
        self.extra: tuple[SpanProcessor, ...] = ()
        """Replaced as a whole (copy on write), so iteration needs no lock."""
        self._run_of: dict[int, str | None] = {}
        """Live span id -> the run it belongs to; a child looks its parent up at start."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Remember which run the span belongs to."""
        attrs = span.attributes
        run_id = attrs.get(sc.AGENTNB_RUN_ID) if attrs else None
        if run_id is None and span.parent is not None:
            run_id = self._run_of.get(span.parent.span_id)
        self._run_of[span.context.span_id] = run_id  # type: ignore[assignment]
        for p in self.extra:
            p.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        """Queue a compact copy of the span for the writer thread."""
        ctx = span.context
        assert ctx is not None
        run_id = self._run_of.pop(ctx.span_id, None)
        if self.store_enabled:
            # A flat tuple instead of the span object: the span (locks, bounded containers) is
            # freed at once, and the garbage collector has far less to walk while spans wait.
            parent = span.parent
            status = span.status
            scope = span.instrumentation_scope
            queue = self.queue
            queue.append((
                ctx.span_id, ctx.trace_id, parent.span_id if parent is not None else None,
                run_id, span.name, span.start_time, span.end_time, _plain(span),
                span.events, status.status_code.name, status.description, span.kind.name,
                scope.name if scope is not None else None,
            ))
            if len(queue) >= WAKE_AT and not self.wake.is_set():
                self.wake.set()
        for p in self.extra:
            p.on_end(span)

    def shutdown(self) -> None:
        """Shut the extra processors down (the store is flushed by `agentnb.tracing`)."""
        for p in self.extra:
            p.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the extra processors; the store queue is drained by `flush()`."""
        return all(p.force_flush(timeout_millis) for p in self.extra)


def make_provider(sampler: ToggleSampler, processor: StoreProcessor) -> TracerProvider:
    """agentnb's own provider: never installed as the global one, no atexit of its own."""
    from opentelemetry.sdk.resources import Resource

    provider = TracerProvider(sampler=sampler, shutdown_on_exit=False,
                              resource=Resource.create({"service.name": "agentnb"}))
    provider.add_span_processor(processor)
    return provider


def drain(queue: collections.deque[Any]) -> list[Any]:
    """Pop everything queued so far (safe against concurrent appends)."""
    out: list[Any] = []
    pop = queue.popleft
    try:
        while True:
            out.append(pop())
    except IndexError:
        return out
