"""`sim:` models: simulated, seeded, deterministic models for offline work (DESIGN invariant 7).

A sim model reads the conversation and the offered tools and acts like a plausible agent: it
scores each tool by word overlap with the task, calls the best unused relevant ones with
arguments pulled out of the task text (quoted strings, numbers, amounts, emails, paths, enum
words, `key 7`-style pairs), and once the results are in it answers with a summary that quotes
them. With probability `1 - quality` per response it makes a mistake: a wrong tool, invalid
arguments, a repeated call, or an answer given without the needed tool. So `sim:cheap` really
does worse than `sim:expert`, which is what model comparisons need to show.

Every decision draws from a `random.Random` seeded by (seed, model name, content hash of the
conversation and tools), so the same conversation always gets the same answer, whatever the
order or concurrency of calls. Latency is `asyncio.sleep(latency_s * latency_scale)`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import random
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from agentnb.core import (
    ConfigError,
    FinishReason,
    Message,
    Part,
    TextPart,
    ToolCallPart,
    ToolDefinition,
    ToolResultPart,
    Usage,
    canonical_json,
)
from agentnb.models._base import (
    ModelBase,
    ModelInfo,
    ModelResponse,
    ModelSettings,
    StreamCallback,
    StreamEvent,
    estimate_tokens,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["SimModel", "SimSpec", "list_sim"]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class SimSpec:
    """The stated quality, price and latency of a `sim:` model.

    Example:
        >>> spec = next(s for s in list_sim() if s.name == "cheap")
        >>> spec.id, spec.quality
        ('sim:cheap', 0.55)
    """

    name: str
    """The name after `sim:`."""
    quality: float
    """Probability that a response contains no mistake (0..1)."""
    input_per_mtok: Decimal
    """USD per million input tokens."""
    output_per_mtok: Decimal
    """USD per million output tokens."""
    latency_s: float
    """Simulated seconds per call, before `latency_scale`."""
    description: str = ""
    """What the model stands for."""

    @property
    def id(self) -> str:
        """The `"sim:name"` string."""
        return f"sim:{self.name}"


_SPECS: dict[str, SimSpec] = {
    s.name: s
    for s in (
        SimSpec(name="cheap", quality=0.55, input_per_mtok=Decimal("0.15"),
                output_per_mtok=Decimal("0.60"), latency_s=0.05,
                description="weak and cheap: often picks the wrong tool or skips it"),
        SimSpec(name="careful", quality=0.85, input_per_mtok=Decimal("1"),
                output_per_mtok=Decimal("4"), latency_s=0.3,
                description="mid-range: usually right, sometimes sloppy"),
        SimSpec(name="expert", quality=0.97, input_per_mtok=Decimal("5"),
                output_per_mtok=Decimal("20"), latency_s=0.8,
                description="strong and expensive: rarely wrong"),
    )
}


def list_sim() -> list[SimSpec]:
    """List the built-in `sim:` models, weakest first.

    Example:
        >>> [s.id for s in list_sim()]
        ['sim:cheap', 'sim:careful', 'sim:expert']
    """
    return sorted(_SPECS.values(), key=lambda s: s.quality)


_STOP = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "could", "do", "does", "for", "from",
    "get", "give", "has", "have", "how", "i", "in", "is", "it", "its", "me", "my", "of", "on",
    "or", "please", "set", "show", "tell", "that", "the", "then", "this", "to", "use", "using",
    "was", "what", "when", "where", "which", "who", "will", "with", "would", "you", "your",
))
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"https?://[^\s'\"<>]+")
_PATH = re.compile(r"(?<![\w@])(?:\.{0,2}/)?(?:[\w.-]+/)*[\w-]+\.[A-Za-z][\w]{0,5}\b(?!@)")
_MONEY = re.compile(r"\$\s?(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s?(?:usd|dollars?|eur|euros?)\b", re.I)
_NUMBER = re.compile(r"(?<![\w.$])-?\d+(?:\.\d+)?(?![\w@])")
_QUOTED = re.compile(r"\"([^\"]+)\"|'([^']{2,})'|“([^”]+)”")
_PROPER = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][a-z]+(?:\s[A-Z][a-z]+)*)")
_FREE_TEXT = frozenset({"subject", "body", "text", "message", "query", "content", "description",
                        "prompt", "question", "note", "comment", "title"})
_MONEY_WORDS = frozenset({"amount", "price", "usd", "total", "cost", "sum", "value"})
_MAX_PARALLEL = 3


def _stem(word: str) -> str:
    for suffix, keep in (("ing", 4), ("ed", 4), ("es", 4), ("s", 3)):
        if word.endswith(suffix) and len(word) - len(suffix) >= keep:
            return word[: -len(suffix)]
    return word


def _words(text: str) -> list[str]:
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    return [_stem(w) for w in re.findall(r"[a-z]+", text.lower()) if w not in _STOP]


def _is_path(token: str) -> bool:
    return not _EMAIL.fullmatch(token) and not re.fullmatch(r"[\d.]+", token)


@dataclasses.dataclass(kw_only=True, slots=True)
class _Values:
    """Candidate argument values found in a text, consumed as parameters take them."""

    text: str
    emails: list[str]
    urls: list[str]
    paths: list[str]
    money: list[str]
    numbers: list[str]
    quoted: list[str]
    proper: list[str]

    @classmethod
    def scan(cls, text: str) -> _Values:
        no_urls = _URL.sub(" ", text)
        no_mail = _EMAIL.sub(" ", no_urls)
        money = [a or b for a, b in _MONEY.findall(no_mail)]
        return cls(
            text=text,
            emails=_EMAIL.findall(text),
            urls=_URL.findall(text),
            paths=[p for p in _PATH.findall(no_mail) if _is_path(p)],
            money=money,
            numbers=_NUMBER.findall(_MONEY.sub(" ", no_mail)),
            quoted=[next(g for g in m if g) for m in _QUOTED.findall(text)],
            proper=[m.group(1) for m in _PROPER.finditer(no_mail)
                    if m.group(1).lower() not in _STOP],
        )

    def after(self, words: Sequence[str]) -> str | None:
        """The token that follows one of `words` (`order 42`, `key: 7`, `id #12`)."""
        for w in words:
            m = re.search(rf"\b{re.escape(w)}s?\b\s*(?:id|number|no\.?)?\s*[:=#]?\s*"
                          r"([\w.@/-]+)", self.text, re.I)
            if m and m.group(1).lower() not in _STOP:
                return m.group(1).rstrip(".")
        return None


def _take(pool: list[str]) -> str | None:
    return pool.pop(0) if pool else None


def _to_number(raw: str | None, integer: bool) -> int | float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    if integer:
        return int(value) if value.is_integer() else None
    return int(value) if value.is_integer() and "." not in raw else value


def _schema_type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind is None and "anyOf" in schema:
        for option in schema["anyOf"]:
            if isinstance(option, dict) and option.get("type") not in (None, "null"):
                return _schema_type(option)
    if kind is None and "enum" in schema:
        return "string"
    return str(kind or "string")


def _value_for(name: str, schema: dict[str, Any], values: _Values, task: str) -> Any:
    """Pick a value for one parameter from the text, or a sensible default for its type."""
    kind = _schema_type(schema)
    words = [w for w in re.split(r"[_\W]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()) if w]
    lowered = task.lower()
    if schema.get("enum"):
        for option in schema["enum"]:
            if str(option).lower() in lowered:
                return option
        return schema["enum"][0]
    if kind == "boolean":
        return any(w in lowered for w in words if len(w) > 2) and "not " not in lowered
    if kind == "array":
        item = _value_for(name, schema.get("items", {}), values, task)
        return [item]
    if kind == "object":
        return {}
    money_like = any(w in _MONEY_WORDS for w in words)
    if kind in ("integer", "number"):
        integer = kind == "integer"
        if money_like:
            raw = _take(values.money) or _take(values.numbers)
        else:
            stems = [w for w in words if w not in ("id", "number", "num", "no")] or words
            raw = values.after(stems)
            if raw is not None and raw in values.numbers:
                values.numbers.remove(raw)
            elif _to_number(raw, integer) is None:
                raw = _take(values.numbers)
        number = _to_number(raw, integer)
        if number is None:
            number = 1 if integer else 1.0
        return number
    # strings
    if any(w in ("email", "to", "recipient", "address", "cc") for w in words) and values.emails:
        return values.emails.pop(0)
    if any(w in ("url", "link", "href", "endpoint") for w in words) and values.urls:
        return values.urls.pop(0)
    if any(w in ("path", "file", "filename", "filepath") for w in words) and values.paths:
        return values.paths.pop(0)
    if money_like and (values.money or values.numbers):
        return _take(values.money) or _take(values.numbers)
    if (words and words[-1] in ("id", "key", "number", "code", "sku")) or name in ("key", "id"):
        stems = [w for w in words if w not in ("id", "number")] or words
        found = values.after(stems)
        if found is not None:
            if found in values.numbers:
                values.numbers.remove(found)
            return found
        raw = _take(values.numbers)
        if raw is not None:
            return raw
    found = values.after(words) if words else None
    if found is not None and name not in _FREE_TEXT:
        return found
    if values.quoted:
        return values.quoted.pop(0)
    if name not in _FREE_TEXT and values.proper:
        return values.proper.pop(0)
    if name in ("subject", "title"):
        return " ".join(task.split()[:8]).rstrip(".?!")
    return task.strip()


def _make_args(tool: ToolDefinition, text: str) -> dict[str, Any]:
    values = _Values.scan(text)
    props = tool.parameters.get("properties") or {}
    required = list(tool.parameters.get("required") or [])
    args: dict[str, Any] = {}
    # Required parameters take the values first: `refund(order_id, amount)` gets the order number
    # before an optional field could consume it.
    for name in [*required, *[p for p in props if p not in required]]:
        schema = props.get(name, {})
        if name not in required and "default" in schema:
            continue
        args[name] = _value_for(name, schema if isinstance(schema, dict) else {}, values, text)
    return args


def _break_args(tool: ToolDefinition, args: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Make arguments invalid: drop a required field or give one the wrong type."""
    broken = dict(args)
    required = [r for r in tool.parameters.get("required") or [] if r in broken]
    if required and rng.random() < 0.5:
        del broken[rng.choice(required)]
        return broken
    name = rng.choice(sorted(broken))
    broken[name] = "n/a" if not isinstance(broken[name], str) else [broken[name]]
    return broken



@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _Turn:
    system: str
    task: str
    calls: tuple[ToolCallPart, ...]
    results: tuple[ToolResultPart, ...]
    rounds: int
    notes: str


def _read(messages: Sequence[Message]) -> _Turn:
    start = 0
    for i, m in enumerate(messages):
        previous = messages[i - 1] if i else None
        follows_tools = previous is not None and (
            previous.role == "tool" or bool(previous.tool_calls)
            or any(isinstance(p, ToolResultPart) for p in previous.parts))
        if m.role == "user" and m.text.strip() and not follows_tools:
            start = i
    system = "\n".join(m.text for m in messages if m.role == "system")
    turn = messages[start:]
    task = turn[0].text if turn and turn[0].role == "user" else ""
    calls = tuple(c for m in turn if m.role == "assistant" for c in m.tool_calls)
    results = tuple(p for m in turn for p in m.parts if isinstance(p, ToolResultPart))
    rounds = sum(1 for m in turn if m.role == "assistant" and m.tool_calls)
    notes = "\n".join(m.text for m in turn[1:] if m.role == "user")
    return _Turn(system=system, task=task, calls=calls, results=results, rounds=rounds, notes=notes)


def _score(tool: ToolDefinition, task_words: set[str]) -> tuple[int, int]:
    """(name hits, weighted overlap) between a tool and the task."""
    name_words = set(_words(tool.name))
    param_words = {w for p in (tool.parameters.get("properties") or {}) for w in _words(p)}
    desc_words = set(_words(tool.description))
    name_hits = len(name_words & task_words)
    return name_hits, 3 * name_hits + len(desc_words & task_words) + len(param_words & task_words)


def _find_schema(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text` that looks like a JSON schema."""
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(value, dict) and ("properties" in value or value.get("type") == "object"):
            return value
    return None



class SimModel(ModelBase):
    """A simulated model with a stated quality, price and latency.

    Args:
        name: a built-in name (`cheap`, `careful`, `expert`; `sim:` prefix allowed) whose
            stated values fill whatever is not given, or a new name with explicit values.
        quality: probability of a response without a mistake.
        input_per_mtok: USD per million input tokens.
        output_per_mtok: USD per million output tokens.
        latency_s: simulated seconds per call.
        seed: varies the answers; the same seed and conversation give the same answer.
        latency_scale: multiplies `latency_s`; 0 makes calls instant (`AGENTNB_SIM_LATENCY`).
        max_tool_rounds: after this many rounds of tool calls the model always answers.

    Example:
        >>> from agentnb.core import Message, ToolDefinition, run_sync
        >>> m = SimModel("expert", latency_scale=0)
        >>> tool = ToolDefinition(name="lookup", description="Look a key up.",
        ...     parameters={"type": "object", "properties": {"key": {"type": "string"}},
        ...                 "required": ["key"]})
        >>> r = run_sync(m.request([Message.user("What does key 7 hold?")], tools=[tool]))
        >>> [(c.name, c.args()) for c in r.tool_calls]
        [('lookup', {'key': '7'})]
    """

    def __init__(
        self,
        name: str = "careful",
        *,
        quality: float | None = None,
        input_per_mtok: Decimal | float | str | None = None,
        output_per_mtok: Decimal | float | str | None = None,
        latency_s: float | None = None,
        seed: int = 0,
        latency_scale: float = 1.0,
        max_tool_rounds: int = 5,
    ) -> None:
        name = name.removeprefix("sim:")
        base = _SPECS.get(name, _SPECS["careful"])
        self.spec = SimSpec(
            name=name,
            quality=base.quality if quality is None else float(quality),
            input_per_mtok=base.input_per_mtok if input_per_mtok is None
            else Decimal(str(input_per_mtok)),
            output_per_mtok=base.output_per_mtok if output_per_mtok is None
            else Decimal(str(output_per_mtok)),
            latency_s=base.latency_s if latency_s is None else float(latency_s),
            description=base.description if name in _SPECS else "custom",
        )
        if not 0.0 <= self.spec.quality <= 1.0:
            msg = f"SimModel quality must be between 0 and 1, got {self.spec.quality!r}."
            raise ConfigError(msg, source="argument", hint="Pass e.g. `quality=0.8`.")
        self.seed = seed
        self.latency_scale = latency_scale
        self.max_tool_rounds = max_tool_rounds
        self._info = ModelInfo(provider="sim", name=name, input_per_mtok=self.spec.input_per_mtok,
                               output_per_mtok=self.spec.output_per_mtok, context_window=128_000,
                               max_output_tokens=1024)

    def _rng(self, messages: Sequence[Message], tools: Sequence[ToolDefinition],
             settings: ModelSettings) -> random.Random:
        convo = canonical_json([[m.model_dump(mode="json") for m in messages],
                                [t.model_dump(mode="json", exclude={"effects"}) for t in tools],
                                settings.tool_choice, settings.seed])
        digest = hashlib.sha256(f"{self.seed}|{self.info.name}|{convo}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    async def request(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        """Decide on tool calls or a final answer for this conversation."""
        settings = settings or ModelSettings()
        delay = self.spec.latency_s * self.latency_scale
        if delay > 0:
            await asyncio.sleep(delay)
        rng = self._rng(messages, tools, settings)
        turn = _read(messages)
        parts = self._decide(turn, tools, settings, rng)
        return self._respond(parts, messages, tools, settings)

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        settings: ModelSettings | None = None,
        on_event: StreamCallback | None = None,
    ) -> ModelResponse:
        """Answer as `request()` does, reporting text in word chunks and each tool call."""
        response = await self.request(messages, tools=tools, settings=settings)
        if on_event is not None:
            calls = 0
            for index, part in enumerate(response.parts):
                if isinstance(part, TextPart):
                    for chunk in re.findall(r"\S+\s*|\s+", part.text):
                        on_event(StreamEvent(kind="text", delta=chunk, index=index))
                elif isinstance(part, ToolCallPart):
                    on_event(StreamEvent(kind="tool_call", delta=part.arguments, index=calls,
                                         name=part.name))
                    calls += 1
        return response

    def _decide(self, turn: _Turn, tools: Sequence[ToolDefinition], settings: ModelSettings,
                rng: random.Random) -> Sequence[Part]:
        choice = settings.tool_choice
        if choice == "none":
            return [self._answer(turn, rng)]
        # A `final_*` tool (structured output offered as a tool) is how the model finishes.
        finals = [t for t in tools if t.name.startswith("final_")]
        tools = [t for t in tools if not t.name.startswith("final_")]
        if not tools or turn.rounds >= self.max_tool_rounds:
            return [self._finish(turn, finals, rng)]
        task_words = set(_words(turn.task))
        scored = [(_score(t, task_words), i, t) for i, t in enumerate(tools)]
        scored.sort(key=lambda s: (-s[0][1], s[1]))
        done = {r.name for r in turn.results if not r.is_error}
        # Tools named after something in the task are relevant; otherwise only the single best
        # description match is, so "look up order 7" never drifts into `refund(order_id)`.
        relevant = [t for (hits, _), _, t in scored if hits]
        if not relevant and scored[0][0][1] >= 2:
            relevant = [scored[0][2]]
        if isinstance(choice, str) and choice not in ("auto", "required"):
            forced = [t for t in tools if t.name == choice]
            relevant = forced or relevant
        todo = [t for t in relevant if t.name not in done]
        if not todo and choice == "required":
            todo = [scored[0][2]]
        if not todo:
            return [self._finish(turn, finals, rng)]
        strong = [t for t in todo if _score(t, task_words)[0] > 0]
        parallel = settings.parallel_tool_calls is not False and len(strong) > 1
        chosen = strong[:_MAX_PARALLEL] if parallel else todo[:1]
        mistake = rng.random() >= self.spec.quality
        if not mistake:
            return [self._call(t, turn, rng) for t in chosen]
        kinds = ["wrong_tool", "bad_args", "repeat", "skip"]
        if choice == "required" or (isinstance(choice, str) and choice not in ("auto", "none")):
            kinds.remove("skip")
        kind = rng.choice(kinds)
        if kind == "skip":
            return [self._finish(turn, finals, rng, skipped=True)]
        calls = [self._call(t, turn, rng) for t in chosen]
        victim = rng.randrange(len(calls))
        if kind == "wrong_tool":
            others = [t for t in tools if t.name not in {c.name for c in calls}]
            if others:
                wrong = rng.choice(others)
                calls[victim] = self._call(wrong, turn, rng, reason=(
                    f"`{wrong.name}` looks like it could help with this."))
                return calls
            kind = "bad_args"
        if kind == "bad_args":
            tool = next(t for t in chosen if t.name == calls[victim].name)
            if tool.parameters.get("properties"):
                bad = _break_args(tool, calls[victim].args(), rng)
                calls[victim] = calls[victim].model_copy(update={"arguments": json.dumps(bad)})
                return calls
        # A repeat: the previous call again instead of progress, or this call twice.
        previous = turn.calls[-1] if turn.calls else calls[victim]
        again = previous.model_copy(update={"id": _call_id(rng)})
        if turn.calls:
            calls[victim] = again
            return calls
        return [*calls, again]

    def _call(self, tool: ToolDefinition, turn: _Turn, rng: random.Random, *,
              reason: str | None = None) -> ToolCallPart:
        text = f"{turn.task}\n{turn.notes}" if turn.notes else turn.task
        args = _make_args(tool, text)
        if reason is None:
            hits = sorted(set(_words(tool.name)) & set(_words(turn.task)))
            why = f"the task mentions {', '.join(repr(h) for h in hits)}" if hits else (
                "its description matches the task")
            reason = f"`{tool.name}` fits: {why}."
        return ToolCallPart(id=_call_id(rng), name=tool.name, arguments=json.dumps(args),
                            reason=reason)

    def _finish(self, turn: _Turn, finals: Sequence[ToolDefinition], rng: random.Random, *,
                skipped: bool = False) -> Part:
        if not finals:
            return self._answer(turn, rng, skipped=skipped)
        facts = [] if skipped else [r for r in turn.results if not r.is_error]
        evidence = "\n".join([turn.task, *(r.content for r in facts)])
        final = finals[0]
        return ToolCallPart(id=_call_id(rng), name=final.name,
                            arguments=json.dumps(_make_args(final, evidence)),
                            reason="The task is done; report the result in the requested shape.")

    def _answer(self, turn: _Turn, rng: random.Random, *, skipped: bool = False) -> TextPart:
        prompt = f"{turn.system}\n{turn.task}"
        facts = [] if skipped else [r for r in turn.results if not r.is_error]
        schema = _find_schema(prompt)
        if schema is not None or re.search(r"\bjson\b", prompt, re.I):
            evidence = "\n".join([turn.task, *(r.content for r in facts)])
            if schema is not None:
                tool = ToolDefinition(name="answer", parameters=schema)
                obj = _make_args(tool, evidence)
            else:
                obj = {"answer": _summary(facts) if facts else turn.task.strip()}
            return TextPart(text=json.dumps(obj))
        if facts:
            opener = rng.choice(["Here is what I found.", "Done.", "The tools report this."])
            return TextPart(text=f"{opener} {_summary(facts)}")
        if skipped or turn.results:
            return TextPart(text=rng.choice([
                "I believe the task is complete; no further lookups are needed.",
                "Based on what I know, this should be fine.",
            ]))
        return TextPart(text=f"Answer to {turn.task.strip()!r}: "
                        + rng.choice(["here is my best answer.", "this is what I would do."]))

    def _respond(self, parts: Sequence[Part], messages: Sequence[Message],
                 tools: Sequence[ToolDefinition], settings: ModelSettings) -> ModelResponse:
        finish: FinishReason = "tool_calls" if any(isinstance(p, ToolCallPart) for p in parts) \
            else "stop"
        produced = sum(len(getattr(p, "text", "")) + len(getattr(p, "arguments", ""))
                       + len(getattr(p, "name", "")) for p in parts)
        output_tokens = max(1, produced // 4 + 1)
        limit = settings.max_tokens
        if limit is not None and output_tokens > limit:
            text = "".join(p.text for p in parts if isinstance(p, TextPart))
            parts = [TextPart(text=text[: max(limit, 0) * 4])]
            finish = "length"
            output_tokens = limit
        input_tokens = estimate_tokens(messages, tools)
        usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, model_calls=1,
                      usd=self.info.cost(input_tokens=input_tokens, output_tokens=output_tokens))
        return ModelResponse(parts=tuple(parts), usage=usage, finish_reason=finish,
                             raw_finish_reason=finish, model_name=self.info.name)


def _call_id(rng: random.Random) -> str:
    return f"call_{rng.getrandbits(48):012x}"


def _summary(results: Sequence[ToolResultPart]) -> str:
    lines = []
    for r in results:
        content = r.content if len(r.content) <= 600 else r.content[:600] + "..."
        lines.append(f"{r.name}: {content}")
    return "\n".join(lines)
