"""run_sync: the one sync -> async bridge (STYLE B5)."""

from __future__ import annotations

import asyncio
import contextvars
import signal
import threading
import time

import pytest

from agentnb.core import UsageError, in_agentnb_loop, run_sync

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


async def _read_var() -> tuple[str, str]:
    return VAR.get(), threading.current_thread().name


def test_runs_on_the_named_loop_thread() -> None:
    """The coroutine runs on the daemon thread named agentnb-loop."""
    _, thread = run_sync(_read_var())
    assert thread == "agentnb-loop"


def test_callers_context_is_copied() -> None:
    """A ContextVar set by the caller is visible inside the coroutine."""
    token = VAR.set("from-cell")
    try:
        assert run_sync(_read_var())[0] == "from-cell"
    finally:
        VAR.reset(token)


def test_works_inside_a_running_loop() -> None:
    """A sync call from a coroutine (a Jupyter cell) completes instead of raising."""

    async def cell() -> str:
        VAR.set("cell-var")
        # What a notebook user does: call the sync API while the kernel's loop runs.
        return run_sync(_read_var())[0]

    assert asyncio.run(cell()) == "cell-var"


def test_asyncio_run_inside_running_loop_fails() -> None:
    """The problem run_sync solves: asyncio.run inside a running loop raises."""

    async def cell() -> None:
        coro = asyncio.sleep(0)
        try:
            asyncio.run(coro)
        finally:
            coro.close()

    with pytest.raises(RuntimeError):
        asyncio.run(cell())


def test_reentrant_call_raises_usage_error() -> None:
    """A sync call from code already on agentnb's loop raises instead of deadlocking."""

    async def nested() -> None:
        assert in_agentnb_loop()
        run_sync(asyncio.sleep(0))

    with pytest.raises(UsageError, match="agentnb's own loop") as info:
        run_sync(nested())
    assert "await" in (info.value.hint or "")


def test_exceptions_propagate() -> None:
    """An exception inside the coroutine reaches the caller unchanged."""

    async def boom() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        run_sync(boom())


def test_keyboard_interrupt_cancels_our_task() -> None:
    """Ctrl-C while waiting cancels the task, waits for its cleanup and re-raises."""
    cleaned = threading.Event()
    started = threading.Event()

    async def long() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.set()

    def interrupt() -> None:
        started.wait(5)
        time.sleep(0.05)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    # A process started in the background by a non-interactive shell inherits SIGINT ignored,
    # and Python then installs no KeyboardInterrupt handler: Ctrl-C is made to mean it here.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            run_sync(long())
    finally:
        signal.signal(signal.SIGINT, previous)
    assert cleaned.wait(5)


def test_many_concurrent_callers_from_threads() -> None:
    """Calls from several threads at once all complete with their own results."""
    results: list[int] = []
    lock = threading.Lock()

    async def double(x: int) -> int:
        await asyncio.sleep(0.001)
        return 2 * x

    def worker(i: int) -> None:
        value = run_sync(double(i))
        with lock:
            results.append(value)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [2 * i for i in range(20)]
