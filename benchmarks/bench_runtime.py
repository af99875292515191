"""Runtime figures besides the peer comparison: budget contention, replay speed, import time.

Run: `.venv/bin/python benchmarks/bench_runtime.py [--json OUT]`. Prints one line per figure and,
with `--json`, writes them for `benchmarks/report.py`. Every run uses a scripted
`FunctionModel` (no HTTP), so what is measured is the runtime alone, with its defaults on:
tracing into SQLite, checkpoints and recordings after every step, a policy with its audit log.

Figures:
- budget contention (issue target: < 5% overhead): 1000 concurrent runs under one shared
  `anb.budget(...)` scope, each with its own `Budget`, every model call reserving its worst case
  against both, vs the same runs with no budget anywhere. CPU per run, best of `--rounds`
  rounds, each running both back to back in alternating order; the overhead is the median of
  the per-round ratios (and all rounds pooled). On this VM batches drift by 10-30%, more than
  the budget costs, so the budget's own cost is also measured in place: CPU inside its methods
  (reserve, settle, consume, ...) in one more batch of each kind, timed per outermost call.
- replay: runs executed per second, then the same runs replayed from their recordings.
- import time: `import agentnb` in a fresh interpreter, best of 5.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

K = 3
"""Tool calls per run: each run makes K+1 model calls, like the peer benchmark."""


def _model() -> Any:
    from agentnb.core import ToolCallPart
    from agentnb.models import FunctionModel

    def script(messages: list[Any], info: Any) -> Any:
        done = sum(1 for m in messages if m.role == "tool")
        if done < K:
            return ToolCallPart(id=f"call_{done}", name="lookup",
                                arguments=json.dumps({"key": str(done)}))
        return f"performed {K} lookups"

    return FunctionModel(script, name="scripted", input_per_mtok=0.15, output_per_mtok=0.6)


def _agent(*, budget: bool, name: str) -> Any:
    import agentnb as anb
    from agentnb.governance import Policy

    @anb.tool(effects={"read"}, name="lookup")
    async def lookup(key: str) -> str:
        """Look up the value stored under a key."""
        return f"value-of-{key}"

    limits = (anb.Budget(usd=1.0, tokens=1_000_000, model_calls=50, tool_calls=50, steps=100)
              if budget else None)
    return anb.Agent(model=_model(), tools=[lookup], budget=limits, name=name,
                     policy=Policy(allow={"read"}), instructions="Use lookup, then answer.")


def _cpu() -> float:
    return time.process_time()


async def _batch(agent: Any, n: int, *, shared: bool) -> float:
    """CPU seconds for `n` concurrent runs (all started at once)."""
    import agentnb as anb

    async def one(i: int) -> None:
        result = await agent.arun(f"task {i}")
        assert result.status == "done", result.error

    c0 = _cpu()
    if shared:
        async with anb.budget(usd=10_000.0, model_calls=10**9, name="bench"):
            await asyncio.gather(*(one(i) for i in range(n)))
    else:
        await asyncio.gather(*(one(i) for i in range(n)))
    from agentnb.tracing import aflush

    await aflush()
    return _cpu() - c0


_TIMED = {"BudgetScope": ("reserve", "consume", "charge", "check_wall", "remaining", "left",
                          "model_calls_made", "fraction_used", "wrap_up_due", "child", "grant",
                          "close"),
          "Reservation": ("settle", "settle_usage", "release")}
"""The budget's methods the runtime calls per step, call and run (timed in place)."""


def _timing_budget() -> tuple[dict[str, float], Any]:
    """Wrap the budget's methods so the CPU spent inside them (outermost calls only) adds up
    in the returned dict; the second value undoes the wrapping."""
    from agentnb.runtime import _budget

    spent = {"s": 0.0, "calls": 0}
    depth = [0]
    undo: list[tuple[Any, str, Any]] = []
    clock = time.thread_time

    def wrap(fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if depth[0]:
                return fn(*args, **kwargs)
            depth[0] = 1
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                spent["s"] += clock() - t0
                spent["calls"] += 1
                depth[0] = 0
        return timed

    for cls_name, names in _TIMED.items():
        cls = getattr(_budget, cls_name)
        for name in names:
            fn = cls.__dict__[name]
            undo.append((cls, name, fn))
            setattr(cls, name, wrap(fn))

    def restore() -> None:
        for cls, name, fn in undo:
            setattr(cls, name, fn)

    return spent, restore


def budget_contention(n: int, rounds: int) -> dict[str, Any]:
    """CPU per run with budgets (per-run + shared scope) vs none, `n` runs at once."""
    on, off = _agent(budget=True, name="bench-budget-on"), _agent(budget=False,
                                                                  name="bench-budget-off")

    async def go() -> dict[str, Any]:
        await _batch(on, 50, shared=True)  # warm-up: imports, store, connections
        await _batch(off, 50, shared=False)
        with_b: list[float] = []
        without: list[float] = []
        for r in range(rounds):
            # Alternate which goes first: the second batch of a round pays for collecting the
            # first one's garbage and finds a larger store, so a fixed order biases the ratio.
            if r % 2 == 0:
                with_b.append(await _batch(on, n, shared=True))
                without.append(await _batch(off, n, shared=False))
            else:
                without.append(await _batch(off, n, shared=False))
                with_b.append(await _batch(on, n, shared=True))
        b, nb = min(with_b), min(without)
        # Each round runs both back to back; the median of the per-round ratios is the least
        # sensitive to other work on the machine drifting between rounds.
        ratios = sorted(x / y for x, y in zip(with_b, without, strict=True))
        # In place, free of drift between batches: the CPU inside the budget's own methods in
        # one more batch of each kind (both have a scope per run; "off" has no limits to check).
        inside = {}
        for label, agent, shared in (("budget", on, True), ("nobudget", off, False)):
            spent, restore = _timing_budget()
            try:
                total = await _batch(agent, n, shared=shared)
            finally:
                restore()
            inside[label] = {"budget_cpu_s": spent["s"], "calls": spent["calls"],
                             "batch_cpu_s": total}
        extra = (inside["budget"]["budget_cpu_s"] - inside["nobudget"]["budget_cpu_s"]) / n
        return {"runs": n, "rounds": rounds, "cpu_ms_per_run_budget": 1000 * b / n,
                "cpu_ms_per_run_nobudget": 1000 * nb / n,
                "overhead_pct": 100 * (ratios[len(ratios) // 2] - 1),
                "pooled_overhead_pct": 100 * (sum(with_b) / sum(without) - 1),
                "inside": inside, "inside_ms_per_run": 1000 * extra,
                "inside_overhead_pct": 100 * extra / (nb / n),
                "all_budget_s": with_b, "all_nobudget_s": without}

    return asyncio.run(go())


def replay_speed(n: int) -> dict[str, Any]:
    """Runs executed per second, then the same runs replayed per second (sequential)."""
    from agentnb.runtime import areplay

    agent = _agent(budget=True, name="bench-replay")

    async def go() -> dict[str, Any]:
        for i in range(5):
            await agent.arun(f"warm {i}")
        ids = []
        t0 = time.perf_counter()
        for i in range(n):
            ids.append((await agent.arun(f"task {i}")).run_id)
        executed = time.perf_counter() - t0
        await areplay(ids[0], agent=agent)
        t0 = time.perf_counter()
        for run_id in ids:
            replayed = await areplay(run_id, agent=agent)
            assert replayed.state == "done", replayed.error
        replay_s = time.perf_counter() - t0
        return {"runs": n, "executed_runs_per_s": n / executed,
                "replayed_runs_per_s": n / replay_s, "replay_vs_execute": executed / replay_s}

    return asyncio.run(go())


def import_time(python: str = sys.executable, tries: int = 5) -> dict[str, Any]:
    """Seconds for `import agentnb` in a fresh interpreter (best of `tries`)."""
    code = ("import time; t = time.perf_counter(); import agentnb; "
            "print(time.perf_counter() - t)")
    times = [float(subprocess.run([python, "-c", code], capture_output=True, text=True,
                                  check=True).stdout) for _ in range(tries)]
    return {"best_s": min(times), "all_s": times}


def main() -> None:
    """Run every figure; print them; write JSON when asked."""
    p = argparse.ArgumentParser()
    p.add_argument("--json")
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--replay-runs", type=int, default=200)
    a = p.parse_args()
    os.environ["AGENTNB_HOME"] = tempfile.mkdtemp(prefix="anb-bench-rt-")
    out: dict[str, Any] = {}
    out["import"] = imp = import_time()
    print(f"import agentnb    : {imp['best_s']:.3f} s (best of {len(imp['all_s'])})", flush=True)
    out["budget"] = b = budget_contention(a.runs, a.rounds)
    print(f"budget contention : {b['runs']} concurrent runs, {b['cpu_ms_per_run_budget']:.2f} vs "
          f"{b['cpu_ms_per_run_nobudget']:.2f} ms CPU/run (best of {b['rounds']}) -> "
          f"{b['overhead_pct']:+.1f}% (median of paired rounds), {b['pooled_overhead_pct']:+.1f}% "
          f"(all rounds pooled); in place: the budget's methods take "
          f"{b['inside_ms_per_run']:.3f} ms more per run than the unlimited scope's = "
          f"{b['inside_overhead_pct']:+.2f}%", flush=True)
    out["replay"] = r = replay_speed(a.replay_runs)
    print(f"replay            : {r['executed_runs_per_s']:.0f} runs/s executed, "
          f"{r['replayed_runs_per_s']:.0f} runs/s replayed ({r['replay_vs_execute']:.2f}x)",
          flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
