"""`"provider:model"` strings to `Model` instances.

Providers are imported lazily, on the first string that names them, so `import agentnb` stays
fast and a provider whose client is missing fails only when it is asked for. Built models are
cached per (string, relevant settings): a thousand agents on `"openai:gpt-4o-mini"` share one
client and its connection pool.
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING

from agentnb.core import ConfigError, Settings, resolve
from agentnb.models._base import Model

if TYPE_CHECKING:
    from collections.abc import Hashable

__all__ = ["clear_model_cache", "get_model", "known_providers"]

# provider -> (module, class name); `sim` is handled here, the others by their own module.
_PROVIDERS: dict[str, tuple[str, str]] = {
    "anthropic": ("agentnb.models.anthropic", "AnthropicModel"),
    "openai": ("agentnb.models.openai", "OpenAIModel"),
    "sim": ("agentnb.models.sim", "SimModel"),
}

# One model instance per key is the point of the cache (shared clients); the lock makes two
# threads asking for the same new string build it once.
_lock = threading.Lock()
_cache: dict[Hashable, Model] = {}


def known_providers() -> list[str]:
    """The providers a model string may name.

    Example:
        >>> known_providers()
        ['anthropic', 'openai', 'sim']
    """
    return sorted(_PROVIDERS)


def _bad(spec: object, why: str) -> ConfigError:
    return ConfigError(
        f"Bad model string {spec!r}: {why}.",
        source="model string",
        hint=f"Write 'provider:model' with a provider among {known_providers()}, "
        "e.g. 'sim:careful', 'openai:gpt-4o-mini' or 'anthropic:claude-sonnet-4-5'.",
    )


def get_model(spec: str | Model, *, settings: Settings | None = None) -> Model:
    """Turn a `"provider:model"` string into a model; a `Model` instance passes through.

    Args:
        spec: `"sim:<name>"`, `"openai:<model>"`, `"anthropic:<model>"`, or a model.
        settings: resolved settings (for `sim_latency`); resolved from the environment if None.

    Raises:
        ConfigError: a malformed string, an unknown provider or `sim:` name, or a provider
            whose client cannot be imported; the message names the value and what to do.

    Example:
        >>> m = get_model("sim:cheap")
        >>> m.info.id, get_model("sim:cheap") is m
        ('sim:cheap', True)
    """
    if not isinstance(spec, str):
        if isinstance(spec, Model):
            return spec
        msg = f"Expected a 'provider:model' string or a Model, got {type(spec).__name__} {spec!r}."
        raise ConfigError(msg, source="argument",
                          hint="Pass e.g. 'sim:careful' or an `OpenAIModel(...)` instance.")
    text = spec.strip()
    provider, sep, name = text.partition(":")
    provider, name = provider.strip().lower(), name.strip()
    if not text:
        raise _bad(spec, "it is empty")
    if not sep:
        raise _bad(spec, "it has no provider (no ':')")
    if provider not in _PROVIDERS:
        raise _bad(spec, f"unknown provider {provider!r}")
    if not name:
        raise _bad(spec, "the model name after ':' is empty")
    if provider == "sim":
        return _sim(spec, name, settings)
    key = (provider, name)
    with _lock:
        cached = _cache.get(key)
        if cached is None:
            cached = _cache[key] = _build(spec, provider, name)
    return cached


def _sim(spec: str, name: str, settings: Settings | None) -> Model:
    # sim.py is only loaded when a sim string is first used.
    from agentnb.models.sim import SimModel, list_sim

    names = [s.name for s in list_sim()]
    if name not in names:
        msg = f"Unknown sim model {spec!r}."
        raise ConfigError(msg, source="model string",
                          hint=f"Known sim models: {[f'sim:{n}' for n in names]}; or build "
                          "`SimModel(name, quality=..., input_per_mtok=..., ...)` yourself.")
    scale = (settings or resolve()).sim_latency
    key = ("sim", name, scale)
    with _lock:
        cached = _cache.get(key)
        if cached is None:
            cached = _cache[key] = SimModel(name, latency_scale=scale)
    return cached


def _build(spec: str, provider: str, name: str) -> Model:
    module_name, class_name = _PROVIDERS[provider]
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        msg = f"Cannot load the {provider!r} client for {spec!r}: {exc}."
        raise ConfigError(msg, source="model string",
                          hint="Reinstall agentnb (`pip install -U agentnb`), or pass a Model "
                          "instance instead of a string.") from exc
    return cls(name)


def clear_model_cache() -> None:
    """Forget the models built from strings (tests use this).

    Example:
        >>> clear_model_cache()
    """
    with _lock:
        _cache.clear()
