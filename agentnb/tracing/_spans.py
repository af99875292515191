"""agentnb's tracer, its configuration, and the writer thread that moves spans into the store.

agentnb keeps its own `TracerProvider` (never the global one, so a user's OTel set-up is left
alone). Finished spans are queued by a light span processor and written to `<home>/traces.db`
by one background thread, `agentnb-traces`: every `FLUSH_INTERVAL_S` (so a killed kernel keeps
what had finished), when the queue grows, on `flush()`, and at interpreter exit.
"""


from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentnb.core import compact_json
from agentnb.tracing import _semconv as sc

if TYPE_CHECKING:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import SpanProcessor

    from agentnb.core import Settings
    from agentnb.tracing._queue import SpanRecordTuple
    from agentnb.tracing._store import EventRow, SpanRow, TraceStore

__all__ = [
    "aflush",
    "attributes",
    "configure",
    "current_home",
    "flush",
    "redact",
    "set_redactor",
    "start_span",
    "store",
    "tracer",
]

Redactor = Callable[[str], str]


class _State:
    """Process-wide tracing state; created on first use."""

    def __init__(self) -> None:
        from agentnb.tracing._lean import LeanTracer
        from agentnb.tracing._queue import SpanQueue

        self.processor = SpanQueue()
        """The finished spans for the store, the tracing switch and the live exporters."""
        self._sdk: trace.Tracer | None = None
        self.provider: Any = None
        """The SDK `TracerProvider`, once `tracer` made it (never the global one)."""
        self.lean: trace.Tracer = LeanTracer(self.processor)
        self.lean_enabled = True
        """Hand out `LeanTracer` spans while only the store takes them (see `tracer()`)."""
        self.home: Path | None = None
        self.store: TraceStore | None = None
        self.exporters: dict[str, SpanProcessor] = {}
        """Live OTLP exporters by endpoint."""
        self.configured_endpoint: str | None = None
        self.drain_lock = threading.Lock()
        """Held while a batch moves from the queue into the store, so `flush()` returns only
        after every span queued before it was written (by itself or by the writer thread)."""
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    @property
    def tracer(self) -> trace.Tracer:
        """The SDK's tracer over the same queue, made (and the SDK imported) on first use."""
        sdk = self._sdk
        if sdk is None:
            with _STATE_LOCK:
                sdk = self._sdk
                if sdk is None:
                    from agentnb.tracing._provider import make_provider

                    self.provider = make_provider(self.processor)
                    sdk = self._sdk = self.provider.get_tracer("agentnb")
        return sdk


_STATE: _State | None = None
_STATE_LOCK = threading.Lock()
"""Guards creation of `_STATE` (one provider per process)."""
_REDACTOR: Redactor | None = None


def _state() -> _State:
    global _STATE
    st = _STATE
    if st is None:
        with _STATE_LOCK:
            if _STATE is None:
                _STATE = _State()
            st = _STATE
    _ensure_writer(st)
    return st


def tracer() -> trace.Tracer:
    """The tracer every agentnb span is started from (agentnb's own provider, never the global one).

    While spans go only to the trace store it is a `LeanTracer` (OTel API spans without the
    SDK's bookkeeping, see `agentnb.tracing._lean`); with a live exporter, the SDK's tracer.

    Example:
        >>> with tracer().start_as_current_span("demo") as span:
        ...     span.set_attribute("agentnb.kind", "demo")
    """
    st = _STATE
    if st is None or st.thread is None:
        st = _state()
    if st.lean_enabled and st.processor.enabled and not st.processor.extra:
        # Only the store reads these spans: the SDK's per-span bookkeeping is skipped.
        return st.lean
    return st.tracer


def attributes(values: Mapping[str, Any] | None = None, /, **more: Any) -> dict[str, Any]:
    """Turn Python values into OTel attribute values: drop `None`, `Decimal` -> float,
    dicts and lists of non-primitives -> JSON text.

    Example:
        >>> from decimal import Decimal
        >>> attributes({"agentnb.cost.usd": Decimal("0.5"), "x": None, "m": {"a": 1}})
        {'agentnb.cost.usd': 0.5, 'm': '{"a": 1}'}
    """
    out: dict[str, Any] = {}
    items = [*(values or {}).items(), *more.items()]
    for key, value in items:
        if value is None:
            continue
        if isinstance(value, (str, bool, int, float)):
            out[key] = value
        elif isinstance(value, Decimal):
            out[key] = float(value)
        elif isinstance(value, (list, tuple, set, frozenset)) and len(
            {type(v) for v in value}) <= 1 and all(
            isinstance(v, (str, bool, int, float)) for v in value
        ):
            # OTel takes only sequences of one primitive type; anything else becomes JSON.
            seq = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
            out[key] = list(seq)
        else:
            out[key] = json.dumps(value, default=str, ensure_ascii=False)
    return out


@contextlib.contextmanager
def start_span(
    name: str, values: Mapping[str, Any] | None = None, /, **more: Any
) -> Iterator[trace.Span]:
    """Start a current span with `attributes(values, **more)`; exceptions are recorded on it.

    Example:
        >>> with start_span("step 0 model", {"agentnb.kind": "step", "agentnb.step.index": 0}) as s:
        ...     s.is_recording() in (True, False)
        True
    """
    with tracer().start_as_current_span(name, attributes=attributes(values, **more)) as span:
        yield span


# -- configuration --------------------------------------------------------------------------
def current_home() -> Path:
    """The home the store writes to (resolving settings on first use)."""
    st = _state()
    if st.home is None:
        from agentnb.core import resolve

        configure(resolve())
    assert st.home is not None
    return st.home


def configure(settings: Settings) -> None:
    """Point the store at `settings.home`, turn tracing on or off, set up live OTLP export.

    Idempotent: the runtime calls it at every run with the resolved settings.

    Raises:
        StoreError: the `traces.db` under `settings.home` is damaged or from a newer agentnb.
        ConfigError: an OTLP endpoint is set but `agentnb[otlp]` is not installed.

    Example:
        >>> import tempfile
        >>> from agentnb.core import resolve
        >>> configure(resolve(home=tempfile.mkdtemp(), env={}))
    """
    st = _state()
    home = Path(settings.home).expanduser().absolute()
    if settings.trace and (st.store is None or st.store.closed or st.home != home):
        from agentnb.tracing._store import open_store

        new_store = open_store(home)
        if st.store is not None and not st.store.closed:
            flush()
        st.store = new_store
    st.home = home
    st.processor.enabled = bool(settings.trace)
    st.processor.store_enabled = bool(settings.trace)
    endpoint = settings.otlp_endpoint
    if endpoint != st.configured_endpoint:
        if st.configured_endpoint is not None:
            _remove_exporter(st.configured_endpoint)
        if endpoint is not None:
            _add_exporter(endpoint, None)
        st.configured_endpoint = endpoint


def _add_exporter(endpoint: str, headers: Mapping[str, str] | None) -> None:
    from agentnb.tracing._otlp import live_processor

    st = _state()
    if endpoint in st.exporters:
        return
    processor = live_processor(endpoint, headers)
    st.exporters[endpoint] = processor
    st.processor.extra = (*st.processor.extra, processor)


def _remove_exporter(endpoint: str) -> None:
    st = _state()
    processor = st.exporters.pop(endpoint, None)
    if processor is not None:
        st.processor.extra = tuple(p for p in st.processor.extra if p is not processor)
        processor.shutdown()


def set_redactor(fn: Redactor | None) -> None:
    """Apply `fn` to every string attribute and event value before it is stored or exported.

    Governance installs its redactor here; `None` removes it.

    Example:
        >>> set_redactor(lambda text: text.replace("sk-secret", "[REDACTED]"))
        >>> redact("key=sk-secret")
        'key=[REDACTED]'
        >>> set_redactor(None)
    """
    global _REDACTOR
    _REDACTOR = fn


def redact(text: str) -> str:
    """Apply the installed redactor (identity when none is installed).

    Example:
        >>> redact("nothing secret")
        'nothing secret'
    """
    fn = _REDACTOR
    return fn(text) if fn is not None else text


def store(home: Path | str | None = None) -> TraceStore:
    """The trace store at `<home>/traces.db` (default: the configured home).

    Raises:
        StoreError: the file is damaged or was written by a newer agentnb.

    Example:
        >>> import tempfile
        >>> store(tempfile.mkdtemp()).path.name
        'traces.db'
    """
    from agentnb.tracing._store import open_store

    if home is None:
        st = _state()
        if st.store is not None and not st.store.closed:
            return st.store
        return open_store(current_home())
    return open_store(Path(home))


# -- the writer -----------------------------------------------------------------------------
def _ensure_writer(st: _State) -> None:
    if st.thread is not None and st.thread.is_alive():
        return
    with _STATE_LOCK:
        if st.thread is not None and st.thread.is_alive():
            return
        st.stop.clear()
        st.thread = threading.Thread(target=_writer_loop, args=(st,), name="agentnb-traces",
                                     daemon=True)
        st.thread.start()


def _writer_loop(st: _State) -> None:
    from agentnb.tracing._queue import FLUSH_INTERVAL_S

    wake = st.processor.wake
    while not st.stop.is_set():
        wake.wait(FLUSH_INTERVAL_S)
        wake.clear()
        try:
            _drain(st)
        except Exception as exc:
            st.error = exc


def _drain(st: _State) -> int:
    from agentnb.tracing._queue import drain

    written = 0
    with st.drain_lock:
        while True:
            batch = drain(st.processor.queue)
            if not batch:
                return written
            target = st.store
            if target is None and st.home is not None:  # after a fork: reopen lazily
                from agentnb.tracing._store import open_store

                target = st.store = open_store(st.home)
            if target is None:
                from agentnb.core import resolve

                configure(resolve())
                target = st.store
                if target is None:  # tracing was configured off: drop what was queued
                    return written
            spans, events = to_rows(batch, _REDACTOR)
            target.write(spans, events)
            written += len(spans)


def flush(timeout_s: float = 5.0) -> None:
    """Write every finished span to the store now, and push live OTLP exporters.

    The store part runs on the calling thread and returns once every span that had finished
    before the call is on disk; `timeout_s` bounds the OTLP push. From async code use
    `await aflush()`, which keeps the event loop free.

    Raises:
        StoreError: a write failed (also one that failed earlier on the writer thread).

    Example:
        >>> flush()
    """
    st = _STATE
    if st is None:
        return
    # Drain on the caller's thread: no hand-off, no waiting on the writer's timer.
    _drain(st)
    for processor in st.processor.extra:
        processor.force_flush(int(timeout_s * 1000))
    error, st.error = st.error, None
    if error is not None:
        raise error


async def aflush(timeout_s: float = 5.0) -> None:
    """`flush()` without blocking the event loop.

    Concurrent callers on one loop share flushes: a caller joins the next flush that has not
    started yet (so it still covers every span that finished before the call), instead of each
    taking its own worker thread. A hundred runs finishing together cost one or two flushes.

    Example:
        >>> import asyncio
        >>> asyncio.run(aflush())
    """
    loop = asyncio.get_running_loop()
    pending = _NEXT_FLUSH.get(loop)
    if pending is None or pending[1] != timeout_s:
        future: asyncio.Future[None] = loop.create_future()
        pending = _NEXT_FLUSH[loop] = (future, timeout_s)
        task = loop.create_task(_shared_flush(loop, future, timeout_s))
        _FLUSH_TASKS.add(task)  # a strong reference until it finishes
        task.add_done_callback(_FLUSH_TASKS.discard)
    await asyncio.shield(pending[0])


_FLUSH_TASKS: set[asyncio.Task[None]] = set()


_NEXT_FLUSH: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                       tuple[asyncio.Future[None], float]] = (
    weakref.WeakKeyDictionary())
"""Per loop: the flush that has not started yet, which new `aflush()` callers join."""
_RUNNING_FLUSH: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Future[None]] = (
    weakref.WeakKeyDictionary())


async def _shared_flush(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None],
                        timeout_s: float) -> None:
    running = _RUNNING_FLUSH.get(loop)
    if running is not None:
        # One flush at a time per loop; ours starts after it, and takes every joiner so far.
        await asyncio.wait([running])
    if _NEXT_FLUSH.get(loop, (None,))[0] is future:
        del _NEXT_FLUSH[loop]
    _RUNNING_FLUSH[loop] = future
    try:
        await asyncio.to_thread(flush, timeout_s)
    except asyncio.CancelledError:
        future.cancel()
        raise
    except Exception as exc:  # handed to every caller that joined this flush
        if not future.done():
            future.set_exception(exc)
            future.exception()  # retrieved: a joiner that was cancelled must not log it
    else:
        if not future.done():
            future.set_result(None)
    finally:
        if _RUNNING_FLUSH.get(loop) is future:
            del _RUNNING_FLUSH[loop]


def _at_exit() -> None:
    st = _STATE
    if st is None:
        return
    st.stop.set()
    with contextlib.suppress(Exception):
        _drain(st)
    with contextlib.suppress(Exception):
        st.processor.shutdown()


def _after_fork() -> None:
    # The parent's writer thread and sqlite connections do not survive a fork; start over.
    from agentnb.tracing import _store

    st = _STATE
    _store._STORES.clear()
    if st is not None:
        st.thread = None
        st.drain_lock = threading.Lock()
        st.processor.queue.clear()
        st.store = None  # reopened by the child's first write, at the same home


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


# -- span -> row ----------------------------------------------------------------------------
def _clean(value: Any, fn: Redactor) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, (tuple, list)):
        return [_clean(v, fn) for v in value]
    return value


def _attributes_json(attrs: dict[str, Any]) -> str:
    try:
        return compact_json(attrs)  # the shared C encoder; attribute values are plain JSON
    except TypeError:  # an event attribute of another type: as its str, as before
        return json.dumps(attrs, ensure_ascii=False, separators=(",", ":"), default=str)


def _memoised(fn: Redactor, seen: dict[str, str]) -> Redactor:
    """`fn`, keeping its results for short strings in `seen` (which callers may look in)."""

    def redact(text: str) -> str:
        out = seen.get(text)
        if out is None:
            out = fn(text)
            if len(text) <= 256:
                seen[text] = out
        return out

    return redact


def to_rows(batch: list[SpanRecordTuple],
            fn: Redactor | None) -> tuple[list[SpanRow], list[EventRow]]:
    """Turn queued span records into store rows, redacting every string value."""
    from agentnb.tracing._queue import plain_attributes

    dumps = _attributes_json
    spans: list[SpanRow] = []
    events: list[EventRow] = []
    append = spans.append
    run_key, kind_key = sc.AGENTNB_RUN_ID, sc.AGENTNB_KIND
    memo: dict[str, str] = {}
    if fn is not None:
        # Within a batch the same short values recur in span after span (kinds, operation and
        # model names, run ids): redact each distinct one once. Governance's redactor keeps
        # such a memo itself (`Redactor.memo`): looked up here, a hit costs no call.
        # Any other redactor gets one for the batch, looked up the same way.
        own = getattr(getattr(fn, "__self__", None), "memo", None)
        if type(own) is dict:
            memo = own  # pyright: ignore[reportUnknownVariableType]
        else:
            fn = _memoised(fn, memo)
    get = memo.get
    for (span_int, trace_int, parent_int, inherited, name, start_ns, end_ns, raw, span_events,
         status, raw_message, span_kind, scope) in batch:
        attrs, message = raw, raw_message
        if fn is not None:
            attrs = {}
            for k, v in raw.items():
                kind = type(v)
                if kind is str:
                    done = get(v)
                    attrs[k] = fn(v) if done is None else done
                elif kind is int or kind is float or kind is bool:
                    attrs[k] = v
                else:
                    attrs[k] = _clean(v, fn)
            if raw_message:
                message = fn(raw_message)
        span_id = f"{span_int:016x}"
        start = start_ns or 0
        # "" for a missing text: the insert stores it as NULL (`NULLIF`), and binding a str
        # is a fifth of the cost of binding None (sqlite3 looks None up as an adaptable type).
        append((
            span_id,
            f"{trace_int:032x}",
            f"{parent_int:016x}" if parent_int is not None else "",
            attrs.get(run_key) or inherited or "",
            name,
            attrs.get(kind_key) or "",
            span_kind,
            start,
            end_ns or start,
            status,
            message or "",
            dumps(attrs),
            scope or "",
        ))
        for seq, event in enumerate(span_events):
            ev_attrs = plain_attributes(event)
            if fn is not None:
                ev_attrs = {k: _clean(v, fn) for k, v in ev_attrs.items()}
            events.append((span_id, seq, event.name, event.timestamp, dumps(ev_attrs)))
    return spans, events
