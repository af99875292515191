"""Span helpers on the OpenTelemetry API.

agentnb keeps its own `TracerProvider` (never the global one, so a user's OTel set-up is left
alone); the store's span processor and any OTLP exporter hang off it.
"""

from __future__ import annotations

from opentelemetry import trace

__all__ = ["tracer"]

_TRACER: trace.Tracer | None = None


def tracer() -> trace.Tracer:
    """The tracer every agentnb span is started from.

    Example:
        >>> with tracer().start_as_current_span("demo") as span:
        ...     span.set_attribute("agentnb.kind", "demo")
    """
    global _TRACER  # noqa: PLW0603 - one provider per process
    if _TRACER is None:
        from opentelemetry.sdk.trace import TracerProvider

        _TRACER = TracerProvider().get_tracer("agentnb")
    return _TRACER
