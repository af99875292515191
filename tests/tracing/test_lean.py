"""`LeanTracer` spans give the store exactly the rows the SDK's spans give, and `tracer()`
hands out the SDK tracer whenever an exporter needs SDK spans."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import Status, StatusCode

from agentnb import tracing
from agentnb.tracing import _spans
from agentnb.tracing._lean import LeanSpan, LeanTracer
from agentnb.tracing._provider import make_provider
from agentnb.tracing._queue import SpanQueue, drain
from agentnb.tracing._spans import to_rows


def _script(tracer: trace.Tracer) -> None:
    """The span shapes the runtime makes: a run, a step, a call with events, an error."""
    with tracer.start_as_current_span("invoke_agent a", attributes={
            "agentnb.run.id": "run_1", "agentnb.kind": "run", "tags": ["x", "y"]}) as run:
        step = tracer.start_span("step 1 model", attributes={"agentnb.kind": "step",
                                                             "agentnb.step.index": 1})
        with trace.use_span(step, end_on_exit=False):
            call = tracer.start_span("chat m", attributes={"gen_ai.operation.name": "chat"})
            call.set_attribute("gen_ai.usage.input_tokens", 12)
            call.set_attributes({"gen_ai.response.finish_reasons": ("stop",), "f": 0.5})
            call.add_event("retry", {"attempt": 1, "error.type": "ModelTimeout"}, timestamp=7)
            call.end()
            call.set_attribute("late", "ignored")
            call.end()
        step.set_status(Status(StatusCode.OK))
        step.set_status(StatusCode.ERROR, "ignored after OK")
        step.end()
        with pytest.raises(ValueError, match="boom"), tracer.start_as_current_span("tool t"):
            raise ValueError("boom")
        run.update_name("invoke_agent renamed")


def _rows(tracer_of: Any) -> tuple[list[Any], list[Any]]:
    processor = SpanQueue()
    _script(tracer_of(processor))
    spans, events = to_rows(drain(processor.queue), None)
    ids = {row[0]: f"s{i}" for i, row in enumerate(spans)}
    norm = []
    for row in spans:
        (span_id, _trace, parent, run_id, name, kind, span_kind, _start, _end, status, message,
         attrs, scope) = row
        norm.append((ids[span_id], ids.get(parent), run_id, name, kind, span_kind, status,
                     message, json.loads(attrs), scope))
    evs = []
    for span_id, seq, name, ts, attrs in events:
        body = json.loads(attrs)
        body.pop("exception.stacktrace", None)
        evs.append((ids[span_id], seq, name, ts if name == "retry" else None, body))
    assert len({row[1] for row in spans}) == 1  # one trace
    return norm, evs


def test_lean_spans_store_what_sdk_spans_store() -> None:
    sdk = _rows(lambda p: make_provider(p).get_tracer("agentnb"))
    lean = _rows(LeanTracer)
    assert lean == sdk
    spans, events = lean
    assert [s[3] for s in spans] == ["chat m", "step 1 model", "tool t", "invoke_agent renamed"]
    assert {s[2] for s in spans} == {"run_1"}  # inherited from the run span
    assert spans[0][8]["gen_ai.response.finish_reasons"] == ["stop"]
    assert "late" not in spans[0][8]
    assert (spans[1][6], spans[2][6]) == ("OK", "ERROR")
    assert spans[2][7] == "ValueError: boom"
    assert [e[2] for e in events] == ["retry", "exception"]


class _Collect(SpanProcessor):
    def __init__(self) -> None:
        self.ended: list[Any] = []

    def on_end(self, span: Any) -> None:
        self.ended.append(span)


def test_tracer_is_the_sdk_one_while_an_exporter_listens_or_tracing_is_off() -> None:
    st = _spans._state()  # pyright: ignore[reportPrivateUsage]
    assert isinstance(tracing.tracer(), LeanTracer)
    extra = _Collect()
    st.processor.extra = (*st.processor.extra, extra)
    try:
        with tracing.tracer().start_as_current_span("exported") as span:
            assert not isinstance(span, LeanSpan)
        assert [s.name for s in extra.ended] == ["exported"]
    finally:
        st.processor.extra = tuple(p for p in st.processor.extra if p is not extra)
    st.processor.enabled = False
    try:
        assert not tracing.tracer().start_span("off").is_recording()
    finally:
        st.processor.enabled = True
    assert isinstance(tracing.tracer(), LeanTracer)


def test_sdk_child_of_a_lean_span_keeps_the_run() -> None:
    processor = SpanQueue()
    sdk = make_provider(processor).get_tracer("agentnb")
    with (LeanTracer(processor).start_as_current_span(
            "invoke_agent a", attributes={"agentnb.run.id": "run_9"}),
          sdk.start_as_current_span("added mid-run")):
        pass
    spans, _ = to_rows(drain(processor.queue), None)
    assert [(s[4], s[3]) for s in spans] == [("added mid-run", "run_9"),
                                             ("invoke_agent a", "run_9")]
    assert spans[0][2] == spans[1][0]
    assert not processor._run_of  # pyright: ignore[reportPrivateUsage]


def test_the_sdk_is_imported_only_when_sdk_spans_are_needed() -> None:
    """A fresh interpreter that runs an agent with tracing on never imports the SDK; adding an
    exporter's processor does."""
    import subprocess
    import sys
    import tempfile

    code = (
        "import sys, agentnb as anb\n"
        "from agentnb.models import FunctionModel\n"
        "anb.Agent(model=FunctionModel(lambda m, i: 'ok')).run('go')\n"
        "assert anb.spans  # noqa\n"
        "print('opentelemetry.sdk.trace' in sys.modules)\n"
        "from agentnb.tracing import _spans\n"
        "_spans._state().tracer\n"
        "print('opentelemetry.sdk.trace' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"AGENTNB_HOME": tempfile.mkdtemp(), "PATH": "/usr/bin:/bin"},
                         timeout=60, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_span_ids_count_up_from_a_random_start_and_differ_after_fork() -> None:
    import os

    from agentnb.tracing import _lean
    from agentnb.tracing._queue import SpanQueue

    tracer = _lean.LeanTracer(SpanQueue())
    ids = [tracer.start_span(f"s{i}").get_span_context().span_id for i in range(5)]
    assert ids == list(range(ids[0], ids[0] + 5))  # consecutive: appends to the store's index
    assert all(0 < i < 2**64 for i in ids)
    other = _lean._SpanIds()
    assert abs(other.next() - ids[0]) > 2**20  # another start (a clash: ~1 in 2**40)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child draws a new start, so it never repeats the parent's ids
        os.write(write, str(tracer.start_span("child").get_span_context().span_id).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = int(os.read(read, 64))
    os.close(read)
    parent_next = tracer.start_span("parent").get_span_context().span_id
    assert parent_next == ids[-1] + 1
    assert abs(child - parent_next) > 2**20


def test_active_span_matches_use_span() -> None:
    """`active_span` makes the span current and restores the previous one; an `Exception`
    leaving it is recorded with an ERROR status (as `trace.use_span` does), a
    `BaseException` such as cancellation is not, and the span is not ended."""
    import asyncio

    from agentnb.tracing._lean import active_span
    from agentnb.tracing._queue import SpanQueue

    tracer = LeanTracer(SpanQueue())
    outer = tracer.start_span("outer")
    with active_span(outer):
        inner = tracer.start_span("inner")
        seen: list[object] = []

        def fail() -> None:
            with active_span(inner):
                seen.append(trace.get_current_span())
                raise ValueError("boom")

        with pytest.raises(ValueError, match="boom"):
            fail()
        assert seen == [inner]
        assert trace.get_current_span() is outer
    assert trace.get_current_span() is not outer
    assert [e.name for e in inner.events] == ["exception"]
    status = inner._status  # pyright: ignore[reportPrivateUsage]
    assert status is not None
    assert status.status_code is StatusCode.ERROR
    assert status.description == "ValueError: boom"
    assert inner.is_recording()  # not ended: the caller ends it
    cancelled = tracer.start_span("cancelled")
    with pytest.raises(asyncio.CancelledError), active_span(cancelled):
        raise asyncio.CancelledError
    assert list(cancelled.events) == []
    assert cancelled._status is None  # pyright: ignore[reportPrivateUsage]
