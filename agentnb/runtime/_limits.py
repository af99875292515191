"""Budget limits and the records a scope reports: `Budget`, `Spent`, `BudgetSnapshot`,
`Settlement`, and the value conversions they share with `_budget.py`'s hot path."""

from __future__ import annotations

import dataclasses
from decimal import Decimal, InvalidOperation
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

from agentnb.core import (
    ConfigError,
    UsageError,
)

__all__ = ["Budget", "BudgetSnapshot", "ScopeKind", "Settlement", "Spent"]

ScopeKind = Literal["run", "parent", "notebook", "batch", "scope"]
"""What a budget scope belongs to; `BudgetExceeded.scope` names the kind that refused."""

_KINDS: frozenset[str] = frozenset(get_args(ScopeKind))
_KEYS = ("usd", "tokens", "model_calls", "tool_calls", "steps", "retries")
_USD = 0
_IDX = range(6)
_ZERO = Decimal(0)

Amount = Decimal | int
"""One counter value: Decimal for `usd`, int for the others."""


def _to_usd(field: str, value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float, str)):
        msg = f"Budget {field}={value!r} must be US dollars, not {type(value).__name__}."
        raise ConfigError(msg, source="argument", hint=f"Pass e.g. `{field}=0.50`.")
    try:
        dec = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        msg = f"Budget {field}={value!r} is not a number of US dollars."
        raise ConfigError(msg, source="argument", hint=f"Pass e.g. `{field}=0.50`.") from None
    if not dec.is_finite() or dec < 0:
        msg = f"Budget {field}={value!r} must be a finite amount >= 0."
        raise ConfigError(msg, source="argument", hint=f"Pass `{field}=None` for no limit.")
    return dec


def _money(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        msg = f"A budget amount usd={value!r} must be a Decimal, not {type(value).__name__}."
        raise UsageError(msg, hint="Pass `Decimal(...)`.")
    return Decimal(str(value))


def _to_count(field: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"Budget {field}={value!r} must be a whole number, not {type(value).__name__}."
        raise ConfigError(msg, source="argument", hint=f"Pass e.g. `{field}=20`.")
    if value < 0:
        msg = f"Budget {field}={value!r} must be >= 0."
        raise ConfigError(msg, source="argument", hint=f"Pass `{field}=None` for no limit.")
    return value


def _to_seconds(field: str, value: object, *, allow_none: bool = True) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"Budget {field}={value!r} must be a number of seconds, not {type(value).__name__}."
        raise ConfigError(msg, source="argument", hint=f"Pass e.g. `{field}=120`.")
    if not float(value) >= 0:  # also refuses NaN
        msg = f"Budget {field}={value!r} must be >= 0."
        raise ConfigError(msg, source="argument")
    return float(value)


class Budget(BaseModel):
    """Hard limits for a run or a scope; `None` means no limit on that counter.

    Example:
        >>> b = Budget(usd=0.5, model_calls=20, wall_s=120)
        >>> b.usd, b.model_calls, b.tokens
        (Decimal('0.5'), 20, None)
        >>> Budget(steps=-1)
        Traceback (most recent call last):
        agentnb.core._errors.ConfigError: Budget steps=-1 must be >= 0. (from argument) ...
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    usd: Decimal | None = None
    """Money in US dollars (float, str and Decimal accepted; stored as Decimal)."""
    tokens: int | None = None
    """Input plus output tokens."""
    model_calls: int | None = None
    """Model requests sent."""
    tool_calls: int | None = None
    """Tool calls executed."""
    steps: int | None = None
    """Run steps (model turns and tool batches)."""
    retries: int | None = None
    """Retries: bad tool arguments, invalid structured output, failed attempts."""
    wall_s: float | None = None
    """Wall-clock seconds from the moment the scope opens."""
    wrap_up_at: float | None = 0.8
    """Fraction of any limit after which the model is asked to wrap up; None never asks."""

    def __init__(
        self,
        *,
        usd: Decimal | float | str | None = None,
        tokens: int | None = None,
        model_calls: int | None = None,
        tool_calls: int | None = None,
        steps: int | None = None,
        retries: int | None = None,
        wall_s: float | None = None,
        wrap_up_at: float | None = 0.8,
    ) -> None:
        wrap = _to_seconds("wrap_up_at", wrap_up_at)
        if wrap is not None and not 0 < wrap <= 1:
            msg = f"Budget wrap_up_at={wrap_up_at!r} must be a fraction in (0, 1]."
            raise ConfigError(msg, source="argument", hint="Pass e.g. `wrap_up_at=0.8`, or None.")
        super().__init__(
            usd=_to_usd("usd", usd),
            tokens=_to_count("tokens", tokens),
            model_calls=_to_count("model_calls", model_calls),
            tool_calls=_to_count("tool_calls", tool_calls),
            steps=_to_count("steps", steps),
            retries=_to_count("retries", retries),
            wall_s=_to_seconds("wall_s", wall_s),
            wrap_up_at=wrap,
        )

    def _counters(self) -> list[Amount | None]:
        return [self.usd, self.tokens, self.model_calls, self.tool_calls, self.steps, self.retries]


_UNLIMITED = Budget()


class Spent(BaseModel):
    """What a scope has spent (or holds reserved); prints as one line.

    Example:
        >>> print(Spent(usd=Decimal("0.0123"), tokens=900, model_calls=3))
        $0.012300, 900 tokens, 3 model calls, 0 tool calls, 0 steps
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    usd: Decimal = _ZERO
    """Priced spend in US dollars (unpriced calls are counted in `unpriced_calls`)."""
    tokens: int = 0
    """Input plus output tokens."""
    model_calls: int = 0
    """Model calls."""
    tool_calls: int = 0
    """Tool calls."""
    steps: int = 0
    """Steps."""
    retries: int = 0
    """Retries."""
    unpriced_calls: int = 0
    """Calls settled without a price: `usd` is a lower bound when this is not 0."""
    scope_name: str | None = None
    """The scope this was read from; None when no scope was open."""

    def __str__(self) -> str:
        usd = f"${self.usd:.6f}" + (f" (+{self.unpriced_calls} unpriced)"
                                   if self.unpriced_calls else "")
        text = (f"{usd}, {self.tokens} tokens, {self.model_calls} model calls, "
                f"{self.tool_calls} tool calls, {self.steps} steps")
        return text + (f", {self.retries} retries" if self.retries else "")


class BudgetSnapshot(BaseModel):
    """A JSON-able picture of one scope, for spans, checkpoints and budget meters.

    Example:
        >>> from agentnb.runtime import BudgetScope
        >>> s = BudgetScope(Budget(usd=1), name="nb", kind="notebook").snapshot()
        >>> s.kind, s.limits.usd, s.spent.usd, s.fraction_used
        ('notebook', Decimal('1'), Decimal('0'), 0.0)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    """The scope's name."""
    kind: str
    """The scope's kind (`run`, `notebook`, ...)."""
    parent: str | None
    """The parent scope's name."""
    limits: Budget
    """The scope's own limits."""
    spent: Spent
    """Settled spend."""
    reserved: Spent
    """Held by calls in flight."""
    remaining: dict[str, Decimal | int | float | None]
    """Effective remaining per limit (minimum over the chain); None when unlimited."""
    elapsed_s: float
    """Seconds since the scope opened."""
    fraction_used: float
    """The largest fraction of any limit used, over the chain."""
    closed: bool
    """True once `close()` was called."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Settlement:
    """What `Reservation.settle` found: whether usage ran past the reservation or a limit.

    Example:
        >>> from agentnb.runtime import BudgetScope
        >>> scope = BudgetScope(Budget(tokens=100))
        >>> scope.reserve(tokens=10).settle(tokens=30).overrun
        ('tokens',)
    """

    overrun: tuple[str, ...] = ()
    """Counters whose actual amount exceeded the reservation (the estimate was too low)."""
    over_limit: tuple[str, ...] = ()
    """`"scope_name.counter"` for every limit now exceeded; the next reservation will fail."""

    @property
    def ok(self) -> bool:
        """True when the actual usage stayed within the reservation and every limit."""
        return not self.overrun and not self.over_limit


_CLEAN = Settlement()
