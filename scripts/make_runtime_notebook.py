"""Write notebooks/runtime.ipynb (stored without outputs)."""

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell(
        "# Runtime: budgets, kill switches, step-through, rewind, resume, replay\n\n"
        "An agent run is a state machine that is checkpointed after every step. This notebook "
        "runs offline on `sim:` models (and one scripted `FunctionModel`): a hard budget that "
        "stops a run *before* the call that would exceed it, a loop stop, stepping one "
        "transition at a time, forking with `rewind`, resuming a stored run, replaying a "
        "recorded run, and what a changed tool does to a replay."),
    new_code_cell('model = "sim:careful"\nn_tasks = 12\nbudget_usd = 0.002',
                  metadata={"tags": ["parameters"]}),
    new_code_cell(
        "import json\nfrom decimal import Decimal\n\nimport pandas as pd\n\n"
        "import agentnb as anb\nfrom agentnb.core import ToolCallPart\n\n"
        "CATALOGUE = {str(k): f\"item number {k}\" for k in range(20)}\n\n"
        "@anb.tool(effects={\"read\"})\n"
        "def lookup_key(key: str) -> str:\n"
        "    \"\"\"Look a key up in the catalogue.\"\"\"\n"
        "    return CATALOGUE.get(key, f\"no key {key}\")\n\n"
        "task = \"What does key 7 hold in the catalogue?\"\n"
        "agent = anb.Agent(model=model, tools=[lookup_key], name=\"catalogue\")\n"
        "result = agent.run(task)\n"
        "print(result.status, \"|\", result.output)\n"
        "print(result.usage)"),
    new_markdown_cell(
        "## A hard budget stops the run before the call that would exceed it\n\n"
        "Before each model call the runtime reserves its worst case (estimated input tokens "
        "plus `max_tokens` of output at the model's price). A call that cannot be reserved is "
        "never sent: the run stops with `stop_reason=\"budget\"` and a checkpoint."),
    new_code_cell(
        "tight = anb.Agent(model=model, tools=[lookup_key], name=\"tight\",\n"
        "                  budget=anb.Budget(usd=Decimal(str(budget_usd))))\n"
        "stopped = tight.run(task)\n"
        "print(stopped.status, stopped.stop_reason, \"spent\", stopped.usage.usd, "
        "\"of\", budget_usd)\n"
        "print([(s.index, s.kind, s.status) for s in stopped.steps])\n"
        "assert stopped.status == \"stopped\" and stopped.stop_reason == \"budget\"\n"
        "assert (stopped.usage.usd or 0) <= Decimal(str(budget_usd))"),
    new_code_cell(
        "try:\n"
        "    tight.run(task, raise_on_stop=True)\n"
        "except anb.BudgetExceeded as err:\n"
        "    print(\"limit\", err.limit, \"| spent\", err.spent, \"| requested\", "
        "err.requested, \"| scope\", err.scope)\n"
        "    print(err)"),
    new_markdown_cell(
        "## One budget over several runs\n\n`anb.budget(...)` opens a scope that every run "
        "inside draws from; `anb.spent()` says what the innermost scope has spent."),
    new_code_cell(
        "with anb.budget(usd=0.05, name=\"notebook\"):\n"
        "    for key in [\"3\", \"7\", \"11\"]:\n"
        "        r = agent.run(f\"What does key {key} hold in the catalogue?\")\n"
        "        print(key, r.status, r.usage.usd, \"-> scope spent\", anb.spent().usd)\n"
        "    total = anb.spent()\n"
        "total"),
    new_markdown_cell(
        "## A loop stop\n\nA model that keeps calling the same tool with the same arguments is "
        "stopped by the loop detector, with a checkpoint and a reason."),
    new_code_cell(
        "def stuck(messages, info):\n"
        "    return ToolCallPart(id=f\"c{info.call_index}\", name=\"lookup_key\",\n"
        "                        arguments=json.dumps({\"key\": \"7\"}))\n\n"
        "looping = anb.Agent(model=anb.models.FunctionModel(stuck), tools=[lookup_key], "
        "name=\"looping\")\n"
        "loop_result = looping.run(task)\n"
        "print(loop_result.status, loop_result.stop_reason, len(loop_result.steps), \"steps\")\n"
        "print(loop_result.error)\n"
        "assert loop_result.stop_reason == \"loop\""),
    new_markdown_cell(
        "## Step-through\n\n`agent.start(...)` makes a run without executing anything; "
        "`run.step()` performs exactly one transition (a model call, an approval, or a batch "
        "of tool calls)."),
    new_code_cell(
        "run = agent.start(task)\n"
        "step = run.step()\n"
        "print(step.index, step.kind, step.usage)\n"
        "print([(c.name, c.arguments, c.reason) for c in step.tool_calls])\n"
        "print(\"state:\", run.state)\n"
        "step = run.step()\n"
        "print(step.index, step.kind, [(c.name, c.status, c.result) for c in step.tool_calls])"),
    new_code_cell(
        "finished = run.run_to_end()\n"
        "print(finished.status, [(s.index, s.kind) for s in finished.steps])"),
    new_markdown_cell(
        "## Rewind: fork a new run from a checkpoint\n\n`run.rewind(k)` starts a new run "
        "from the checkpoint after step k; the original is kept."),
    new_code_cell(
        "forked = run.rewind(1)\n"
        "print(\"fork of\", forked.forked_from, \"steps so far:\", len(forked.steps))\n"
        "fork_result = forked.run_to_end()\n"
        "print(fork_result.run_id, fork_result.status, fork_result.output)\n"
        "print(\"original kept:\", run.run_id, len(run.steps), \"steps\")"),
    new_markdown_cell(
        "## Resume a stored run\n\nEvery step is checkpointed in the store. `anb.Run.load` "
        "reads a run back (after a kernel restart, say) and `resume()` continues it without "
        "repeating a completed tool call or paying again for a recorded model call."),
    new_code_cell(
        "half = agent.start(task)\n"
        "half.step()   # the model asked for a tool; the kernel could die here\n"
        "loaded = anb.Run.load(half.run_id)\n"
        "print(loaded.state, len(loaded.steps), \"steps stored\")\n"
        "resumed = loaded.resume()\n"
        "print(resumed.status, resumed.output, \"| tool calls paid:\", resumed.usage.tool_calls)"),
    new_markdown_cell(
        "## Replay a recorded run\n\n`anb.replay(run_id)` re-executes the run from its recorded "
        "model responses and tool results: no model is called, no tool runs, and the "
        "trajectory is the same."),
    new_code_cell(
        "replayed = anb.replay(result.run_id)\n"
        "same = [(s.kind, [c.name for c in s.tool_calls]) for s in replayed.steps] == \\\n"
        "       [(s.kind, [c.name for c in s.tool_calls]) for s in result.steps]\n"
        "print(\"same trajectory:\", same, \"| same output:\", replayed.result.output == "
        "result.output)\n"
        "assert same"),
    new_markdown_cell(
        "## A changed tool makes the replay diverge\n\nChange the tool the model saw (here "
        "its description) and the replay no longer matches the recording: `ReplayDiverged` "
        "names the step and shows a diff."),
    new_code_cell(
        "@anb.tool(effects={\"read\"}, name=\"lookup_key\")\n"
        "def lookup_key_v2(key: str) -> str:\n"
        "    \"\"\"Look a key up in the new catalogue service.\"\"\"\n"
        "    return CATALOGUE.get(key, \"missing\")\n\n"
        "changed = anb.Agent(model=model, tools=[lookup_key_v2], name=\"catalogue\")\n"
        "try:\n"
        "    anb.replay(result.run_id, agent=changed)\n"
        "except anb.ReplayDiverged as err:\n"
        "    print(\"diverged at step\", err.step)\n"
        "    print(err.message[:1200])"),
    new_markdown_cell(
        "## Many inputs at once\n\n`agent.map` runs many tasks concurrently under one shared "
        "budget scope."),
    new_code_cell(
        "tasks = [f\"What does key {k} hold in the catalogue?\" for k in range(n_tasks)]\n"
        "results = agent.map(tasks, concurrency=8)\n"
        "df = pd.DataFrame([{\"task\": t[:30], \"status\": r.status, \"answer\": "
        "(r.output or \"\")[:40],\n"
        "                    \"usd\": float(r.usage.usd or 0), \"steps\": len(r.steps)}\n"
        "                   for t, r in zip(tasks, results)])\n"
        "print(df.status.value_counts().to_dict(), \"total usd\", round(df.usd.sum(), 6))\n"
        "df"),
]

nb = new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
for index, cell in enumerate(nb.cells):
    cell["id"] = f"runtime-{index}"
nbformat.write(nb, "notebooks/runtime.ipynb")
