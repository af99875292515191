"""Instructions per model call, counted by callgrind: a figure this VM's drift cannot move.

Run with the peers' venv (it has the fake server and httpx2):

    benchmarks/peers/.venv/bin/python benchmarks/instructions.py \
        --out benchmarks/results/instructions.md

Each adapter runs `profile_agentnb.py`'s workload (the shared fake OpenAI server, K=3: four
model calls and three tool calls per run, C=1) under callgrind twice, with `--n1` and `--n2`
measured runs; the difference, divided by the extra model calls, is the client's user-space
instructions per model call with start-up, imports and warm-up cancelled out. The fake server
runs natively (callgrind does not follow child processes). Instructions are not seconds: they
leave out cache misses and the kernel (whose share per call `profile_agentnb.py` shows to be
about the same for agentnb and the raw loop), but they repeat to a fraction of a per cent where
CPU time on this VM moves by 10-40% between runs. agentnb does a little work on wall-clock
timers (stop flags are read again every 75 ms), which valgrind's slowdown makes more frequent:
its count errs high, more so on a busy machine and with fewer runs (20/120 on an idle machine:
3.62 M; 10/60 beside the test suite: 3.72 M).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


_PARTS = {
    "checkpoint": "checkpoint writes (SQLite transaction, recordings, audit append, span rows)",
    "audit": "audit append (hash-chained log; part of the checkpoint writes)",
    "redaction": "redaction of what is stored (checkpoints, recordings, audit fields)",
    "span": "span recording and storage",
}
"""`--parts`: knockout name prefix (`profile_agentnb.py --off`) -> what it switches off."""


def count(adapter: str, runs: int, extra: list[str] | None = None) -> int:
    """User-space instructions of one `profile_agentnb.py` process with `runs` measured runs
    (`extra`: more arguments for it, e.g. `--off audit` to count without a part)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
               sys.executable, os.path.join(HERE, "profile_agentnb.py"), "--adapter", adapter,
               "-n", str(runs), "--no-profile", *(extra or [])]
        if adapter.startswith("agentnb"):
            # Stop flags are read again every 75 ms of wall time: under valgrind's 50x slowdown
            # that is 50 times as often per run as natively (once per ~12 runs at C=1), and the
            # count would follow the machine's load. Natively it is under 0.1% of a run.
            cmd += ["--stop-cache-s", "3600"]
            # Likewise the span writer thread wakes every 250 ms to store the spans that ended
            # after a run's last checkpoint (the run's own span): natively some 40 runs' worth
            # per write at C=1, under valgrind one run's, an extra transaction per run. It
            # wakes on its queue's length (`WAKE_AT`) instead, as it would natively.
            cmd += ["--flush-interval-s", "3600"]
        # A fixed hash seed: dict and set layouts (and so the work) repeat from run to run.
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    found = _COLLECTED.findall(proc.stderr)
    if proc.returncode != 0 or not found:
        sys.exit(f"callgrind of {adapter} ({runs} runs) failed:\n{proc.stderr[-2000:]}")
    return int(found[-1])


def main() -> None:
    """Count, print a table, write `--out` (Markdown) and its .json twin."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--adapters", default="raw_httpx2,agentnb")
    p.add_argument("--n1", type=int, default=20, help="measured runs of the short process")
    p.add_argument("--n2", type=int, default=100, help="measured runs of the long process")
    p.add_argument("--out")
    p.add_argument("--parts", action="store_true", help="also count agentnb with each part of "
                   "its per-step work switched off (knockouts.py's), and list what each costs")
    p.add_argument("--extra", default="", help="more arguments for profile_agentnb.py, for the "
                   "adapters other than raw_httpx2 (e.g. \"--off audit\")")
    a = p.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install -y valgrind)")
    if a.n2 <= a.n1:
        sys.exit(f"--n2 ({a.n2}) must be larger than --n1 ({a.n1})")
    start = time.monotonic()
    calls = (a.n2 - a.n1) * 4
    per_call: dict[str, float] = {}
    totals: dict[str, list[int]] = {}
    for adapter in a.adapters.split(","):
        extra = a.extra.split() if adapter != "raw_httpx2" else []
        short, long = count(adapter, a.n1, extra), count(adapter, a.n2, extra)
        totals[adapter] = [short, long]
        per_call[adapter] = (long - short) / calls
        print(f"{adapter:12s} {per_call[adapter] / 1e6:8.3f} M instructions per model call "
              f"({short:,} / {long:,} in all)", flush=True)
    parts: dict[str, float] = {}
    if a.parts and "agentnb" in per_call:
        for name in _PARTS:
            extra = ["--off", name]
            short, long = count("agentnb", a.n1, extra), count("agentnb", a.n2, extra)
            parts[name] = per_call["agentnb"] - (long - short) / calls
            print(f"  {name:12s} {parts[name] / 1e6:8.3f} M per model call", flush=True)
    base = per_call.get("raw_httpx2")
    lines = [
        "# Instructions per model call (callgrind, seq_c1 workload)", "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by `benchmarks/instructions.py "
        f"--n1 {a.n1} --n2 {a.n2}` in {time.monotonic() - start:.0f} s: user-space "
        f"instructions of the client process for {a.n2} minus {a.n1} runs, over their "
        f"{calls} model calls. Repeatable where CPU time is not; not seconds (no cache misses, "
        "no kernel).", "",
        "| adapter | M instructions per model call | x raw httpx2 |", "|---|---|---|"]
    for adapter, value in per_call.items():
        ratio = f"{value / base:.2f}x" if base else "—"
        lines.append(f"| {adapter} | {value / 1e6:.3f} | {ratio} |")
    if parts:
        whole = per_call["agentnb"]
        lines += ["", "What parts of agentnb's per-step work cost, counted with each switched off "
                  "(`--parts`; `knockouts.py`'s switches; a part that is switched off is not a "
                  "valid configuration, this says what it costs):", "",
                  "| part | M instructions per model call | share of agentnb's |", "|---|---|---|"]
        lines += [f"| {_PARTS[name]} | {value / 1e6:.3f} | {100 * value / whole:.1f}% |"
                  for name, value in parts.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
        with open(os.path.splitext(a.out)[0] + ".json", "w") as f:
            json.dump({"generated": time.strftime("%Y-%m-%d %H:%M:%S"), "n1": a.n1,
                       "n2": a.n2, "calls": calls, "totals": totals,
                       "per_call": per_call, "parts": parts,
                       "ratio_to_raw_httpx2": {k: v / base for k, v in per_call.items()}
                       if base else None}, f, indent=1)


if __name__ == "__main__":
    main()
