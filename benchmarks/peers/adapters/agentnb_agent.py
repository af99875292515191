"""agentnb: ``Agent`` + ``OpenAIModel`` with its production defaults left on.

Defaults kept: tracing into the SQLite trace store (``AGENTNB_HOME`` is a fresh temp dir),
checkpoints and recordings after every step, a per-run ``Budget`` (USD, tokens, calls,
steps), and a ``Policy`` every tool call passes (the tool declares ``effects={"read"}``,
the policy allows ``read``) with its decisions in the hash-chained audit log.

Options (``cfg.options``): ``trace`` (default True) turns the trace store off;
``budget`` (default True) drops the per-run budget (the run then gets an unlimited scope).
"""
from __future__ import annotations

import os
import shutil
import tempfile

from adapters import SYSTEM_PROMPT, TOOL_DESCRIPTION, AdapterConfig, lookup


class AgentnbAdapter:
    def __init__(self, cfg: AdapterConfig):
        self.home = tempfile.mkdtemp(prefix="agentnb-bench-")
        os.environ["AGENTNB_HOME"] = self.home
        os.environ["AGENTNB_TRACE"] = "1" if cfg.options.get("trace", True) else "0"
        import agentnb as anb
        from agentnb.core import resolve
        from agentnb.governance import Policy
        from agentnb.models.openai import OpenAIModel

        settings = resolve()
        # An explicit price so the budget's USD reservation path runs as it would in production.
        self.model = OpenAIModel(cfg.model, base_url=cfg.base_url, api_key=cfg.api_key,
                                 input_per_mtok=0.15, output_per_mtok=0.60)

        @anb.tool(effects={"read"}, name="lookup", description=TOOL_DESCRIPTION)
        async def lookup_tool(key: str) -> str:
            return lookup(key)

        budget = (anb.Budget(usd=1.0, tokens=1_000_000, model_calls=50, tool_calls=50, steps=100)
                  if cfg.options.get("budget", True) else None)
        self.agent = anb.Agent(model=self.model, instructions=SYSTEM_PROMPT, tools=[lookup_tool],
                               budget=budget, policy=Policy(allow={"read"}), name="bench",
                               settings=settings)

    async def run(self, task: str) -> str:
        result = await self.agent.arun(task)
        if result.status != "done":
            raise RuntimeError(f"run {result.run_id} {result.status}: {result.error}")
        return result.output

    async def drain(self) -> None:
        # Every span on disk is part of the measured work.
        from agentnb.tracing import aflush

        await aflush()

    async def aclose(self) -> None:
        await self.model.aclose()
        # The temp home (traces.db, audit log) is the benchmark's own: a run of run_all.sh
        # left some 100 MB of them in /tmp.
        from agentnb.runtime._checkpoint import run_store

        run_store(self.home).close()
        shutil.rmtree(self.home, ignore_errors=True)


async def create(cfg: AdapterConfig) -> AgentnbAdapter:
    return AgentnbAdapter(cfg)
