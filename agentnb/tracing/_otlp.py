"""OTLP/HTTP export: live (spans as they finish) and after the fact (stored runs).

Both go through the OpenTelemetry OTLP/HTTP exporter (`agentnb[otlp]`), imported lazily, so
Phoenix, Jaeger or Langfuse show agentnb runs. Every string value passes the installed
redactor first, as it does for the store.
"""


from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentnb.core import AgentnbError, ConfigError, UsageError
from agentnb.tracing import _spans

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
    from opentelemetry.sdk.trace.export import SpanExporter

    from agentnb.tracing._query import SpanRecord

__all__ = ["export_otlp", "export_stored", "live_processor"]

_LIVE_DELAY_MS = 500
"""How long the live exporter batches before sending."""


def _exporter(endpoint: str, headers: Mapping[str, str] | None) -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        msg = "OTLP export needs the OpenTelemetry OTLP/HTTP exporter, which is not installed."
        raise ConfigError(msg, hint='`pip install "agentnb[otlp]"`.') from None
    return OTLPSpanExporter(endpoint=endpoint, headers=dict(headers or {}), timeout=10)


def _redacted(span: ReadableSpan) -> ReadableSpan:
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.trace import Status

    fn = _spans._REDACTOR
    if fn is None:
        return span

    def clean(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
        return {k: _clean(v) for k, v in (attrs or {}).items()}

    def _clean(value: Any) -> Any:
        if isinstance(value, str):
            return fn(value)
        if isinstance(value, (tuple, list)):
            return tuple(_clean(v) for v in value)
        return value

    status = span.status
    if status.description:
        status = Status(status.status_code, fn(status.description))
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource,
        attributes=clean(span.attributes),
        events=[Event(e.name, clean(e.attributes), e.timestamp) for e in span.events],
        links=span.links, kind=span.kind, status=status, start_time=span.start_time,
        end_time=span.end_time, instrumentation_scope=span.instrumentation_scope)


def _redacting(inner: SpanExporter) -> SpanExporter:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class RedactingExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return inner.export([_redacted(s) for s in spans])

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return inner.force_flush(timeout_millis)

    return RedactingExporter()


def live_processor(endpoint: str, headers: Mapping[str, str] | None) -> SpanProcessor:
    """A batch processor sending spans to `endpoint` as they finish, redacted."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(_redacting(_exporter(endpoint, headers)),
                              schedule_delay_millis=_LIVE_DELAY_MS)


def _endpoint(endpoint: str | None) -> str:
    if endpoint:
        return endpoint
    from agentnb.core import resolve

    configured = resolve().otlp_endpoint
    if configured:
        return configured
    msg = "No OTLP endpoint was given and `AGENTNB_OTLP_ENDPOINT` is not set."
    raise UsageError(msg, hint="Pass `endpoint='http://127.0.0.1:4318/v1/traces'` (the full URL).")


def export_otlp(endpoint: str | None = None, *, headers: Mapping[str, str] | None = None) -> None:
    """Send every agentnb span to an OTLP/HTTP endpoint as it finishes (in addition to the store).

    Calling it again with the same endpoint changes nothing.

    Args:
        endpoint: the full traces URL, e.g. `http://127.0.0.1:6006/v1/traces` (Phoenix); default
            `AGENTNB_OTLP_ENDPOINT`.
        headers: extra HTTP headers (API keys of hosted backends).

    Raises:
        ConfigError: `agentnb[otlp]` is not installed.
        UsageError: no endpoint given or configured.

    Example:
        >>> export_otlp("http://127.0.0.1:4318/v1/traces")  # doctest: +SKIP
    """
    _spans._add_exporter(_endpoint(endpoint), headers)


def _readable(records: Sequence[SpanRecord]) -> list[ReadableSpan]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    resource = Resource.create({"service.name": "agentnb"})
    flags = TraceFlags(TraceFlags.SAMPLED)

    def attrs(values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()
                if v is not None}

    out: list[ReadableSpan] = []
    for r in records:
        trace_id = int(r.trace_id, 16)
        context = SpanContext(trace_id, int(r.span_id, 16), is_remote=False, trace_flags=flags)
        parent = (SpanContext(trace_id, int(r.parent_id, 16), is_remote=False, trace_flags=flags)
                  if r.parent_id else None)
        out.append(ReadableSpan(
            name=r.name, context=context, parent=parent, resource=resource,
            attributes=attrs(r.attributes),
            events=[Event(e["name"], attrs(e["attributes"]), e["time_ns"]) for e in r.events],
            kind=SpanKind.__members__.get(r.span_kind, SpanKind.INTERNAL),
            status=Status(StatusCode[r.status], r.status_message),
            start_time=r.start_ns, end_time=r.end_ns,
            instrumentation_scope=InstrumentationScope(r.scope or "agentnb")))
    return out


def export_stored(
    run_id: str | Iterable[str],
    endpoint: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    home: Path | str | None = None,
) -> int:
    """Send stored runs (with their child runs) to an OTLP/HTTP endpoint after the fact.

    Span and trace ids are the original ones, so a backend that already received the run live
    de-duplicates or shows the same tree.

    Returns:
        The number of spans sent.

    Raises:
        UsageError: no stored spans for a run id, or no endpoint.
        AgentnbError: the endpoint refused the spans or could not be reached.

    Example:
        >>> export_stored("run_...", "http://127.0.0.1:4318/v1/traces")  # doctest: +SKIP
        12
    """
    from opentelemetry.sdk.trace.export import SpanExportResult

    from agentnb.tracing._query import load_spans

    target = _endpoint(endpoint)
    run_ids = [run_id] if isinstance(run_id, str) else list(run_id)
    records: list[SpanRecord] = []
    seen: set[str] = set()
    for rid in run_ids:
        found = load_spans(rid, home=home)
        if not found:
            msg = f"No stored spans for run {rid!r}."
            raise UsageError(msg, hint="Take a `run_id` from `agentnb.traces()`.")
        records.extend(r for r in found if r.span_id not in seen)
        seen.update(r.span_id for r in found)
    exporter = _exporter(target, headers)
    try:
        result = exporter.export(_readable(records))
    finally:
        exporter.shutdown()
    if result is not SpanExportResult.SUCCESS:
        msg = f"The OTLP endpoint {target!r} did not accept {len(records)} spans."
        raise AgentnbError(msg, hint="Check the collector runs and the URL ends in `/v1/traces`.")
    return len(records)
