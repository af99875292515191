"""ResponseCache and cache_key."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentnb.core import Message, StoreError, TextPart, ToolCallPart, ToolDefinition, UsageError
from agentnb.models._base import ModelSettings
from agentnb.runtime._cache import ResponseCache, cache_key, response_cache


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[ResponseCache]:
    """A ResponseCache over a fresh file, closed afterwards."""
    c = ResponseCache(tmp_path / "home" / "cache.db")
    yield c
    c.close()


def _messages(args: str = '{"key": 7, "mode": "fast"}') -> list[Message]:
    return [
        Message.system("Be brief."),
        Message.user("What does key 7 hold?"),
        Message.assistant(TextPart(text="Looking."),
                          ToolCallPart(id="call_1", name="lookup", arguments=args)),
    ]


def _tools(params: dict[str, object] | None = None) -> list[ToolDefinition]:
    params = params or {"type": "object", "properties": {"key": {"type": "integer"}}}
    return [ToolDefinition(name="lookup", description="Look a key up.", parameters=params)]


def test_put_get_and_stats(cache: ResponseCache) -> None:
    """A stored value comes back; hits, misses and entries are counted."""
    cache.put("k1", {"text": "hello", "n": [1, 2]}, kind="model")
    cache.put("k2", {"content": "42"}, kind="tool")
    assert cache.get("k1") == {"text": "hello", "n": [1, 2]}
    assert cache.get("missing") is None
    assert cache.get("k2") == {"content": "42"}
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries) == (2, 1, 2)


def test_put_replaces(cache: ResponseCache) -> None:
    """A second put under the same key replaces the value."""
    cache.put("k", {"v": 1}, kind="model")
    cache.put("k", {"v": 2}, kind="model")
    assert cache.get("k") == {"v": 2}
    assert cache.stats().entries == 1


def test_ttl_expiry_and_prune(cache: ResponseCache) -> None:
    """An expired entry is a miss and prune() removes it; a live one stays."""
    cache.put("old", {"v": 1}, kind="model", ttl_s=-1.0)
    cache.put("new", {"v": 2}, kind="model", ttl_s=3600)
    assert cache.get("old") is None
    assert cache.get("new") == {"v": 2}
    assert cache.prune() == 1
    assert cache.stats().entries == 1


def test_clear_empties_and_resets_counters(cache: ResponseCache) -> None:
    """clear() removes every entry and zeroes hits and misses."""
    cache.put("k", {"v": 1}, kind="model")
    cache.get("k")
    cache.get("nope")
    cache.clear()
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries) == (0, 0, 0)
    assert cache.get("k") is None


def test_values_must_be_json(cache: ResponseCache) -> None:
    """A value JSON cannot hold is a UsageError."""
    with pytest.raises(UsageError, match="not JSON-serialisable"):
        cache.put("k", {"x": object()}, kind="model")


def test_async_twins(cache: ResponseCache) -> None:
    """The async twins behave as the sync methods."""

    async def main() -> None:
        await cache.aput("k", {"v": 1}, kind="tool")
        assert await cache.aget("k") == {"v": 1}
        assert (await cache.astats()).entries == 1
        await cache.aput("e", {"v": 2}, kind="tool", ttl_s=-1)
        assert await cache.aprune() == 1
        await cache.aclear()
        assert (await cache.astats()).entries == 0
        await cache.aclose()

    asyncio.run(main())


def test_corrupt_cache_is_a_store_error_suggesting_delete(tmp_path: Path) -> None:
    """A damaged cache.db raises StoreError naming the file and saying it can be deleted."""
    path = tmp_path / "cache.db"
    junk = b"\x00garbage" * 1000
    path.write_bytes(junk)
    cache = ResponseCache(path)
    with pytest.raises(StoreError) as info:
        cache.get("k")
    assert info.value.path == str(path)
    assert str(path) in info.value.message
    assert "delete it" in (info.value.hint or "")
    assert path.read_bytes() == junk


def test_response_cache_is_one_per_path(tmp_path: Path) -> None:
    """response_cache() reuses one object per path and defaults to AGENTNB_HOME."""
    home = tmp_path / ".agentnb"
    assert response_cache() is response_cache(home)
    assert response_cache().path == home.resolve() / "cache.db"
    assert response_cache(tmp_path / "x") is not response_cache()


# -- cache_key ---------------------------------------------------------------------------------


def test_cache_key_ignores_dict_order() -> None:
    """Reordered settings, schema keys and tool-call arguments give the same key."""
    a = cache_key("openai:m", _messages('{"key": 7, "mode": "fast"}'),
                  _tools({"type": "object", "properties": {"key": {"type": "integer"}}}),
                  {"temperature": 0.0, "seed": 3})
    b = cache_key("openai:m", _messages('{"mode":"fast","key":7}'),
                  _tools({"properties": {"key": {"type": "integer"}}, "type": "object"}),
                  {"seed": 3, "temperature": 0.0})
    assert a == b
    assert len(a) == 64


def test_cache_key_changes_with_the_request() -> None:
    """Model, messages, tools and settings each change the key."""
    base = cache_key("openai:m", _messages(), _tools(), None)
    others = {
        cache_key("openai:other", _messages(), _tools(), None),
        cache_key("openai:m", _messages()[:2], _tools(), None),
        cache_key("openai:m", _messages('{"key": 8}'), _tools(), None),
        cache_key("openai:m", _messages(), [], None),
        cache_key("openai:m", _messages(), _tools(), ModelSettings(temperature=0.5)),
        cache_key("openai:m", list(reversed(_messages())), _tools(), None),
    }
    assert base not in others
    assert len(others) == 6


def test_cache_key_settings_none_equals_defaults() -> None:
    """No settings, empty settings and all-None ModelSettings are the same request."""
    keys = {
        cache_key("m", _messages(), _tools(), None),
        cache_key("m", _messages(), _tools(), {}),
        cache_key("m", _messages(), _tools(), ModelSettings()),
        cache_key("m", _messages(), _tools(), {"temperature": None}),
    }
    assert len(keys) == 1
    assert cache_key("m", _messages(), _tools(), ModelSettings(max_tokens=5)) == cache_key(
        "m", _messages(), _tools(), {"max_tokens": 5})


def test_cache_key_ignores_tool_effects() -> None:
    """Effects are for the policy, not the model, so they do not change the key."""
    plain = ToolDefinition(name="t", parameters={"type": "object", "properties": {}})
    effectful = ToolDefinition(name="t", parameters={"type": "object", "properties": {}},
                               effects=frozenset({"write"}))
    assert cache_key("m", _messages(), [plain]) == cache_key("m", _messages(), [effectful])


def test_cache_key_is_stable_across_processes() -> None:
    """Another interpreter with another hash seed computes the same key."""
    here = cache_key("openai:m", _messages(), _tools(), ModelSettings(temperature=0.2, seed=1))
    code = textwrap.dedent("""
        from agentnb.core import Message, TextPart, ToolCallPart, ToolDefinition
        from agentnb.models._base import ModelSettings
        from agentnb.runtime._cache import cache_key
        msgs = [
            Message.system("Be brief."),
            Message.user("What does key 7 hold?"),
            Message.assistant(TextPart(text="Looking."),
                              ToolCallPart(id="call_1", name="lookup",
                                           arguments='{"mode": "fast", "key": 7}')),
        ]
        tools = [ToolDefinition(name="lookup", description="Look a key up.", parameters={
            "properties": {"key": {"type": "integer"}}, "type": "object"})]
        print(cache_key("openai:m", msgs, tools, ModelSettings(seed=1, temperature=0.2)))
    """)
    for seed in ("1", "12345"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, timeout=60, env={**os.environ, "PYTHONHASHSEED": seed})
        assert out.stdout.strip() == here


def test_cache_key_accepts_plain_dicts_and_odd_arguments() -> None:
    """Dict messages and tools work; tool-call arguments that are not JSON are kept as text."""
    msg = {"role": "assistant", "parts": [
        {"kind": "tool_call", "id": "c", "name": "t", "arguments": "not json"}, "raw"]}
    a = cache_key("m", [msg], [{"name": "t", "effects": ["write"]}])
    b = cache_key("m", [msg], [{"name": "t"}])
    assert a == b
    other = {"role": "assistant", "parts": [
        {"kind": "tool_call", "id": "c", "name": "t", "arguments": "not  json"}, "raw"]}
    assert cache_key("m", [other], [{"name": "t"}]) != a
    assert cache_key("m", ["plain"]) != cache_key("m", ["other"])


def test_damaged_entry_is_a_store_error(cache: ResponseCache) -> None:
    """An entry whose JSON was damaged on disk raises StoreError."""
    import sqlite3

    cache.put("k", {"v": 1}, kind="model")
    with sqlite3.connect(cache.path) as conn:
        conn.execute("UPDATE cache_entries SET value = '{broken'")
    conn.close()
    with pytest.raises(StoreError, match="entry"):
        cache.get("k")
    assert repr(cache).startswith("ResponseCache(")
