"""The OpenTelemetry SDK pieces behind `tracer()` when SDK spans are needed: a sampler that
follows the tracing switch and the processor that copies SDK spans into the store's queue.

Imported lazily, only when a live exporter is added or tracing is off (the SDK costs ~0.1 s
and ~4 MiB to import; while only the store reads spans, `LeanTracer` needs none of it).
`BatchSpanProcessor` would copy each span through an exporter interface and a bounded queue
that drops on overflow; the store must not drop, so this processor appends to the unbounded
`SpanQueue` and exporters (OTLP) hang off it separately.
"""


from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler, SamplingResult

from agentnb.tracing import _semconv as sc
from agentnb.tracing._queue import WAKE_AT, SpanQueue, plain_attributes

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opentelemetry.context import Context
    from opentelemetry.trace import Link, SpanKind
    from opentelemetry.trace.span import TraceState
    from opentelemetry.util.types import Attributes

__all__ = ["StoreProcessor", "ToggleSampler", "make_provider"]


class ToggleSampler(Sampler):
    """Record every span while the queue's `enabled` is set, none otherwise (`AGENTNB_TRACE=0`).

    With tracing off the SDK hands out non-recording spans, which cost almost nothing.
    """

    def __init__(self, spans: SpanQueue) -> None:
        self.spans = spans

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
        inner = ALWAYS_ON if self.spans.enabled else ALWAYS_OFF
        return inner.should_sample(parent_context, trace_id, name, kind, attributes, links,
                                   trace_state)

    def get_description(self) -> str:
        """Name the sampler."""
        return f"AgentnbToggleSampler(enabled={self.spans.enabled})"


class StoreProcessor(SpanProcessor):
    """Copy SDK spans into the store's `SpanQueue`; fan out to its extra processors (OTLP)."""

    def __init__(self, spans: SpanQueue) -> None:
        self.spans = spans

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Remember which run the span belongs to."""
        spans = self.spans
        attrs = span.attributes
        run_id = attrs.get(sc.AGENTNB_RUN_ID) if attrs else None
        if run_id is None and span.parent is not None:
            run_id = spans._run_of.get(span.parent.span_id)  # pyright: ignore[reportPrivateUsage]
        spans._run_of[span.context.span_id] = run_id  # type: ignore[assignment]  # pyright: ignore[reportPrivateUsage]
        for p in spans.extra:
            p.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        """Queue a compact copy of the span for the writer thread."""
        spans = self.spans
        ctx = span.context
        assert ctx is not None
        run_id = spans._run_of.pop(ctx.span_id, None)  # pyright: ignore[reportPrivateUsage]
        if spans.store_enabled:
            # A flat tuple instead of the span object: the span (locks, bounded containers) is
            # freed at once, and the garbage collector has far less to walk while spans wait.
            parent = span.parent
            status = span.status
            scope = span.instrumentation_scope
            queue = spans.queue
            queue.append((
                ctx.span_id, ctx.trace_id, parent.span_id if parent is not None else None,
                run_id, span.name, span.start_time, span.end_time, plain_attributes(span),
                span.events, status.status_code.name, status.description, span.kind.name,
                scope.name if scope is not None else None,
            ))
            if len(queue) >= WAKE_AT and not spans.wake.is_set():
                spans.wake.set()
        for p in spans.extra:
            p.on_end(span)

    def shutdown(self) -> None:
        """Shut the extra processors down (the store is flushed by `agentnb.tracing`)."""
        self.spans.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the extra processors; the store queue is drained by `flush()`."""
        return all(p.force_flush(timeout_millis) for p in self.spans.extra)


def make_provider(spans: SpanQueue) -> TracerProvider:
    """agentnb's own SDK provider over `spans`: never installed as the global one, no atexit."""
    from opentelemetry.sdk.resources import Resource

    provider = TracerProvider(sampler=ToggleSampler(spans), shutdown_on_exit=False,
                              resource=Resource.create({"service.name": "agentnb"}))
    provider.add_span_processor(StoreProcessor(spans))
    return provider
