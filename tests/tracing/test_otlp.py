"""OTLP/HTTP export, live and after the fact, to a real receiver on loopback."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from agentnb.core import AgentnbError, UsageError, resolve
from agentnb.testing import LoopbackServer, RecordedRequest, Reply
from agentnb.tracing import (
    configure,
    export_otlp,
    export_stored,
    flush,
    set_redactor,
    spans,
    tracer,
)
from agentnb.tracing import semconv as sc


class Receiver:
    """Decodes every ExportTraceServiceRequest it receives into flat span dicts."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> Reply:
        assert request.path == "/v1/traces"
        assert request.headers["content-type"] == "application/x-protobuf"
        message = ExportTraceServiceRequest()
        message.ParseFromString(request.body)
        for resource_spans in message.resource_spans:
            service = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    with self.lock:
                        self.spans.append({
                            "name": span.name, "span_id": span.span_id.hex(),
                            "parent_id": span.parent_span_id.hex() or None,
                            "trace_id": span.trace_id.hex(),
                            "attributes": {a.key: _value(a.value) for a in span.attributes},
                            "events": [e.name for e in span.events],
                            "status": span.status.code, "service": service.get("service.name"),
                            "auth": request.headers.get("authorization"),
                        })
        return Reply(status=self.status, body=b"",
                     headers={"content-type": "application/x-protobuf"})


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    """A live OTLP/HTTP receiver on 127.0.0.1."""
    handler = Receiver()
    with LoopbackServer(handler) as server:
        yield handler, server.url + "/v1/traces"


def _by_name(received: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in received}


def test_live_export_sends_tree_with_attributes(receiver: tuple[Receiver, str],
                                                run_emitter: Callable[..., None],
                                                simple_steps: list[Any]) -> None:
    """Spans reach the receiver as they finish, with parent links and gen_ai attributes."""
    handler, url = receiver
    export_otlp(url, headers={"authorization": "Bearer t"})
    export_otlp(url)  # a second call with the same endpoint adds nothing
    run_emitter("run_live", simple_steps[:2])
    flush()
    got = _by_name(handler.spans)
    assert len(handler.spans) == 5
    run, step0 = got["invoke_agent planner"], got["step 0 model"]
    chat, tool = got["chat sim:careful"], got["execute_tool search"]
    assert run["parent_id"] is None
    assert step0["parent_id"] == run["span_id"]
    assert chat["parent_id"] == step0["span_id"]
    assert tool["parent_id"] == got["step 1 tool"]["span_id"]
    assert run["attributes"][sc.AGENTNB_RUN_ID] == "run_live"
    assert run["attributes"][sc.AGENTNB_COST_USD] == 0.25
    assert run["attributes"][sc.AGENTNB_USAGE_STEPS] == 2
    assert chat["attributes"][sc.GEN_AI_OPERATION_NAME] == "chat"
    assert chat["attributes"][sc.GEN_AI_USAGE_INPUT_TOKENS] == 100
    assert chat["attributes"][sc.GEN_AI_RESPONSE_FINISH_REASONS] == ["stop"]
    assert tool["attributes"][sc.GEN_AI_TOOL_NAME] == "search"
    assert {s["service"] for s in handler.spans} == {"agentnb"}
    assert {s["auth"] for s in handler.spans} == {"Bearer t"}
    # the store got the same spans, with the same ids
    assert set(spans("run_live")["span_id"]) == {s["span_id"] for s in handler.spans}


def test_live_export_is_redacted(receiver: tuple[Receiver, str]) -> None:
    """The redactor applies to exported attribute and event values too."""
    handler, url = receiver
    set_redactor(lambda text: text.replace("sk-live", "[X]"))
    export_otlp(url)
    with tracer().start_as_current_span("s", attributes={"k": "sk-live", "l": ["sk-live"]}) as s:
        s.add_event("e", {"v": "sk-live"})
    flush()
    (span,) = handler.spans
    assert span["attributes"] == {"k": "[X]", "l": ["[X]"]}


def test_configure_sets_up_and_removes_live_export(receiver: tuple[Receiver, str]) -> None:
    """`otlp_endpoint` in settings turns live export on; configuring without it turns it off."""
    handler, url = receiver
    configure(resolve(otlp_endpoint=url))
    with tracer().start_as_current_span("first"):
        pass
    flush()
    configure(resolve())
    with tracer().start_as_current_span("second"):
        pass
    flush()
    assert [s["name"] for s in handler.spans] == ["first"]


def test_configure_honours_environment_variable(receiver: tuple[Receiver, str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`AGENTNB_OTLP_ENDPOINT` reaches the exporter through resolve() and configure()."""
    handler, url = receiver
    monkeypatch.setenv("AGENTNB_OTLP_ENDPOINT", url)
    configure(resolve())
    with tracer().start_as_current_span("via env"):
        pass
    flush()
    assert [s["name"] for s in handler.spans] == ["via env"]
    export_otlp()  # no endpoint argument: the configured one, already present
    flush()
    assert len(handler.spans) == 1


def test_export_stored_after_the_fact(receiver: tuple[Receiver, str],
                                      run_emitter: Callable[..., None],
                                      simple_steps: list[Any]) -> None:
    """Stored runs (with child runs) are rebuilt and sent with their original ids and links."""
    handler, url = receiver
    run_emitter("run_old", simple_steps)
    with tracer().start_as_current_span("ev", attributes={sc.AGENTNB_RUN_ID: "run_other"}) as s:
        s.add_event("retry", {sc.AGENTNB_RETRY_CAUSE: "timeout"})
    sent = export_stored(["run_old", "run_other"], url)
    stored = spans("run_old")
    assert sent == len(stored) + 1 == len(handler.spans)
    got = {s["span_id"]: s for s in handler.spans}
    for row in stored.to_dict("records"):
        remote = got[row["span_id"]]
        assert remote["name"] == row["name"]
        assert remote["trace_id"] == row["trace_id"]
        assert remote["parent_id"] == (row["parent_id"] if isinstance(row["parent_id"], str)
                                       else None)
        assert remote["attributes"][sc.AGENTNB_KIND] == row["kind"]
    chat = next(s for s in handler.spans if s["name"].startswith("chat"))
    assert chat["attributes"][sc.GEN_AI_RESPONSE_FINISH_REASONS] == ["stop"]
    assert _by_name(handler.spans)["ev"]["events"] == ["retry"]


def test_export_stored_errors(receiver: tuple[Receiver, str]) -> None:
    """Unknown runs, a missing endpoint and a refusing receiver raise clear errors."""
    handler, url = receiver
    with pytest.raises(UsageError, match="run_none"):
        export_stored("run_none", url)
    with pytest.raises(UsageError, match="AGENTNB_OTLP_ENDPOINT"):
        export_stored("run_none")
    with pytest.raises(UsageError, match="AGENTNB_OTLP_ENDPOINT"):
        export_otlp()
    with tracer().start_as_current_span("x", attributes={sc.AGENTNB_RUN_ID: "run_z"}):
        pass
    handler.status = 400
    with pytest.raises(AgentnbError, match="did not accept 1 spans"):
        export_stored("run_z", url)


def test_missing_exporter_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the OTLP exporter installed, export raises ConfigError naming `agentnb[otlp]`."""
    import sys

    from agentnb.core import ConfigError

    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter",
                        None)
    with pytest.raises(ConfigError) as info:
        export_otlp("http://127.0.0.1:9/v1/traces")
    assert info.value.hint is not None
    assert "agentnb[otlp]" in info.value.hint
