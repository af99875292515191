"""agentnb's model layer alone (``OpenAIModel.request`` in a hand-written tool loop).

Not a peer row: it separates what agentnb's HTTP and message layer costs from what the
runtime (checkpoints, spans, budget, policy, audit) adds on top, for profiling.
"""
from __future__ import annotations

import json

from adapters import SYSTEM_PROMPT, TOOL_DESCRIPTION, AdapterConfig, lookup


class ModelOnlyAdapter:
    def __init__(self, cfg: AdapterConfig):
        from agentnb.core import Message, ToolDefinition, ToolResultPart
        from agentnb.models.openai import OpenAIModel

        self.Message, self.ToolResultPart = Message, ToolResultPart
        self.model = OpenAIModel(cfg.model, base_url=cfg.base_url, api_key=cfg.api_key)
        self.tools = [ToolDefinition(name="lookup", description=TOOL_DESCRIPTION, parameters={
            "type": "object", "properties": {"key": {"type": "string"}},
            "required": ["key"], "additionalProperties": False})]

    async def run(self, task: str) -> str:
        M = self.Message
        messages = [M.system(SYSTEM_PROMPT), M.user(task)]
        for _ in range(64):
            r = await self.model.request(messages, tools=self.tools)
            msg = r.message()
            calls = msg.tool_calls
            if not calls:
                return msg.text
            messages.append(msg)
            messages.append(M.tool_results(*(
                self.ToolResultPart(call_id=c.id, name=c.name, content=lookup(**json.loads(c.arguments)))
                for c in calls)))
        raise RuntimeError("too many steps")

    async def aclose(self) -> None:
        await self.model.aclose()


async def create(cfg: AdapterConfig) -> ModelOnlyAdapter:
    return ModelOnlyAdapter(cfg)
