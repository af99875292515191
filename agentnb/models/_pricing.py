"""Model prices: the maintained `genai-prices` table, with `set_price` overrides on top.

We use `genai-prices` (pydantic's table, updated with every release) rather than a hand-kept
table. It is imported lazily, on the first lookup, because loading its data takes a while. Its
bundled snapshot is read offline; the package can also fetch fresh prices (`UpdatePrices`), and
agentnb never starts that, so a lookup never touches the network. A user who starts it
themselves gets the fresher table, and `price_table_version()` says so.

`sim:` and `function:` models state their own prices and never come here.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from datetime import UTC, datetime
from decimal import Decimal

from agentnb.core import ConfigError, to_usd

__all__ = ["Price", "lookup_price", "price_table_version", "set_price"]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Price:
    """What a model costs, in USD per million tokens.

    Example:
        >>> p = Price(input_per_mtok=Decimal("1"), output_per_mtok=Decimal("4"))
        >>> p.output_per_mtok
        Decimal('4')
    """

    input_per_mtok: Decimal
    """USD per million input tokens."""
    output_per_mtok: Decimal
    """USD per million output tokens."""
    cached_input_per_mtok: Decimal | None = None
    """USD per million cache-read input tokens; None means the input price."""
    cache_write_per_mtok: Decimal | None = None
    """USD per million cache-write input tokens; None means the input price."""
    context_window: int | None = None
    """Maximum input + output tokens, when the table knows it."""


# Our provider names -> genai-prices provider ids.
_PROVIDER_IDS = {"openai": "openai", "anthropic": "anthropic"}

# Overrides are read by every model call and written from notebook cells, possibly while a batch
# runs on other threads; the lock keeps each override's fields and the cache clear atomic.
_lock = threading.Lock()
_overrides: dict[str, Price] = {}


def set_price(
    model: str,
    *,
    input_per_mtok: Decimal | float | str,
    output_per_mtok: Decimal | float | str,
    cached_input_per_mtok: Decimal | float | str | None = None,
    cache_write_per_mtok: Decimal | float | str | None = None,
    context_window: int | None = None,
) -> Price:
    """Set the price of `"provider:model"`; it wins over the table from now on.

    Raises:
        ConfigError: `model` is not a `"provider:model"` string, or a price is negative.

    Example:
        >>> set_price("openai:my-finetune", input_per_mtok=2, output_per_mtok=8).input_per_mtok
        Decimal('2')
        >>> lookup_price("openai", "my-finetune").output_per_mtok
        Decimal('8')
    """
    provider, sep, name = model.partition(":")
    if not sep or not provider or not name:
        msg = f"set_price needs a 'provider:model' string, got {model!r}."
        raise ConfigError(msg, source="argument", hint="For example `set_price('openai:gpt-4o', "
                          "input_per_mtok=2.5, output_per_mtok=10)`.")
    values = {k: to_usd(v) for k, v in (
        ("input_per_mtok", input_per_mtok), ("output_per_mtok", output_per_mtok),
        ("cached_input_per_mtok", cached_input_per_mtok),
        ("cache_write_per_mtok", cache_write_per_mtok))}
    for key, value in values.items():
        if value is not None and value < 0:
            msg = f"Price {key}={value!r} for {model!r} is negative."
            raise ConfigError(msg, source="argument", hint="Prices are USD per million tokens.")
    price = Price(
        input_per_mtok=values["input_per_mtok"] or Decimal(0),
        output_per_mtok=values["output_per_mtok"] or Decimal(0),
        cached_input_per_mtok=values["cached_input_per_mtok"],
        cache_write_per_mtok=values["cache_write_per_mtok"],
        context_window=context_window,
    )
    with _lock:
        _overrides[f"{provider.lower()}:{name}"] = price
    return price


def clear_prices() -> None:
    """Forget every `set_price` override (tests use this).

    Example:
        >>> clear_prices()
    """
    with _lock:
        _overrides.clear()


def lookup_price(provider: str, model: str) -> Price | None:
    """The price of a model: a `set_price` override, else the table, else None (unpriced).

    Example:
        >>> lookup_price("openai", "gpt-4o-mini").input_per_mtok
        Decimal('0.15')
        >>> lookup_price("openai", "no-such-model-xyz") is None
        True
    """
    with _lock:
        override = _overrides.get(f"{provider.lower()}:{model}")
    if override is not None:
        return override
    return _table_price(provider.lower(), model)


@functools.lru_cache(maxsize=512)
def _table_price(provider: str, model: str) -> Price | None:
    provider_id = _PROVIDER_IDS.get(provider)
    if provider_id is None:
        return None
    from genai_prices import data_snapshot, types

    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(model, None, provider_id, None)
    except LookupError:
        return None
    prices = info.get_prices(datetime.now(tz=UTC))
    tiered: type = types.TieredPrices

    def base(key: str) -> Decimal | None:
        value = getattr(prices, key, None)
        # Tiered prices (long-context surcharges) start at their base rate; the tier applies
        # only past e.g. 200k input tokens, which agentnb's estimate does not model.
        if isinstance(value, tiered):
            return getattr(value, "base", None)
        return value if isinstance(value, Decimal) else None

    input_price, output_price = base("input_mtok"), base("output_mtok")
    if input_price is None or output_price is None:
        return None
    return Price(input_per_mtok=input_price, output_per_mtok=output_price,
                 cached_input_per_mtok=base("cache_read_mtok"),
                 cache_write_per_mtok=base("cache_write_mtok"),
                 context_window=info.context_window)


def price_table_version() -> str:
    """Identify the price table in use, for stamping evaluation results.

    Example:
        >>> price_table_version().startswith("genai-prices ")
        True
    """
    import genai_prices
    from genai_prices import data_snapshot

    stamp = f"genai-prices {genai_prices.__version__}"
    snapshot = data_snapshot.get_snapshot()
    if snapshot.from_auto_update:
        stamp += f" (updated {snapshot.timestamp:%Y-%m-%dT%H:%M})"
    with _lock:
        if _overrides:
            stamp += f" + {len(_overrides)} override(s)"
    return stamp
