"""The promotion gate: stamp a notebook with provenance only when its suite passes.

`gate_notebook(path, suite, agent, models)` runs the suite; when it passes (pass rate at least
`min_pass_rate`, and no regression against `baseline` when one is given) it writes
`metadata.agentnb.provenance` into the notebook: a SHA-256 over the notebook's cells without
outputs, the parameters, the model ids, the price table version and the suite's summary.
Otherwise it raises `SuiteFailed` and leaves the notebook untouched.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from agentnb.core import UsageError, canonical_json
from agentnb.evals._errors import SuiteFailed

if TYPE_CHECKING:
    from agentnb.evals._report import SuiteReport
    from agentnb.evals._suite import Suite
    from agentnb.runtime import Agent

__all__ = ["Provenance", "gate_notebook", "load_suite", "notebook_hash"]


class Provenance(BaseModel):
    """What a gated notebook carries in `metadata.agentnb.provenance`."""

    model_config = ConfigDict(frozen=True)
    notebook_sha256: str
    """SHA-256 over the cells' types and sources (outputs and metadata excluded)."""
    parameters: dict[str, Any]
    """The parameters the suite was run for."""
    models: list[str]
    """The model ids the suite ran."""
    price_table_version: str
    """`agentnb.models.price_table_version()` at stamping."""
    suite: dict[str, Any]
    """The suite report's summary (pass rates and costs per model)."""
    agentnb_version: str
    """The agentnb version that stamped it."""
    stamped_at: str
    """When (UTC, ISO 8601)."""

    def matches(self, notebook: str | Path) -> bool:
        """True when the notebook's cells are still the ones that were gated."""
        return notebook_hash(notebook) == self.notebook_sha256


def _read(notebook: str | Path) -> dict[str, Any]:
    path = Path(notebook)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"Cannot read notebook {str(path)!r}: {exc}."
        raise UsageError(msg, hint="Pass the path of an .ipynb file.") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        msg = f"{str(path)!r} is not a Jupyter notebook (no `cells` list)."
        raise UsageError(msg)
    return raw


def notebook_hash(notebook: str | Path) -> str:
    """SHA-256 over the notebook's cells (type and source), ignoring outputs and metadata.

    Example:
        >>> import json, tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "n.ipynb"
        >>> cell = {"cell_type": "code", "source": "1", "outputs": [], "metadata": {}}
        >>> _ = p.write_text(json.dumps({"cells": [cell], "metadata": {}}))
        >>> h = notebook_hash(p)
        >>> cell["outputs"] = [{"output_type": "stream", "text": "1"}]
        >>> _ = p.write_text(json.dumps({"cells": [cell], "metadata": {}}))
        >>> notebook_hash(p) == h
        True
    """
    raw = _read(notebook)
    cells = [{"cell_type": c.get("cell_type"),
              "source": "".join(c["source"]) if isinstance(c.get("source"), list)
              else c.get("source", "")} for c in raw["cells"]]
    return hashlib.sha256(canonical_json(cells).encode()).hexdigest()


def load_suite(spec: str) -> tuple[Suite, Agent | None, list[str] | None]:
    """Load `path/to/file.py:name` or `package.module:name` -> (suite, agent, models).

    The module may also define `agent` (the agent to evaluate) and `models` (model ids).

    Raises:
        UsageError: the module or the name cannot be found, or it is not a `Suite`.
    """
    from agentnb.evals._suite import Suite

    target, _, name = spec.partition(":")
    name = name or "suite"
    try:
        if target.endswith(".py"):
            path = Path(target).resolve()
            module_name = f"_agentnb_suite_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
            module_spec = importlib.util.spec_from_file_location(module_name, path)
            if module_spec is None or module_spec.loader is None:
                raise ImportError(str(path))
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except (ImportError, OSError) as exc:
        msg = f"Cannot load the suite module {target!r}: {exc}."
        raise UsageError(msg, hint="Pass `path/to/suite.py:suite` or `package.module:suite`.") \
            from None
    suite = getattr(module, name, None)
    if not isinstance(suite, Suite):
        msg = f"{spec!r} does not name an `anb.Suite` (found {type(suite).__name__})."
        raise UsageError(msg, hint="Define `suite = anb.Suite([...])` in that module.")
    models = getattr(module, "models", None)
    return suite, getattr(module, "agent", None), list(models) if models else None


def gate_notebook(notebook: str | Path, suite: Suite | str, agent: Agent | None = None,
                  models: Sequence[str] | None = None, parameters: dict[str, Any] | None = None,
                  *, repeats: int = 1, min_pass_rate: float = 1.0,
                  baseline: SuiteReport | str | Path | None = None, tolerance: float = 0.1,
                  budget: float | None = None) -> Provenance:
    """Run `suite`; stamp the notebook with its provenance only when the suite passes.

    Args:
        notebook: the .ipynb to gate (rewritten with `metadata.agentnb.provenance`).
        suite: a `Suite`, or `file.py:name` / `module:name` (that module may define `agent`
            and `models`).
        agent: the agent to evaluate (default: the suite module's `agent`).
        models: model ids (default: the suite module's `models`, else the agent's model).
        parameters: the notebook's parameters, recorded in the stamp.
        repeats: runs per scenario and model.
        min_pass_rate: the overall pass rate the suite must reach.
        baseline: a saved report (or path) the run must not regress against.
        tolerance: how far a pass rate may drop below the baseline.
        budget: USD limit for the suite run.

    Returns:
        The `Provenance` written into the notebook.

    Raises:
        SuiteFailed: the suite fell short (or regressed); the notebook is left unchanged.
        UsageError: the notebook, the suite or the agent cannot be found.
    """
    import agentnb
    from agentnb.evals._errors import RegressionDetected
    from agentnb.models import price_table_version

    raw = _read(notebook)
    module_agent, module_models = None, None
    if isinstance(suite, str):
        suite, module_agent, module_models = load_suite(suite)
    agent = agent or module_agent
    if agent is None:
        msg = "gate_notebook() needs an agent to evaluate."
        raise UsageError(msg, hint="Pass `agent=`, or define `agent` in the suite's module.")
    model_list = list(models or module_models or [])
    report = suite.run(agent, model_list or None, repeats=repeats, budget=budget)
    summary = report.summary()
    problems: list[str] = []
    if report.pass_rate < min_pass_rate:
        problems.append(f"pass rate {report.pass_rate:.2f} < {min_pass_rate}")
    if baseline is not None:
        try:
            report.assert_no_regression(baseline, tolerance=tolerance)
        except RegressionDetected as exc:
            problems.append(exc.message)
    if problems:
        failed = [f"{r['scenario']} on {r['model']}" for r in report.failures()][:10]
        msg = (f"Suite {suite.name!r} did not pass for {str(notebook)!r}: "
               f"{'; '.join(problems)}. Failed: {failed!r}. The notebook was not stamped.")
        raise SuiteFailed(msg, summary=summary,
                          hint="Fix the failing scenarios (`report.failures()`), then gate again.")
    provenance = Provenance(
        notebook_sha256=notebook_hash(notebook), parameters=dict(parameters or {}),
        models=(summary["models"] and list(summary["models"])) or model_list,
        price_table_version=price_table_version(), suite=summary,
        agentnb_version=agentnb.__version__,
        stamped_at=datetime.now(UTC).isoformat(timespec="seconds"))
    meta = raw.setdefault("metadata", {}).setdefault("agentnb", {})
    meta["provenance"] = provenance.model_dump(mode="json")
    Path(notebook).write_text(json.dumps(raw, indent=1, ensure_ascii=False) + "\n",
                              encoding="utf-8")
    return provenance
