"""What agentnb's per-step work costs, measured by switching parts of it off in one process.

Run with the peers' venv (it has the fake server and httpx2):

    benchmarks/peers/.venv/bin/python benchmarks/knockouts.py -c 1 \
        --out benchmarks/results/knockouts_c1.md

One process runs the shared fake OpenAI server's workload (K=3: four model calls and three
tool calls per run) through the `agentnb` adapter with its defaults, through the same adapter
with one part switched off, and through the raw httpx2 loop, in alternating segments whose
order rotates each round. Separate processes on this VM differ by up to 2x within minutes; the
median of ratios between neighbouring segments does not. A switched-off part is not a valid
configuration (a run without checkpoints cannot resume, one without audit records breaks
governance): the table says what each part costs, and so what the 1.5x-of-raw-httpx2 target
would need from it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import resource
import statistics
import sys
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "peers"))

import profile_agentnb  # noqa: E402  (the fake server's launcher)


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _knockouts() -> dict[str, Callable[[bool], None]]:
    """name -> toggle(off): each switches one part of the per-step work off and back on."""
    from agentnb.governance import _audit, _redact
    from agentnb.runtime import _checkpoint
    from agentnb.tracing import _spans

    save = _checkpoint.RunStore.asave_checkpoint
    append = _audit.AuditLog.append_many
    redact, redact_obj = _redact.Redactor.redact, _redact.Redactor.redact_obj

    async def no_save(self: object, *args: object, **kwargs: object) -> None:
        return None

    def checkpoints(off: bool) -> None:
        _checkpoint.RunStore.asave_checkpoint = no_save if off else save  # type: ignore[method-assign]

    def audit(off: bool) -> None:
        _audit.AuditLog.append_many = (  # type: ignore[method-assign]
            (lambda self, records: []) if off else append)

    def redaction(off: bool) -> None:
        _redact.Redactor.redact = (lambda self, text: text) if off else redact  # type: ignore[method-assign]
        _redact.Redactor.redact_obj = (  # type: ignore[method-assign]
            (lambda self, obj: obj) if off else redact_obj)

    def spans(off: bool) -> None:
        st = _spans._state()  # pyright: ignore[reportPrivateUsage]
        st.processor.enabled = not off
        st.processor.store_enabled = not off

    def everything(off: bool) -> None:
        for fn in (checkpoints, audit, redaction, spans):
            fn(off)

    return {
        "checkpoint writes (SQLite transaction, recordings, audit records, span rows)":
            checkpoints,
        "audit records (hash-chained log)": audit,
        "redaction (every string stored)": redaction,
        "span recording and storage": spans,
        "all four": everything,
    }


def _load_toggles(path: str) -> dict[str, Callable[[bool], None]]:
    """The `TOGGLES` dict of a Python file: name -> toggle(off), for an A/B of a change."""
    import runpy

    toggles = runpy.run_path(path)["TOGGLES"]
    return dict(toggles)


async def _amain(a: argparse.Namespace, root: str) -> str:
    import adapters

    def config(name: str) -> adapters.AdapterConfig:
        _, options = adapters.REGISTRY[name]
        return adapters.AdapterConfig(base_url=root + "/v1", model="fake-k3-l0",
                                      api_key="sk-x", k=3, concurrency=a.c, server_root=root,
                                      options=dict(options))

    made = {}
    for name in ("agentnb", "raw_httpx2"):
        modname, _ = adapters.REGISTRY[name]
        made[name] = await importlib.import_module(f"adapters.{modname}").create(config(name))
    toggles = _knockouts() if not a.toggle else _load_toggles(a.toggle)

    async def many(adapter: object, n: int) -> None:
        it = iter(range(n))

        async def worker() -> None:
            for i in it:
                await adapter.run(f"Task {i}: look up the keys you need, then give the answer.")  # type: ignore[attr-defined]

        await asyncio.gather(*(worker() for _ in range(min(a.c, n))))

    async def segment(kind: str) -> float:
        adapter = made["raw_httpx2" if kind == "raw_httpx2" else "agentnb"]
        for name, toggle in toggles.items():
            if name != "all four":
                toggle(kind in (name, "all four"))
        await many(adapter, min(a.c, 20))  # settle after the switch
        c0 = _cpu()
        await many(adapter, a.n)
        drain = getattr(adapter, "drain", None)
        if drain is not None:
            await drain()
        return 1000 * (_cpu() - c0) / (a.n * 4)

    kinds = ["agentnb", "raw_httpx2", *toggles]
    for kind in kinds:
        await segment(kind)  # warm-up
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(a.rounds):
        order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
        for kind in order:
            cpu[kind].append(await segment(kind))
    for adapter in made.values():
        await adapter.aclose()  # type: ignore[attr-defined]

    full = cpu["agentnb"]
    raw = cpu["raw_httpx2"]

    def ratio(xs: list[float], ys: list[float]) -> float:
        return statistics.median(x / y for x, y in zip(xs, ys, strict=True))

    lines = [
        f"# What agentnb's per-step work costs (C={a.c}, {a.rounds} rounds of {a.n} runs per "
        "segment, one process)",
        "",
        "Generated by `benchmarks/peers/.venv/bin/python benchmarks/knockouts.py "
        f"-c {a.c}`. CPU ms per model call (user + sys, all threads) of alternating segments; "
        "ratios are medians of the ratios between the segments of one round.",
        "",
        "| configuration | CPU ms/call (median) | vs agentnb defaults | vs raw httpx2 loop |",
        "|---|---|---|---|",
        f"| agentnb, defaults (tracing, budget, policy, checkpoints) | "
        f"{statistics.median(full):.2f} | 1.00x | {ratio(full, raw):.2f}x |",
    ]
    for kind in toggles:
        lines.append(f"| without {kind} | {statistics.median(cpu[kind]):.2f} | "
                     f"{ratio(cpu[kind], full):.2f}x | {ratio(cpu[kind], raw):.2f}x |")
    lines.append(f"| raw httpx2 loop | {statistics.median(raw):.2f} | "
                 f"{ratio(raw, full):.2f}x | 1.00x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse arguments, start the fake server, measure, print (and write `--out`)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-c", type=int, default=1, help="concurrent runs")
    p.add_argument("-n", type=int, default=100, help="runs per segment")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--out")
    p.add_argument("--toggle", help="a Python file whose TOGGLES dict ({name: toggle(off)}) "
                   "replaces the standard knockouts: an in-process A/B of a change")
    profile_agentnb.serve_and_report(_amain, p.parse_args())


if __name__ == "__main__":
    main()
