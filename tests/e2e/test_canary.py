"""Canary secrets: values of secret-named environment variables never reach anything on disk."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from ._support import (
    agentnb_run,
    audit_records,
    cell_text,
    files_containing,
    python,
    write_notebook,
)

pytestmark = pytest.mark.timeout(90)

# One secret that also looks like a key (`sk-...`) and one that only its variable's name marks
# as secret: the second is caught by the environment rule alone.
AGENT = '''
import json, os
import agentnb as anb
from agentnb.core import ToolCallPart
from agentnb.models import FunctionModel

KEY = os.environ["ANB_CANARY_API_KEY"]
WORD = os.environ["ANB_CANARY_PASSWORD"]

@anb.tool(effects={"write"})
def store_note(note: str) -> str:
    """Store a note."""
    return "stored: " + note

def reply(messages, info):
    if info.call_index == 0:
        return ToolCallPart(id="c1", name="store_note", reason="keep " + WORD,
                            arguments=json.dumps({"note": KEY + " " + WORD}))
    return "The key is " + KEY + " and the word is " + WORD

agent = anb.Agent(model=FunctionModel(reply), tools=[store_note], cache=True,
                  policy=anb.Policy(allow={"write"}))
'''

SCRIPT = AGENT + '''
result = agent.run("Remember the key")
again = agent.run("Remember the key")          # served from cache.db
run = anb.Run.load(result.run_id, agent=agent)  # the checkpoint, read back
replayed = anb.replay(result.run_id, agent=agent)
print(result.status, again.status, len(run.steps), replayed.state)
print("OUTPUT:", result.output)
'''


def _canaries() -> dict[str, str]:
    return {"ANB_CANARY_API_KEY": "sk-canary-" + secrets.token_hex(16),
            "ANB_CANARY_PASSWORD": "canaryword" + secrets.token_hex(6)}


def _assert_nowhere(root: Path, canaries: dict[str, str]) -> None:
    for value in canaries.values():
        leaked = files_containing(root, value.encode())
        assert leaked == [], f"{value!r} leaked into {[str(p) for p in leaked]}"


def test_canary_never_reaches_traces_cache_audit_or_checkpoints() -> None:
    """A secret passed through a tool argument and a model reply is in no file under the home."""
    home = Path(os.environ["AGENTNB_HOME"])
    canaries = _canaries()
    proc = python(SCRIPT, env=canaries)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The secret really went through the agent: the model's reply printed it in the process.
    assert canaries["ANB_CANARY_API_KEY"] in proc.stdout
    assert proc.stdout.startswith("done done 3 done")
    names = {p.name for p in home.rglob("*") if p.is_file()}
    assert {"traces.db", "cache.db"} <= names, names
    assert any(r["event"] for r in audit_records(home))
    _assert_nowhere(home, canaries)


def test_canary_never_reaches_an_executed_notebook(tmp_path: Path) -> None:
    """A notebook printing and displaying the agent's output keeps no secret in its .ipynb."""
    home = Path(os.environ["AGENTNB_HOME"])
    canaries = _canaries()
    nb = write_notebook(
        tmp_path / "canary.ipynb", "task = 'Remember the key'",
        AGENT,
        "result = await agent.arun(task)\nprint(result.output)\nresult.output",
        "from IPython.display import display, HTML\n"
        "display(HTML('<b>' + result.output + '</b>'))\nresult",
        "print(KEY)")
    out = tmp_path / "out.ipynb"
    proc = agentnb_run(nb, out, "--budget-usd", "1.00", env=canaries)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    text = cell_text(out)
    assert "The key is" in text, text
    _assert_nowhere(tmp_path, canaries)
    _assert_nowhere(home, canaries)


def test_a_key_exported_between_runs_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret env value set after the first run (as in a later notebook cell) is redacted."""
    import agentnb as anb
    from agentnb.models import FunctionModel

    anb.Agent(model=FunctionModel(lambda m, i: "warm-up")).run("hi")
    monkeypatch.setenv("LATER_API_KEY", "sk-later-secret-value-42")
    echo = FunctionModel(lambda m, i: "the key is sk-later-secret-value-42")
    result = anb.Agent(model=echo, name="late").run("tell me")
    spans = anb.spans(result.run_id)
    text = " ".join(str(v) for v in spans.to_numpy().ravel())
    assert "sk-later-secret-value-42" not in text
    assert "LATER_API_KEY" in text
