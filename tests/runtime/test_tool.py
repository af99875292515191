"""`@tool`: schema generation, validation, signals, sync and async execution."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from agentnb.core import ModelRetry, ToolFailed, UsageError, run_sync
from agentnb.runtime import RunContext, Tool, tool


@tool(effects={"read"})
def lookup(key: str, limit: int = 3, path: Path | None = None) -> dict[str, object]:
    """Look a key up in the catalogue.

    Longer explanation that stays in the description.

    Args:
        key: the catalogue key,
            spanning two lines.
        limit: how many rows.
        path: where to write.

    Returns:
        The row.
    """
    return {"key": key, "limit": limit}


def test_schema_from_signature_and_docstring() -> None:
    """Types, defaults, required names and Args: descriptions reach the JSON schema."""
    d = lookup.definition
    assert d.name == "lookup"
    assert d.description.startswith("Look a key up in the catalogue.")
    assert "Longer explanation" in d.description
    assert "Returns" not in d.description
    props = d.parameters["properties"]
    assert props["key"] == {"type": "string",
                            "description": "the catalogue key, spanning two lines."}
    assert props["limit"]["type"] == "integer"
    assert props["limit"]["default"] == 3
    assert d.parameters["required"] == ["key"]
    assert d.effects == frozenset({"read"})
    assert lookup.path_params == frozenset({"path"})


def test_context_parameter_is_hidden() -> None:
    """A first `ctx: RunContext` parameter is passed by the runtime, not shown to the model."""

    @tool
    def who(ctx: RunContext, name: str) -> str:
        """Greet."""
        return f"{ctx.run_id}:{name}"

    assert list(who.definition.parameters["properties"]) == ["name"]
    ctx = RunContext(run_id="run_x", agent="a")
    out = run_sync(who.execute('{"name": "bo"}', ctx))
    assert out.content == "run_x:bo"
    assert out.status == "ok"


def test_validation_error_becomes_retry_prompt() -> None:
    """Wrong types and malformed JSON give a retry outcome that names the problem."""
    bad_type = run_sync(lookup.execute('{"key": 5}', None))
    assert bad_type.status == "retry"
    assert bad_type.is_error
    assert "key" in bad_type.content
    assert "call 'lookup' again" in bad_type.content
    broken = run_sync(lookup.execute('{"key": ', None))
    assert broken.status == "retry"
    assert "Invalid JSON" in broken.content
    extra = run_sync(lookup.execute('{"key": "a", "nope": 1}', None))
    assert extra.status == "retry"
    assert "nope" in extra.content


def test_signals_and_exceptions() -> None:
    """ModelRetry -> retry, ToolFailed -> error, other exceptions -> error naming the type."""

    @tool
    def retry(x: int) -> int:
        """R."""
        raise ModelRetry("x must be even")

    @tool
    def failed(x: int) -> int:
        """F."""
        raise ToolFailed("the catalogue is closed")

    @tool
    async def boom(x: int) -> int:
        """B."""
        raise KeyError(x)

    r = run_sync(retry.execute('{"x": 1}', None))
    assert (r.status, r.error_type) == ("retry", "ModelRetry")
    assert "x must be even" in r.content
    f = run_sync(failed.execute('{"x": 1}', None))
    assert (f.status, f.content) == ("error", "the catalogue is closed")
    b = run_sync(boom.execute('{"x": 1}', None))
    assert (b.status, b.error_type) == ("error", "KeyError")
    assert "KeyError" in b.content


def test_sync_tools_run_in_a_thread_async_on_the_loop() -> None:
    """A sync tool runs off the loop thread; an async one is awaited on it."""
    seen: dict[str, str] = {}

    @tool
    def sync_tool() -> str:
        """S."""
        seen["sync"] = threading.current_thread().name
        return "s"

    @tool
    async def async_tool() -> str:
        """A."""
        seen["async"] = threading.current_thread().name
        await asyncio.sleep(0)
        return "a"

    assert run_sync(sync_tool.execute("{}", None)).content == "s"
    assert run_sync(async_tool.execute("", None)).content == "a"
    assert seen["async"] == "agentnb-loop"
    assert seen["sync"] != "agentnb-loop"


def test_timeout_and_rendering() -> None:
    """A slow tool times out as an error; non-string results are JSON."""

    @tool(timeout_s=0.05)
    async def slow() -> str:
        """Slow."""
        await asyncio.sleep(1)
        return "late"

    out = run_sync(slow.execute("{}", None))
    assert out.status == "error"
    assert "timed out" in out.content
    assert run_sync(lookup.execute('{"key": "k"}', None)).content == '{"key":"k","limit":3}'


def test_tool_stays_callable_and_options() -> None:
    """Calling a Tool calls the function; name/description overrides apply; bad names refuse."""
    assert lookup("a") == {"key": "a", "limit": 3}
    named = tool(name="find", description="Find things.")(lambda q: q)
    assert isinstance(named, Tool)
    assert (named.definition.name, named.definition.description) == ("find", "Find things.")
    with pytest.raises(UsageError, match="not valid"):
        tool(name="has space")(lambda: None)
    def variadic(*args: int) -> None:
        """V."""

    with pytest.raises(UsageError, match="named"):
        tool(variadic)
