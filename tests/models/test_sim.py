"""`sim:` models: tool choice, argument extraction, mistakes by quality, determinism, usage."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from decimal import Decimal
from typing import Any

import pytest

from agentnb.core import (
    ConfigError,
    Message,
    ToolCallPart,
    ToolDefinition,
    ToolResultPart,
    run_sync,
)
from agentnb.models._base import ModelResponse, ModelSettings, StreamEvent, estimate_tokens
from agentnb.models.sim import SimModel, list_sim


def _tool(
    name: str, description: str, props: dict[str, Any], required: list[str]
) -> ToolDefinition:
    return ToolDefinition(name=name, description=description,
                          parameters={"type": "object", "properties": props, "required": required})


TOOLS = [
    _tool("lookup_order", "Look up an order by its id.", {"order_id": {"type": "integer"}},
          ["order_id"]),
    _tool("refund", "Refund money for an order.",
          {"order_id": {"type": "integer"}, "amount": {"type": "number"}}, ["order_id", "amount"]),
    _tool("send_email", "Send an email.",
          {"to": {"type": "string"}, "subject": {"type": "string"}, "body": {"type": "string"}},
          ["to", "subject", "body"]),
    _tool("read_file", "Read a text file from the workspace.", {"path": {"type": "string"}},
          ["path"]),
    _tool("get_weather", "Current weather for a city.",
          {"city": {"type": "string"},
           "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, ["city", "unit"]),
]
CITIES = ["Paris", "Berlin", "Lisbon", "Oslo", "Madrid", "Rome", "Vienna", "Dublin"]


def _task(rng: random.Random) -> tuple[str, str, dict[str, Any]]:
    """A task text, the tool it needs and the arguments it should get."""
    kind = rng.randrange(4)
    if kind == 0:
        n = rng.randrange(1, 99999)
        return f"Look up order {n} please.", "lookup_order", {"order_id": n}
    if kind == 1:
        path = f"{rng.choice(['notes', 'src', 'docs'])}/{rng.choice(['a', 'todo', 'x1'])}.md"
        return f"Read the file {path} and summarise it.", "read_file", {"path": path}
    if kind == 2:
        city, unit = rng.choice(CITIES), rng.choice(["celsius", "fahrenheit"])
        return (f"What is the weather in {city} today, in {unit}?", "get_weather",
                {"city": city, "unit": unit})
    who = rng.choice(["alice", "bob", "carol"])
    return (f"Send an email to {who}@example.com saying hello.", "send_email",
            {"to": f"{who}@example.com"})


def _ask(model: SimModel, task: str, **kw: Any) -> ModelResponse:
    return run_sync(model.request([Message.system("You are a helpful agent."), Message.user(task)],
                                  tools=TOOLS, **kw))


def _correct(response: ModelResponse, tool: str, expected: dict[str, Any]) -> bool:
    calls = response.tool_calls
    if len(calls) != 1 or calls[0].name != tool:
        return False
    args = calls[0].args()
    return all(args.get(k) == v for k, v in expected.items())


def test_list_sim_states_three_models_ordered_by_quality_and_price() -> None:
    """list_sim() lists cheap, careful and expert with rising quality, price and latency."""
    specs = list_sim()
    assert [s.id for s in specs] == ["sim:cheap", "sim:careful", "sim:expert"]
    for weak, strong in itertools.pairwise(specs):
        assert weak.quality < strong.quality
        assert weak.input_per_mtok < strong.input_per_mtok
        assert weak.output_per_mtok < strong.output_per_mtok
        assert weak.latency_s < strong.latency_s
    assert specs[0].input_per_mtok == Decimal("0.15")


def test_expert_extracts_ids_amounts_emails_in_parallel() -> None:
    """A refund-and-email task gets parallel calls with the order id, amount and address."""
    r = _ask(SimModel("expert", latency_scale=0),
             "Refund order 42 for $12.50 and email alice@example.com")
    calls = {c.name: c.args() for c in r.tool_calls}
    assert calls["refund"] == {"order_id": 42, "amount": 12.5}
    assert calls["send_email"]["to"] == "alice@example.com"
    assert r.finish_reason == "tool_calls"
    assert all(c.reason and c.name in c.reason for c in r.tool_calls)


def test_expert_extracts_paths_enums_and_names() -> None:
    """Paths, enum words and capitalised names become arguments."""
    m = SimModel("expert", latency_scale=0)
    assert _ask(m, "Read the file notes/todo.md").tool_calls[0].args() == {"path": "notes/todo.md"}
    args = _ask(m, "What is the weather in New York in fahrenheit?").tool_calls[0].args()
    assert args == {"city": "New York", "unit": "fahrenheit"}


def test_no_relevant_tool_means_a_text_answer() -> None:
    """A task no tool matches is answered in text without tool calls."""
    r = _ask(SimModel("expert", latency_scale=0), "What is two plus two?")
    assert r.tool_calls == []
    assert r.text
    assert r.finish_reason == "stop"


def test_quality_orders_the_right_tool_rate_over_200_seeded_tasks() -> None:
    """Expert picks the right tool and arguments more often than careful, careful than cheap."""
    tasks = [_task(random.Random(i)) for i in range(200)]
    rates = {}
    for name in ("cheap", "careful", "expert"):
        model = SimModel(name, latency_scale=0)
        hits = sum(_correct(_ask(model, t), tool, args) for t, tool, args in tasks)
        rates[name] = hits / len(tasks)
    assert rates["expert"] > rates["careful"] + 0.05 > rates["cheap"] + 0.1
    # The stated quality is the mistake rate, give or take sampling noise.
    for spec in list_sim():
        assert abs(rates[spec.name] - spec.quality) < 0.1, rates


def test_mistakes_include_invalid_arguments_wrong_tools_and_skips() -> None:
    """A weak model's mistakes show up as bad arguments, wrong tools and skipped tools."""
    model = SimModel("weak", quality=0.0, latency_scale=0)
    seen = set()
    for i in range(80):
        task, tool, expected = _task(random.Random(i))
        r = _ask(model, task)
        if not r.tool_calls:
            seen.add("skip")
            continue
        assert all(c.reason for c in r.tool_calls)
        names = [c.name for c in r.tool_calls]
        if any(n != tool for n in names):
            seen.add("wrong_tool")
        elif len(names) > 1:
            seen.add("repeat")
        else:
            args = r.tool_calls[0].args()
            schema = next(t for t in TOOLS if t.name == tool).parameters
            if set(schema["required"]) - set(args) or args != {**args, **expected}:
                seen.add("bad_args")
    assert seen == {"skip", "wrong_tool", "repeat", "bad_args"}


def test_same_conversation_same_answer_across_instances() -> None:
    """Fresh instances with the same seed answer a conversation identically."""
    tasks = [_task(random.Random(i))[0] for i in range(20)]
    first = [_ask(SimModel("cheap", latency_scale=0), t) for t in tasks]
    again = [_ask(SimModel("cheap", latency_scale=0), t) for t in tasks]
    assert first == again
    other = [_ask(SimModel("cheap", seed=1, latency_scale=0), t) for t in tasks]
    assert other != first


def test_determinism_holds_under_concurrency_and_any_order() -> None:
    """Concurrent requests in shuffled order give the same answers as sequential ones."""
    model = SimModel("careful", latency_scale=0)
    tasks = [_task(random.Random(i))[0] for i in range(30)]
    sequential = {t: _ask(model, t) for t in tasks}
    shuffled = list(reversed(tasks))

    async def many() -> list[ModelResponse]:
        return await asyncio.gather(*[
            model.request([Message.system("You are a helpful agent."), Message.user(t)],
                          tools=TOOLS) for t in shuffled])

    for task, response in zip(shuffled, run_sync(many()), strict=True):
        assert response == sequential[task]


def _episode(model: SimModel, task: str, facts: dict[str, str]) -> tuple[ModelResponse, int]:
    messages = [Message.user(task)]
    for calls in range(1, 20):
        r = run_sync(model.request(messages, tools=TOOLS))
        if not r.tool_calls:
            return r, calls
        results = [ToolResultPart(call_id=c.id, name=c.name, content=facts.get(c.name, "ok"))
                   for c in r.tool_calls]
        messages += [r.message(), Message.tool_results(*results)]
    raise AssertionError(f"{model!r} did not finish {task!r}")


def test_every_model_finishes_and_summarises_tool_results() -> None:
    """Episodes end with a text answer within the round cap; answers quote the results."""
    facts = {"lookup_order": "order 5 is SHIPPED", "read_file": "TODO: water plants",
             "get_weather": "sunny 21C", "send_email": "queued message m-1"}
    for spec in list_sim():
        model = SimModel(spec.name, latency_scale=0, max_tool_rounds=4)
        quoted = 0
        for i in range(40):
            task, tool, _ = _task(random.Random(i))
            final, calls = _episode(model, task, facts)
            assert calls <= 5
            assert final.finish_reason == "stop"
            assert final.text
            quoted += facts[tool] in final.text
        assert quoted >= 40 * spec.quality - 8


def test_round_cap_forces_an_answer() -> None:
    """After max_tool_rounds rounds of calls the model answers in text."""
    model = SimModel("expert", latency_scale=0, max_tool_rounds=1)
    call = ToolCallPart(id="c1", name="lookup_order", arguments='{"order_id": 1}')
    messages = [Message.user("Look up order 1 then refund order 1 for $3"),
                Message.assistant(call),
                Message.tool_results(ToolResultPart(call_id="c1", name="lookup_order",
                                                    content="error", is_error=True))]
    r = run_sync(model.request(messages, tools=TOOLS))
    assert r.tool_calls == []
    assert r.text


def test_failed_tool_is_retried() -> None:
    """A tool whose result was an error is called again (it is not done)."""
    model = SimModel("perfect", quality=1.0, latency_scale=0)
    call = ToolCallPart(id="c1", name="read_file", arguments="{}")
    messages = [Message.user("Read the file a.txt"), Message.assistant(call),
                Message.tool_results(ToolResultPart(call_id="c1", name="read_file",
                                                    content="missing path", is_error=True))]
    r = run_sync(model.request(messages, tools=TOOLS))
    assert [(c.name, c.args()) for c in r.tool_calls] == [("read_file", {"path": "a.txt"})]


def test_usage_and_cost_follow_stated_prices() -> None:
    """Input tokens are estimated, output counted from the text, usd from the stated prices."""
    model = SimModel("careful", latency_scale=0)
    messages = [Message.user("Look up order 9")]
    r = run_sync(model.request(messages, tools=TOOLS))
    assert r.usage.input_tokens == estimate_tokens(messages, TOOLS)
    assert r.usage.output_tokens > 0
    assert r.usage.model_calls == 1
    expected = (r.usage.input_tokens * Decimal(1) + r.usage.output_tokens * Decimal(4)) / 10**6
    assert r.usage.usd == expected
    custom = SimModel("mine", quality=0.5, input_per_mtok="2", output_per_mtok=0, latency_scale=0)
    r2 = run_sync(custom.request(messages))
    assert r2.usage.usd == r2.usage.input_tokens * Decimal(2) / 10**6
    assert custom.info.id == "sim:mine"


def test_max_tokens_truncates_with_finish_length() -> None:
    """An answer longer than max_tokens is cut and finishes with 'length'."""
    model = SimModel("expert", latency_scale=0)
    r = run_sync(model.request([Message.user("Tell me a story about a long river")],
                               settings=ModelSettings(max_tokens=3)))
    assert r.finish_reason == "length"
    assert len(r.text) <= 12
    assert r.usage.output_tokens == 3


def test_tool_choice_none_required_and_named() -> None:
    """tool_choice 'none' answers in text; 'required' and a tool name force a call."""
    model = SimModel("expert", latency_scale=0)
    r = _ask(model, "Look up order 3", settings=ModelSettings(tool_choice="none"))
    assert r.tool_calls == []
    r = _ask(model, "What is two plus two?", settings=ModelSettings(tool_choice="required"))
    assert len(r.tool_calls) >= 1
    r = _ask(model, "Look up order 3", settings=ModelSettings(tool_choice="refund"))
    assert [c.name for c in r.tool_calls] == ["refund"]


def test_structured_output_follows_the_schema_in_the_prompt() -> None:
    """A JSON schema in the system prompt yields a JSON object with its fields and types."""
    schema = {"type": "object", "properties": {"order_id": {"type": "integer"},
                                               "status": {"type": "string",
                                                          "enum": ["open", "closed"]}},
              "required": ["order_id", "status"]}
    model = SimModel("expert", latency_scale=0)
    r = run_sync(model.request([Message.system(f"Reply as JSON matching {json.dumps(schema)}"),
                                Message.user("Order 77 is closed; report it.")]))
    assert json.loads(r.text) == {"order_id": 77, "status": "closed"}
    plain = run_sync(model.request([Message.user("Answer in JSON: what is up?")]))
    assert "answer" in json.loads(plain.text)


def test_latency_is_simulated_and_scaled() -> None:
    """latency_s * latency_scale seconds pass per call; scale 0 is instant."""
    slow = SimModel("cheap", latency_s=0.05)
    start = time.perf_counter()
    run_sync(slow.request([Message.user("hi")]))
    assert time.perf_counter() - start >= 0.05
    fast = SimModel("expert", latency_scale=0)
    start = time.perf_counter()
    run_sync(fast.request([Message.user("hi")]))
    assert time.perf_counter() - start < 0.5


def test_stream_reports_text_and_tool_calls() -> None:
    """stream() reports text chunks and tool calls and returns the request() answer."""
    model = SimModel("expert", latency_scale=0)
    events: list[StreamEvent] = []
    messages = [Message.user("Refund order 42 for $12.50 and email alice@example.com")]
    r = run_sync(model.stream(messages, tools=TOOLS, on_event=events.append))
    assert r == run_sync(model.request(messages, tools=TOOLS))
    assert [e.name for e in events] == [c.name for c in r.tool_calls]
    text_events: list[StreamEvent] = []
    r2 = run_sync(model.stream([Message.user("hello there friend")], on_event=text_events.append))
    assert "".join(e.delta for e in text_events) == r2.text
    assert len(text_events) > 1


def test_bad_quality_is_a_config_error() -> None:
    """A quality outside 0..1 is refused with the value in the message."""
    with pytest.raises(ConfigError, match=r"1\.5"):
        SimModel("odd", quality=1.5)


def test_final_tool_is_called_to_finish() -> None:
    """A `final_*` tool is called with the results once the work is done, never before."""
    final = _tool("final_result", "Report the result.",
                  {"order_id": {"type": "integer"}, "status": {"type": "string"}},
                  ["order_id", "status"])
    model = SimModel("perfect", quality=1.0, latency_scale=0)
    messages = [Message.user("Look up order 5")]
    first = run_sync(model.request(messages, tools=[*TOOLS, final]))
    assert [c.name for c in first.tool_calls] == ["lookup_order"]
    result = ToolResultPart(call_id=first.tool_calls[0].id, name="lookup_order",
                            content="status: shipped")
    messages += [first.message(), Message.tool_results(result)]
    done = run_sync(model.request(messages, tools=[*TOOLS, final]))
    assert [c.name for c in done.tool_calls] == ["final_result"]
    assert done.tool_calls[0].args()["order_id"] == 5
