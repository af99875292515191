"""Model strings: parsing, sim names, lazy providers, errors and the instance cache."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from agentnb.core import ConfigError, resolve
from agentnb.models._registry import clear_model_cache, get_model, known_providers
from agentnb.models.function import FunctionModel
from agentnb.models.sim import SimModel, list_sim


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Every test starts with no cached models."""
    clear_model_cache()
    yield
    clear_model_cache()


def test_sim_strings_build_sim_models_with_latency_from_settings() -> None:
    """'sim:<name>' builds that sim model; latency scale comes from resolved settings."""
    for spec in list_sim():
        model = get_model(spec.id)
        assert isinstance(model, SimModel)
        assert model.info.id == spec.id
        assert model.latency_scale == 0.0  # AGENTNB_SIM_LATENCY=0 in conftest
    slow = get_model("sim:cheap", settings=resolve(sim_latency=2.0))
    assert isinstance(slow, SimModel)
    assert slow.latency_scale == 2.0


def test_models_are_cached_per_string_and_settings() -> None:
    """The same string and settings give the same instance; other settings another one."""
    assert get_model("sim:careful") is get_model(" sim:careful ")
    assert get_model("sim:careful") is not get_model("sim:careful",
                                                     settings=resolve(sim_latency=3.0))


def test_model_instances_pass_through() -> None:
    """A Model instance is returned unchanged."""
    fm = FunctionModel(lambda messages, info: "x")
    assert get_model(fm) is fm


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [("", "empty"), ("careful", "no provider"), ("foo:bar", "unknown provider 'foo'"),
     ("openai:", "empty"), ("sim:genius", "Unknown sim model")],
)
def test_bad_strings_are_config_errors_naming_the_value(spec: str, fragment: str) -> None:
    """Bad model strings raise ConfigError naming the value and what to write instead."""
    with pytest.raises(ConfigError) as info:
        get_model(spec)
    err = info.value
    assert repr(spec) in err.message
    assert fragment in err.message
    assert err.hint
    assert ("sim:careful" in err.hint or "sim:cheap" in err.hint)


def test_provider_list_is_in_the_hint() -> None:
    """The hint for an unknown provider lists the known providers."""
    with pytest.raises(ConfigError) as info:
        get_model("foo:bar")
    assert str(known_providers()) in (info.value.hint or "")


def test_non_string_non_model_is_a_config_error() -> None:
    """Passing something that is neither a string nor a Model is refused."""
    with pytest.raises(ConfigError, match="42"):
        get_model(42)  # type: ignore[arg-type]


def test_missing_provider_module_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider whose client cannot be imported raises ConfigError, not ImportError."""
    monkeypatch.setitem(sys.modules, "agentnb.models.anthropic", None)
    with pytest.raises(ConfigError, match="anthropic:claude-x"):
        get_model("anthropic:claude-x")


def test_provider_strings_build_their_client_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    """'openai:<model>' imports the provider module on demand and caches the instance."""
    import types

    built: list[str] = []

    class FakeOpenAI(FunctionModel):
        def __init__(self, name: str) -> None:
            built.append(name)
            super().__init__(lambda messages, info: "hi", name=name)

    fake = types.ModuleType("agentnb.models.openai")
    fake.OpenAIModel = FakeOpenAI  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "agentnb.models.openai", fake)
    first = get_model("openai:gpt-4o-mini")
    assert get_model("openai:gpt-4o-mini") is first
    assert built == ["gpt-4o-mini"]
