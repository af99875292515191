"""Usage: tokens, calls and money, and their arithmetic.

Money is `Decimal` USD. An unpriced call has `usd=None`, and anything added to an unknown cost is
unknown: a total is never silently too low.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = ["Usage", "to_usd"]


def to_usd(value: Decimal | float | int | str | None) -> Decimal | None:
    """Convert a money amount to `Decimal` USD, going through `str` for floats.

    Example:
        >>> to_usd(0.1)
        Decimal('0.1')
    """
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value))


class Usage(BaseModel):
    """What a call, a step or a run consumed.

    Example:
        >>> from decimal import Decimal
        >>> a = Usage(input_tokens=10, output_tokens=5, model_calls=1, usd=Decimal("0.001"))
        >>> (a + a).total_tokens, (a + a).usd
        (30, Decimal('0.002'))
        >>> (a + Usage(model_calls=1, usd=None)).usd is None
        True
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    input_tokens: int = 0
    """Prompt tokens, including cached ones."""
    output_tokens: int = 0
    """Completion tokens, including reasoning ones."""
    cached_tokens: int = 0
    """Prompt tokens read from the provider's cache."""
    cache_write_tokens: int = 0
    """Prompt tokens written to the provider's cache."""
    reasoning_tokens: int = 0
    """Output tokens spent on reasoning."""
    model_calls: int = 0
    """Model requests that were sent and answered."""
    tool_calls: int = 0
    """Tool calls executed."""
    usd: Decimal | None = Decimal(0)
    """Cost in USD; None when any part of it is unpriced."""

    @field_validator("usd", mode="before")
    @classmethod
    def _coerce_usd(cls, v: Any) -> Any:
        return to_usd(v) if isinstance(v, (float, int, str)) else v

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        usd = None if self.usd is None or other.usd is None else self.usd + other.usd
        # Every field replaced in a copy: the sums are of their types already, and a copy is
        # cheaper than validating them again or `model_construct` (pydantic 2.14).
        return self.model_copy(update={
            "input_tokens": self.input_tokens + other.input_tokens,
            "output_tokens": self.output_tokens + other.output_tokens,
            "cached_tokens": self.cached_tokens + other.cached_tokens,
            "cache_write_tokens": self.cache_write_tokens + other.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens + other.reasoning_tokens,
            "model_calls": self.model_calls + other.model_calls,
            "tool_calls": self.tool_calls + other.tool_calls,
            "usd": usd,
        })

    def json_dict(self) -> dict[str, Any]:
        """`model_dump(mode="json")`, made by hand: a checkpoint dumps usages at every step,
        and this is a quarter of pydantic's cost for so small a model.

        Example:
            >>> Usage(input_tokens=3, usd=0.5).json_dict() == Usage(
            ...     input_tokens=3, usd=0.5).model_dump(mode="json")
            True
        """
        usd = self.usd
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cached_tokens": self.cached_tokens, "cache_write_tokens": self.cache_write_tokens,
                "reasoning_tokens": self.reasoning_tokens, "model_calls": self.model_calls,
                "tool_calls": self.tool_calls, "usd": None if usd is None else str(usd)}

    def __str__(self) -> str:
        usd = "unpriced" if self.usd is None else f"${self.usd:.6f}"
        return (f"{self.input_tokens} in / {self.output_tokens} out tokens, "
                f"{self.model_calls} model calls, {self.tool_calls} tool calls, {usd}")
