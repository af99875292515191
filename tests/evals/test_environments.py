"""Synthetic environments: seeded state, fresh copies, tools the sim models act on, faults."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import pytest

import agentnb as anb
from agentnb.core import ToolFailed, UsageError, run_sync
from agentnb.evals import envs


def test_catalogue_is_seeded_and_resettable() -> None:
    """The same seed gives the same world; reset() undoes refunds."""
    a, b, c = envs.Catalogue(seed=1), envs.Catalogue(seed=1), envs.Catalogue(seed=2)
    assert a.orders == b.orders
    assert a.products == b.products
    assert a.orders != c.orders
    a.refund_order(42, a.orders[42].total)
    assert a.refunds == {42: a.orders[42].total}
    a.reset()
    assert a.refunds == {}


def test_fresh_copies_share_no_state() -> None:
    """A fresh copy starts clean and never changes the original."""
    base = envs.Catalogue(seed=1)
    copy = base.fresh()
    copy.refund_order(42, 1.0)
    assert base.refunds == {}
    assert copy.refunds == {42: 1.0}
    assert base.fresh().refunds == {}


def test_refund_rules() -> None:
    """A refund above what is left, or for an unknown order, fails with a message."""
    env = envs.Catalogue(seed=1)
    total = env.orders[42].total
    env.refund_order(42, total)
    with pytest.raises(ToolFailed, match="refundable"):
        env.refund_order(42, 0.01)
    with pytest.raises(ToolFailed, match="no order 7"):
        env.order_info(7)


def test_tools_declare_effects() -> None:
    """Each tool carries its declared effects for the policy."""
    effects = {t.name: set(t.effects) for t in envs.Catalogue().tools}
    assert effects == {"lookup_order": {"read"}, "search_products": {"read"}, "refund": {"money"}}
    assert {t.name: set(t.effects) for t in envs.Outbox().tools}["send_email"] == {"network"}
    assert "ctx" not in envs.Catalogue().tools[0].definition.parameters["properties"]


def test_sim_agent_acts_on_the_run_environment() -> None:
    """Tools act on the run's `environment=`, not on the instance they were taken from."""
    base = envs.Catalogue(seed=1)
    agent = anb.Agent(model="sim:expert", tools=base.tools)
    world = base.fresh()
    total = world.orders[42].total
    result = agent.run(f"Refund ${total} for order 42.", environment=world)
    assert result.status == "done"
    assert world.refunds == {42: total}
    assert base.refunds == {}
    assert ("refund", {"order_id": 42, "amount": total}) in world.calls


def test_workspace_is_confined_and_fresh() -> None:
    """Files live in the workspace's own folder; paths outside it are refused."""
    ws = envs.FileWorkspace(files={"notes.txt": "Meeting moved to Friday."})
    other = ws.fresh()
    assert other.root != ws.root
    other.write("out/summary.md", "done")
    assert ws.list() == ["notes.txt"]
    assert other.files == {"notes.txt": "Meeting moved to Friday.", "out/summary.md": "done"}
    with pytest.raises(ToolFailed, match="outside"):
        ws.read("../../etc/passwd")


def test_temporary_workspace_folders_are_removed_with_their_workspace(tmp_path: Path) -> None:
    """A workspace's own temporary folder (and each fresh copy's) goes when the object does; a
    folder the user gave is kept."""
    ws = envs.FileWorkspace(files={"notes.txt": "x"})
    copies = [ws.fresh() for _ in range(3)]
    roots = [ws.root, *(c.root for c in copies)]
    assert all(r.is_dir() for r in roots)
    del ws, copies
    gc.collect()
    assert not any(r.exists() for r in roots)
    given = envs.FileWorkspace(tmp_path / "mine", files={"a.txt": "a"})
    given.reset()
    fresh_root = given.fresh().root  # collected at once: its folder goes
    del given
    gc.collect()
    assert (tmp_path / "mine" / "a.txt").read_text() == "a"
    assert not fresh_root.exists()


def test_sim_agent_writes_into_workspace() -> None:
    """A sim agent writes the quoted text to the named file of its own workspace."""
    ws = envs.FileWorkspace(files={"notes.txt": "x"})
    world = ws.fresh()
    agent = anb.Agent(model="sim:expert", tools=ws.tools)
    agent.run('Write "hello world" to greeting.txt.', environment=world)
    assert world.files.get("greeting.txt") == "hello world"
    assert "greeting.txt" not in ws.list()


def test_outbox_collects_mail() -> None:
    """send_email lands in the outbox list; nothing leaves the machine."""
    box = envs.Outbox()
    world = box.fresh()
    agent = anb.Agent(model="sim:expert", tools=box.tools)
    agent.run("Email ada@example.com that the meeting moved to Friday.", environment=world)
    assert [m.to for m in world.outbox] == ["ada@example.com"]
    assert box.outbox == []
    with pytest.raises(ToolFailed, match="not an email"):
        box.send("ada", "s", "b")


def test_fault_injection_is_seeded() -> None:
    """fail_rate fails calls reproducibly; the model sees an error and can retry."""
    def run_once() -> tuple[list[str], dict[int, float]]:
        world = envs.Catalogue(seed=1, fail_rate=0.5, faulty={"refund"}).fresh()
        agent = anb.Agent(model="sim:expert", tools=world.tools)
        agent.run(f"Refund ${world.orders[42].total} for order 42.", environment=world)
        return world.faults, world.refunds

    first, second = run_once(), run_once()
    assert first == second
    failed = 0
    for seed in range(8):
        tool = next(t for t in envs.Catalogue(seed=seed, fail_rate=0.5).tools
                    if t.name == "lookup_order")
        try:
            run_sync(tool.function(None, order_id=42))
        except ToolFailed:
            failed += 1
    assert 0 < failed < 8


def test_slow_tools_take_time() -> None:
    """slow_s delays each call of a faulty tool."""
    env = envs.Catalogue(slow_s=0.05)
    tool = next(t for t in env.tools if t.name == "lookup_order")
    start = time.perf_counter()
    run_sync(tool.function(None, order_id=42))
    assert time.perf_counter() - start >= 0.05


def test_bad_fault_settings_are_refused() -> None:
    """fail_rate outside 0..1 is a usage error."""
    with pytest.raises(UsageError, match="fail_rate"):
        envs.Catalogue(fail_rate=2)
