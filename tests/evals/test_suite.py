"""Suites across the three sim models, the report (table, plot, baseline) and the gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import agentnb as anb
from agentnb.core import UsageError
from agentnb.evals import (
    RegressionDetected,
    Scenario,
    Suite,
    SuiteFailed,
    SuiteReport,
    checks,
    envs,
    gate_notebook,
    notebook_hash,
    wilson_interval,
)

from . import _shop

MODELS = ["sim:cheap", "sim:careful", "sim:expert"]


def test_stronger_model_passes_more_and_costs_more() -> None:
    """Real runs in the catalogue: pass rate and cost rise from cheap to expert; frontier drawn."""
    report = _shop.suite().run(_shop.agent(), models=MODELS, repeats=3)
    table = report.table()
    assert list(table.index) == MODELS
    assert (table["n"] == 18).all()
    rates, costs = table["pass_rate"].tolist(), table["mean_cost_usd"].tolist()
    assert rates[0] < rates[2]
    assert rates[1] <= rates[2]
    assert costs[0] < costs[1] < costs[2]
    assert (table["ci_low"] <= table["pass_rate"]).all()
    assert (table["pass_rate"] <= table["ci_high"]).all()
    assert "sim:expert" in report.frontier()
    fig = report.plot()
    ax = fig.axes[0]
    assert any(line.get_label() == "Pareto frontier" for line in ax.get_lines())
    assert {t.get_text() for t in ax.texts} >= set(MODELS)
    assert report.df["run_id"].nunique() == len(report.df)


def test_each_run_gets_a_fresh_world() -> None:
    """Concurrent refunds never see each other's state; the suite's world stays untouched."""
    world = envs.Catalogue(seed=2)
    total = world.orders[42].total
    suite = Suite([Scenario("refund", f"Refund ${total} for order 42.",
                            checks=[checks.env_check(lambda env: env.refunds == {42: total},
                                                     name="one refund")])],
                  environment=world)
    report = suite.run(anb.Agent(model="sim:expert"), repeats=6, concurrency=6)
    assert report.pass_rate == 1.0
    assert world.refunds == {}


def test_repeats_vary_the_seed() -> None:
    """Repeats use different model seeds, so a weak model's results vary between repeats."""
    report = _shop.suite().run(_shop.agent(), models=["sim:cheap"], repeats=4)
    outputs = report.df.groupby("scenario")["output"].nunique()
    assert (outputs > 1).any()


def test_suite_budget_stops_runs() -> None:
    """A tiny suite budget stops runs before they overspend; rows say so."""
    report = _shop.suite().run(_shop.agent(), models=["sim:expert"], budget=0.0001)
    assert (report.df["status"] == "stopped").any()
    assert report.df["cost_usd"].sum() <= 0.0001


def test_judge_check_in_a_suite() -> None:
    """A judge check's verdict, reason and cost land in the rows."""
    suite = Suite([Scenario("status", "Look up order 42 and tell me its status.",
                            checks=[checks.judge("Does the answer give the order status?")])],
                  environment=envs.Catalogue(seed=1))
    report = suite.run(anb.Agent(model="sim:careful"), models=["sim:expert"])
    row = report.df.iloc[0]
    assert row["checks"][0]["name"].startswith("judge(")
    assert row["judge_cost_usd"] > 0


def test_save_load_compare(tmp_path: Path) -> None:
    """A saved report loads back; a worse run is flagged as a regression."""
    good = SuiteReport.from_rows([{"scenario": f"s{i}", "model": "m", "passed": True,
                                   "cost_usd": 0.01, "latency_s": 0.1} for i in range(10)])
    path = good.save(tmp_path / "base.json")
    loaded = SuiteReport.load(path)
    assert loaded.table().equals(good.table())
    worse = SuiteReport.from_rows([{"scenario": f"s{i}", "model": "m", "passed": i < 7,
                                    "cost_usd": 0.02, "latency_s": 0.1} for i in range(10)])
    found = worse.compare(path, tolerance=0.1, cost_tolerance=0.5)
    assert {r.metric for r in found} == {"pass_rate", "mean_cost_usd"}
    assert worse.compare(path, tolerance=0.5) == []
    per = worse.compare(path, tolerance=0.1, per_scenario=True)
    assert {r.scenario for r in per if r.scenario} == {"s7", "s8", "s9"}
    with pytest.raises(RegressionDetected) as info:
        worse.assert_no_regression(path)
    assert info.value.regressions
    assert "pass rate 0.70" in str(info.value)
    good.assert_no_regression(path)
    with pytest.raises(UsageError):
        SuiteReport.load(tmp_path / "missing.json")


def test_wilson_interval() -> None:
    """The Wilson interval matches the textbook values and stays inside 0..1."""
    low, high = wilson_interval(0, 10)
    assert low == 0.0
    assert 0.27 < high < 0.28
    low, high = wilson_interval(10, 10)
    assert 0.72 < low < 0.73
    assert high == 1.0


def test_suite_validation() -> None:
    """Empty suites and duplicate names are refused."""
    with pytest.raises(UsageError):
        Suite([])
    with pytest.raises(UsageError, match="two scenarios"):
        Suite([Scenario("a", "t"), Scenario("a", "u")])


def _notebook(path: Path) -> Path:
    cells = [{"cell_type": "code", "source": ["x = 1\n"], "metadata": {}, "outputs": [],
              "execution_count": None}]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                "nbformat_minor": 5}))
    return path


def test_gate_stamps_only_when_the_suite_passes(tmp_path: Path) -> None:
    """A passing suite stamps provenance; a failing one raises and leaves the notebook alone."""
    nb = _notebook(tmp_path / "job.ipynb")
    world = envs.Catalogue(seed=1)
    passing = Suite([Scenario("status", "Look up order 42 and tell me its status.",
                              checks=[checks.tool_called("lookup_order")])], environment=world)
    prov = gate_notebook(nb, passing, anb.Agent(model="sim:expert"), ["sim:expert"],
                         parameters={"region": "eu"})
    stamped = json.loads(nb.read_text())["metadata"]["agentnb"]["provenance"]
    assert stamped["notebook_sha256"] == notebook_hash(nb) == prov.notebook_sha256
    assert stamped["models"] == ["sim:expert"]
    assert stamped["parameters"] == {"region": "eu"}
    assert stamped["price_table_version"]
    assert stamped["suite"]["pass_rate"] == 1.0
    assert prov.matches(nb)
    before = nb.read_text()
    failing = Suite([Scenario("never", "Look up order 42.",
                              checks=[checks.contains("no such text")])], environment=world)
    with pytest.raises(SuiteFailed, match="not stamped") as info:
        gate_notebook(nb, failing, anb.Agent(model="sim:expert"), ["sim:expert"])
    assert info.value.summary["pass_rate"] == 0.0
    assert nb.read_text() == before


def test_gate_loads_a_suite_module(tmp_path: Path) -> None:
    """`file.py:name` names a suite; the module's `agent` and `models` are used."""
    module = tmp_path / "gate_suite.py"
    module.write_text(
        "import agentnb as anb\n"
        "from agentnb.evals import Scenario, Suite, checks, envs\n"
        "agent = anb.Agent(model='sim:expert')\n"
        "models = ['sim:expert']\n"
        "suite = Suite([Scenario('s', 'Look up order 43 and tell me its status.',\n"
        "              checks=[checks.tool_called('lookup_order')])],\n"
        "              environment=envs.Catalogue(seed=1))\n")
    nb = _notebook(tmp_path / "job.ipynb")
    prov = gate_notebook(nb, f"{module}:suite")
    assert prov.models == ["sim:expert"]
    with pytest.raises(UsageError, match="does not name"):
        gate_notebook(nb, f"{module}:agent")
