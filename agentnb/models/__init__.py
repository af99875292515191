"""Layer 2: the `Model` protocol, provider clients, `sim:` and function models, routing, prices."""

from agentnb.models._base import (
    Choice,
    Model,
    ModelBase,
    ModelInfo,
    ModelResponse,
    ModelSettings,
    StreamEvent,
    estimate_tokens,
)
from agentnb.models.function import FunctionInfo, FunctionModel

__all__ = [
    "Choice",
    "estimate_tokens",
    "FunctionInfo",
    "FunctionModel",
    "Model",
    "ModelBase",
    "ModelInfo",
    "ModelResponse",
    "ModelSettings",
    "StreamEvent",
]
