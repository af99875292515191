"""How fast spans go into the trace store, and what a span costs on the caller's thread.

Run: `.venv/bin/python benchmarks/bench_trace_store.py [N]`. Every figure comes from this one
run, on this machine; ratios are what to compare across machines. Target (issue 5):
>= 20,000 spans/s into the store.

Figures:
- store ingest: finished spans queued, then `flush()` turns them into rows (JSON, redaction
  hook) and writes them with `executemany` in one transaction per batch;
- end to end: run trees built through `tracer()` while the writer thread stores them, until
  the last one is on disk;
- per-span cost on the caller's thread: a bare OpenTelemetry SDK span vs an agentnb span
  (our sampler + processor: a dict update and a deque append) vs tracing off.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from agentnb.core import resolve
from agentnb.tracing import _spans, configure, flush, store, tracer
from agentnb.tracing import semconv as sc

RUN_ATTRS = {sc.AGENTNB_KIND: "run", sc.GEN_AI_AGENT_NAME: "bench",
             sc.GEN_AI_REQUEST_MODEL: "sim:careful"}
CHAT_ATTRS = {sc.AGENTNB_KIND: "model_call", sc.GEN_AI_OPERATION_NAME: "chat",
              sc.GEN_AI_REQUEST_MODEL: "sim:careful", sc.GEN_AI_RESPONSE_MODEL: "sim:careful",
              sc.GEN_AI_USAGE_INPUT_TOKENS: 812, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 64,
              sc.AGENTNB_COST_USD: 0.00042, sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",)}


def make_runs(n_spans: int) -> int:
    """Build run trees (run -> step -> chat) until `n_spans` spans exist; return the count."""
    t = tracer()
    made = 0
    run = 0
    while made < n_spans:
        with t.start_as_current_span("invoke_agent bench",
                                     attributes={**RUN_ATTRS, sc.AGENTNB_RUN_ID: f"run_{run}"}):
            made += 1
            for i in range(9):
                with t.start_as_current_span(f"step {i} model", attributes={
                        sc.AGENTNB_KIND: "step", sc.AGENTNB_STEP_INDEX: i}), \
                        t.start_as_current_span("chat sim:careful", attributes=CHAT_ATTRS):
                    made += 2
        run += 1
    return made


def _timed(fn: object, *args: object) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)  # type: ignore[operator]
    return time.perf_counter() - wall, time.process_time() - cpu, result


def bench_ingest(n: int) -> tuple[float, float, int]:
    """Queue `n` finished spans with the writer paused, then time `flush()` alone."""
    st = _spans._state()
    st.stop.set()
    st.processor.wake.set()
    assert st.thread is not None
    st.thread.join()
    made = make_runs(n)
    wall, cpu, _ = _timed(flush)
    st.thread = None  # the next tracer() call restarts the writer
    return wall, cpu, made


def bench_end_to_end(n: int) -> tuple[float, float, int]:
    """Build run trees with the writer thread running, until everything is stored."""
    def go() -> int:
        made = make_runs(n)
        flush()
        return made

    wall, cpu, made = _timed(go)
    return wall, cpu, int(made)  # type: ignore[call-overload]


def per_span_us(n: int, home: Path) -> dict[str, float]:
    """CPU microseconds per span on the caller's thread."""
    bare = TracerProvider(shutdown_on_exit=False).get_tracer("bare")
    out: dict[str, float] = {}
    for label, tr, trace_on in (("bare OTel SDK", bare, True), ("agentnb", None, True),
                                ("agentnb, tracing off", None, False)):
        configure(resolve(home=home, env={}, trace=trace_on))
        use = tr or tracer()
        start = time.thread_time()
        for _ in range(n):
            with use.start_as_current_span("chat sim:careful", attributes=CHAT_ATTRS):
                pass
        out[label] = (time.thread_time() - start) / n * 1e6
        flush()
    configure(resolve(home=home, env={}, trace=True))
    return out


def main() -> None:
    """Run the benchmarks and print the figures."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    home = Path(tempfile.mkdtemp(prefix="anb-bench-"))
    configure(resolve(home=home, env={}))
    make_runs(1000)  # warm up: imports, first store writes
    flush()

    wall, cpu, made = bench_ingest(n)
    print(f"store ingest      : {made / wall:9,.0f} spans/s wall  {made / cpu:9,.0f} spans/s CPU"
          f"  ({made} spans, {wall:.2f} s)")
    wall, cpu, made = bench_end_to_end(n)
    print(f"end to end        : {made / wall:9,.0f} spans/s wall  {made / cpu:9,.0f} spans/s CPU"
          f"  (create + store, {made} spans, {wall:.2f} s)")
    costs = per_span_us(min(n, 50_000), home)
    for label, us in costs.items():
        print(f"per span, caller  : {us:7.1f} us CPU  {label}")
    ratio = costs["agentnb"] / costs["bare OTel SDK"]
    print(f"agentnb / bare SDK: {ratio:.2f}x on the caller's thread")
    stored = store().count_spans()
    print(f"spans in store    : {stored:,}")
    store().close()
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
