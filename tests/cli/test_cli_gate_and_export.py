"""`agentnb validate --suite` gates promotion; `agentnb traces --format otlp` exports runs."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from click.testing import CliRunner

import agentnb as anb
from agentnb.cli import cli
from agentnb.testing import LoopbackServer, Reply

SUITE = (
    "import agentnb as anb\n"
    "from agentnb.evals import Scenario, Suite, checks, envs\n"
    "agent = anb.Agent(model='sim:expert')\n"
    "models = ['sim:expert']\n"
    "good = Suite([Scenario('s', 'Look up order 43 and tell me its status.',\n"
    "              checks=[checks.tool_called('lookup_order')])],\n"
    "             environment=envs.Catalogue(seed=1))\n"
    "bad = Suite([Scenario('s', 'Look up order 43.', checks=[checks.contains('zzz')])],\n"
    "            environment=envs.Catalogue(seed=1))\n"
)


def _notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("region = 'eu'", metadata={"tags": ["parameters"]})]
    nbformat.write(nb, str(path))
    return path


def test_validate_suite_stamps_only_when_the_suite_passes(tmp_path: Path) -> None:
    """A passing suite stamps provenance (exit 0); a failing one exits 1 and changes nothing."""
    (tmp_path / "gate_suite.py").write_text(SUITE)
    nb = _notebook(tmp_path / "job.ipynb")
    runner = CliRunner()
    bad = runner.invoke(cli, ["validate", str(nb), "--suite", f"{tmp_path}/gate_suite.py:bad"])
    assert bad.exit_code == 1, bad.output
    assert "NOT PROMOTED" in bad.output
    assert "provenance" not in json.loads(nb.read_text())["metadata"].get("agentnb", {})
    good = runner.invoke(cli, ["validate", str(nb), "-p", "region", "us",
                               "--suite", f"{tmp_path}/gate_suite.py:good"])
    assert good.exit_code == 0, good.output
    stamp = json.loads(nb.read_text())["metadata"]["agentnb"]["provenance"]
    assert stamp["models"] == ["sim:expert"]
    assert stamp["parameters"] == {"region": "us"}
    assert stamp["notebook_sha256"] in good.output


def test_traces_otlp_exports_stored_runs(tmp_path: Path) -> None:
    """`--format otlp` sends the stored spans of a run to the endpoint as protobuf."""
    result = anb.Agent(model="sim:careful").run("Say hello.")
    with LoopbackServer(lambda request: Reply(status=200, body=b"")) as receiver:
        out = CliRunner().invoke(cli, ["traces", "--run", result.run_id, "--format", "otlp",
                                       "--endpoint", receiver.url + "/v1/traces"])
        assert out.exit_code == 0, out.output
        assert "Exported" in out.output
        assert receiver.requests
        assert receiver.requests[0].headers["content-type"] == "application/x-protobuf"
        assert receiver.requests[0].path == "/v1/traces"
