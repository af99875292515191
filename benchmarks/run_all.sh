#!/usr/bin/env bash
# Regenerate every benchmark figure into benchmarks/results/latest.md + latest.json.
#   bash benchmarks/run_all.sh            # 10-15 minutes on 2 cores (see benchmarks/README.md)
#   QUICK=1 bash benchmarks/run_all.sh    # smoke test: fewer runs per cell, fewer scenarios
#   INSTRUCTIONS=1 bash benchmarks/run_all.sh   # also instructions per call (valgrind)
#   INSTRUCTIONS=parts bash benchmarks/run_all.sh   # and what each part of a step costs
# The peer comparison runs in its own venv (benchmarks/peers/.venv, created on first use from
# benchmarks/peers/requirements.txt plus agentnb editable); the rest runs in the project's .venv.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PEERS_PY=benchmarks/peers/.venv/bin/python
OUT=benchmarks/results
mkdir -p "$OUT"
if [ ! -x "$PEERS_PY" ]; then
    python3.11 -m venv benchmarks/peers/.venv
    "$PEERS_PY" -m pip install -q -r benchmarks/peers/requirements.txt
    "$PEERS_PY" -m pip install -q -e .
fi
# Cached bytecode, as on a user's machine: this sandbox sets PYTHONDONTWRITEBYTECODE=1, and an
# editable install compiles nothing, so every kernel a job starts would compile agentnb again.
"$PY" -m compileall -q agentnb > /dev/null
start=$(date +%s)
status=0
if [ -n "${QUICK:-}" ]; then
    "$PEERS_PY" benchmarks/peers/run_bench.py --scenarios seq_c1,conc_c100,lat50_c100 --runs-scale 0.3 \
        --out "$OUT/peers.md" || status=$?
    "$PY" benchmarks/bench_runtime.py --runs 300 --rounds 2 --replay-runs 50 --json "$OUT/runtime.json" || status=$?
    "$PY" benchmarks/bench_trace_store.py 20000 > "$OUT/trace_store.txt" || status=$?
else
    "$PEERS_PY" benchmarks/peers/run_bench.py --scenarios seq_c1,conc_c100,lat50_c1,lat50_c10,lat50_c100 \
        --out "$OUT/peers.md" || status=$?
    # The two 1.5x targets: agentnb and the raw httpx2 loop side by side, interleaved repeats
    # (this VM drifts by up to 2x within the hour; the median of the paired ratios does not).
    # seq_c1's pairs take seconds and scatter most (1.05-1.75x within one run, and the median
    # of 9 moved 1.24-1.57x between runs of the same code): 15 of them, about 65 s.
    "$PEERS_PY" benchmarks/peers/run_bench.py --adapters raw_httpx2,agentnb --scenarios seq_c1 \
        --repeat 15 --out "$OUT/ratios_seq.md" || status=$?
    "$PEERS_PY" benchmarks/peers/run_bench.py --adapters raw_httpx2,agentnb --scenarios conc_c100 \
        --repeat 5 --out "$OUT/ratios.md" || status=$?
    # INSTRUCTIONS=1: the seq_c1 ratio again in instructions (callgrind), which the VM's drift
    # cannot move; about 2.5 minutes more, which can take a slow hour past 15 minutes.
    # INSTRUCTIONS=parts: also what each part of agentnb's per-step work costs (about 8 more).
    if [ -n "${INSTRUCTIONS:-}" ] && command -v valgrind > /dev/null; then
        "$PEERS_PY" benchmarks/instructions.py --n1 20 --n2 80 \
            $([ "$INSTRUCTIONS" = parts ] && echo --parts) \
            --out "$OUT/instructions.md" || status=$?
    fi
    "$PY" benchmarks/bench_runtime.py --rounds 4 --json "$OUT/runtime.json" || status=$?
    "$PY" benchmarks/bench_trace_store.py > "$OUT/trace_store.txt" || status=$?
fi
cat "$OUT/trace_store.txt"
if [ -f benchmarks/bench_jobs.py ]; then
    "$PY" benchmarks/bench_jobs.py > "$OUT/jobs.txt" || status=$?
    cat "$OUT/jobs.txt"
fi
"$PY" benchmarks/report.py
echo "run_all: $(( $(date +%s) - start )) s, exit $status"
exit $status
