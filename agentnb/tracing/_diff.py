"""`diff(run_a, run_b)`: the first step where two stored trajectories diverge, and how."""


from __future__ import annotations

import dataclasses
import html
import json
from typing import TYPE_CHECKING, Any, Literal

from agentnb.core import UsageError, canonical_json
from agentnb.tracing import _semconv as sc

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from agentnb.tracing._query import SpanRecord

__all__ = ["Divergence", "StepSummary", "TraceDiff", "diff"]

Divergence = Literal["kind", "tool", "arguments", "text", "length"]
"""How two steps differ: a different step kind, different tools called, the same tools with
different arguments, different model text, or one run has fewer steps."""

_HOW = {"kind": "different step kind", "tool": "different tool", "arguments":
        "different arguments", "text": "different text", "length": "one run is shorter"}


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class StepSummary:
    """What one step did, as far as a comparison needs."""

    index: int
    kind: str | None
    """`agentnb.step.kind` (or the span kind when the run has no step spans)."""
    text: str | None
    """The model's text output in this step."""
    tool_calls: tuple[tuple[str, str], ...]
    """(tool name, canonical JSON arguments), in call order."""

    def describe(self) -> str:
        """One line: the tools called, else the text."""
        if self.tool_calls:
            return ", ".join(f"{name}({args})" for name, args in self.tool_calls)
        return repr(_short(self.text or ""))


def _short(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TraceDiff:
    """Where two runs' trajectories part.

    Example:
        >>> d = TraceDiff(run_a="run_a", run_b="run_b", step=None, how=None, a=None, b=None,
        ...               steps_a=2, steps_b=2)
        >>> d.diverged, repr(d)
        (False, "TraceDiff('run_a' and 'run_b' follow the same 2 steps)")
    """

    run_a: str
    run_b: str
    step: int | None
    """The first step index (0-based) that differs; `None` when the trajectories match."""
    how: Divergence | None
    a: StepSummary | None
    """Run A's step at `step` (`None` when run A is the shorter one)."""
    b: StepSummary | None
    steps_a: int
    steps_b: int

    @property
    def diverged(self) -> bool:
        """Whether the trajectories differ at all."""
        return self.step is not None

    def __repr__(self) -> str:
        if not self.diverged:
            return (f"TraceDiff({self.run_a!r} and {self.run_b!r} follow the same "
                    f"{self.steps_a} steps)")
        assert self.how is not None
        return (f"TraceDiff({self.run_a!r} vs {self.run_b!r}: diverge at step {self.step}, "
                f"{_HOW[self.how]}: {self._side(self.a)} vs {self._side(self.b)})")

    @staticmethod
    def _side(summary: StepSummary | None) -> str:
        return "(no step)" if summary is None else summary.describe()

    def _repr_html_(self) -> str:
        esc = html.escape
        if not self.diverged:
            return (f"<div class='agentnb-diff'><b>{esc(self.run_a)}</b> and "
                    f"<b>{esc(self.run_b)}</b> follow the same {self.steps_a} steps.</div>")
        assert self.how is not None
        rows = "".join(
            f"<tr><th>{esc(run)}</th><td>{steps}</td><td>{esc(self._side(side))}</td></tr>"
            for run, steps, side in ((self.run_a, self.steps_a, self.a),
                                     (self.run_b, self.steps_b, self.b)))
        return (f"<div class='agentnb-diff'><p>Diverge at step <b>{self.step}</b>: "
                f"{esc(_HOW[self.how])}.</p><table><tr><th>run</th><th>steps</th>"
                f"<th>step {self.step}</th></tr>{rows}</table></div>")

    def _repr_mimebundle_(self, include: Sequence[str] | None = None,
                          exclude: Sequence[str] | None = None) -> dict[str, str]:
        bundle = {"text/plain": repr(self), "text/html": self._repr_html_()}
        if include:
            bundle = {k: v for k, v in bundle.items() if k in include}
        if exclude:
            bundle = {k: v for k, v in bundle.items() if k not in exclude}
        return bundle


def _parts(messages: Any) -> tuple[list[str], list[tuple[str, str]]]:
    texts: list[str] = []
    calls: list[tuple[str, str]] = []
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except ValueError:
            return [messages], []
    if isinstance(messages, dict):
        messages = [messages]
    for message in messages if isinstance(messages, list) else []:
        parts = message.get("parts", []) if isinstance(message, dict) else []
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict):
                continue
            kind = part.get("type") or part.get("kind")
            if kind == "text":
                texts.append(str(part.get("content", part.get("text", ""))))
            elif kind in ("tool_call", "tool-call"):
                name = str(part.get("name") or part.get("tool_name") or "")
                calls.append((name, _canonical(part.get("arguments", part.get("args")))))
    return texts, calls


def _canonical(arguments: Any) -> str:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return arguments
    return canonical_json(arguments)


def _summaries(records: Sequence[SpanRecord]) -> list[StepSummary]:
    by_id = {r.span_id: r for r in records}
    steps = [r for r in records if r.kind == sc.KIND_STEP]
    if not steps:  # no step spans: every model or tool call counts as a step
        steps = [r for r in records if r.kind in (sc.KIND_MODEL_CALL, sc.KIND_TOOL_CALL)]
    steps.sort(key=lambda r: (r.attributes.get(sc.AGENTNB_STEP_INDEX, 0), r.start_ns))
    step_ids = {r.span_id for r in steps}
    children: dict[str, list[SpanRecord]] = {r.span_id: [r] for r in steps}
    for r in records:
        node, hops = r, 0
        while node.parent_id is not None and node.span_id not in step_ids and hops < 64:
            parent = by_id.get(node.parent_id)
            if parent is None:
                break
            node, hops = parent, hops + 1
        if node.span_id in step_ids and node is not r:
            children[node.span_id].append(r)
    out: list[StepSummary] = []
    for i, step in enumerate(steps):
        texts: list[str] = []
        proposed: list[tuple[str, str]] = []
        executed: list[tuple[str, str]] = []
        for r in children[step.span_id]:
            if r.kind == sc.KIND_MODEL_CALL and r.status != "ERROR":
                got_texts, got_calls = _parts(r.attributes.get(sc.GEN_AI_OUTPUT_MESSAGES))
                texts, proposed = got_texts or texts, got_calls or proposed
            elif r.kind == sc.KIND_TOOL_CALL:
                executed.append((str(r.attributes.get(sc.GEN_AI_TOOL_NAME, "")),
                                 _canonical(r.attributes.get(sc.GEN_AI_TOOL_CALL_ARGUMENTS))))
        kind = step.attributes.get(sc.AGENTNB_STEP_KIND, step.kind)
        out.append(StepSummary(index=i, kind=kind, text="\n".join(texts) if texts else None,
                               tool_calls=tuple(executed or proposed)))
    return out


def _compare(a: StepSummary, b: StepSummary) -> Divergence | None:
    if a.kind != b.kind:
        return "kind"
    if [n for n, _ in a.tool_calls] != [n for n, _ in b.tool_calls]:
        return "tool"
    if a.tool_calls != b.tool_calls:
        return "arguments"
    if a.text != b.text:
        return "text"
    return None


def diff(run_a: str, run_b: str, *, home: Path | str | None = None) -> TraceDiff:
    """Compare two stored runs step by step and report the first divergence.

    Each step is compared on its kind, the tools it called (names, then canonical arguments)
    and the model's text; a run with fewer steps diverges where it ends.

    Raises:
        UsageError: a run id with no stored spans.

    Example:
        >>> diff("run_a", "run_b")  # doctest: +SKIP
        TraceDiff('run_a' vs 'run_b': diverge at step 1, different tool: search({"q":"x"}) vs ...)
    """
    from agentnb.tracing._query import load_spans

    sides: list[list[StepSummary]] = []
    for run_id in (run_a, run_b):
        records = load_spans(run_id, home=home, include_children=False)
        if not records:
            msg = f"No stored spans for run {run_id!r}."
            raise UsageError(msg, hint="Take run ids from `agentnb.traces()`.")
        sides.append(_summaries(records))
    a, b = sides
    for i, (step_a, step_b) in enumerate(zip(a, b, strict=False)):
        how = _compare(step_a, step_b)
        if how is not None:
            return TraceDiff(run_a=run_a, run_b=run_b, step=i, how=how, a=step_a, b=step_b,
                             steps_a=len(a), steps_b=len(b))
    if len(a) != len(b):
        i = min(len(a), len(b))
        return TraceDiff(run_a=run_a, run_b=run_b, step=i, how="length",
                         a=a[i] if i < len(a) else None, b=b[i] if i < len(b) else None,
                         steps_a=len(a), steps_b=len(b))
    return TraceDiff(run_a=run_a, run_b=run_b, step=None, how=None, a=None, b=None,
                     steps_a=len(a), steps_b=len(b))
