"""Hard budgets (DESIGN invariant 1): limits, atomic reserve/settle up a tree of scopes.

A `BudgetScope` is a node in a tree: a notebook scope (`with anb.budget(...)`) holds runs, a run
holds its delegates' runs. Before a model call is sent the runtime *reserves* its worst case on
the run's scope; the reservation is checked against this scope **and every ancestor** under one
lock, and either lands everywhere or nowhere. After the call the reservation is *settled* with
the actual usage (or *released* when nothing was sent). So, for every scope and every limit,
`spent + reserved <= limit` holds whenever actual usage stays within what was reserved.

Accounting choices:
- `BudgetExceeded.spent` is the *settled* spend of the refusing scope; money reserved by calls
  still in flight is reported separately (`.reserved`, and in the message).
- An actual cost above the reservation is recorded anyway (the money is gone) and reported by
  `Settlement.overrun`; the next reservation in that scope is then refused.
- An unpriced call (`usd=None`) is refused by `reserve` when any scope in the chain has a USD
  limit; otherwise only its tokens and calls count and `Spent.unpriced_calls` says so.
- A child's effective limits are never above its ancestors' remaining: every check walks the
  chain, and `remaining()` is the minimum over it.
- `grant()` carves an *allotment*: the parent reserves the slice at once, the child spends it on
  its own lock (no round trip to the parent per call), and `close()` settles the slice with what
  the child used and returns the rest (DESIGN "Budgets cross machines as allotments").

The hot path (`reserve` / `settle`) uses plain ints and Decimals in lists, no pydantic.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

from agentnb.core import (
    BudgetExceeded,
    ConfigError,
    UsageError,
    WallTimeExceeded,
)
from agentnb.runtime._limits import (
    _CLEAN,
    _IDX,
    _KEYS,
    _KINDS,
    _UNLIMITED,
    _USD,
    _ZERO,
    Amount,
    Budget,
    BudgetSnapshot,
    ScopeKind,
    Settlement,
    Spent,
    _money,
)
from agentnb.runtime._reservation import Reservation

__all__ = [
    "Budget",
    "BudgetScope",
    "BudgetSnapshot",
    "Reservation",
    "ScopeKind",
    "Settlement",
    "Spent",
]


_COUNTS = range(1, 6)
"""The counters besides USD: tokens, model calls, tool calls, steps, retries."""


class BudgetScope:
    """A node in the budget tree with atomic reservations checked up the whole chain.

    Thread-safety: every scope of one tree shares the root's `threading.Lock`. It protects the
    invariant "for each scope and limit, `spent + reserved <= limit` after every successful
    reservation": the check over the chain and the update of every counter happen under it, so
    concurrent asyncio tasks and threads cannot both pass a check for the same headroom. It is
    never held across an `await` or I/O. Separate trees (and granted allotments) have separate
    locks, so there is no global lock per call.

    Example:
        >>> nb = BudgetScope(Budget(usd="1.00"), name="notebook", kind="notebook")
        >>> run = nb.child("run-1", "run", Budget(usd=5))
        >>> r = run.reserve(usd=Decimal("0.40"), tokens=1200, model_calls=1)
        >>> r.settle(usd=Decimal("0.25"), tokens=900).ok
        True
        >>> nb.remaining()["usd"], run.remaining()["usd"]
        (Decimal('0.75'), Decimal('0.75'))
    """

    __slots__ = ("__weakref__", "_chain", "_checks", "_closed", "_grant", "_lock", "_reserved",
                 "_spent", "_started", "_unpriced", "_usd_limited", "_walls", "kind", "limits",
                 "name", "parent")

    def __init__(self, limits: Budget | None = None, *, name: str = "scope",
                 kind: ScopeKind = "scope", parent: BudgetScope | None = None,
                 _isolated: bool = False) -> None:
        if kind not in _KINDS:
            msg = f"Budget scope kind {kind!r} is not one of {sorted(_KINDS)!r}."
            raise ConfigError(msg, source="argument")
        if limits is not None and not isinstance(limits, Budget):
            msg = f"Budget scope limits must be a `Budget`, not {type(limits).__name__}."
            raise UsageError(msg, hint="Pass `Budget(usd=..., ...)`.")
        self.name = name
        """The scope's name (a run id, `"notebook"`, a job id)."""
        self.kind: ScopeKind = kind
        """What the scope belongs to."""
        self.limits = limits or _UNLIMITED
        """The scope's own limits (the effective ones also depend on the ancestors)."""
        self.parent = parent
        """The enclosing scope, or None for a root."""
        self._lock: threading.Lock = (
            threading.Lock() if parent is None or _isolated else parent._lock)
        chain: tuple[BudgetScope, ...] = (self,)
        if parent is not None and not _isolated:
            chain += parent._chain
        self._chain = chain
        self._checks: tuple[tuple[int, Amount], ...] = tuple(
            (i, v) for i, v in enumerate(self.limits._counters()) if v is not None)
        self._usd_limited = any(s.limits.usd is not None for s in chain)
        self._walls = tuple(s for s in chain if s.limits.wall_s is not None)
        self._spent: list[Amount] = [_ZERO, 0, 0, 0, 0, 0]
        self._reserved: list[Amount] = [_ZERO, 0, 0, 0, 0, 0]
        self._unpriced = 0
        self._started = time.monotonic()
        self._closed = False
        self._grant: Reservation | None = None

    def __repr__(self) -> str:
        return f"<BudgetScope {self.kind} {self.name!r} spent {self.spent_summary()}>"

    # -- the hot path ------------------------------------------------------------------------

    def reserve(self, *, usd: Decimal | None = _ZERO, tokens: int = 0, model_calls: int = 0,
                tool_calls: int = 0, steps: int = 0, retries: int = 0) -> Reservation:
        """Hold an amount in this scope and every ancestor, or raise and hold nothing.

        Args:
            usd: The worst-case cost; None for an unpriced call (counts tokens only).
            tokens: Worst-case input plus output tokens.
            model_calls: Model calls about to be sent.
            tool_calls: Tool calls about to run.
            steps: Steps about to start.
            retries: Retries about to happen.

        Raises:
            BudgetExceeded: some scope in the chain would pass a limit.
            WallTimeExceeded: some scope in the chain ran past its `wall_s`.
            UsageError: an unpriced call under a USD limit, a negative amount, a closed scope.

        Example:
            >>> scope = BudgetScope(Budget(model_calls=1))
            >>> with scope.reserve(model_calls=1):
            ...     pass
            >>> scope.remaining()["model_calls"]
            1
        """
        unpriced = usd is None
        if unpriced:
            if self._usd_limited:
                raise self._unpriced_error()
            usd = _ZERO
        elif usd.__class__ is not Decimal:
            usd = _money(usd)
        amounts: list[Amount] = [usd, tokens, model_calls, tool_calls, steps, retries]
        nz = [i for i in _IDX if amounts[i]]
        if (usd < 0 or tokens < 0 or model_calls < 0 or tool_calls < 0 or steps < 0
                or retries < 0):
            msg = f"Cannot reserve a negative amount: {dict(zip(_KEYS, amounts, strict=True))!r}."
            raise UsageError(msg)
        with self._lock:
            self._admit(amounts)
            for s in self._chain:
                rs = s._reserved
                for i in nz:
                    rs[i] += amounts[i]
        return Reservation(self, amounts, nz, unpriced=unpriced)

    def _admit(self, amounts: list[Amount]) -> None:
        """Raise unless `amounts` fit in every scope of the chain (the lock is held)."""
        if self._closed:
            raise self._closed_error()
        if self._walls:
            now = time.monotonic()
            for s in self._walls:
                elapsed = now - s._started
                if elapsed > s.limits.wall_s:  # type: ignore[operator]
                    raise _wall_error(s, elapsed)
        for s in self._chain:
            sp, rs = s._spent, s._reserved
            for i, lim in s._checks:
                if sp[i] + rs[i] + amounts[i] > lim:
                    raise _exceeded(s, i, lim, amounts[i])

    def consume(self, *, tokens: int = 0, model_calls: int = 0, tool_calls: int = 0,
                steps: int = 0, retries: int = 0, usd: Decimal | None = _ZERO) -> Settlement:
        """Check and record an amount at once (a step, a tool call, a retry).

        Example:
            >>> scope = BudgetScope(Budget(steps=1))
            >>> scope.consume(steps=1).ok
            True
        """
        if usd is not _ZERO or tokens < 0 or model_calls < 0 or tool_calls < 0 or steps < 0 \
                or retries < 0:
            return self.reserve(usd=usd, tokens=tokens, model_calls=model_calls,
                                tool_calls=tool_calls, steps=steps, retries=retries).settle()
        # Counts only (a step, a tool call, a retry): checked and recorded under one lock,
        # with no reservation in between (what reserve-then-settle would leave, in half).
        amounts: list[Amount] = [_ZERO, tokens, model_calls, tool_calls, steps, retries]
        with self._lock:
            self._admit(amounts)
            for s in self._chain:
                sp = s._spent
                for i in _COUNTS:
                    if amounts[i]:
                        sp[i] += amounts[i]
        return _CLEAN

    def charge(self, *, usd: Decimal | None = _ZERO, tokens: int = 0, model_calls: int = 0,
               tool_calls: int = 0, steps: int = 0, retries: int = 0) -> Settlement:
        """Record spend that already happened, without a check (e.g. restored from a checkpoint).

        Example:
            >>> scope = BudgetScope(Budget(usd=1))
            >>> scope.charge(usd=Decimal(2)).over_limit
            ('scope.usd',)
        """
        zero = Reservation(self, [_ZERO, 0, 0, 0, 0, 0], [], unpriced=False)
        return zero.settle(usd=usd, tokens=tokens, model_calls=model_calls,
                           tool_calls=tool_calls, steps=steps, retries=retries)

    def check_wall(self) -> None:
        """Raise `WallTimeExceeded` when this scope or an ancestor ran past its `wall_s`.

        Example:
            >>> BudgetScope(Budget(wall_s=60)).check_wall()
        """
        now = time.monotonic()
        for s in self._walls:
            elapsed = now - s._started
            if elapsed > s.limits.wall_s:  # type: ignore[operator]
                raise _wall_error(s, elapsed)

    # -- reading -----------------------------------------------------------------------------

    def elapsed_s(self) -> float:
        """Seconds since this scope opened."""
        return time.monotonic() - self._started

    def remaining(self) -> dict[str, Decimal | int | float | None]:
        """Effective headroom per limit: the minimum over this scope and its ancestors.

        Returns:
            `usd` (Decimal), `tokens`, `model_calls`, `tool_calls`, `steps`, `retries` (int)
            and `wall_s` (float seconds); None where nothing in the chain limits it.

        Example:
            >>> BudgetScope(Budget(tokens=10)).remaining()["tokens"]
            10
        """
        out: dict[str, Decimal | int | float | None] = dict.fromkeys(_KEYS)
        with self._lock:
            for s in self._chain:
                for i, lim in s._checks:
                    left = max(lim - s._spent[i] - s._reserved[i], 0)
                    key = _KEYS[i]
                    cur = out[key]
                    out[key] = left if cur is None else min(cur, left)  # type: ignore[type-var]
        now = time.monotonic()
        walls = [max(s.limits.wall_s - (now - s._started), 0.0)  # type: ignore[operator]
                 for s in self._walls]
        out["wall_s"] = min(walls) if walls else None
        return out

    def left(self, key: str) -> Decimal | int | float | None:
        """`remaining()[key]` for one limit, without building the whole dict.

        Raises:
            UsageError: `key` is not one of `remaining()`'s keys.

        Example:
            >>> scope = BudgetScope(Budget(usd=1, wall_s=60))
            >>> scope.left("usd"), scope.left("tokens"), scope.left("wall_s") > 59
            (Decimal('1'), None, True)
        """
        if key == "wall_s":
            if not self._walls:
                return None
            now = time.monotonic()
            return min(max(s.limits.wall_s - (now - s._started), 0.0)  # type: ignore[operator]
                       for s in self._walls)
        try:
            i = _KEYS.index(key)
        except ValueError:
            msg = f"Budget limit {key!r} is not one of {[*_KEYS, 'wall_s']!r}."
            raise UsageError(msg, hint="Use a key of `remaining()`.") from None
        out: Decimal | int | None = None
        with self._lock:
            for s in self._chain:
                for j, lim in s._checks:
                    if j == i:
                        left = max(lim - s._spent[i] - s._reserved[i], 0)
                        out = left if out is None or left < out else out
        return out

    def fraction_used(self) -> float:
        """The largest fraction of any limit used (spent + reserved, and wall time), over the chain.

        Example:
            >>> scope = BudgetScope(Budget(tokens=100, model_calls=10))
            >>> _ = scope.consume(tokens=50, model_calls=1)
            >>> scope.fraction_used()
            0.5
        """
        best = 0.0
        with self._lock:
            for s in self._chain:
                for i, lim in s._checks:
                    used = s._spent[i] + s._reserved[i]
                    frac = 1.0 if lim == 0 else float(used / lim)
                    best = max(best, frac)
        now = time.monotonic()
        for s in self._walls:
            wall = s.limits.wall_s or 0.0
            frac = 1.0 if wall == 0 else (now - s._started) / wall
            best = max(best, frac)
        return best

    def wrap_up_due(self) -> bool:
        """True when `fraction_used()` reached this scope's `Budget.wrap_up_at`.

        Example:
            >>> BudgetScope(Budget(tokens=10)).wrap_up_due()
            False
        """
        at = self.limits.wrap_up_at
        return at is not None and self.fraction_used() >= at

    def spent_summary(self) -> Spent:
        """Settled spend of this scope (children included).

        Example:
            >>> scope = BudgetScope()
            >>> _ = scope.consume(tool_calls=2)
            >>> scope.spent_summary().tool_calls
            2
        """
        with self._lock:
            return _summary(self._spent, self._unpriced, self.name)

    def model_calls_made(self) -> int:
        """Model calls settled or in flight in this scope, children included.

        Example:
            >>> scope = BudgetScope()
            >>> held = scope.reserve(model_calls=1)
            >>> scope.model_calls_made()
            1
        """
        with self._lock:
            return self._spent[2] + self._reserved[2]  # type: ignore[return-value]

    def reserved_summary(self) -> Spent:
        """What calls in flight hold in this scope."""
        with self._lock:
            return _summary(self._reserved, 0, self.name)

    def snapshot(self) -> BudgetSnapshot:
        """A JSON-able record of limits, spent and reserved.

        Example:
            >>> BudgetScope(name="x").snapshot().model_dump(mode="json")["spent"]["usd"]
            '0'
        """
        return BudgetSnapshot(
            name=self.name, kind=self.kind,
            parent=None if self.parent is None else self.parent.name,
            limits=self.limits, spent=self.spent_summary(), reserved=self.reserved_summary(),
            remaining=self.remaining(), elapsed_s=self.elapsed_s(),
            fraction_used=self.fraction_used(), closed=self._closed,
        )

    # -- the tree ----------------------------------------------------------------------------

    def child(self, name: str, kind: ScopeKind = "run", limits: Budget | None = None
              ) -> BudgetScope:
        """A scope whose spend also counts in this one and every ancestor.

        Its effective limits never exceed this scope's remaining, since every reservation is
        checked up the whole chain.

        Example:
            >>> parent = BudgetScope(Budget(tokens=100), kind="notebook")
            >>> parent.child("run-1", "run", Budget(tokens=1000)).remaining()["tokens"]
            100
        """
        return BudgetScope(limits, name=name, kind=kind, parent=self)

    def grant(self, name: str, limits: Budget, *, kind: ScopeKind = "scope") -> BudgetScope:
        """Carve an allotment: reserve `limits` here now and return a scope that spends it.

        The allotment has its own lock (a worker spends without touching this tree); `close()`
        on it settles the slice with what it used and returns the rest. Every limit of this
        chain must be given an amount, so the allotment cannot spend what was not reserved.

        Raises:
            BudgetExceeded: the slice does not fit.
            UsageError: a limit of this chain has no amount in `limits`.

        Example:
            >>> batch = BudgetScope(Budget(usd=10), kind="batch")
            >>> job = batch.grant("job-1", Budget(usd=3))
            >>> batch.remaining()["usd"]
            Decimal('7')
            >>> _ = job.consume(usd=Decimal(1))
            >>> job.close().usd
            Decimal('2')
            >>> batch.spent_summary().usd
            Decimal('1')
        """
        wanted = limits._counters()
        missing = sorted({_KEYS[i] for s in self._chain for i, _ in s._checks
                          if wanted[i] is None})
        if missing:
            msg = f"Grant {name!r} gives no amount for limits {missing!r} of scope {self.name!r}."
            raise UsageError(msg, hint=f"Pass them in `Budget(...)`, e.g. `{missing[0]}=...`.")
        usd, tokens, model_calls, tool_calls, steps, retries = (v or 0 for v in wanted)
        reservation = self.reserve(
            usd=Decimal(usd), tokens=int(tokens), model_calls=int(model_calls),
            tool_calls=int(tool_calls), steps=int(steps), retries=int(retries))
        left = self.left("wall_s")
        if left is not None and (limits.wall_s is None or limits.wall_s > left):
            # The allotment's own lock never sees this chain, so it inherits the wall time left.
            limits = limits.model_copy(update={"wall_s": float(left)})
        scope = BudgetScope(limits, name=name, kind=kind, parent=self, _isolated=True)
        scope._grant = reservation
        return scope

    def close(self) -> Spent:
        """Refuse further reservations; an allotment also returns its unused part to its parent.

        Outstanding reservations count as spent (a call in flight may be paid). Calling it
        again returns an empty `Spent`.

        Returns:
            What went back to the parent (all zero unless this scope came from `grant`).

        Example:
            >>> BudgetScope().close().usd
            Decimal('0')
        """
        with self._lock:
            if self._closed:
                return Spent(scope_name=self.name)
            self._closed = True
            used = [self._spent[i] + self._reserved[i] for i in range(6)]
            unpriced = self._unpriced
        grant = self._grant
        if grant is None:
            return Spent(scope_name=self.name)
        returned = [max(grant._amounts[i] - used[i], 0) for i in range(6)]
        grant.settle(usd=Decimal(used[_USD]), tokens=int(used[1]), model_calls=int(used[2]),
                     tool_calls=int(used[3]), steps=int(used[4]), retries=int(used[5]))
        if unpriced and self.parent is not None:
            with self.parent._lock:
                for s in self.parent._chain:
                    s._unpriced += unpriced
        return _summary(returned, 0, self.name)

    @property
    def closed(self) -> bool:
        """True once `close()` was called."""
        return self._closed

    # -- errors ------------------------------------------------------------------------------

    def _unpriced_error(self) -> UsageError:
        owner = next(s for s in self._chain if s.limits.usd is not None)
        msg = (f"The model is unpriced, so the USD budget of scope {owner.kind!r} "
               f"({owner.name!r}, usd={owner.limits.usd}) cannot be enforced.")
        return UsageError(msg, hint="Call `anb.set_price(model, input_per_mtok=..., "
                          "output_per_mtok=...)`, or drop the `usd=` limit and limit tokens.")

    def _closed_error(self) -> UsageError:
        msg = f"Budget scope {self.name!r} is closed; it takes no new reservations."
        return UsageError(msg, hint="Open a new scope with `anb.budget(...)`.")


def _summary(counters: list[Amount], unpriced: int, name: str) -> Spent:
    return Spent.model_construct(
        usd=counters[0], tokens=counters[1], model_calls=counters[2], tool_calls=counters[3],
        steps=counters[4], retries=counters[5], unpriced_calls=unpriced, scope_name=name)


def _exceeded(scope: BudgetScope, i: int, lim: Amount, requested: Amount) -> BudgetExceeded:
    reserved = scope._reserved[i]
    err = BudgetExceeded(limit_name=_KEYS[i], limit=lim, spent=scope._spent[i],
                         requested=requested, scope=scope.kind, scope_name=scope.name)
    err.reserved = reserved  # type: ignore[attr-defined]
    if reserved:
        err.message = f"{err.message} Calls in flight hold another {reserved} of it."
        err.args = (err.message,)
    return err


def _wall_error(scope: BudgetScope, elapsed: float) -> WallTimeExceeded:
    err = WallTimeExceeded(limit_s=scope.limits.wall_s or 0.0, elapsed_s=elapsed)
    err.scope = scope.kind  # type: ignore[attr-defined]
    err.scope_name = scope.name  # type: ignore[attr-defined]
    err.message = f"{err.message[:-1]} of scope {scope.kind!r} ({scope.name!r})."
    err.args = (err.message,)
    return err
