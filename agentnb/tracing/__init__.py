"""Layer 1: spans (OpenTelemetry API, GenAI conventions), the SQLite trace store, queries."""

from agentnb.tracing import _semconv as semconv
from agentnb.tracing._spans import tracer

__all__ = ["semconv", "tracer"]
