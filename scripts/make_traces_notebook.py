"""Write notebooks/traces.ipynb (stored without outputs)."""

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell(
        "# Traces: every step a span, queried as DataFrames\n\n"
        "Every run, step, model call and tool call is an OpenTelemetry span with `gen_ai.*` "
        "attributes (the GenAI semantic conventions) plus `agentnb.*` ones (cost, policy "
        "decision, the model's reason for a tool). They land in `traces.db` under "
        "`AGENTNB_HOME`, and come back as pandas DataFrames."),
    new_code_cell('models = ["sim:cheap", "sim:careful", "sim:expert"]\nrepeats = 2',
                  metadata={"tags": ["parameters"]}),
    new_code_cell(
        "import agentnb as anb\n\n"
        "STOCK = {\"7\": \"walnut desk lamp, 12 in stock\", \"3\": \"brass telescope, 2 in stock\",\n"
        "         \"12\": \"cast-iron kettle, sold out\"}\n\n"
        "@anb.tool(effects={\"read\"})\n"
        "def lookup(key: str) -> str:\n"
        "    \"\"\"Look a key up in the stock list.\"\"\"\n"
        "    return STOCK.get(key, f\"no key {key}\")\n\n"
        "run_ids = {}\n"
        "for model in models:\n"
        "    agent = anb.Agent(model=model, name=f\"stock-{model.split(':')[1]}\", "
        "tools=[lookup],\n"
        "                      budget=anb.Budget(usd=0.05))\n"
        "    for i, key in enumerate([\"7\", \"3\", \"12\"][:repeats]):\n"
        "        result = await agent.arun(f\"What does key {key} hold?\")\n"
        "        run_ids[(model, key)] = result.run_id"),
    new_markdown_cell("## One row per run"),
    new_code_cell(
        "runs = anb.traces()\n"
        "runs[[\"agent\", \"model\", \"status\", \"steps\", \"input_tokens\", \"output_tokens\", "
        "\"usd\", \"duration_s\"]]"),
    new_markdown_cell("Filters: by agent, status, time range or annotation label."),
    new_code_cell("anb.traces(agent=\"stock-expert\")[[\"run_id\", \"task\", \"output\"]]"),
    new_markdown_cell("## The spans of one run\n\nWhere did the time and the money go, and why "
                      "did the model choose the tool?"),
    new_code_cell(
        "run_id = run_ids[(\"sim:careful\", \"7\")]\n"
        "spans = anb.spans(run_id)\n"
        "wanted = [\"name\", \"kind\", \"duration_s\", \"gen_ai.usage.input_tokens\",\n"
        "          \"gen_ai.usage.output_tokens\", \"agentnb.cost.usd\", \"agentnb.tool.reason\"]\n"
        "spans[[c for c in wanted if c in spans.columns]]"),
    new_code_cell(
        "runs.groupby(\"model\")[[\"usd\", \"steps\", \"duration_s\"]].mean()"),
    new_markdown_cell("## Annotate runs\n\nLabels, scores and notes attach to a run or a span "
                      "and travel with the trace."),
    new_code_cell(
        "for (model, key), rid in run_ids.items():\n"
        "    output = anb.traces().set_index(\"run_id\").loc[rid, \"output\"] or \"\"\n"
        "    good = \"walnut\" in output or \"telescope\" in output\n"
        "    anb.annotate(rid, label=\"correct\" if good else \"wrong\", score=1.0 if good else "
        "0.0,\n"
        "                 note=f\"checked by hand for key {key}\")\n"
        "anb.annotations()[[\"target_id\", \"label\", \"score\", \"note\"]]"
        " if \"target_id\" in anb.annotations() else anb.annotations()"),
    new_code_cell("anb.traces(label=\"correct\")[[\"agent\", \"task\", \"usd\"]]"),
    new_markdown_cell("## Where do two trajectories diverge?"),
    new_code_cell(
        "anb.diff(run_ids[(\"sim:cheap\", \"7\")], run_ids[(\"sim:expert\", \"7\")])"),
    new_markdown_cell(
        "## Export to any OTLP backend\n\n`anb.export_otlp(endpoint)` (or "
        "`AGENTNB_OTLP_ENDPOINT`) sends spans live to Phoenix, Jaeger or Langfuse; "
        "`export_stored` sends stored runs after the fact. Here a loopback receiver stands in "
        "for the backend."),
    new_code_cell(
        "from agentnb.testing import LoopbackServer, Reply\n\n"
        "with LoopbackServer(lambda request: Reply(status=200, body=b\"\")) as receiver:\n"
        "    sent = anb.tracing.export_stored(list(run_ids.values()), "
        "endpoint=receiver.url + \"/v1/traces\")\n"
        "    print(sent, \"spans exported in\", len(receiver.requests), \"request(s) to\", "
        "receiver.requests[0].path)"),
]
nb = new_notebook(cells=cells, metadata={
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"}})
nbformat.write(nb, "notebooks/traces.ipynb")
