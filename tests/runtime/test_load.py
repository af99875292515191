"""Bounded load and crash tests (issue 4 "Must show"); marked slow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agentnb.core import run_sync
from agentnb.testing.openai_server import FakeOpenAIServer, OpenAIToolCall

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def _script(request: dict[str, Any]) -> Any:
    last = request["messages"][-1]
    if last["role"] == "tool":
        return f"The answer is {last['content']}."
    task = request["messages"][-1]["content"]
    return OpenAIToolCall("lookup", {"key": str(task).split()[-1]})


def test_thousand_concurrent_runs_under_one_budget() -> None:
    """1000 runs, 5% 429s, 2% 500s, random latency: spend <= limit, every run ends with a reason."""
    from agentnb.models.openai import OpenAIModel
    from agentnb.runtime import Agent, Budget, budget, tool

    @tool(effects={"read"})
    async def lookup(key: str) -> str:
        """Look a key up."""
        return f"v{key}"

    limit = Decimal("0.05")
    with FakeOpenAIServer(_script, error_429_rate=0.05, error_500_rate=0.02,
                          retry_after_s=0.01, latency_s=(0.0, 0.02), seed=4) as server:
        model = OpenAIModel("fake-mini", base_url=server.url, api_key="k", max_retries=6,
                            input_per_mtok=10, output_per_mtok=40, max_tokens=64)
        agent = Agent(model=model, tools=[lookup], budget=Budget(model_calls=4), name="load")

        async def go() -> tuple[list[Any], Any]:
            async with budget(usd=limit, name="batch", kind="batch") as scope:
                results = await agent.amap([f"task {i}" for i in range(1000)],
                                           concurrency=1000)
            await model.aclose()
            return results, scope

        t0 = time.monotonic()
        results, scope = run_sync(go())
        elapsed = time.monotonic() - t0
        stats = server.stats()
    assert len(results) == 1000
    assert scope.spent_summary().usd <= limit
    assert sum((r.usage.usd or Decimal(0)) for r in results) <= limit
    statuses = {(r.status, r.stop_reason) for r in results}
    assert statuses <= {("done", None), ("stopped", "budget")}
    assert ("done", None) in statuses
    assert ("stopped", "budget") in statuses
    assert stats["ok"] == sum(r.usage.model_calls for r in results)
    assert elapsed < 180


_CHILD = textwrap.dedent('''
    import json, sys, time
    from pathlib import Path
    from agentnb.models import FunctionModel
    from agentnb.core import ToolCallPart
    from agentnb.runtime import Agent, Run, tool

    log = Path(sys.argv[1])
    calls = Path(sys.argv[2])

    @tool(effects={"write"})
    def write(key: str) -> str:
        """Write a key (a side effect, logged)."""
        with log.open("a") as f:
            f.write(key + "\\n")
        return "ok " + key

    def fn(messages, info):
        done = sum(1 for m in messages if m.role == "tool")
        if done == 3 and sys.argv[4] == "kill":
            time.sleep(30)  # the parent kills us here: three writes done, a model call in flight
        with calls.open("a") as f:
            f.write("call\\n")
        if done < 4:
            args = json.dumps({"key": f"k{done}"})
            return ToolCallPart(id=f"c{done}", name="write", arguments=args)
        return "finished"

    agent = Agent(model=FunctionModel(fn), tools=[write], name="crashy")
    if sys.argv[3] == "start":
        run = agent.start("write four keys")
        print(run.run_id, flush=True)
        run.run_to_end()
    else:
        result = Run.load(sys.argv[3]).resume()
        print(json.dumps({"status": result.status, "output": result.output}), flush=True)
''')


def test_sigkill_mid_run_then_resume(tmp_path: Path) -> None:
    """A run SIGKILLed mid-call resumes; each side effect and answered model call happens once."""
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    log, calls = tmp_path / "effects.log", tmp_path / "calls.log"
    env = {**os.environ, "AGENTNB_HOME": str(tmp_path / ".agentnb"), "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, str(script), str(log), str(calls), "start", "kill"],
                            stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    deadline = time.monotonic() + 60
    while "k2" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the child never reached the third write"
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    model_calls_before = calls.read_text().count("call")
    out = subprocess.run([sys.executable, str(script), str(log), str(calls), run_id, "never"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
                         check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"status": "done", "output": "finished"}
    assert log.read_text().splitlines() == ["k0", "k1", "k2", "k3"]
    # Three model calls were answered before the kill (the fourth was in flight); resuming
    # answers only the two still missing.
    assert model_calls_before == 3
    assert calls.read_text().count("call") == 5
