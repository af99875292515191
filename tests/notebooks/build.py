"""Rebuild the fixture notebooks: `python tests/notebooks/build.py` (they are committed)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from nbformat import v4

HERE = Path(__file__).parent

# Spends through the job's budget scope directly (the budget API), so the fixtures do not
# depend on the runtime's wiring; `spend` raises BudgetExceeded before an over-limit call.
HELPER = '''\
from decimal import Decimal

from agentnb.runtime._job import job_scope



def spend(usd, calls=1):
    scope = job_scope()
    for _ in range(calls):
        scope.reserve(usd=Decimal(str(usd)), model_calls=1, steps=1).settle()
'''


def params(source: str) -> nbformat.NotebookNode:
    return v4.new_code_cell(source, metadata={"tags": ["parameters"]})


def write(name: str, cells: list[nbformat.NotebookNode]) -> None:
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"{name}-{index}"
    nbformat.write(nb, str(HERE / f"{name}.ipynb"))


def main() -> None:
    write("ok", [params("n = 2\nlabel = 'x'"), v4.new_code_cell("result = n * 21\nresult")])
    write("raises_cell3", [
        params("n = 1"), v4.new_code_cell("a = n"), v4.new_code_cell("b = a + 1"),
        v4.new_code_cell("raise ValueError(f'bad value {b}')"), v4.new_code_cell("c = 3"),
    ])
    write("exit0", [params("n = 1"), v4.new_code_cell("import sys\n\nsys.exit(0)"),
                    v4.new_code_cell("raise RuntimeError('never reached')")])
    write("exit1", [params("n = 1"), v4.new_code_cell("import sys\n\nsys.exit(1)"),
                    v4.new_code_cell("x = 1")])
    write("no_params", [v4.new_code_cell("x = 40 + 2\nx")])
    write("over_budget", [
        params("cost = 0.01\ncalls = 100"), v4.new_code_cell(HELPER),
        v4.new_code_cell("spend(cost, 2)"),
        v4.new_code_cell("spend(cost, calls)"),
        v4.new_code_cell("raise RuntimeError('never reached: the budget stopped the job')"),
    ])
    write("spend", [
        params("cost = 0.01\ncalls = 3\nsleep_s = 0.0\nkill_marker = ''\nquality = 0.5"),
        v4.new_code_cell(HELPER),
        v4.new_code_cell(
            "import os\nimport signal\nimport time\n\n"
            "if kill_marker and not os.path.exists(kill_marker):\n"
            "    open(kill_marker, 'w').close()\n"
            "    os.kill(os.getppid(), signal.SIGKILL)  # the worker dies mid-job\n"
            "    time.sleep(30)\n"),
        v4.new_code_cell("spend(cost, calls)\ntime.sleep(sleep_s)"),
        v4.new_code_cell(
            "from IPython.display import display\n"
            "display({'application/vnd.agentnb.record+json': {'name': 'quality', "
            "'value': quality}}, raw=True)"),
    ])
    write("slow", [params("sleep_s = 30.0"), v4.new_code_cell("import time\ntime.sleep(sleep_s)"),
                   v4.new_code_cell("x = 1")])
    write("needs_approval", [
        params("to = 'a@example.com'"),
        v4.new_code_cell(
            "import agentnb as anb\n\n\n"
            "@anb.tool(effects={'write'})\n"
            "def send_email(to: str) -> str:\n"
            "    '''Send an email.'''\n"
            "    return 'sent'\n"
            "agent = anb.Agent(model='sim:careful', tools=[send_email],\n"
            "                  policy=anb.Policy(approve={'write'}))\n"
            "result = agent.run(f'Send an email to {to}')\n"
            "print(result.status, result.stop_reason)"),
    ])
    # v3: the old worksheet format; nbformat upgrades it on read.
    v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {"name": "v3"}, "worksheets": [{
        "cells": [{"cell_type": "code", "input": "x = 1\nx", "language": "python",
                   "metadata": {}, "outputs": [], "prompt_number": None}],
        "metadata": {}}]}
    (HERE / "v3_format.ipynb").write_text(json.dumps(v3, indent=1), encoding="utf-8")
    bad = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
           "cells": [{"cell_type": "code", "id": "a", "metadata": {}, "source": "x = 1",
                      "outputs": [], "execution_count": "one"}]}
    (HERE / "invalid_schema.ipynb").write_text(json.dumps(bad, indent=1), encoding="utf-8")
    dup = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "id": "same", "metadata": {"tags": ["parameters"]},
         "source": "n = 1", "outputs": [], "execution_count": None},
        {"cell_type": "code", "id": "same", "metadata": {}, "source": "n",
         "outputs": [], "execution_count": None}]}
    (HERE / "duplicate_ids.ipynb").write_text(json.dumps(dup, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
