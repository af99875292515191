"""Messages, usage arithmetic, ids, hashing and settings resolution."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentnb.core import (
    ConfigError,
    Message,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
    canonical_json,
    content_hash,
    new_id,
    resolve,
)


def test_message_round_trips_through_json() -> None:
    """A message with every part kind survives JSON with its part types."""
    from agentnb.core import RefusalPart, ThinkingPart

    m = Message(role="assistant", parts=(
        TextPart(text="a"), ThinkingPart(text="hm", signature="sig"), RefusalPart(text="no"),
        ToolCallPart(id="1", name="t", arguments='{"x": 1}', reason="because"),
    ))
    back = Message.model_validate_json(m.model_dump_json())
    assert back == m
    assert [type(p) for p in back.parts] == [type(p) for p in m.parts]
    tool_msg = Message.tool_results(ToolResultPart(call_id="1", name="t", content="ok"))
    assert Message.model_validate_json(tool_msg.model_dump_json()) == tool_msg


def test_tool_call_args() -> None:
    """Arguments parse as an object; empty means none; a non-object is refused."""
    assert ToolCallPart(id="1", name="t", arguments="").args() == {}
    assert ToolCallPart(id="1", name="t", arguments='{"a": [1]}').args() == {"a": [1]}
    with pytest.raises(ValueError, match="JSON object"):
        ToolCallPart(id="1", name="t", arguments="[1]").args()


def test_parsed_arguments_are_parsed_once_and_args_stays_a_fresh_copy() -> None:
    """`parsed_arguments` shares one parse per arguments text (None when not an object);
    `args()` still gives each caller its own dict."""
    from agentnb.core import parsed_arguments

    a = ToolCallPart(id="1", name="t", arguments='{"q": [1, 2]}')
    b = ToolCallPart(id="2", name="t", arguments='{"q": [1, 2]}')
    assert parsed_arguments(a) == {"q": [1, 2]}
    assert parsed_arguments(a) is parsed_arguments(b)
    assert parsed_arguments(ToolCallPart(id="3", name="t", arguments="[1]")) is None
    assert parsed_arguments(ToolCallPart(id="4", name="t", arguments=" ")) == {}
    mine = a.args()
    mine["q"] = "changed"
    assert a.args() == {"q": [1, 2]} == parsed_arguments(a)


def test_estimated_tokens_follow_each_tool_definition() -> None:
    """The per-definition count is kept by object: a bigger schema in a new definition counts
    more, the same definition counts the same each time."""
    from agentnb.core import ToolDefinition
    from agentnb.models._base import estimate_tokens

    small = ToolDefinition(name="t", parameters={"type": "object", "properties": {}})
    big = ToolDefinition(name="t", parameters={"type": "object", "properties": {
        f"p{i}": {"type": "string", "description": "x" * 40} for i in range(20)}})
    msgs = [Message.user("hello")]
    assert estimate_tokens(msgs, [small]) == estimate_tokens(msgs, [small])
    assert estimate_tokens(msgs, [big]) > estimate_tokens(msgs, [small]) + 200


def test_message_helpers() -> None:
    """text and tool_calls read the parts."""
    m = Message.assistant(TextPart(text="x"), ToolCallPart(id="1", name="t"), TextPart(text="y"))
    assert m.text == "xy"
    assert [c.name for c in m.tool_calls] == ["t"]


usages = st.builds(
    Usage,
    input_tokens=st.integers(0, 10**6), output_tokens=st.integers(0, 10**6),
    model_calls=st.integers(0, 100), tool_calls=st.integers(0, 100),
    usd=st.one_of(st.none(), st.decimals(min_value=0, max_value=100, places=6)),
)


@given(usages, usages, usages)
def test_usage_addition_is_associative_and_unknown_is_sticky(a: Usage, b: Usage, c: Usage) -> None:
    """(a+b)+c == a+(b+c), and any unpriced part makes the total unpriced."""
    assert (a + b) + c == a + (b + c)
    total = a + b + c
    assert total.total_tokens == a.total_tokens + b.total_tokens + c.total_tokens
    assert (total.usd is None) == any(u.usd is None for u in (a, b, c))


def test_usage_coerces_floats_exactly() -> None:
    """A float price becomes the Decimal of its shortest repr, not a binary artefact."""
    assert Usage(usd=0.1).usd == Decimal("0.1")
    assert "unpriced" in str(Usage(usd=None))


def test_ids_sort_by_time_and_are_unique() -> None:
    """New ids carry their prefix, are unique, and sort by creation."""
    ids = [new_id("run") for _ in range(200)]
    assert len(set(ids)) == 200
    assert all(i.startswith("run_") for i in ids)
    assert [i[:18] for i in ids] == sorted(i[:18] for i in ids)


def test_content_hash_ignores_key_order() -> None:
    """Equal values hash equally whatever the dict order; pydantic models hash by content."""
    assert content_hash({"a": 1, "b": 2}) == content_hash({"b": 2, "a": 1})
    assert content_hash(Message.user("x")) == content_hash(Message.user("x"))
    assert content_hash(Message.user("x")) != content_hash(Message.user("y"))
    assert canonical_json({1, 2}) == "[1,2]"


def test_settings_precedence(tmp_path: Path) -> None:
    """argument > AGENTNB_* env > [tool.agentnb] > default."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.agentnb]\ndefault-model = "sim:cheap"\nsim_latency = 0.5\ntrace = false\n'
    )
    s = resolve(env={}, cwd=tmp_path)
    assert (s.default_model, s.sim_latency, s.trace) == ("sim:cheap", 0.5, False)
    s = resolve(env={"AGENTNB_MODEL": "sim:expert", "AGENTNB_TRACE": "yes"}, cwd=tmp_path)
    assert (s.default_model, s.trace) == ("sim:expert", True)
    s = resolve(env={"AGENTNB_MODEL": "sim:expert"}, cwd=tmp_path, default_model="sim:careful",
                sim_latency=None)
    assert (s.default_model, s.sim_latency) == ("sim:careful", 0.5)


def test_settings_defaults_without_pyproject(tmp_path: Path) -> None:
    """With nothing configured, the documented defaults apply."""
    s = resolve(env={}, cwd=tmp_path)
    assert s.default_model == "sim:careful"
    assert s.home == Path(".agentnb")
    assert s.otlp_endpoint is None


def test_bad_settings_name_their_source(tmp_path: Path) -> None:
    """A bad value says which setting, which value, and where it came from."""
    with pytest.raises(ConfigError, match=r"AGENTNB_SIM_LATENCY") as info:
        resolve(env={"AGENTNB_SIM_LATENCY": "fast"}, cwd=tmp_path)
    assert "'fast'" in str(info.value)
    with pytest.raises(ConfigError, match="Unknown setting 'colour'"):
        resolve(env={}, cwd=tmp_path, colour="red")
    (tmp_path / "pyproject.toml").write_text("[tool.agentnb]\nbogus = 1\n")
    with pytest.raises(ConfigError, match="pyproject.toml"):
        resolve(env={}, cwd=tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.agentnb\n")
    with pytest.raises(ConfigError, match="Cannot read"):
        resolve(env={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="AGENTNB_TRACE"):
        resolve(env={"AGENTNB_TRACE": "maybe"}, cwd=Path("/"))


def test_current_pid_follows_a_fork() -> None:
    """`current_pid` is set again in a forked child."""
    import os

    import pytest

    from agentnb.core import current_pid

    if not hasattr(os, "fork"):
        pytest.skip("needs fork")
    assert current_pid() == os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        os._exit(0 if current_pid() == os.getpid() != os.getppid() else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
