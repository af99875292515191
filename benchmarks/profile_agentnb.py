"""Profile one benchmark adapter in-process against the shared fake OpenAI server.

Run with the peers' venv (it has the fake server's httptools/uvloop and pyinstrument):

    benchmarks/peers/.venv/bin/python benchmarks/profile_agentnb.py --adapter agentnb -c 1 -n 200
    benchmarks/peers/.venv/bin/python benchmarks/profile_agentnb.py -c 100 -n 1000 \
        --out benchmarks/results/profile_c100.txt

Prints CPU ms per model call and the pyinstrument call tree (``--cprofile`` for a flat
cProfile table instead) of the measured runs only (warm-up excluded).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import resource
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "peers")
sys.path.insert(0, PEERS)


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def start_server() -> tuple[subprocess.Popen[str], str]:
    """Start fake_openai.py on a free port; return (process, root URL)."""
    cmd = [sys.executable, os.path.join(PEERS, "fake_openai.py"), "--port", "0"]
    if (os.cpu_count() or 1) >= 2:
        cmd += ["--cpu", "0"]  # as run_bench.py: server on CPU 0, the measured client on CPU 1
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, "http://" + line.split()[1]


async def amain(a: argparse.Namespace, root: str) -> str:
    import adapters

    modname, options = adapters.REGISTRY[a.adapter]
    mod = importlib.import_module(f"adapters.{modname}")
    cfg = adapters.AdapterConfig(base_url=root + "/v1", model=f"fake-k{a.k}-l0", api_key="sk-x",
                                 k=a.k, concurrency=a.c, server_root=root, options=dict(options))
    adapter = await mod.create(cfg)
    for name in a.off or ():
        _switch_off(name, a.toggle)
    if a.adapter.startswith("agentnb") and a.stop_cache_s is not None:
        from agentnb.runtime._checkpoint import run_store

        run_store().stop_cache_s = a.stop_cache_s
    if a.adapter.startswith("agentnb") and a.flush_interval_s is not None:
        from agentnb.tracing import _queue

        _queue.FLUSH_INTERVAL_S = a.flush_interval_s  # read when the writer thread starts

    async def many(n: int) -> None:
        it = iter(range(n))

        async def worker() -> None:
            for i in it:
                await adapter.run(f"Task {i}: look up the keys you need, then give the answer.")

        await asyncio.gather(*(worker() for _ in range(min(a.c, n))))

    await many(max(a.c, 20))
    profiler = None
    if a.cprofile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    elif not a.no_profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0002, async_mode="disabled")
        profiler.start()
    r0, c0, t0 = resource.getrusage(resource.RUSAGE_SELF), _cpu(), time.perf_counter()
    await many(a.n)
    drain = getattr(adapter, "drain", None)
    if drain is not None:
        await drain()
    r1, c1, t1 = resource.getrusage(resource.RUSAGE_SELF), _cpu(), time.perf_counter()
    calls = a.n * (a.k + 1)
    sys_ms = 1000 * (r1.ru_stime - r0.ru_stime) / calls
    head = (f"{a.adapter} C={a.c} runs={a.n}: {1000 * (c1 - c0) / calls:.3f} ms CPU/call "
            f"({sys_ms:.3f} of it in the kernel), "
            f"{calls / (t1 - t0):.0f} calls/s, peak RSS "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if profiler is None:
        return head
    if a.cprofile:
        import io
        import pstats

        profiler.disable()
        if a.pstats:
            profiler.dump_stats(a.pstats)
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats(a.sort).print_stats(a.top)
        body = buf.getvalue()
    else:
        profiler.stop()
        body = profiler.output_text(unicode=False, color=False, show_all=False)
    await adapter.aclose()
    return head + "\n(profiler on: absolute CPU is inflated)\n\n" + body


def _switch_off(name: str, toggle_file: str | None) -> None:
    """Switch off the knockout (`knockouts.py`'s, or `toggle_file`'s TOGGLES) whose name
    starts with `name`: what a part costs, counted or profiled in this process."""
    import knockouts

    toggles = (knockouts._load_toggles(toggle_file) if toggle_file
               else knockouts._knockouts())
    found = [k for k in toggles if k.startswith(name)]
    if len(found) != 1:
        sys.exit(f"--off {name!r} names {len(found)} of the knockouts {sorted(toggles)}")
    toggles[found[0]](True)


def main() -> None:
    """Parse arguments, start the server, profile, print."""
    p = argparse.ArgumentParser()
    p.add_argument("--adapter", default="agentnb")
    p.add_argument("-c", type=int, default=1)
    p.add_argument("-n", type=int, default=200)
    p.add_argument("-k", type=int, default=3)
    p.add_argument("--cprofile", action="store_true")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--sort", default="tottime")
    p.add_argument("--top", type=int, default=45)
    p.add_argument("--out")
    p.add_argument("--pstats", help="with --cprofile: also dump the raw stats to this file")
    p.add_argument("--off", action="append", help="switch off the knockout whose name starts "
                   "with this (knockouts.py's, or --toggle's); repeatable")
    p.add_argument("--toggle", help="a Python file with a TOGGLES dict for --off")
    p.add_argument("--stop-cache-s", type=float, help="agentnb: read other processes' stop "
                   "flags at most this often (instructions.py: no wall-clock work, whose count "
                   "grows with valgrind's slowdown)")
    p.add_argument("--flush-interval-s", type=float, help="agentnb: the span writer thread's "
                   "wake-up interval (instructions.py: the same spans per write as natively)")
    serve_and_report(amain, p.parse_args())


def serve_and_report(measure: Any, a: argparse.Namespace) -> None:
    """Start the fake server (on CPU 0, this process on CPU 1), run `measure(a, root)` and
    print its text (also written to `a.out` when given)."""
    proc, root = start_server()
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    try:
        text = asyncio.run(measure(a, root))
    finally:
        proc.terminate()
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
