"""The queue finished spans wait in for the store's writer thread; imports no OpenTelemetry SDK.

`LeanTracer` spans append their records here directly; with a live exporter the SDK's spans
reach it through `StoreProcessor` (`_provider`, which imports the SDK only when first needed).
The per-span work on the caller's thread is a dict update at start and a `deque.append` at end;
turning records into rows (JSON, redaction) and writing them happens on the `agentnb-traces`
writer thread, which wakes every `FLUSH_INTERVAL_S` or when the queue holds `WAKE_AT` records.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

__all__ = ["FLUSH_INTERVAL_S", "WAKE_AT", "SpanQueue", "SpanRecordTuple", "drain",
           "plain_attributes"]

FLUSH_INTERVAL_S = 0.25
"""The writer thread writes whatever has finished at least this often (a killed kernel loses
at most this much)."""
WAKE_AT = 2048
"""Queue length at which a finished span wakes the writer early."""

SpanRecordTuple = tuple[Any, ...]
"""(span_id, trace_id, parent_span_id, inherited_run_id, name, start_ns, end_ns, attributes,
events, status_code, status_description, span_kind, scope_name) as queued for the writer."""


class SpanQueue:
    """Finished span records for the store, the tracing switch and the live exporters.

    Example:
        >>> q = SpanQueue()
        >>> (q.enabled, q.store_enabled, len(q.queue), q.extra)
        (True, True, 0, ())
    """

    def __init__(self) -> None:
        self.queue: collections.deque[SpanRecordTuple] = collections.deque()
        self.wake = threading.Event()
        self.enabled = True
        """Record spans at all (`AGENTNB_TRACE`); off, the SDK hands out non-recording spans."""
        self.store_enabled = True
        self.extra: tuple[Any, ...] = ()
        """SDK span processors (OTLP) fed with SDK spans; replaced as a whole (copy on write),
        so iteration needs no lock."""
        self._run_of: dict[int, str | None] = {}
        """Live span id -> the run it belongs to; a child looks its parent up at start."""

    def shutdown(self) -> None:
        """Shut the extra processors down (the store is flushed by `agentnb.tracing`)."""
        for p in self.extra:
            p.shutdown()


def plain_attributes(holder: Any) -> dict[str, Any]:
    """A span's or event's attributes as a plain dict."""
    # The SDK keeps attributes in a BoundedAttributes whose item access takes a lock; its inner
    # dict (frozen once the span ended) is read directly. Falls back to the public mapping.
    inner = getattr(getattr(holder, "_attributes", None), "_dict", None)
    if isinstance(inner, dict):
        return inner
    return dict(holder.attributes or {})


def drain(queue: collections.deque[Any]) -> list[Any]:
    """Pop everything queued so far (safe against concurrent appends).

    Example:
        >>> import collections
        >>> drain(collections.deque([1, 2]))
        [1, 2]
    """
    out: list[Any] = []
    pop = queue.popleft
    try:
        while True:
            out.append(pop())
    except IndexError:
        return out
