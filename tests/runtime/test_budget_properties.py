"""Budget invariants under random operation sequences (hypothesis) and under concurrency."""

from __future__ import annotations

import asyncio
import random
import threading
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from agentnb.core import BudgetExceeded
from agentnb.runtime._budget import Budget, BudgetScope, Reservation

KEYS = ("usd", "tokens", "model_calls")
CENT = Decimal("0.01")


def _limits(draw: st.DrawFn) -> Budget:
    maybe = st.none() | st.integers(0, 60)
    usd, tokens, calls = draw(maybe), draw(maybe), draw(maybe)
    return Budget(usd=None if usd is None else usd * CENT, tokens=tokens, model_calls=calls)


def _ancestors(scope: BudgetScope) -> list[BudgetScope]:
    out = []
    node: BudgetScope | None = scope
    while node is not None:
        out.append(node)
        node = node.parent
    return out


def _check_invariants(scopes: list[BudgetScope], spent: dict[int, list[Decimal | int]],
                      held: dict[int, list[Decimal | int]]) -> None:
    for scope in scopes:
        s, r = scope.spent_summary(), scope.reserved_summary()
        got_spent = [s.usd, s.tokens, s.model_calls]
        got_held = [r.usd, r.tokens, r.model_calls]
        assert got_spent == spent[id(scope)], scope.name
        assert got_held == held[id(scope)], scope.name
        for i, key in enumerate(KEYS):
            limit = getattr(scope.limits, key)
            if limit is not None:
                assert got_spent[i] + got_held[i] <= limit, (scope.name, key)


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_random_reserve_settle_release_keeps_every_limit(data: st.DataObject) -> None:
    """Random trees and operations: totals add up in ancestors, limits hold, release is exact."""
    root = BudgetScope(_limits(data.draw), name="s0", kind="notebook")
    scopes = [root]
    for n in range(data.draw(st.integers(0, 5))):
        parent = data.draw(st.sampled_from(scopes))
        scopes.append(parent.child(f"s{n + 1}", "run", _limits(data.draw)))
    spent = {id(s): [Decimal(0), 0, 0] for s in scopes}
    held = {id(s): [Decimal(0), 0, 0] for s in scopes}
    open_: list[tuple[Reservation, list[Decimal | int]]] = []

    for _ in range(data.draw(st.integers(1, 40))):
        op = data.draw(st.sampled_from(["reserve", "reserve", "settle", "release"]))
        if op == "reserve":
            scope = data.draw(st.sampled_from(scopes))
            amount = [data.draw(st.integers(0, 25)) * CENT, data.draw(st.integers(0, 25)),
                      data.draw(st.integers(0, 2))]
            fits = all(
                getattr(a.limits, k) is None
                or spent[id(a)][i] + held[id(a)][i] + amount[i] <= getattr(a.limits, k)
                for a in _ancestors(scope) for i, k in enumerate(KEYS))
            try:
                r = scope.reserve(usd=amount[0], tokens=amount[1], model_calls=amount[2])
            except BudgetExceeded as err:
                refused = err
                assert not fits
                assert refused.requested == amount[KEYS.index(refused.limit_name)]
            else:
                assert fits
                open_.append((r, amount))
                for a in _ancestors(scope):
                    held[id(a)] = [h + x for h, x in zip(held[id(a)], amount, strict=True)]
        elif open_:
            r, amount = open_.pop(data.draw(st.integers(0, len(open_) - 1)))
            for a in _ancestors(r.scope):
                held[id(a)] = [h - x for h, x in zip(held[id(a)], amount, strict=True)]
            if op == "settle":
                actual = [data.draw(st.integers(0, int(amount[0] / CENT))) * CENT,
                          data.draw(st.integers(0, int(amount[1]))),
                          data.draw(st.integers(0, int(amount[2])))]
                assert r.settle(usd=actual[0], tokens=actual[1], model_calls=actual[2]).ok
                for a in _ancestors(r.scope):
                    spent[id(a)] = [s + x for s, x in zip(spent[id(a)], actual, strict=True)]
            else:
                assert r.release()
        _check_invariants(scopes, spent, held)

    for r, _ in open_:
        r.release()
    for scope in scopes:
        reserved = scope.reserved_summary()
        assert (reserved.usd, reserved.tokens, reserved.model_calls) == (0, 0, 0)


@settings(max_examples=60, deadline=None)
@given(limit=st.integers(0, 40), cost=st.integers(1, 7), workers=st.integers(1, 30))
def test_exact_fill_without_under_or_overuse(limit: int, cost: int, workers: int) -> None:
    """With actual == reserved, the number of calls that fit is exactly limit // cost."""
    scope = BudgetScope(Budget(tokens=limit))
    ok = 0
    for _ in range(workers * 3):
        try:
            scope.reserve(tokens=cost).settle()
            ok += 1
        except BudgetExceeded:
            pass
    assert ok == min(limit // cost, workers * 3)


def test_thousand_asyncio_tasks_never_overspend() -> None:
    """1000 tasks reserving, yielding and settling on one shared scope stay within the limit."""
    limit = Decimal("2.50")
    nb = BudgetScope(Budget(usd=limit, model_calls=5000), name="nb", kind="notebook")
    rng = random.Random(7)
    worst_costs = [Decimal(rng.randint(1, 9)) / 1000 for _ in range(1000)]
    stopped = 0

    async def one(i: int) -> None:
        nonlocal stopped
        run = nb.child(f"run-{i}", "run", Budget(usd=Decimal("0.05")))
        worst = worst_costs[i]
        own = random.Random(i)
        for _ in range(500):  # bounded: a run that never stops fails the test, never hangs it
            try:
                r = run.reserve(usd=worst, tokens=100, model_calls=1)
            except BudgetExceeded:
                stopped += 1
                return
            await asyncio.sleep(0)
            frac = own.random()
            if frac < 0.05:
                r.release()
            else:
                r.settle(usd=(worst * Decimal(frac)).quantize(Decimal("0.000001")))
            await asyncio.sleep(0)

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            for i in range(1000):
                tg.create_task(one(i))

    asyncio.run(main())
    total = nb.spent_summary()
    assert total.usd <= limit
    assert total.model_calls <= 5000
    assert nb.reserved_summary().usd == 0
    assert stopped == 1000
    # The shared scope was actually contended: most of it got used.
    assert nb.fraction_used() > 0.5


def test_eight_threads_never_overspend() -> None:
    """Eight threads hammering one shared scope never pass its limits."""
    nb = BudgetScope(Budget(usd=Decimal("3"), tokens=400_000), name="nb", kind="notebook")
    runs = [nb.child(f"t{i}", "run") for i in range(8)]
    barrier = threading.Barrier(8)
    wins = [0] * 8

    def hammer(i: int) -> None:
        rng = random.Random(i)
        barrier.wait()
        for _ in range(3000):
            try:
                r = runs[i].reserve(usd=Decimal(rng.randint(1, 5)) / 1000, tokens=100)
            except BudgetExceeded:
                continue
            if rng.random() < 0.1:
                r.release()
            else:
                r.settle()
                wins[i] += 1

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = nb.spent_summary()
    assert total.usd <= Decimal("3")
    assert total.tokens <= 400_000
    assert total.tokens == 100 * sum(wins)
    assert sum(r.spent_summary().usd for r in runs) == total.usd
    assert nb.reserved_summary().tokens == 0
    assert nb.remaining()["usd"] < Decimal("0.005")  # the limit was reached, not just approached


_COUNTS = ("tokens", "model_calls", "tool_calls", "steps", "retries")


@given(st.lists(st.tuples(st.sampled_from(_COUNTS), st.integers(0, 6), st.booleans()),
                max_size=30))
@settings(max_examples=150)
def test_consume_is_reserve_then_settle(ops: list[tuple[str, int, bool]]) -> None:
    """`consume` of counts (its one-lock path) leaves every scope of a chain exactly as
    reserving and settling the same amounts would, and refuses exactly the same calls."""

    def chain() -> BudgetScope:
        root = BudgetScope(Budget(tokens=40, model_calls=9, tool_calls=9, steps=12, retries=3),
                           name="nb", kind="notebook")
        return root.child("run", "run", Budget(tokens=30, steps=10, tool_calls=7))

    fast, slow = chain(), chain()
    for key, n, on_root in ops:
        outcomes = []
        for scope, how in ((fast, "consume"), (slow, "pair")):
            target = scope.parent if on_root and scope.parent is not None else scope
            try:
                if how == "consume":
                    target.consume(**{key: n})
                else:
                    target.reserve(**{key: n}).settle()
                outcomes.append("ok")
            except BudgetExceeded as exc:
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1]
        for a, b in ((fast, slow), (fast.parent, slow.parent)):
            assert a is not None
            assert b is not None
            assert a.spent_summary() == b.spent_summary()
            assert a.reserved_summary() == b.reserved_summary()
