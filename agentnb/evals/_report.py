"""`SuiteReport`: the rows of a suite run as a DataFrame, per-model statistics, plot, baselines."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentnb.core import UsageError
from agentnb.evals._errors import RegressionDetected

__all__ = ["Regression", "SuiteReport", "wilson_interval"]

_FORMAT = 1


def wilson_interval(passed: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for a pass rate (95% by default).

    Example:
        >>> low, high = wilson_interval(8, 10)
        >>> round(low, 3), round(high, 3)
        (0.49, 0.943)
    """
    if n <= 0:
        return 0.0, 1.0
    p = passed / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Regression:
    """One metric that got worse than the baseline allows."""

    model: str
    """The model."""
    scenario: str | None
    """The scenario, for per-scenario comparisons; None for the model as a whole."""
    metric: str
    """`pass_rate` or `mean_cost_usd`."""
    baseline: float
    """The baseline's value."""
    current: float
    """This report's value."""
    message: str
    """What got worse, by how much."""


class SuiteReport:
    """The results of `Suite.run`: one row per scenario x model x repeat.

    `df` holds the rows (scenario, model, repeat, run_id, status, passed, score, cost_usd,
    judge_cost_usd, latency_s, tokens, steps, tool_calls, output, checks, trajectory).

    Example:
        >>> r = SuiteReport.from_rows([
        ...     {"scenario": "a", "model": "m", "repeat": 0, "passed": True, "score": 1.0,
        ...      "cost_usd": 0.01, "latency_s": 0.2}])
        >>> float(r.table().loc["m", "pass_rate"])
        1.0
    """

    def __init__(self, df: Any, *, meta: dict[str, Any] | None = None) -> None:
        self.df = df
        self.meta = dict(meta or {})

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]], *,
                  meta: dict[str, Any] | None = None) -> SuiteReport:
        """Build a report from row dicts."""
        import pandas as pd

        df = pd.DataFrame(rows)
        for column, default in (("cost_usd", 0.0), ("judge_cost_usd", 0.0), ("latency_s", 0.0),
                                ("score", 0.0), ("passed", False)):
            if column not in df.columns:
                df[column] = default
        meta = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), **(meta or {})}
        return cls(df, meta=meta)

    def __len__(self) -> int:
        return len(self.df)

    def __repr__(self) -> str:
        return (f"SuiteReport({self.meta.get('suite', 'suite')!r}, rows={len(self.df)}, "
                f"pass_rate={self.pass_rate:.2f})")

    def _repr_html_(self) -> str:
        return str(self.table().to_html(float_format=lambda x: f"{x:.4g}"))

    @property
    def models(self) -> list[str]:
        """Models in the order they ran."""
        return list(dict.fromkeys(self.df["model"]))

    @property
    def pass_rate(self) -> float:
        """Share of all rows that passed."""
        return float(self.df["passed"].mean()) if len(self.df) else 0.0

    @property
    def passed(self) -> bool:
        """True when every row passed."""
        return bool(len(self.df)) and bool(self.df["passed"].all())

    def table(self) -> Any:
        """Per model: n, passed, pass rate with its Wilson 95% interval, mean score, cost, latency.

        Returns:
            A pandas DataFrame indexed by model, in run order.
        """
        import pandas as pd

        records = []
        for model in self.models:
            rows = self.df[self.df["model"] == model]
            n, k = len(rows), int(rows["passed"].sum())
            low, high = wilson_interval(k, n)
            cost = rows["cost_usd"].astype(float)
            records.append({"model": model, "n": n, "passed": k, "pass_rate": k / n,
                            "ci_low": low, "ci_high": high,
                            "mean_score": float(rows["score"].mean()),
                            "mean_cost_usd": float(cost.mean()),
                            "total_cost_usd": float(cost.sum()),
                            "judge_cost_usd": float(rows["judge_cost_usd"].astype(float).sum()),
                            "mean_latency_s": float(rows["latency_s"].mean())})
        return pd.DataFrame.from_records(records, index="model") if records else pd.DataFrame()

    def by_scenario(self) -> Any:
        """Pass rate per scenario (rows) and model (columns)."""
        return self.df.pivot_table(index="scenario", columns="model", values="passed",
                                   aggfunc="mean", sort=False).astype(float)

    def failures(self) -> list[dict[str, Any]]:
        """The rows that failed, with their failed checks and trajectories."""
        return [r for r in self.df.to_dict(orient="records") if not r["passed"]]

    def frontier(self) -> list[str]:
        """Models on the cost-quality Pareto frontier (no other is cheaper and at least as good).

        Example:
            >>> r = SuiteReport.from_rows([
            ...     {"scenario": "a", "model": "cheap", "passed": False, "cost_usd": 0.1},
            ...     {"scenario": "a", "model": "good", "passed": True, "cost_usd": 1.0},
            ...     {"scenario": "a", "model": "waste", "passed": False, "cost_usd": 2.0}])
            >>> r.frontier()
            ['cheap', 'good']
        """
        t = self.table()
        points = [(float(t.loc[m, "mean_cost_usd"]), float(t.loc[m, "pass_rate"]), m)
                  for m in t.index]
        front = [m for c, q, m in points
                 if not any((c2 <= c and q2 >= q) and (c2 < c or q2 > q) for c2, q2, _ in points)]
        return sorted(front, key=lambda m: float(t.loc[m, "mean_cost_usd"]))

    def plot(self, *, title: str | None = None) -> Any:
        """Cost per task against pass rate (95% interval bars), the Pareto frontier marked.

        Returns:
            A matplotlib `Figure` (never shown; Jupyter displays it).
        """
        try:
            from matplotlib.figure import Figure
        except ImportError as exc:  # pragma: no cover - matplotlib is a notebook extra
            msg = "report.plot() needs matplotlib."
            raise UsageError(msg, hint="pip install matplotlib") from exc
        t = self.table()
        fig = Figure(figsize=(6.4, 4.2))
        ax = fig.subplots()
        for model in t.index:
            x, y = float(t.loc[model, "mean_cost_usd"]), float(t.loc[model, "pass_rate"])
            err = [[y - float(t.loc[model, "ci_low"])], [float(t.loc[model, "ci_high"]) - y]]
            ax.errorbar([x], [y], yerr=err, fmt="o", capsize=4, label=model)
            ax.annotate(model, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=9)
        front = self.frontier()
        if front:
            xs = [float(t.loc[m, "mean_cost_usd"]) for m in front]
            ys = [float(t.loc[m, "pass_rate"]) for m in front]
            ax.plot(xs, ys, "--", color="grey", linewidth=1, label="Pareto frontier")
        ax.set_xlabel("mean cost per task (USD)")
        ax.set_ylabel("pass rate (95% Wilson interval)")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(title or f"{self.meta.get('suite', 'suite')}: cost vs quality")
        ax.grid(visible=True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        return fig

    def summary(self) -> dict[str, Any]:
        """A small JSON-able summary (for provenance stamps and logs)."""
        t = self.table()
        return {"suite": self.meta.get("suite"), "rows": len(self.df),
                "pass_rate": round(self.pass_rate, 4), "passed": self.passed,
                "models": {m: {"n": int(t.loc[m, "n"]), "pass_rate": round(float(
                    t.loc[m, "pass_rate"]), 4), "mean_cost_usd": float(t.loc[m, "mean_cost_usd"])}
                    for m in t.index}}

    # -- persistence and baselines ----------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the report as JSON (rows + metadata); `SuiteReport.load` reads it back."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = json.loads(self.df.to_json(orient="records"))
        path.write_text(json.dumps({"format": _FORMAT, "meta": self.meta, "rows": rows},
                                   indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> SuiteReport:
        """Read a report written by `save`.

        Raises:
            UsageError: the file is missing or is not a saved report.
        """
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            msg = f"Cannot read a suite report from {str(path)!r}: {exc}."
            raise UsageError(msg, hint="Write one with `report.save(path)`.") from None
        if not isinstance(raw, dict) or "rows" not in raw:
            msg = f"{str(path)!r} is not a saved suite report."
            raise UsageError(msg, hint="Write one with `report.save(path)`.")
        return cls.from_rows(raw["rows"], meta=raw.get("meta"))

    def compare(self, baseline: SuiteReport | str | Path, *, tolerance: float = 0.1,
                cost_tolerance: float | None = None,
                per_scenario: bool = False) -> list[Regression]:
        """What got worse than `baseline` allows.

        Args:
            baseline: a report or the path of a saved one.
            tolerance: how far (absolute) a pass rate may drop.
            cost_tolerance: how far (relative, 0.2 = +20%) mean cost may rise; None: ignored.
            per_scenario: also compare each scenario's pass rate per model.

        Returns:
            The regressions (empty when none); models and scenarios absent from either report
            are skipped.
        """
        base = baseline if isinstance(baseline, SuiteReport) else SuiteReport.load(baseline)
        # Compare like with like: only scenarios both reports ran (a `-k` subset, a new case).
        shared = set(self.df["scenario"]) & set(base.df["scenario"])
        mine = SuiteReport(self.df[self.df["scenario"].isin(shared)], meta=self.meta)
        base = SuiteReport(base.df[base.df["scenario"].isin(shared)], meta=base.meta)
        now_t, base_t = mine.table(), base.table()
        common = [m for m in now_t.index if m in base_t.index]
        if not common:
            msg = (f"The report and its baseline share no model (now {list(now_t.index)!r}, "
                   f"baseline {list(base_t.index)!r}).")
            raise UsageError(msg, hint="Compare runs over the same models.")
        found: list[Regression] = []
        for m in common:
            b, c = float(base_t.loc[m, "pass_rate"]), float(now_t.loc[m, "pass_rate"])
            if c < b - tolerance - 1e-12:
                found.append(Regression(model=m, scenario=None, metric="pass_rate", baseline=b,
                                        current=c, message=f"{m}: pass rate {c:.2f} < baseline "
                                                           f"{b:.2f} - {tolerance}"))
            bc, cc = float(base_t.loc[m, "mean_cost_usd"]), float(now_t.loc[m, "mean_cost_usd"])
            if cost_tolerance is not None and cc > bc * (1 + cost_tolerance) + 1e-12:
                found.append(Regression(model=m, scenario=None, metric="mean_cost_usd",
                                        baseline=bc, current=cc,
                                        message=f"{m}: mean cost {cc:.6f} USD > baseline "
                                                f"{bc:.6f} USD + {cost_tolerance:.0%}"))
        if per_scenario:
            now_s, base_s = mine.by_scenario(), base.by_scenario()
            for s in now_s.index:
                for m in common:
                    if s not in base_s.index or m not in now_s.columns or m not in base_s.columns:
                        continue
                    b, c = float(base_s.loc[s, m]), float(now_s.loc[s, m])
                    if c < b - tolerance - 1e-12:
                        found.append(Regression(model=m, scenario=s, metric="pass_rate",
                                                baseline=b, current=c,
                                                message=f"{m} / {s}: pass rate {c:.2f} < "
                                                        f"baseline {b:.2f} - {tolerance}"))
        return found

    def assert_no_regression(self, baseline: SuiteReport | str | Path, *,
                             tolerance: float = 0.1, cost_tolerance: float | None = None,
                             per_scenario: bool = False) -> None:
        """Raise `RegressionDetected` when `compare` finds anything.

        Raises:
            RegressionDetected: with `.regressions`.
        """
        found = self.compare(baseline, tolerance=tolerance, cost_tolerance=cost_tolerance,
                             per_scenario=per_scenario)
        if found:
            lines = "; ".join(r.message for r in found)
            msg = f"{len(found)} regression(s) against the baseline: {lines}."
            raise RegressionDetected(msg, regressions=found,
                                     hint="Inspect `report.failures()`, or update the baseline "
                                          "with `report.save(path)` if the change is intended.")
