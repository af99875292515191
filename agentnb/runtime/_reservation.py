"""`Reservation`: an amount held in a budget scope chain until settled or released.

Split from `_budget` (which makes them: `BudgetScope.reserve`); it reaches into the scope's
counters under the scope's lock, as the scope does.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from agentnb.core import UNSET, Unset, Usage, UsageError
from agentnb.runtime._limits import _CLEAN, _IDX, _KEYS, _USD, _ZERO, Amount, Settlement, _money

if TYPE_CHECKING:
    from types import TracebackType

    from agentnb.runtime._budget import BudgetScope

__all__ = ["Reservation"]


class Reservation:
    """An amount held in a scope chain until `settle` (actual usage) or `release` (unused).

    Also a context manager (sync and async) that releases it when it was not settled; settle
    before leaving whenever the call was sent, since a sent call may be paid.

    Example:
        >>> from agentnb.runtime import Budget, BudgetScope
        >>> scope = BudgetScope(Budget(usd=1))
        >>> r = scope.reserve(usd=Decimal("0.3"))
        >>> scope.remaining()["usd"]
        Decimal('0.7')
        >>> r.release()
        True
        >>> scope.remaining()["usd"] == 1
        True
    """

    __slots__ = ("_amounts", "_nz", "_scope", "_state", "_unpriced")

    def __init__(self, scope: BudgetScope, amounts: list[Amount], nz: list[int], *,
                 unpriced: bool) -> None:
        self._scope = scope
        self._amounts = amounts
        self._nz = nz
        self._unpriced = unpriced
        self._state: Literal["open", "settled", "released"] = "open"

    def __repr__(self) -> str:
        held = {k: v for k, v in zip(_KEYS, self._amounts, strict=True) if v}
        return f"<Reservation {self._state} {held!r} in {self._scope.name!r}>"

    @property
    def scope(self) -> BudgetScope:
        """The scope it was taken from."""
        return self._scope

    @property
    def state(self) -> Literal["open", "settled", "released"]:
        """`open` until settled or released."""
        return self._state

    @property
    def usd(self) -> Decimal | None:
        """The USD held; None for an unpriced call."""
        return None if self._unpriced else self._amounts[_USD]  # type: ignore[return-value]

    def amounts(self) -> dict[str, Amount]:
        """Every counter held, by name."""
        return dict(zip(_KEYS, self._amounts, strict=True))

    def settle(self, *, usd: Decimal | Unset | None = UNSET, tokens: int | Unset = UNSET,
               model_calls: int | Unset = UNSET, tool_calls: int | Unset = UNSET,
               steps: int | Unset = UNSET, retries: int | Unset = UNSET) -> Settlement:
        """Replace the reservation by the actual amounts, up the chain.

        A counter not given settles at the reserved amount. `usd=None` means the cost is
        unknown: under a USD limit the reserved amount is charged (the limit must hold).

        Returns:
            A `Settlement`; `ok` is False when usage ran past the reservation or a limit. The
            spend is recorded either way, and the next reservation there will be refused.

        Raises:
            UsageError: it was already settled or released.

        Example:
            >>> from agentnb.runtime import Budget, BudgetScope
            >>> scope = BudgetScope(Budget(usd=1))
            >>> scope.reserve(usd=Decimal("0.5"), tokens=100).settle(usd=Decimal("0.2")).ok
            True
            >>> print(scope.spent_summary())
            $0.200000, 100 tokens, 0 model calls, 0 tool calls, 0 steps
        """
        held = self._amounts
        scope = self._scope
        unpriced = usd is None or (self._unpriced and usd is UNSET)
        cost: Amount
        if isinstance(usd, Unset) or usd is None:
            # Unknown cost: under a USD limit charge what was held, since the limit must hold.
            cost = held[0] if usd is UNSET or scope._usd_limited else _ZERO
        else:
            cost = usd if usd.__class__ is Decimal else _money(usd)
        actual: list[Amount] = [
            cost,
            held[1] if tokens is UNSET else tokens,
            held[2] if model_calls is UNSET else model_calls,
            held[3] if tool_calls is UNSET else tool_calls,
            held[4] if steps is UNSET else steps,
            held[5] if retries is UNSET else retries,
        ]
        moved = [(i, held[i], actual[i]) for i in _IDX if held[i] or actual[i]]
        if (cost < 0 or actual[1] < 0 or actual[2] < 0 or actual[3] < 0 or actual[4] < 0
                or actual[5] < 0):
            msg = f"Cannot settle a negative amount: {dict(zip(_KEYS, actual, strict=True))!r}."
            raise UsageError(msg)
        over_limit: list[str] = []
        with scope._lock:
            if self._state != "open":
                raise self._done_error()
            self._state = "settled"
            for s in scope._chain:
                sp, rs = s._spent, s._reserved
                for i, h, act in moved:
                    rs[i] -= h
                    sp[i] += act
                if unpriced:
                    s._unpriced += 1
            overrun = [i for i, h, act in moved if act > h]
            if overrun:
                for s in scope._chain:
                    for i, lim in s._checks:
                        if s._spent[i] + s._reserved[i] > lim:
                            over_limit.append(f"{s.name}.{_KEYS[i]}")
        if not overrun:
            return _CLEAN
        return Settlement(overrun=tuple(_KEYS[i] for i in overrun), over_limit=tuple(over_limit))

    def settle_usage(self, usage: Usage, *, tool_calls: int | Unset = UNSET,
                     steps: int | Unset = UNSET, retries: int | Unset = UNSET) -> Settlement:
        """Settle with a model call's `Usage` (tokens = input + output; usd None if unpriced).

        Example:
            >>> from agentnb.runtime import BudgetScope
            >>> scope = BudgetScope()
            >>> r = scope.reserve(tokens=100, model_calls=1)
            >>> r.settle_usage(Usage(input_tokens=40, output_tokens=10, model_calls=1)).ok
            True
            >>> scope.spent_summary().tokens
            50
        """
        return self.settle(usd=usage.usd, tokens=usage.total_tokens,
                           model_calls=usage.model_calls, tool_calls=tool_calls,
                           steps=steps, retries=retries)

    def release(self) -> bool:
        """Give the reservation back unused (the call was not sent); True if it was open.

        Example:
            >>> from agentnb.runtime import BudgetScope
            >>> r = BudgetScope().reserve(tokens=5)
            >>> r.release(), r.release()
            (True, False)
        """
        scope = self._scope
        held = self._amounts
        with scope._lock:
            if self._state != "open":
                return False
            self._state = "released"
            for s in scope._chain:
                rs = s._reserved
                for i in self._nz:
                    rs[i] -= held[i]
        return True

    def _done_error(self) -> UsageError:
        msg = f"This reservation in scope {self._scope.name!r} was already {self._state}."
        return UsageError(msg, hint="Settle or release each reservation exactly once.")

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    async def __aenter__(self) -> Reservation:
        return self

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.release()
