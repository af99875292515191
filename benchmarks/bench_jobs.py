"""Benchmark the jobs layer: `agentnb run` vs bare papermill, and a batch on 2 workers vs 1.

Run: `.venv/bin/python benchmarks/bench_jobs.py [--repeats 5] [--jobs 12]`. It reports ratios
measured in one run (DESIGN: benchmarks are not tests). Targets: `agentnb run` adds < 10% wall
time to bare papermill on the same notebook; a batch on 2 workers is >= 1.7x faster than on 1.

The notebook spends through the job's budget scope (the engine's ledger is read after every
cell) and sleeps a little in each job, so the batch measures scheduling, not just CPU.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import nbformat

CELLS = 8


def _notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell("sleep_s = 0.5\ncost = 0.001",
                                              metadata={"tags": ["parameters"]}))
    nb.cells.append(nbformat.v4.new_code_cell(
        "import time\nfrom decimal import Decimal\n"
        "try:\n    from agentnb.runtime._job import job_scope\n    scope = job_scope()\n"
        "except ImportError:\n    scope = None\n"))
    for _ in range(CELLS):
        nb.cells.append(nbformat.v4.new_code_cell(
            "if scope is not None:\n"
            "    scope.reserve(usd=Decimal(str(cost)), model_calls=1).settle()\n"
            "x = sum(range(10_000))"))
    nb.cells.append(nbformat.v4.new_code_cell("time.sleep(sleep_s)"))
    path = folder / "bench.ipynb"
    nbformat.write(nb, str(path))
    return path


def bench_run(folder: Path, repeats: int) -> tuple[float, float]:
    """Median wall time of bare papermill and of `run_notebook` on the same notebook."""
    import papermill

    from agentnb.jobs import run_notebook

    path = _notebook(folder)
    # Warm both paths once (imports, kernel spec lookup, page cache).
    papermill.execute_notebook(str(path), str(folder / "warm.ipynb"), progress_bar=False)
    run_notebook(path, folder / "warm2.ipynb", budget_usd=1)
    bare, ours = [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        papermill.execute_notebook(str(path), str(folder / f"pm{i}.ipynb"), progress_bar=False,
                                   parameters={"sleep_s": 0.5})
        bare.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        result = run_notebook(path, folder / f"anb{i}.ipynb", budget_usd=1,
                              parameters={"sleep_s": 0.5})
        ours.append(time.perf_counter() - t0)
        assert result.exit_code == 0, result.error
    return statistics.median(bare), statistics.median(ours)


def bench_batch(folder: Path, jobs: int, rounds: int = 3) -> tuple[float, float, list[float]]:
    """Median wall time of a batch of `jobs` jobs on 1 worker and on 2, and each round's
    speed-up (its 1-worker time over its 2-worker time).

    A warm-up batch runs first (first kernel start, OS caches), and each round runs both sizes
    in alternating order, so neither pays for warming up the machine. The speed-up reported is
    the median of the rounds' own ratios: this VM drifts by more than the difference between
    rounds, and a ratio of two medians from different rounds mixes the drift in.
    """
    from agentnb.jobs import run_batch

    path = _notebook(folder)
    rows = [{"sleep_s": 1.0, "cost": 0.001} for _ in range(jobs)]

    def once(workers: int, tag: str) -> float:
        t0 = time.perf_counter()
        result = run_batch(path, rows, workers=workers, budget_usd=1,
                           out=folder / f"runs-{tag}-{workers}", quiet=True, report=False)
        assert result.exit_code == 0, result
        return time.perf_counter() - t0

    run_batch(path, rows[:2], workers=2, budget_usd=1, out=folder / "warm", quiet=True,
              report=False)
    times: dict[int, list[float]] = {1: [], 2: []}
    for r in range(rounds):
        order = (1, 2) if r % 2 == 0 else (2, 1)
        for workers in order:
            times[workers].append(once(workers, f"r{r}"))
    ratios = [one / two for one, two in zip(times[1], times[2], strict=True)]
    return statistics.median(times[1]), statistics.median(times[2]), ratios


def main() -> None:
    """Run both benchmarks and print the measured numbers."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--skip-run", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.skip_run:
            bare, ours = bench_run(folder, args.repeats)
            overhead = (ours - bare) / bare
            print(f"run: bare papermill {bare:.3f} s, agentnb run {ours:.3f} s (median of "
                  f"{args.repeats}); overhead {overhead:+.1%} (target < 10%)")
        if not args.skip_batch:
            one, two, ratios = bench_batch(folder, args.jobs, args.rounds)
            each = ", ".join(f"{r:.2f}" for r in ratios)
            print(f"batch of {args.jobs}: 1 worker {one:.2f} s, 2 workers {two:.2f} s "
                  f"(medians of {args.rounds} alternating rounds after a warm-up); "
                  f"speed-up {statistics.median(ratios):.2f}x, median of the rounds' own "
                  f"ratios ({each}) (target >= 1.7x)")


if __name__ == "__main__":
    main()
