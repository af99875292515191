"""Layer 2: the `Model` protocol, provider clients, `sim:` and function models, routing, prices.

The OpenAI-compatible and Anthropic clients load on first use (`anb.models.OpenAIModel`), so
`import agentnb.models` does not import httpx.
"""

from __future__ import annotations

import importlib
from typing import Any as _Any

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
from agentnb.models._http import observe_retries
from agentnb.models._pricing import (
    Price,
    clear_prices,
    lookup_price,
    price_table_version,
    set_price,
)
from agentnb.models._registry import clear_model_cache, get_model, known_providers
from agentnb.models._router import Fallback, Router
from agentnb.models.function import FunctionInfo, FunctionModel
from agentnb.models.sim import SimModel, SimSpec, list_sim

_LAZY = {"AnthropicModel": "agentnb.models.anthropic", "OpenAIModel": "agentnb.models.openai"}

__all__ = [
    "AnthropicModel",
    "Choice",
    "clear_model_cache",
    "clear_prices",
    "estimate_tokens",
    "Fallback",
    "FunctionInfo",
    "FunctionModel",
    "get_model",
    "known_providers",
    "list_sim",
    "lookup_price",
    "Model",
    "ModelBase",
    "ModelInfo",
    "ModelResponse",
    "ModelSettings",
    "observe_retries",
    "OpenAIModel",
    "Price",
    "price_table_version",
    "Router",
    "set_price",
    "SimModel",
    "SimSpec",
    "StreamEvent",
]


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    msg = f"module 'agentnb.models' has no attribute {name!r}"
    raise AttributeError(msg)
