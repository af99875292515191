"""Layer 1: spans (OpenTelemetry API, GenAI conventions), the SQLite trace store, queries.

Everything here is cheap to import: the OpenTelemetry SDK, sqlite and pandas load on first use.
"""

from agentnb.tracing import _semconv as semconv
from agentnb.tracing._annotations import annotate, annotations
from agentnb.tracing._diff import Divergence, StepSummary, TraceDiff, diff
from agentnb.tracing._merge import merge_store
from agentnb.tracing._otlp import export_otlp, export_stored
from agentnb.tracing._query import SpanRecord, format_traces, load_spans, spans, traces
from agentnb.tracing._spans import (
    aflush,
    attributes,
    configure,
    flush,
    redact,
    set_redactor,
    start_span,
    store,
    tracer,
)
from agentnb.tracing._store import SCHEMA_VERSION, TraceStore

__all__ = [
    "aflush",
    "annotate",
    "annotations",
    "attributes",
    "configure",
    "diff",
    "Divergence",
    "export_otlp",
    "export_stored",
    "flush",
    "format_traces",
    "load_spans",
    "merge_store",
    "redact",
    "SCHEMA_VERSION",
    "semconv",
    "set_redactor",
    "SpanRecord",
    "spans",
    "start_span",
    "StepSummary",
    "store",
    "TraceDiff",
    "tracer",
    "traces",
    "TraceStore",
]
