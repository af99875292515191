"""The only sync -> async bridge (STYLE B5).

`run_sync(coro)` runs a coroutine on one long-lived daemon loop thread named `agentnb-loop`, with
the caller's context copied, so it works inside Jupyter's running loop without nest_asyncio.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from agentnb.core._errors import UsageError

__all__ = ["in_agentnb_loop", "loop", "run_sync"]

T = TypeVar("T")

_ON_LOOP: contextvars.ContextVar[bool] = contextvars.ContextVar("agentnb_on_loop", default=False)
_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _start() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            new = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(new)
                new.call_soon(ready.set)
                new.run_forever()

            threading.Thread(target=serve, name="agentnb-loop", daemon=True).start()
            ready.wait()
            _loop = new
        return _loop


def loop() -> asyncio.AbstractEventLoop:
    """Return agentnb's background loop, starting it if needed."""
    return _start()


def in_agentnb_loop() -> bool:
    """True when the current code runs on agentnb's background loop."""
    return _ON_LOOP.get()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running event loop.

    The caller's contextvars (budgets, OTel context) follow the call. Ctrl-C cancels our task,
    waits for its cleanup and re-raises.

    Raises:
        UsageError: called from code that already runs on agentnb's loop (it would deadlock).

    Example:
        >>> async def add(a, b):
        ...     return a + b
        >>> run_sync(add(1, 2))
        3
    """
    if _ON_LOOP.get():
        coro.close()
        msg = "A synchronous agentnb call was made from code running on agentnb's own loop."
        raise UsageError(
            msg,
            hint="Make the tool `async def` and `await agent.arun(...)` instead of "
            "`agent.run(...)`.",
        )
    target = _start()
    ctx = contextvars.copy_context()
    ctx.run(_ON_LOOP.set, True)
    task_box: list[asyncio.Task[T]] = []
    finished = threading.Event()

    async def launch() -> T:
        task = asyncio.get_running_loop().create_task(coro, context=ctx)
        task.add_done_callback(lambda _: finished.set())
        task_box.append(task)
        return await task

    def cancel() -> None:
        if task_box:
            task_box[0].cancel()
        else:
            coro.close()
            finished.set()

    future = asyncio.run_coroutine_threadsafe(launch(), target)
    try:
        return future.result()
    except KeyboardInterrupt:
        # Cancel our task on its own loop and wait for its cleanup (finally blocks, spans,
        # checkpoints) before the interrupt reaches the caller.
        target.call_soon_threadsafe(cancel)
        finished.wait(10)
        raise
    except concurrent.futures.CancelledError:
        raise asyncio.CancelledError from None
