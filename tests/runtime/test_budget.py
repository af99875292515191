"""Budgets: limits, reserve/settle/release, errors, wall time, scopes, carve-outs and grants."""

from __future__ import annotations

import asyncio
import pickle
import time
from decimal import Decimal

import pytest

from agentnb.core import BudgetExceeded, ConfigError, Usage, UsageError, WallTimeExceeded, run_sync
from agentnb.runtime._budget import (
    Budget,
    BudgetScope,
    BudgetSnapshot,
    Spent,
)
from agentnb.runtime._scopes import budget, current_scope, open_scopes, spent, use_scope

D = Decimal

# -- Budget ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "expected"), [(0.5, D("0.5")), ("1.25", D("1.25")),
                                                 (D("0.10"), D("0.10")), (2, D(2))])
def test_budget_usd_is_stored_as_decimal(given: object, expected: Decimal) -> None:
    """usd accepts float, str, int and Decimal and stores the exact Decimal."""
    b = Budget(usd=given)  # type: ignore[arg-type]
    assert isinstance(b.usd, Decimal)
    assert b.usd == expected


@pytest.mark.parametrize(("field", "value"), [
    ("usd", -0.01), ("usd", "lots"), ("usd", True), ("usd", [1]), ("usd", float("nan")),
    ("tokens", -1), ("tokens", 1.5), ("model_calls", "3"), ("steps", False),
    ("wall_s", -2.0), ("wall_s", float("nan")), ("wall_s", "60"), ("wrap_up_at", 0),
    ("wrap_up_at", 1.5),
])
def test_budget_rejects_bad_values_naming_field_and_value(field: str, value: object) -> None:
    """A negative or wrongly typed limit raises ConfigError naming the field and the value."""
    with pytest.raises(ConfigError) as info:
        Budget(**{field: value})  # type: ignore[arg-type]
    assert f"{field}={value!r}" in str(info.value)


def test_budget_is_frozen_and_round_trips_json() -> None:
    """A Budget cannot be changed and survives JSON (checkpoints)."""
    b = Budget(usd="0.5", tokens=10, wall_s=3)
    with pytest.raises(ValueError, match="frozen"):
        b.tokens = 11  # type: ignore[misc]
    assert Budget.model_validate_json(b.model_dump_json()) == b


# -- reserve / settle / release ----------------------------------------------------------------


def test_reserve_settle_records_actual_spend() -> None:
    """Settling replaces the held amount by the actual one; unnamed counters settle as held."""
    scope = BudgetScope(Budget(usd=1, tokens=1000, model_calls=5))
    r = scope.reserve(usd=D("0.4"), tokens=600, model_calls=1)
    assert scope.remaining()["usd"] == D("0.6")
    assert r.settle(usd=D("0.1"), tokens=250).ok
    assert scope.spent_summary().usd == D("0.1")
    assert scope.spent_summary().tokens == 250
    assert scope.spent_summary().model_calls == 1
    assert scope.reserved_summary().usd == 0
    assert scope.remaining() == {"usd": D("0.9"), "tokens": 750, "model_calls": 4,
                                 "tool_calls": None, "steps": None, "retries": None,
                                 "wall_s": None}


def test_release_returns_exactly_and_is_idempotent() -> None:
    """release() gives back exactly the held amount once; settle after release is refused."""
    scope = BudgetScope(Budget(usd=1, tokens=100))
    r = scope.reserve(usd=D("0.33"), tokens=40)
    assert r.release() is True
    assert r.release() is False
    assert scope.remaining()["usd"] == 1
    assert scope.remaining()["tokens"] == 100
    with pytest.raises(UsageError, match="already released"):
        r.settle()


def test_settle_twice_is_a_usage_error() -> None:
    """A reservation settles once."""
    r = BudgetScope().reserve(tokens=1)
    r.settle()
    with pytest.raises(UsageError, match="already settled"):
        r.settle()
    assert r.state == "settled"


def test_reservation_context_managers_release_when_unsettled() -> None:
    """`with` and `async with` release an unsettled reservation, even on an exception."""
    scope = BudgetScope(Budget(tokens=10))
    with pytest.raises(RuntimeError), scope.reserve(tokens=7):
        raise RuntimeError
    assert scope.remaining()["tokens"] == 10

    async def use() -> None:
        async with scope.reserve(tokens=5) as r:
            r.settle(tokens=3)
        async with scope.reserve(tokens=5):
            pass

    asyncio.run(use())
    assert scope.spent_summary().tokens == 3
    assert scope.reserved_summary().tokens == 0


def test_overrun_is_recorded_and_blocks_the_next_reservation() -> None:
    """Actual above the reservation is recorded, flagged, and the next reserve is refused."""
    parent = BudgetScope(Budget(usd=1), name="nb", kind="notebook")
    run = parent.child("r1", "run")
    result = run.reserve(usd=D("0.5")).settle(usd=D("1.2"))
    assert result.overrun == ("usd",)
    assert result.over_limit == ("nb.usd",)
    assert not result.ok
    assert parent.spent_summary().usd == D("1.2")
    with pytest.raises(BudgetExceeded) as info:
        run.reserve(tool_calls=1)
    assert info.value.scope == "notebook"


def test_negative_amounts_are_refused() -> None:
    """Reserving or settling a negative amount is a usage error and changes nothing."""
    scope = BudgetScope(Budget(tokens=10))
    with pytest.raises(UsageError, match="negative"):
        scope.reserve(tokens=-1)
    r = scope.reserve(tokens=2)
    with pytest.raises(UsageError, match="negative"):
        r.settle(tokens=-5)
    assert r.state == "open"
    assert scope.reserved_summary().tokens == 2


def test_float_usd_on_the_hot_path_is_converted() -> None:
    """A float usd passed to reserve/settle is converted exactly, not mixed with Decimal."""
    scope = BudgetScope(Budget(usd="0.3"))
    scope.reserve(usd=0.1).settle(usd=0.1)  # type: ignore[arg-type]
    assert scope.spent_summary().usd == D("0.1")


def test_consume_and_charge() -> None:
    """consume() checks then records; charge() records without a check."""
    scope = BudgetScope(Budget(steps=2))
    assert scope.consume(steps=2).ok
    with pytest.raises(BudgetExceeded) as info:
        scope.consume(steps=1)
    assert info.value.limit_name == "steps"
    assert scope.charge(steps=1).over_limit == ("scope.steps",)
    assert scope.spent_summary().steps == 3


def test_settle_usage_counts_input_plus_output_tokens() -> None:
    """settle_usage takes a Usage: tokens = input + output, usd from the usage."""
    scope = BudgetScope(Budget(usd=1))
    r = scope.reserve(usd=D("0.2"), tokens=500, model_calls=1)
    r.settle_usage(Usage(input_tokens=120, output_tokens=30, model_calls=1, usd=D("0.05")))
    s = scope.spent_summary()
    assert (s.tokens, s.model_calls, s.usd) == (150, 1, D("0.05"))


# -- BudgetExceeded ----------------------------------------------------------------------------


def test_budget_exceeded_fields_and_atomicity() -> None:
    """The refusing scope names limit, settled spend, request and reserved; nothing is held."""
    nb = BudgetScope(Budget(usd="1.00"), name="notebook", kind="notebook")
    run = nb.child("run-1", "run", Budget(usd=5, tokens=10_000))
    run.reserve(usd=D("0.30")).settle(usd=D("0.25"))
    run.reserve(usd=D("0.50"))  # in flight
    with pytest.raises(BudgetExceeded) as info:
        run.reserve(usd=D("0.40"), tokens=100)
    err = info.value
    assert (err.limit_name, err.limit, err.spent, err.requested) == (
        "usd", D("1.00"), D("0.25"), D("0.40"))
    assert (err.scope, err.scope_name, err.reason) == ("notebook", "notebook", "budget")
    assert err.reserved == D("0.50")  # type: ignore[attr-defined]
    assert "0.50" in str(err)
    assert "in flight" in str(err)
    # Nothing of the refused request is held anywhere.
    assert run.reserved_summary().tokens == 0
    assert run.reserved_summary().usd == D("0.50")
    assert nb.reserved_summary().usd == D("0.50")
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.limit, copy.scope, copy.reserved) == (err.limit, "notebook", D("0.50"))


def test_budget_exceeded_by_the_run_itself() -> None:
    """A run's own limit refuses with scope='run'."""
    run = BudgetScope(Budget(model_calls=1), name="r", kind="run")
    run.consume(model_calls=1)
    with pytest.raises(BudgetExceeded) as info:
        run.reserve(model_calls=1)
    assert (info.value.scope, info.value.limit, info.value.spent, info.value.requested) == (
        "run", 1, 1, 1)


# -- wall time ---------------------------------------------------------------------------------


def test_wall_time_refuses_reservations(monkeypatch: pytest.MonkeyPatch) -> None:
    """After wall_s, reserve and check_wall raise WallTimeExceeded naming the scope."""
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    nb = BudgetScope(Budget(wall_s=5), name="cell", kind="notebook")
    run = nb.child("r", "run")
    run.reserve(tokens=1).settle()
    assert run.remaining()["wall_s"] == 5.0
    now[0] += 4
    assert run.fraction_used() == pytest.approx(0.8)
    now[0] += 2
    with pytest.raises(WallTimeExceeded) as info:
        run.reserve(tokens=1)
    assert info.value.limit_s == 5.0
    assert info.value.elapsed_s == pytest.approx(6.0)
    assert "'cell'" in str(info.value)
    with pytest.raises(WallTimeExceeded):
        run.check_wall()
    assert run.reserved_summary().tokens == 0


def test_wall_time_real_clock() -> None:
    """A tiny real wall_s runs out."""
    scope = BudgetScope(Budget(wall_s=0.01))
    time.sleep(0.03)
    with pytest.raises(WallTimeExceeded):
        scope.reserve()


# -- unpriced ----------------------------------------------------------------------------------


def test_unpriced_call_under_a_usd_limit_is_a_usage_error() -> None:
    """usd=None with a USD limit anywhere in the chain says to set a price."""
    nb = BudgetScope(Budget(usd=2), name="nb", kind="notebook")
    run = nb.child("r", "run", Budget(tokens=100))
    with pytest.raises(UsageError) as info:
        run.reserve(usd=None, tokens=10)
    assert "unpriced" in str(info.value)
    assert "set_price" in str(info.value)
    assert nb.reserved_summary().tokens == 0


def test_unpriced_call_without_usd_limit_counts_tokens() -> None:
    """Without a USD limit an unpriced call counts tokens and is flagged unpriced."""
    scope = BudgetScope(Budget(tokens=100))
    r = scope.reserve(usd=None, tokens=40)
    assert r.usd is None
    r.settle(tokens=30)
    s = scope.spent_summary()
    assert (s.tokens, s.usd, s.unpriced_calls) == (30, 0, 1)
    assert "unpriced" in str(s)


def test_unknown_cost_at_settle_under_usd_limit_charges_the_reservation() -> None:
    """A priced reservation settled with usd=None charges the held amount (the limit holds)."""
    scope = BudgetScope(Budget(usd=1))
    scope.reserve(usd=D("0.3")).settle(usd=None)
    assert scope.spent_summary().usd == D("0.3")
    assert scope.spent_summary().unpriced_calls == 1


# -- reading -----------------------------------------------------------------------------------


def test_fraction_used_and_wrap_up() -> None:
    """fraction_used is the max over limits and the chain; wrap_up_due follows wrap_up_at."""
    nb = BudgetScope(Budget(tokens=100), kind="notebook")
    run = nb.child("r", "run", Budget(model_calls=10, wrap_up_at=0.5))
    run.consume(model_calls=2, tokens=10)
    assert run.fraction_used() == pytest.approx(0.2)
    assert not run.wrap_up_due()
    nb.consume(tokens=50)
    assert run.fraction_used() == pytest.approx(0.6)
    assert run.wrap_up_due()
    assert BudgetScope(Budget(tokens=0)).fraction_used() == 1.0  # nothing may be used
    off = BudgetScope(Budget(tokens=1, wrap_up_at=None))
    off.consume(tokens=1)
    assert not off.wrap_up_due()


def test_snapshot_is_json_able() -> None:
    """snapshot() dumps to JSON and loads back equal."""
    nb = BudgetScope(Budget(usd=1), name="nb", kind="notebook")
    run = nb.child("r", "run", Budget(tokens=50))
    run.reserve(usd=D("0.2"), tokens=10)
    snap = run.snapshot()
    assert (snap.parent, snap.kind, snap.reserved.usd, snap.remaining["usd"]) == (
        "nb", "run", D("0.2"), D("0.8"))
    again = BudgetSnapshot.model_validate_json(snap.model_dump_json())
    assert again.reserved == snap.reserved
    assert again.limits == snap.limits


def test_spent_prints_one_line() -> None:
    """Spent prints money, tokens and counts."""
    text = str(Spent(usd=D("0.5"), tokens=12, model_calls=1, tool_calls=2, steps=3, retries=1))
    assert text == "$0.500000, 12 tokens, 1 model calls, 2 tool calls, 3 steps, 1 retries"


# -- the tree: child carve-out and grants ------------------------------------------------------


def test_child_is_carved_out_of_parent() -> None:
    """A child's effective limits never exceed the parent's remaining; its spend counts up."""
    nb = BudgetScope(Budget(usd=1), name="nb", kind="notebook")
    parent_run = nb.child("p", "run", Budget(usd=D("0.8")))
    delegate = parent_run.child("d", "parent", Budget(usd=5))
    assert delegate.remaining()["usd"] == D("0.8")
    delegate.consume(usd=D("0.5"))
    assert (nb.spent_summary().usd, parent_run.spent_summary().usd) == (D("0.5"), D("0.5"))
    assert delegate.remaining()["usd"] == D("0.3")
    with pytest.raises(BudgetExceeded) as info:
        delegate.reserve(usd=D("0.4"))
    assert info.value.scope == "run"
    assert info.value.scope_name == "p"
    assert delegate._lock is nb._lock  # one lock per tree


def test_grant_and_close_return_the_unspent() -> None:
    """grant() holds a slice in the parent; close() settles what was used and returns the rest."""
    batch = BudgetScope(Budget(usd=10, model_calls=100), name="batch", kind="batch")
    job = batch.grant("job-1", Budget(usd=3, model_calls=10))
    assert batch.remaining()["usd"] == 7
    assert job._lock is not batch._lock  # an allotment spends without the parent's lock
    assert batch.reserved_summary().model_calls == 10
    job.consume(usd=D("1.25"), model_calls=4)
    assert batch.spent_summary().usd == 0  # reaches the parent at close
    with pytest.raises(BudgetExceeded) as info:
        job.reserve(usd=D("2"))
    assert info.value.scope_name == "job-1"
    back = job.close()
    assert (back.usd, back.model_calls) == (D("1.75"), 6)
    assert (batch.spent_summary().usd, batch.spent_summary().model_calls) == (D("1.25"), 4)
    assert batch.reserved_summary().usd == 0
    assert batch.remaining()["usd"] == D("8.75")
    assert job.closed
    assert job.close().usd == 0
    with pytest.raises(UsageError, match="closed"):
        job.reserve(tokens=1)


def test_grant_counts_in_flight_reservations_as_used() -> None:
    """Closing with a call in flight charges it: the call may be paid."""
    batch = BudgetScope(Budget(usd=10), kind="batch")
    job = batch.grant("j", Budget(usd=2))
    job.reserve(usd=D("0.5"))
    assert job.close().usd == D("1.5")
    assert batch.spent_summary().usd == D("0.5")


def test_grant_refusals() -> None:
    """A grant that does not fit is refused; every limit of the chain needs an amount."""
    batch = BudgetScope(Budget(usd=1, tokens=100), kind="batch")
    with pytest.raises(UsageError, match="tokens"):
        batch.grant("j", Budget(usd="0.5"))
    with pytest.raises(BudgetExceeded):
        batch.grant("j", Budget(usd=2, tokens=10))
    assert batch.reserved_summary().usd == 0


def test_grant_inherits_remaining_wall_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """An allotment cannot outlive its parent's wall time."""
    now = [50.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    batch = BudgetScope(Budget(wall_s=10, usd=1), kind="batch")
    now[0] += 4
    job = batch.grant("j", Budget(usd="0.5", wall_s=100))
    assert job.limits.wall_s == pytest.approx(6.0)
    now[0] += 7
    with pytest.raises(WallTimeExceeded):
        job.reserve()


def test_bad_scope_arguments() -> None:
    """An unknown kind or a non-Budget limits argument is refused clearly."""
    with pytest.raises(ConfigError, match="'job'"):
        BudgetScope(kind="job")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="Budget"):
        BudgetScope({"usd": 1})  # type: ignore[arg-type]


# -- scopes on a ContextVar --------------------------------------------------------------------


def test_nested_budget_blocks() -> None:
    """Nested `with anb.budget(...)` push and pop; spends count in every enclosing scope."""
    assert current_scope() is None
    assert spent() == Spent()
    with budget(usd=2, name="notebook") as nb:
        assert nb.kind == "notebook"
        with budget(tokens=100, name="cell") as cell:
            assert cell.parent is nb
            assert cell.kind == "scope"
            assert [s.name for s in open_scopes()] == ["notebook", "cell"]
            cell.consume(usd=D("0.5"), tokens=10)
            assert spent().tokens == 10
        assert current_scope() is nb
        assert spent().usd == D("0.5")
    assert current_scope() is None
    assert open_scopes() == []


def test_scope_is_popped_on_exception() -> None:
    """An exception inside the block still pops the scope."""
    with pytest.raises(KeyError), budget(tokens=1):
        raise KeyError
    assert current_scope() is None


def test_async_tasks_inherit_the_scope() -> None:
    """Tasks created inside `async with budget()` draw from it; their own scopes stay theirs."""

    async def child_task(outer: BudgetScope) -> str:
        assert current_scope() is outer
        async with budget(tokens=5, name="inner") as inner:
            inner.consume(tokens=5)
            return inner.name

    async def main() -> None:
        async with budget(tokens=100, name="outer") as outer:
            names = await asyncio.gather(*(child_task(outer) for _ in range(3)))
            assert names == ["inner"] * 3
            assert current_scope() is outer
            assert outer.spent_summary().tokens == 15

    asyncio.run(main())


def test_run_sync_carries_the_scope() -> None:
    """A coroutine run through run_sync sees the caller's scope."""

    async def read() -> BudgetScope | None:
        return current_scope()

    with budget(usd=1) as scope:
        assert run_sync(read()) is scope


def test_use_scope_pushes_an_existing_scope() -> None:
    """use_scope makes a run's or a job's scope current for a block."""
    job = BudgetScope(name="job")

    async def main() -> None:
        async with use_scope(job):
            assert current_scope() is job

    with use_scope(job) as pushed:
        assert pushed is job
        assert open_scopes() == [job]
    asyncio.run(main())
    assert current_scope() is None


def test_budget_argument_checks() -> None:
    """budget() takes a Budget or keyword limits, not both, and a valid kind."""
    with pytest.raises(UsageError, match="not both"):
        budget(Budget(usd=1), tokens=3)
    with pytest.raises(ConfigError):
        budget(kind="nope")  # type: ignore[arg-type]
    with budget(Budget(steps=3), name="b", kind="batch") as scope:
        assert (scope.kind, scope.limits.steps) == ("batch", 3)


def test_the_same_budget_object_can_be_reentered() -> None:
    """Re-entering one budget() object nests two scopes and pops both."""
    cm = budget(tokens=10, name="x")
    with cm as a, cm as b:
        assert b.parent is a
    assert current_scope() is None


def test_left_is_remaining_for_one_key() -> None:
    """`left(key)` agrees with `remaining()` on every key, through a chain with holds."""
    nb = BudgetScope(Budget(usd=5, tokens=1000, wall_s=600), name="nb", kind="notebook")
    run = nb.child("r", "run", Budget(usd=2, model_calls=3, retries=1))
    held = run.reserve(usd=Decimal("0.5"), tokens=300, model_calls=1)
    run.consume(retries=1)
    whole = run.remaining()
    for key, value in whole.items():
        if key == "wall_s":
            assert value is not None
            assert abs(run.left(key) - value) < 1  # type: ignore[operator]
        else:
            assert run.left(key) == value, key
    held.settle(usd=Decimal("0.25"), tokens=100)
    assert run.left("usd") == Decimal("1.75")
    assert BudgetScope().left("wall_s") is None
    with pytest.raises(UsageError, match="'dollars' is not one of"):
        run.left("dollars")
