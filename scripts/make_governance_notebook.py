"""Write notebooks/governance.ipynb (stored without outputs)."""

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell(
        "# Governance: policy, approvals, confinement, the audit log, redaction\n\n"
        "No side effect without policy. Tools declare their effects; a `Policy` allows, asks "
        "for approval or denies each call; file paths stay in a workspace, requests stay on a "
        "host allow-list, every decision lands in a hash-chained audit log, and secrets are "
        "redacted before anything is stored. Offline, on `sim:` and scripted models."),
    new_code_cell('model = "sim:careful"\nworkspace = ""  # empty: a fresh temporary folder',
                  metadata={"tags": ["parameters"]}),
    new_code_cell(
        "import json, os, shutil, tempfile\nfrom pathlib import Path\n\nimport agentnb as anb\n"
        "from agentnb.core import ToolCallPart\nfrom agentnb.governance import AutoApprove\n"
        "from agentnb.models import FunctionModel\n\n"
        "def scripted(*turns):\n"
        "    \"\"\"Propose the given tool calls, then report what the tools said.\"\"\"\n"
        "    def reply(messages, info):\n"
        "        if info.call_index < len(turns):\n"
        "            return [ToolCallPart(id=f\"c{info.call_index}{i}\", name=n, "
        "arguments=json.dumps(a))\n"
        "                    for i, (n, a) in enumerate(turns[info.call_index])]\n"
        "        return \" | \".join(p.content for p in messages[-1].parts)\n"
        "    return FunctionModel(reply)\n\n"
        "sent = []\n\n"
        "@anb.tool(effects={\"read\"})\n"
        "def lookup_key(key: str) -> str:\n"
        "    \"\"\"Look a key up in the catalogue.\"\"\"\n"
        "    return f\"item number {key}\"\n\n"
        "@anb.tool(effects={\"network\"})\n"
        "def send_email(to: str, body: str) -> str:\n"
        "    \"\"\"Send an email.\"\"\"\n"
        "    sent.append(to)\n"
        "    return f\"sent to {to}\"\n\n"
        "@anb.tool(effects={\"money\"})\n"
        "def buy(item: str) -> str:\n"
        "    \"\"\"Buy an item.\"\"\"\n"
        "    return f\"bought {item}\""),
    new_markdown_cell(
        "## A policy: allow, approve, deny, and a rule over arguments\n\nRules come first (the "
        "first match wins); then the tool's effects: deny beats approve beats allow."),
    new_code_cell(
        "policy = anb.Policy(\n"
        "    allow={\"read\"}, approve={\"network\"}, deny={\"money\"},\n"
        "    rules=[anb.Rule(tool=\"send_email\", when=lambda a: a[\"to\"].endswith("
        "\"@example.com\"),\n"
        "                    decision=\"allow\")],\n"
        ")\n"
        "for name, effects, args in [(\"lookup_key\", {\"read\"}, {\"key\": \"7\"}),\n"
        "                            (\"send_email\", {\"network\"}, "
        "{\"to\": \"ann@example.com\"}),\n"
        "                            (\"send_email\", {\"network\"}, "
        "{\"to\": \"bob@elsewhere.org\"}),\n"
        "                            (\"buy\", {\"money\"}, {\"item\": \"lamp\"})]:\n"
        "    d = policy.decide(name, effects, args)\n"
        "    print(f\"{name:11} {str(args):32} -> {d.decision:8} ({d.rule})\")"),
    new_markdown_cell(
        "## A denied call\n\nThe call never runs; the model is told why, and can find another "
        "way."),
    new_code_cell(
        "agent = anb.Agent(model=scripted([(\"buy\", {\"item\": \"lamp\"})]), tools=[buy], "
        "policy=policy)\n"
        "result = agent.run(\"Buy the lamp\")\n"
        "print(result.steps[1].tool_calls[0].status, \"-\", result.output)"),
    new_markdown_cell(
        "## Approvals\n\nA call that needs approval makes the run wait in `awaiting_approval`. "
        "In a notebook, the run's widget shows Approve / Edit / Deny; in code, "
        "`await run.approve(...)` or `run.decide(...)`. Here one call is edited to a safe "
        "address and approved."),
    new_code_cell(
        "agent = anb.Agent(model=scripted([(\"send_email\", {\"to\": \"bob@elsewhere.org\", "
        "\"body\": \"hi\"})]),\n"
        "                  tools=[send_email], policy=policy)\n"
        "run = agent.start(\"Email Bob\")\n"
        "run.step()\n"
        "print(run.state, [(r.tool, r.arguments) for r in run.pending_approvals])\n"
        "request = run.pending_approvals[0]\n"
        "await run.approve(request.call_id, \"edit\", arguments={\"to\": \"bob@example.com\", "
        "\"body\": \"hi\"})\n"
        "final = run.run_to_end()\n"
        "print(final.status, sent, \"-\", final.output)"),
    new_markdown_cell(
        "An approver can also decide: `AutoApprove()` approves everything (for trusted "
        "tests). Without one, a headless job (`agentnb run --approvals deny`, the default) "
        "denies and records the denial."),
    new_code_cell(
        "auto = anb.Agent(model=scripted([(\"send_email\", {\"to\": \"cy@elsewhere.org\", "
        "\"body\": \"x\"})]),\n"
        "                 tools=[send_email], policy=policy, approver=AutoApprove())\n"
        "print(auto.run(\"Email Cy\").steps[1].tool_calls[0].decision)\n\n"
        "headless = anb.Agent(model=scripted([(\"send_email\", {\"to\": \"dee@elsewhere.org\", "
        "\"body\": \"x\"})]),\n"
        "                     tools=[send_email], policy=policy)\n"
        "denied = headless.run(\"Email Dee\")\n"
        "print(denied.steps[1].tool_calls[0].status, \"-\", denied.output[:160])"),
    new_markdown_cell(
        "## Workspace confinement\n\nPath arguments must resolve inside the workspace: `..`, "
        "absolute paths and symlinks out are refused with `WorkspaceViolation`."),
    new_code_cell(
        "ws = Path(workspace or tempfile.mkdtemp(prefix=\"agentnb-sandbox-\")).resolve()\n"
        "ws.mkdir(exist_ok=True)\n"
        "(ws / \"notes.txt\").write_text(\"inside the sandbox\")\n\n"
        "@anb.tool(effects={\"read\"})\n"
        "def read_file(path: Path) -> str:\n"
        "    \"\"\"Read a file.\"\"\"\n"
        "    return path.read_text()\n\n"
        "agent = anb.Agent(model=scripted([(\"read_file\", {\"path\": \"notes.txt\"}),\n"
        "                                  (\"read_file\", {\"path\": \"../secrets.txt\"}),\n"
        "                                  (\"read_file\", {\"path\": \"/etc/passwd\"})]),\n"
        "                  tools=[read_file], policy=anb.Policy(allow={\"read\"}, "
        "workspace=ws))\n"
        "for c in agent.run(\"Read everything\").steps[1].tool_calls:\n"
        "    print(f\"{c.arguments:26} {c.status:7} {c.result[:90]}\")"),
    new_markdown_cell(
        "## The network allow-list\n\nTools that use `anb.http_client()` can only reach listed "
        "hosts; an unlisted host is refused before any connection is made."),
    new_code_cell(
        "@anb.tool(effects={\"network\"})\n"
        "async def fetch(url: str) -> str:\n"
        "    \"\"\"Fetch a URL.\"\"\"\n"
        "    async with anb.http_client() as client:\n"
        "        return (await client.get(url)).text\n\n"
        "agent = anb.Agent(model=scripted([(\"fetch\", {\"url\": \"https://evil.example.com/x\"})]),\n"
        "                  tools=[fetch], policy=anb.Policy(allow={\"network\"}, "
        "network=[\"api.example.com\"]))\n"
        "print(agent.run(\"Fetch it\").steps[1].tool_calls[0].result)"),
    new_markdown_cell(
        "## The audit log\n\nEvery decision is appended to `<home>/audit/audit.jsonl`, each "
        "record chained to the previous one by SHA-256. `anb.audit.verify(path)` checks the "
        "chain; any edit is caught."),
    new_code_cell(
        "import pandas as pd\n\n"
        "from agentnb.core import resolve\n\n"
        "log = resolve().home / \"audit\" / \"audit.jsonl\"\n"
        "records = [json.loads(line) for line in log.read_text().splitlines()]\n"
        "print(anb.audit.verify(log))\n"
        "pd.DataFrame(records)[[\"seq\", \"event\", \"tool\", \"decision\"]].tail(12)"),
    new_code_cell(
        "tampered = Path(tempfile.mkdtemp(prefix=\"agentnb-audit-\")) / \"tampered.jsonl\"\n"
        "lines = log.read_text().splitlines()\n"
        "bad = next(i for i, line in enumerate(lines) if '\"decision\":\"deny\"' in line)\n"
        "lines[bad] = lines[bad].replace('\"decision\":\"deny\"', '\"decision\":\"allow\"')  "
        "# cover up a denial\n"
        "tampered.write_text(\"\\n\".join(lines) + \"\\n\")\n"
        "shutil.copy(str(log) + \".head\", str(tampered) + \".head\")\n"
        "report = anb.audit.verify(tampered)\n"
        "print(report.ok, \"- first bad line:\", report.line, \"-\", report.problem)"),
    new_markdown_cell(
        "## Secret redaction\n\nValues that look like secrets (API keys, bearer tokens, values "
        "of environment variables named `*KEY*`, `*TOKEN*`, `*SECRET*`) and values you register "
        "are replaced before they reach a trace, the store or the audit log."),
    new_code_cell(
        "from agentnb.governance import default_redactor, register_secret\n\n"
        "register_secret(\"hunter2-launch-code\")\n"
        "redactor = default_redactor()\n"
        "print(redactor.redact(\"Authorization: Bearer abcdefghijklmnopqrstuv\"))\n"
        "print(redactor.redact(\"the launch code is hunter2-launch-code\"))\n\n"
        "agent = anb.Agent(model=scripted([(\"lookup_key\", "
        "{\"key\": \"hunter2-launch-code\"})]),\n"
        "                  tools=[lookup_key], policy=policy)\n"
        "r = agent.run(\"Look it up\")\n"
        "stored = json.dumps([s.model_dump(mode=\"json\") for s in anb.Run.load(r.run_id, "
        "agent=agent).steps])\n"
        "print(\"secret in stored run:\", \"hunter2-launch-code\" in stored)\n"
        "print(\"secret in audit log:\", \"hunter2-launch-code\" in log.read_text())"),
]

nb = new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
for index, cell in enumerate(nb.cells):
    cell["id"] = f"governance-{index}"
nbformat.write(nb, "notebooks/governance.ipynb")
