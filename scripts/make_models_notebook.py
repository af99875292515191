"""Write notebooks/models.ipynb (stored without outputs)."""

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell(
        "# Models: `sim:`, function models, real providers on a loopback server\n\n"
        "Every model in agentnb answers the same `Model` protocol: `await model.request(messages, "
        "tools=...)` and `await model.stream(...)` return one `ModelResponse` with parts, usage, "
        "cost and finish reason. This notebook runs offline: the simulated `sim:` models, a "
        "`FunctionModel`, and the real OpenAI-compatible and Anthropic clients talking to the "
        "fake servers from `agentnb.testing` on 127.0.0.1."),
    new_code_cell('model = "sim:careful"\ntask = "What does key 7 hold in the catalogue?"',
                  metadata={"tags": ["parameters"]}),
    new_code_cell(
        "import pandas as pd\n\nimport agentnb as anb\nfrom agentnb.core import Message, "
        "ToolDefinition\n\n"
        "import dataclasses\n\npd.DataFrame([dataclasses.asdict(s) for s in anb.models.list_sim()])"),
    new_markdown_cell(
        "## A `sim:` model chooses a tool\n\nThe simulated models read the task and the tools "
        "offered, pick one, fill its arguments from the task text, and state their reason. "
        "Their mistakes happen at the rate their quality states; they are seeded, so the same "
        "conversation always gets the same answer."),
    new_code_cell(
        "lookup = ToolDefinition(name=\"lookup\", description=\"Look a key up in the catalogue.\",\n"
        "                        parameters={\"type\": \"object\", \"properties\": "
        "{\"key\": {\"type\": \"string\"}},\n"
        "                                    \"required\": [\"key\"]})\n"
        "sim = anb.models.get_model(model)\n"
        "response = await sim.request([Message.user(task)], tools=[lookup])\n"
        "call = response.tool_calls[0]\n"
        "print(call.name, call.arguments, \"-\", call.reason)\n"
        "print(response.usage)"),
    new_markdown_cell("## The same agent on three models\n\nA weak model is cheap and "
                      "sometimes wrong; a strong one is dear and nearly always right."),
    new_code_cell(
        "CATALOGUE = {\"7\": \"a walnut desk lamp\", \"3\": \"a brass telescope\"}\n\n"
        "@anb.tool(effects={\"read\"})\n"
        "def lookup_key(key: str) -> str:\n"
        "    \"\"\"Look a key up in the catalogue.\"\"\"\n"
        "    return CATALOGUE.get(key, f\"no key {key}\")\n\n"
        "rows = []\n"
        "for name in [\"sim:cheap\", \"sim:careful\", \"sim:expert\"]:\n"
        "    agent = anb.Agent(model=name, tools=[lookup_key], budget=anb.Budget(usd=0.05))\n"
        "    result = await agent.arun(task)\n"
        "    rows.append({\"model\": name, \"status\": result.status, \"answer\": "
        "result.output[:60],\n"
        "                 \"usd\": float(result.usage.usd or 0), \"steps\": "
        "len(result.steps)})\n"
        "pd.DataFrame(rows)"),
    new_markdown_cell("## A `FunctionModel` scripts exact turns for tests"),
    new_code_cell(
        "def script(messages, info):\n"
        "    return \"I was asked: \" + messages[-1].text\n\n"
        "fm = anb.models.FunctionModel(script)\n"
        "(await fm.request([Message.user(\"hello\")])).text"),
    new_markdown_cell(
        "## A real OpenAI-compatible client against a loopback server\n\n"
        "`FakeOpenAIServer` speaks the Chat Completions wire format (JSON and SSE). Here it "
        "answers with a tool call, then refuses once with HTTP 429 and `Retry-After`, which "
        "the client retries, then answers in a stream."),
    new_code_cell(
        "from agentnb.testing import FakeOpenAIServer, OpenAIToolCall\n\n"
        "server = FakeOpenAIServer([OpenAIToolCall(\"lookup\", {\"key\": \"7\"}),\n"
        "                           \"Key 7 holds a walnut desk lamp.\"],\n"
        "                          model=\"gpt-fake\").start()\n"
        "client = anb.models.OpenAIModel(\"gpt-fake\", base_url=server.url, api_key=\"sk-test\",\n"
        "                                stream=True, input_per_mtok=0.15, output_per_mtok=0.6)\n"
        "first = await client.request([Message.user(task)], tools=[lookup])\n"
        "second = await client.request([Message.user(task)])\n"
        "print(first.tool_calls[0].name, first.tool_calls[0].arguments, first.finish_reason)\n"
        "print(second.text, second.usage)\n"
        "await client.aclose()\n"
        "server.stop()"),
    new_markdown_cell(
        "## Errors say what happened and what to do\n\nA bad model string, a server that "
        "cannot be reached: one clear `AgentnbError` each."),
    new_code_cell(
        "for bad in [\"gpt-4o\", \"foo:bar\", \"sim:genius\"]:\n"
        "    try:\n"
        "        anb.models.get_model(bad)\n"
        "    except anb.ConfigError as exc:\n"
        "        print(type(exc).__name__, \"-\", exc)\n\n"
        "unreachable = anb.models.OpenAIModel(\"x\", base_url=\"http://127.0.0.1:9/v1\", "
        "api_key=\"k\", max_retries=0)\n"
        "try:\n"
        "    await unreachable.request([Message.user(\"hi\")])\n"
        "except anb.ModelError as exc:\n"
        "    print(type(exc).__name__, \"-\", exc)\n"
        "await unreachable.aclose()"),
    new_markdown_cell(
        "## Prices\n\nPrices come from the maintained `genai-prices` table; `set_price` "
        "overrides it. An unpriced model reports `usd=None`, never a silent zero."),
    new_code_cell(
        "print(anb.models.price_table_version())\n"
        "print(anb.models.lookup_price(\"openai\", \"gpt-4o-mini\"))\n"
        "anb.set_price(\"openai:my-local-model\", input_per_mtok=0.0, output_per_mtok=0.0)\n"
        "print(anb.models.lookup_price(\"openai\", \"my-local-model\"))"),
]
nb = new_notebook(cells=cells, metadata={
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"}})
nbformat.write(nb, "notebooks/models.ipynb")
