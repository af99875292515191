"""The agentnb pytest plugin (`pytest11` entry point): agent evals written as tests.

Two ways to write them::

    import pytest, agentnb as anb
    from agentnb.evals import checks, envs

    def make_agent():
        return anb.Agent(model="sim:careful", instructions="You run a shop.")

    # 1. A marked test returns its scenarios (a list or a Suite); the plugin runs them.
    @pytest.mark.agentnb(agent=make_agent, environment=envs.Catalogue(seed=1))
    def test_refunds():
        return [anb.Scenario("refund", "Refund $5 for order 42.",
                             checks=[checks.tool_called("refund")])]

    # 2. The `agentnb_eval` fixture runs a suite inside any test and returns its report.
    def test_shop(agentnb_eval):
        report = agentnb_eval(suite, make_agent())
        assert report.table().loc["sim:careful", "pass_rate"] >= 0.5

Eval tests are skipped unless pytest runs with `--agentnb`. Options: `--agentnb-model` (repeat
for several), `--agentnb-repeats`, `--agentnb-budget-usd` (the whole session's limit),
`--agentnb-baseline PATH` (fail the session on a regression against a saved report),
`--agentnb-save PATH` (save the session's report), `--agentnb-tolerance`. A failed test prints
each failed check with its reason (a judge's reason included) and the run's trajectory.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from agentnb.evals._report import SuiteReport

__all__ = ["format_failures"]


@dataclasses.dataclass(kw_only=True)
class _State:
    enabled: bool
    models: list[str]
    repeats: int
    budget_usd: float | None
    baseline: str | None
    save: str | None
    tolerance: float
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    regressions: list[str] = dataclasses.field(default_factory=list)
    scope: Any = None


_STATE = pytest.StashKey[_State]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the `--agentnb*` options."""
    group = parser.getgroup("agentnb", "agentnb agent evals")
    group.addoption("--agentnb", action="store_true", default=False,
                    help="Run agent eval tests (marked `agentnb` or using `agentnb_eval`).")
    group.addoption("--agentnb-model", action="append", default=[], metavar="MODEL",
                    help="Model id to evaluate (repeat for several; default: each test's own).")
    group.addoption("--agentnb-repeats", type=int, default=1, metavar="K",
                    help="Runs per scenario and model (default 1).")
    group.addoption("--agentnb-budget-usd", type=float, default=None, metavar="USD",
                    help="USD limit for every eval run of the session, judges included.")
    group.addoption("--agentnb-baseline", default=None, metavar="PATH",
                    help="A saved SuiteReport; the session fails on a regression against it.")
    group.addoption("--agentnb-save", default=None, metavar="PATH",
                    help="Save the session's SuiteReport (JSON) here.")
    group.addoption("--agentnb-tolerance", type=float, default=0.1, metavar="DROP",
                    help="How far a pass rate may drop below the baseline (default 0.1).")


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and the session state."""
    config.addinivalue_line(
        "markers", "agentnb(agent, environment=None, models=None, min_pass_rate=1.0): an agent "
        "eval; the test returns its Scenarios (or a Suite). Runs only with --agentnb.")
    config.stash[_STATE] = _State(
        enabled=bool(config.getoption("--agentnb")),
        models=list(config.getoption("--agentnb-model") or []),
        repeats=int(config.getoption("--agentnb-repeats") or 1),
        budget_usd=config.getoption("--agentnb-budget-usd"),
        baseline=config.getoption("--agentnb-baseline"),
        save=config.getoption("--agentnb-save"),
        tolerance=float(config.getoption("--agentnb-tolerance") or 0.0))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip eval tests unless `--agentnb` was given."""
    if config.stash[_STATE].enabled:
        return
    skip = pytest.mark.skip(reason="agent eval: run pytest with --agentnb")
    for item in items:
        if item.get_closest_marker("agentnb") or "agentnb_eval" in getattr(item, "fixturenames",
                                                                            ()):
            item.add_marker(skip)


def _session_scope(state: _State) -> Any:
    """One budget scope for the whole session, so `--agentnb-budget-usd` is a hard total."""
    if state.scope is None and state.budget_usd is not None:
        from decimal import Decimal

        from agentnb.runtime import Budget, BudgetScope

        state.scope = BudgetScope(Budget(usd=Decimal(str(state.budget_usd))), name="pytest")
    return state.scope


def format_failures(report: SuiteReport, *, title: str = "") -> str:
    """Readable text for the failed rows: failed checks with reasons, then the trajectory.

    Example:
        >>> from agentnb.evals import SuiteReport
        >>> r = SuiteReport.from_rows([{"scenario": "s", "model": "m", "repeat": 0,
        ...     "passed": False, "status": "done", "trajectory": "task: t",
        ...     "checks": [{"name": "contains('x')", "passed": False, "reason": "missing"}]}])
        >>> print(format_failures(r).splitlines()[1])
        --- scenario 's' on m (repeat 0): status done
    """
    failed = report.failures()
    lines = [f"agentnb: {len(failed)} of {len(report)} run(s) failed{title}"]
    for row in failed:
        lines.append(f"--- scenario {row['scenario']!r} on {row['model']} "
                     f"(repeat {row.get('repeat', 0)}): status {row.get('status')}")
        for check in row.get("checks") or []:
            mark = "ok    " if check.get("passed") else "FAILED"
            lines.append(f"  {mark} {check.get('name')}: {check.get('reason', '')}")
        lines.append("  trajectory:")
        lines.extend(f"    {t}" for t in str(row.get("trajectory", "")).splitlines())
    return "\n".join(lines)


def _run(state: _State, suite: Any, agent: Any, models: list[Any] | None,
         test_name: str) -> SuiteReport:
    from agentnb.runtime import use_scope

    chosen = state.models or models or None
    scope = _session_scope(state)
    if scope is None:
        report = suite.run(agent, chosen, repeats=state.repeats)
    else:
        with use_scope(scope):
            report = suite.run(agent, chosen, repeats=state.repeats)
    for row in report.df.to_dict(orient="records"):
        state.rows.append({**row, "scenario": f"{test_name}::{row['scenario']}"})
    return report


def _as_suite(value: Any, environment: Any, name: str) -> Any:
    from agentnb.evals import Scenario, Suite

    if isinstance(value, Suite):
        return value
    if isinstance(value, Scenario):
        value = [value]
    items = list(value or [])
    if not items or not all(isinstance(s, Scenario) for s in items):
        msg = (f"Test {name!r} is marked `agentnb` but returned {value!r}; return a list of "
               "`anb.Scenario` or an `anb.Suite`.")
        raise pytest.UsageError(msg)
    return Suite(items, environment, name=name)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run an `agentnb`-marked test: call it for its scenarios, run them, report failures."""
    marker = pyfuncitem.get_closest_marker("agentnb")
    if marker is None:
        return None
    state = pyfuncitem.config.stash[_STATE]
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    value = pyfuncitem.obj(**kwargs)
    suite = _as_suite(value, marker.kwargs.get("environment"), pyfuncitem.name)
    agent = marker.kwargs.get("agent") or (marker.args[0] if marker.args else None)
    if callable(agent) and not hasattr(agent, "arun"):
        agent = agent()
    if agent is None:
        msg = f"Test {pyfuncitem.name!r}: pass the agent as `@pytest.mark.agentnb(agent=...)`."
        raise pytest.UsageError(msg)
    models = marker.kwargs.get("models")
    report = _run(state, suite, agent, list(models) if models else None, pyfuncitem.name)
    threshold = float(marker.kwargs.get("min_pass_rate", 1.0))
    if report.pass_rate < threshold:
        pytest.fail(format_failures(report, title=f" (pass rate {report.pass_rate:.2f} < "
                                                  f"{threshold})"), pytrace=False)
    return True


@pytest.fixture
def agentnb_eval(request: pytest.FixtureRequest) -> Callable[..., SuiteReport]:
    """Run a suite (or scenarios) against an agent with the session's models/repeats/budget.

    The call fails the test when the pass rate is below `min_pass_rate` (default 1.0), printing
    the failed checks and trajectories; it returns the `SuiteReport` otherwise.
    """
    state = request.config.stash[_STATE]

    def run(suite: Any, agent: Any, *, environment: Any = None, models: list[Any] | None = None,
            min_pass_rate: float = 1.0) -> SuiteReport:
        report = _run(state, _as_suite(suite, environment, request.node.name), agent, models,
                      request.node.name)
        if report.pass_rate < min_pass_rate:
            pytest.fail(format_failures(report, title=f" (pass rate {report.pass_rate:.2f} < "
                                                      f"{min_pass_rate})"), pytrace=False)
        return report

    return run


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Save the session's report; compare it with the baseline and fail on a regression."""
    del exitstatus
    state = session.config.stash.get(_STATE, None)
    if state is None or not state.enabled or not state.rows:
        return
    from agentnb.evals import SuiteReport

    report = SuiteReport.from_rows(state.rows, meta={"suite": "pytest"})
    if state.save:
        report.save(state.save)
    if state.baseline:
        found = report.compare(state.baseline, tolerance=state.tolerance, per_scenario=True)
        state.regressions = [r.message for r in found]
        if found:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print the eval summary: pass rate per model, and any regression."""
    del exitstatus
    state = config.stash.get(_STATE, None)
    if state is None or not state.enabled or not state.rows:
        return
    from agentnb.evals import SuiteReport

    table = SuiteReport.from_rows(state.rows).table()
    terminalreporter.section("agentnb evals")
    for model in table.index:
        row = table.loc[model]
        terminalreporter.write_line(
            f"{model}: pass rate {row['pass_rate']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
            f" n={int(row['n'])} mean cost {row['mean_cost_usd']:.6f} USD")
    if state.baseline:
        if state.regressions:
            terminalreporter.write_line(f"REGRESSION against {state.baseline}:", red=True)
            for line in state.regressions:
                terminalreporter.write_line(f"  {line}", red=True)
        else:
            terminalreporter.write_line(f"no regression against {state.baseline}", green=True)
