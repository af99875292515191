"""The public test kit: scripted models and loopback fake provider servers.

Users test their own agents with these; library code never imports this package.
"""

from agentnb.models import FunctionInfo, FunctionModel
from agentnb.testing._server import LoopbackServer, RecordedRequest, Reply
from agentnb.testing.anthropic_server import AnthropicError, AnthropicTurn, FakeAnthropicServer
from agentnb.testing.openai_server import FakeOpenAIServer, OpenAIToolCall, OpenAITurn

__all__ = [
    "AnthropicError",
    "AnthropicTurn",
    "FakeAnthropicServer",
    "FakeOpenAIServer",
    "FunctionInfo",
    "FunctionModel",
    "LoopbackServer",
    "OpenAIToolCall",
    "OpenAITurn",
    "RecordedRequest",
    "Reply",
]
