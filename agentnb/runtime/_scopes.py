"""Budget scopes on a ContextVar: `anb.budget(...)`, `anb.spent()`, the current and open scopes.

Runs draw from the innermost open scope; under `agentnb run` the job's scope is the outermost
one for every cell (`runtime/_job.py`). The arithmetic lives in `_budget.py`.
"""

from __future__ import annotations

import contextvars
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from agentnb.core import ConfigError, UsageError
from agentnb.runtime._budget import _KINDS, Budget, BudgetScope, ScopeKind, Spent

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["budget", "current_scope", "open_scopes", "spent", "use_scope"]


_STACK: contextvars.ContextVar[tuple[BudgetScope, ...]] = contextvars.ContextVar(
    "agentnb_budget_scopes", default=())


def current_scope() -> BudgetScope | None:
    """The innermost open budget scope in this context, or None.

    Example:
        >>> with budget(tokens=10, name="cell") as scope:
        ...     current_scope() is scope
        True
    """
    stack = _STACK.get()
    if stack:
        return stack[-1]
    # Under `agentnb run` the job's scope is the outermost one for every cell.
    from agentnb.runtime._job import job_scope

    return job_scope()


def open_scopes() -> list[BudgetScope]:
    """Every open budget scope in this context, outermost first (for budget meters).

    Example:
        >>> with budget(usd=1, name="notebook"), budget(tokens=10, name="cell"):
        ...     [s.name for s in open_scopes()]
        ['notebook', 'cell']
    """
    from agentnb.runtime._job import job_scope

    job = job_scope()
    stack = list(_STACK.get())
    return stack if job is None or (stack and stack[0] is job) else [job, *stack]


def spent() -> Spent:
    """What the innermost open scope has spent so far (`anb.spent()`); zeros when none is open.

    Example:
        >>> with budget(usd=1) as scope:
        ...     _ = scope.consume(usd=Decimal("0.25"), model_calls=1)
        ...     spent().usd
        Decimal('0.25')
    """
    scope = current_scope()
    return Spent() if scope is None else scope.spent_summary()


def _push(scope: BudgetScope) -> contextvars.Token[tuple[BudgetScope, ...]]:
    return _STACK.set((*_STACK.get(), scope))


def _pop(scope: BudgetScope, token: contextvars.Token[tuple[BudgetScope, ...]] | None) -> None:
    try:
        if token is not None:
            _STACK.reset(token)
    except ValueError:
        # Exited in another context (e.g. a generator finalised elsewhere): drop our scope only.
        _STACK.set(tuple(s for s in _STACK.get() if s is not scope))


class use_scope:
    """Make an existing scope the current one for a block (sync or async).

    The runtime pushes a run's scope while the run executes, and a batch worker pushes its
    granted allotment; code inside sees it through `current_scope()`.

    Example:
        >>> scope = BudgetScope(name="job")
        >>> with use_scope(scope):
        ...     current_scope().name
        'job'
    """

    __slots__ = ("_scope", "_token")

    def __init__(self, scope: BudgetScope) -> None:
        self._scope = scope
        self._token: contextvars.Token[tuple[BudgetScope, ...]] | None = None

    def __enter__(self) -> BudgetScope:
        self._token = _push(self._scope)
        return self._scope

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        token, self._token = self._token, None
        _pop(self._scope, token)

    async def __aenter__(self) -> BudgetScope:
        return self.__enter__()

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(et, ev, tb)


class budget:
    """Open a budget scope nested in the current one, for a `with` or `async with` block.

    Every run started inside draws from it (and from every enclosing scope). The scope is
    popped on exit, also on an exception; runs still going keep drawing from it.

    Args:
        limits: A `Budget`, instead of the keyword limits.
        usd: USD limit (float, str or Decimal).
        tokens: Token limit.
        model_calls: Model-call limit.
        tool_calls: Tool-call limit.
        steps: Step limit.
        retries: Retry limit.
        wall_s: Wall-time limit in seconds from entering the block.
        name: The scope's name, shown in errors and meters.
        kind: The scope's kind; by default `name` when it is a kind, else `"scope"`.

    Example:
        >>> with budget(usd=2.00, name="notebook") as nb:
        ...     nb.kind, spent().usd
        ('notebook', Decimal('0'))
    """

    __slots__ = ("_kind", "_limits", "_name", "_stack")

    def __init__(self, limits: Budget | None = None, *, usd: Decimal | float | str | None = None,
                 tokens: int | None = None, model_calls: int | None = None,
                 tool_calls: int | None = None, steps: int | None = None,
                 retries: int | None = None, wall_s: float | None = None,
                 name: str = "scope", kind: ScopeKind | None = None) -> None:
        given: dict[str, Any] = {k: v for k, v in {
            "usd": usd, "tokens": tokens, "model_calls": model_calls, "tool_calls": tool_calls,
            "steps": steps, "retries": retries, "wall_s": wall_s}.items() if v is not None}
        if limits is not None and given:
            msg = f"Pass either a `Budget` or keyword limits, not both (got {sorted(given)!r})."
            raise UsageError(msg)
        if kind is not None and kind not in _KINDS:
            msg = f"Budget scope kind {kind!r} is not one of {sorted(_KINDS)!r}."
            raise ConfigError(msg, source="argument")
        self._limits = limits if limits is not None else Budget(**given)
        self._name = name
        self._kind: ScopeKind = kind or (name if name in _KINDS else "scope")  # type: ignore[assignment]
        # One entry per active `with` of this object, so re-entering it nests correctly.
        self._stack: list[tuple[BudgetScope, contextvars.Token[tuple[BudgetScope, ...]]]] = []

    def __enter__(self) -> BudgetScope:
        parent = current_scope()
        # Created on enter, not in __init__, so that wall time starts with the block.
        scope = (BudgetScope(self._limits, name=self._name, kind=self._kind)
                 if parent is None else parent.child(self._name, self._kind, self._limits))
        self._stack.append((scope, _push(scope)))
        return scope

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        scope, token = self._stack.pop()
        _pop(scope, token)

    async def __aenter__(self) -> BudgetScope:
        return self.__enter__()

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(et, ev, tb)
