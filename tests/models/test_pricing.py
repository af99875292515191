"""Prices: the genai-prices table, set_price overrides, unpriced models, the table stamp."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest

from agentnb.core import ConfigError
from agentnb.models._base import ModelInfo
from agentnb.models._pricing import (
    Price,
    _table_price,
    clear_prices,
    lookup_price,
    price_table_version,
    set_price,
)


@pytest.fixture(autouse=True)
def _no_overrides() -> Iterator[None]:
    """Start and end every test without overrides."""
    clear_prices()
    yield
    clear_prices()


def test_table_prices_known_models_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Known OpenAI and Anthropic models are priced from the bundled table without sockets."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pricing must not open sockets")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    _table_price.cache_clear()
    mini = lookup_price("openai", "gpt-4o-mini")
    assert mini is not None
    assert (mini.input_per_mtok, mini.output_per_mtok) == (Decimal("0.15"), Decimal("0.6"))
    assert mini.cached_input_per_mtok is not None
    assert mini.cached_input_per_mtok < mini.input_per_mtok
    sonnet = lookup_price("anthropic", "claude-sonnet-4-5")
    assert sonnet is not None
    assert sonnet.cache_write_per_mtok is not None
    assert sonnet.cache_write_per_mtok > sonnet.input_per_mtok
    assert sonnet.context_window is not None
    assert sonnet.context_window >= 200_000


def test_unpriced_models_give_none() -> None:
    """Unknown models and unknown providers are unpriced (None), never zero."""
    assert lookup_price("openai", "definitely-not-a-model-xyz") is None
    assert lookup_price("ollama", "llama3") is None


def test_set_price_overrides_the_table_and_new_models() -> None:
    """set_price wins over the table and prices models the table does not know."""
    set_price("openai:gpt-4o-mini", input_per_mtok=1, output_per_mtok="2.5")
    p = lookup_price("openai", "gpt-4o-mini")
    assert p == Price(input_per_mtok=Decimal(1), output_per_mtok=Decimal("2.5"))
    set_price("openai:my-vllm", input_per_mtok=0.1, output_per_mtok=0.2,
              cached_input_per_mtok=0.05)
    mine = lookup_price("openai", "my-vllm")
    assert mine is not None
    assert mine.input_per_mtok == Decimal("0.1")
    assert mine.cached_input_per_mtok == Decimal("0.05")
    clear_prices()
    again = lookup_price("openai", "gpt-4o-mini")
    assert again is not None
    assert again.input_per_mtok == Decimal("0.15")


def test_price_drives_model_info_cost() -> None:
    """A looked-up price gives the expected USD through ModelInfo.cost."""
    p = lookup_price("openai", "gpt-4o-mini")
    assert p is not None
    info = ModelInfo(provider="openai", name="gpt-4o-mini", input_per_mtok=p.input_per_mtok,
                     output_per_mtok=p.output_per_mtok)
    assert info.cost(input_tokens=1_000_000, output_tokens=1_000_000) == Decimal("0.75")


def test_set_price_rejects_bad_strings_and_negative_prices() -> None:
    """set_price needs 'provider:model' and non-negative prices; errors name the value."""
    with pytest.raises(ConfigError, match="'gpt-4o'"):
        set_price("gpt-4o", input_per_mtok=1, output_per_mtok=1)
    with pytest.raises(ConfigError, match="negative"):
        set_price("openai:x", input_per_mtok=-1, output_per_mtok=1)


def test_set_price_is_thread_safe() -> None:
    """Concurrent overrides from many threads all land and read back whole."""

    def work(i: int) -> None:
        set_price(f"openai:m{i}", input_per_mtok=i, output_per_mtok=2 * i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(32):
        p = lookup_price("openai", f"m{i}")
        assert p is not None
        assert p.output_per_mtok == 2 * p.input_per_mtok == 2 * i


def test_price_table_version_names_the_table_and_overrides() -> None:
    """The stamp names genai-prices and its version, and counts overrides."""
    from importlib.metadata import version

    stamp = price_table_version()
    assert stamp == f"genai-prices {version('genai-prices')}"
    set_price("anthropic:x", input_per_mtok=1, output_per_mtok=1)
    assert price_table_version() == f"{stamp} + 1 override(s)"
