"""Reserve + settle throughput of `agentnb.runtime._budget` (issue 4, DESIGN invariant 1).

Run: `.venv/bin/python benchmarks/bench_budget.py`. Prints pairs per second single-threaded on
a three-level chain (notebook > run > delegate), with 1000 concurrent asyncio tasks sharing one
scope, and with 8 threads sharing one scope.
"""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal

from agentnb.runtime._budget import Budget, BudgetScope

N = 200_000
USD = Decimal("0.0001")
ACTUAL = Decimal("0.00007")


def _chain() -> BudgetScope:
    nb = BudgetScope(Budget(usd=10**9, tokens=10**15, model_calls=10**12), name="nb",
                     kind="notebook")
    run = nb.child("run", "run", Budget(usd=10**9, model_calls=10**12))
    return run.child("delegate", "run", Budget(tokens=10**15))


def single() -> float:
    """Pairs per second from one thread."""
    scope = _chain()
    t0 = time.perf_counter()
    for _ in range(N):
        scope.reserve(usd=USD, tokens=1200, model_calls=1).settle(usd=ACTUAL, tokens=900)
    return N / (time.perf_counter() - t0)


def tasks(n_tasks: int = 1000, per_task: int = 100) -> float:
    """Pairs per second from `n_tasks` asyncio tasks that yield between reserve and settle."""
    scope = _chain()

    async def worker() -> None:
        for _ in range(per_task):
            r = scope.reserve(usd=USD, tokens=1200, model_calls=1)
            await asyncio.sleep(0)
            r.settle(usd=ACTUAL, tokens=900)

    async def main() -> float:
        t0 = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for _ in range(n_tasks):
                tg.create_task(worker())
        return time.perf_counter() - t0

    elapsed = asyncio.run(main())
    return n_tasks * per_task / elapsed


def threads(n_threads: int = 8, per_thread: int = 25_000) -> float:
    """Pairs per second from `n_threads` threads sharing one chain."""
    scope = _chain()

    def worker() -> None:
        for _ in range(per_thread):
            scope.reserve(usd=USD, tokens=1200, model_calls=1).settle(usd=ACTUAL, tokens=900)

    pool = [threading.Thread(target=worker) for _ in range(n_threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return n_threads * per_thread / (time.perf_counter() - t0)


def main() -> None:
    """Print the three measurements."""
    s = single()
    print(f"single thread, 3-level chain: {s:,.0f} reserve+settle/s ({1e6 / s:.2f} us/pair)")
    a = tasks()
    print(f"1000 asyncio tasks (await between): {a:,.0f} reserve+settle/s "
          "(includes the event loop's task switches)")
    t = threads()
    print(f"8 threads: {t:,.0f} reserve+settle/s")


if __name__ == "__main__":
    main()
