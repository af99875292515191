"""Static renderers: self-contained HTML (inline CSS and SVG, no script, no external asset).

Every view object has `_repr_mimebundle_` returning `text/plain` and `text/html`, so an executed
notebook shows the same picture in nbviewer, on GitHub or in an nbconvert export as in a live
kernel. The run widget reuses the same fragments (`steps_html`, `meters_html`) for its panes;
they, the stylesheet and the formatting helpers live in `_fragments.py`.

The views read spans as `agentnb.tracing.SpanRecord`s (`load_spans(run_id)`): a `TraceTree`
(`<details>` per span, delegate runs nested under the tool call that started them), a `Timeline`
(a Gantt chart as inline SVG; parallel tool calls overlap on the time axis) and a `BudgetChart`
(cumulative spend per step against the limit).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from agentnb.notebook._fragments import (
    KIND_COLOURS,
    _pretty_json,
    badge,
    esc,
    fmt_s,
    fmt_usd,
    header_html,
    meters_html,
    run_header,
    run_snapshots,
    steps_html,
    wrap,
)
from agentnb.tracing import semconv as sc

__all__ = [
    "BudgetChart",
    "RunView",
    "Timeline",
    "TraceTree",
]


class _View:
    """`_repr_mimebundle_` from `to_text()` and `to_html()`."""

    title = ""

    def to_text(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def body_html(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def to_html(self) -> str:
        """Self-contained HTML (inline CSS/SVG)."""
        return wrap(self.body_html(), title=self.title or None)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        bundle = {"text/plain": self.to_text(), "text/html": self.to_html()}
        if include:
            bundle = {k: v for k, v in bundle.items() if k in include}
        if exclude:
            bundle = {k: v for k, v in bundle.items() if k not in exclude}
        return bundle

    def __repr__(self) -> str:
        return self.to_text()


# -- spans --------------------------------------------------------------------------------------

def _tokens(attrs: dict[str, Any]) -> int | None:
    i, o = attrs.get(sc.GEN_AI_USAGE_INPUT_TOKENS), attrs.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS)
    return None if i is None and o is None else int(i or 0) + int(o or 0)


def _label(span: Any) -> str:
    a = span.attributes
    kind = span.kind or ""
    if kind == "tool_call":
        status = a.get(sc.AGENTNB_TOOL_STATUS)
        return f"{span.name}" + (f" [{status}]" if status else "")
    if kind == "run":
        status = a.get(sc.AGENTNB_STATUS)
        return f"{span.name} ({a.get(sc.GEN_AI_REQUEST_MODEL, '?')})" + (
            f" [{status}]" if status else "")
    return str(span.name)


def _children(spans: Sequence[Any]) -> tuple[list[Any], dict[str, list[Any]]]:
    ids = {s.span_id for s in spans}
    roots: list[Any] = []
    kids: dict[str, list[Any]] = {}
    for s in sorted(spans, key=lambda s: (s.start_ns, s.span_id)):
        if s.parent_id and s.parent_id in ids:
            kids.setdefault(s.parent_id, []).append(s)
        else:
            roots.append(s)
    return roots, kids


def _walk(spans: Sequence[Any]) -> Iterable[tuple[int, Any]]:
    roots, kids = _children(spans)
    stack = [(0, r) for r in reversed(roots)]
    while stack:
        depth, span = stack.pop()
        yield depth, span
        stack.extend((depth + 1, c) for c in reversed(kids.get(span.span_id, [])))


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _Summary:
    kind: str
    duration_s: float
    tokens: int | None
    usd: float | None


def _summary(span: Any) -> _Summary:
    return _Summary(kind=span.kind or "span", duration_s=(span.end_ns - span.start_ns) / 1e9,
                    tokens=_tokens(span.attributes), usd=span.attributes.get(sc.AGENTNB_COST_USD))


def _load(run_id: str, home: Any) -> list[Any]:
    from agentnb.tracing import load_spans

    return load_spans(run_id, home=home)


class TraceTree(_View):
    """A run's spans as a collapsible tree: kind, duration, tokens and cost per span.

    Example:
        >>> tree = TraceTree([])
        >>> tree.to_text()
        'trace: no spans'
        >>> "<details" in TraceTree.from_store("run_missing").to_html()
        False
    """

    title = "Trace"

    def __init__(self, spans: Sequence[Any]) -> None:
        self.spans = list(spans)
        """The `SpanRecord`s shown."""

    @classmethod
    def from_store(cls, run_id: str, *, home: Any = None) -> TraceTree:
        """The tree of a stored run (its delegates' runs included)."""
        return cls(_load(run_id, home))

    def to_text(self) -> str:
        """An indented outline."""
        if not self.spans:
            return "trace: no spans"
        lines = []
        for depth, span in _walk(self.spans):
            s = _summary(span)
            extra = "".join([f" {s.tokens} tok" if s.tokens is not None else "",
                             f" {fmt_usd(s.usd)}" if s.usd is not None else ""])
            lines.append(f"{'  ' * depth}{_label(span)} <{s.kind}> {fmt_s(s.duration_s)}{extra}")
        return "\n".join(lines)

    def body_html(self) -> str:
        """Nested `<details>`, open down to the steps."""
        if not self.spans:
            return '<p class="anb-muted">No spans recorded.</p>'
        roots, kids = _children(self.spans)

        def node(span: Any, depth: int) -> str:
            s = _summary(span)
            colour = KIND_COLOURS.get(s.kind, "#495057")
            facts = [fmt_s(s.duration_s)]
            if s.tokens is not None:
                facts.append(f"{s.tokens} tok")
            if s.usd is not None:
                facts.append(fmt_usd(s.usd))
            head = (f"{badge(s.kind, colour, 'anb-kind')} {esc(_label(span))} "
                    f'<span class="anb-muted">{esc(" · ".join(facts))}</span>')
            detail = _span_detail(span)
            inner = "".join(node(c, depth + 1) for c in kids.get(span.span_id, []))
            if not inner and not detail:
                return f'<div class="anb-leaf" style="margin-left:18px">{head}</div>'
            is_open = " open" if depth < 2 or s.kind == "run" else ""
            return (f'<details class="anb-span anb-{esc(s.kind)}"{is_open}><summary>{head}'
                    f"</summary>{detail}{inner}</details>")

        return '<div class="anb-tree">' + "".join(node(r, 0) for r in roots) + "</div>"


def _span_detail(span: Any) -> str:
    a = span.attributes
    rows = []
    if span.kind == "tool_call":
        for key, label in ((sc.AGENTNB_TOOL_REASON, "reason"),
                           (sc.GEN_AI_TOOL_CALL_ARGUMENTS, "arguments"),
                           (sc.GEN_AI_TOOL_CALL_RESULT, "result"),
                           (sc.AGENTNB_POLICY_DECISION, "policy")):
            if a.get(key) is not None:
                value = _pretty_json(a[key]) if label == "arguments" else a[key]
                rows.append(f"<tr><th>{label}</th><td><pre>{esc(value)}</pre></td></tr>")
    elif span.kind == "run":
        for key, label in ((sc.AGENTNB_TASK, "task"), (sc.AGENTNB_OUTPUT, "output"),
                           (sc.AGENTNB_STOP_REASON, "stop reason")):
            if a.get(key):
                rows.append(f"<tr><th>{label}</th><td><pre>{esc(a[key])}</pre></td></tr>")
    for event in span.events:
        attrs = {k.rsplit(".", 1)[-1]: v for k, v in event["attributes"].items()
                 if k != sc.AGENTNB_KIND}
        text = ", ".join(f"{k}: {v}" for k, v in attrs.items())
        rows.append(f"<tr><th>{esc(event['name'])}</th><td>{esc(text)}</td></tr>")
    return f"<table>{''.join(rows)}</table>" if rows else ""


class Timeline(_View):
    """A Gantt chart of a run's spans as inline SVG; concurrent spans overlap in time.

    Example:
        >>> Timeline([]).to_text()
        'timeline: no spans'
    """

    title = "Timeline"
    max_rows = 150
    """Spans drawn at most (the rest are counted in a note)."""

    def __init__(self, spans: Sequence[Any]) -> None:
        self.spans = list(spans)
        """The `SpanRecord`s drawn."""

    @classmethod
    def from_store(cls, run_id: str, *, home: Any = None) -> Timeline:
        """The timeline of a stored run."""
        return cls(_load(run_id, home))

    def to_text(self) -> str:
        """One line per span: offset and duration."""
        if not self.spans:
            return "timeline: no spans"
        t0 = min(s.start_ns for s in self.spans)
        return "\n".join(
            f"{'  ' * d}+{(s.start_ns - t0) / 1e9:7.3f}s {fmt_s((s.end_ns - s.start_ns) / 1e9):>9} "
            f"{s.name}" for d, s in _walk(self.spans))

    def body_html(self) -> str:
        """The SVG."""
        if not self.spans:
            return '<p class="anb-muted">No spans recorded.</p>'
        rows = list(_walk(self.spans))[: self.max_rows]
        t0 = min(s.start_ns for _, s in rows)
        t1 = max(s.end_ns for _, s in rows)
        total = max(t1 - t0, 1)
        label_w, chart_w, row_h = 260, 600, 18
        height = row_h * len(rows) + 24
        parts = [f'<svg class="anb-timeline" '
                 f'width="{label_w + chart_w + 10}" height="{height}" '
                 f'font-family="sans-serif" font-size="11">']
        for i in range(5):
            x = label_w + chart_w * i / 4
            parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 14}" '
                         f'stroke="#e9ecef"/><text x="{x:.1f}" y="{height - 2}" '
                         f'text-anchor="middle" fill="#868e96">'
                         f"{esc(fmt_s(total / 1e9 * i / 4))}</text>")
        for i, (depth, span) in enumerate(rows):
            y = i * row_h + 2
            kind = span.kind or "span"
            colour = KIND_COLOURS.get(kind, "#495057")
            x = label_w + chart_w * (span.start_ns - t0) / total
            w = max(chart_w * (span.end_ns - span.start_ns) / total, 1.5)
            name = ("  " * depth + str(span.name))[:44]
            dur = fmt_s((span.end_ns - span.start_ns) / 1e9)
            parts.append(
                f'<text x="{4 + depth * 10}" y="{y + 12}" fill="#343a40">'
                f"{esc(name.strip())}</text>"
                f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 6}" rx="2" '
                f'fill="{colour}"><title>{esc(span.name)}: {esc(dur)}</title></rect>')
        parts.append("</svg>")
        more = len(list(_walk(self.spans))) - len(rows)
        note = f'<p class="anb-muted">{more} more spans not drawn.</p>' if more > 0 else ""
        legend = " ".join(badge(k, c, "anb-kind") for k, c in KIND_COLOURS.items()
                          if any((s.kind or "") == k for _, s in rows))
        return f"<div>{legend}</div>{''.join(parts)}{note}"


class BudgetChart(_View):
    """Cumulative spend over the steps of a run against its limit, as inline SVG.

    Example:
        >>> chart = BudgetChart([(1, 0.001), (2, 0.001), (3, 0.003)], limit_usd=0.01)
        >>> chart.to_text()
        'budget: $0.003000 of $0.010000 after 3 steps'
        >>> "<svg" in chart.to_html()
        True
    """

    title = "Budget over steps"

    def __init__(self, points: Sequence[tuple[int, float]], *,
                 limit_usd: float | None = None) -> None:
        self.points = [(int(i), float(v)) for i, v in points]
        """(step index, cumulative USD) pairs."""
        self.limit_usd = limit_usd
        """The USD limit, when one is known."""

    @classmethod
    def from_spans(cls, spans: Sequence[Any]) -> BudgetChart:
        """From a run's step and model-call spans (cost and remaining budget per call)."""
        by_id = {s.span_id: s for s in spans}
        steps = sorted((s for s in spans if s.kind == "step"
                        and s.attributes.get(sc.AGENTNB_STEP_INDEX) is not None
                        and not s.attributes.get(sc.AGENTNB_PARENT_RUN_ID)),
                       key=lambda s: s.attributes[sc.AGENTNB_STEP_INDEX])
        root_run = next((s.run_id for s in spans if s.kind == "run"
                         and not s.attributes.get(sc.AGENTNB_PARENT_RUN_ID)), None)
        cost: dict[str, float] = {}
        limit = None
        for s in spans:
            usd = s.attributes.get(sc.AGENTNB_COST_USD)
            if s.kind != "model_call" or usd is None:
                continue
            parent = by_id.get(s.parent_id or "")
            # A delegate's calls count in the root run's step that ran the delegate.
            while parent is not None and not (parent.kind == "step"
                                              and parent.run_id == root_run):
                parent = by_id.get(parent.parent_id or "")
            if parent is not None:
                cost[parent.span_id] = cost.get(parent.span_id, 0.0) + float(usd)
            remaining = s.attributes.get(sc.AGENTNB_BUDGET_REMAINING_USD)
            if limit is None and remaining is not None and s.run_id == root_run:
                limit = float(remaining) + float(usd)
        total, points = 0.0, []
        for s in steps:
            if root_run is not None and s.run_id != root_run:
                continue
            total += cost.get(s.span_id, 0.0)
            points.append((int(s.attributes[sc.AGENTNB_STEP_INDEX]), total))
        return cls(points, limit_usd=limit)

    def to_text(self) -> str:
        """One line."""
        if not self.points:
            return "budget: no steps"
        limit = f" of {fmt_usd(self.limit_usd)}" if self.limit_usd is not None else ""
        return f"budget: {fmt_usd(self.points[-1][1])}{limit} after {len(self.points)} steps"

    def body_html(self) -> str:
        """A step line chart with the limit drawn dashed."""
        if not self.points:
            return '<p class="anb-muted">No steps yet.</p>'
        w, h, pad = 420, 150, 34
        top = max([v for _, v in self.points] + [self.limit_usd or 0.0]) or 1.0
        n = max(len(self.points), 1)

        def xy(i: int, v: float) -> tuple[float, float]:
            return pad + (w - pad - 8) * i / n, h - 20 - (h - 34) * v / top

        path = []
        for k, (_, v) in enumerate(self.points):
            x0, y = xy(k, v)
            x1, _ = xy(k + 1, v)
            path.append(f"{x0:.1f},{y:.1f} {x1:.1f},{y:.1f}")
        out = [f'<svg class="anb-budget" width="{w}" '
               f'height="{h}" font-family="sans-serif" font-size="10">',
               f'<line x1="{pad}" y1="{h - 20}" x2="{w - 8}" y2="{h - 20}" stroke="#adb5bd"/>',
               f'<polyline fill="none" stroke="#3b5bdb" stroke-width="2" '
               f'points="{" ".join(path)}"/>']
        if self.limit_usd is not None:
            _, ly = xy(0, self.limit_usd)
            out.append(f'<line x1="{pad}" y1="{ly:.1f}" x2="{w - 8}" y2="{ly:.1f}" '
                       f'stroke="#c92a2a" stroke-dasharray="4 3"/><text x="{w - 10}" '
                       f'y="{ly - 3:.1f}" text-anchor="end" fill="#c92a2a">limit '
                       f"{esc(fmt_usd(self.limit_usd))}</text>")
        for k, (idx, _) in enumerate(self.points):
            x, _ = xy(k, 0)
            x1, _ = xy(k + 1, 0)
            out.append(f'<text x="{(x + x1) / 2:.1f}" y="{h - 8}" text-anchor="middle" '
                       f'fill="#868e96">{idx}</text>')
        out.append(f'<text x="{pad}" y="12" fill="#343a40">spent '
                   f"{esc(fmt_usd(self.points[-1][1]))}</text></svg>")
        return "".join(out)


# -- the whole run ------------------------------------------------------------------------------

class RunView(_View):
    """The static picture of one run: summary, steps, budget, trace tree and timeline.

    Built from a live `Run` (`RunView.from_run`) or from the trace store (`RunView.from_store`).

    Example:
        >>> view = RunView.from_store("run_missing")
        >>> view.to_text().splitlines()[0]
        'run run_missing: no spans stored'
    """

    def __init__(self, *, run_id: str, spans: Sequence[Any], steps: Sequence[Any] = (),
                 header: dict[str, Any] | None = None, meters: Sequence[Any] = ()) -> None:
        self.run_id = run_id
        """The run shown."""
        self.spans = list(spans)
        self.steps = list(steps)
        self.meters = list(meters)
        self.header = header if header is not None else _header_from_spans(run_id, self.spans)

    @classmethod
    def from_store(cls, run_id: str, *, home: Any = None) -> RunView:
        """A stored run, from its spans."""
        return cls(run_id=run_id, spans=_load(run_id, home))

    @classmethod
    def from_run(cls, run: Any) -> RunView:
        """A live `Run`: its steps and budget, plus whatever spans the store holds so far."""
        spans: list[Any] = []
        if run.steps:
            try:
                spans = _load(run.run_id, run.agent.resolved_settings.home)
            except Exception:  # the store may be off (trace=False) or unreadable; steps suffice
                spans = []
        return cls(run_id=run.run_id, spans=spans, steps=run.steps,
                   header=run_header(run), meters=run_snapshots(run))

    def to_text(self) -> str:
        """Summary line, then the tree."""
        h = self.header
        if not h:
            return f"run {self.run_id}: no spans stored"
        first = (f"run {self.run_id} {h.get('agent', '')} [{h.get('state')}] "
                 f"{h.get('tokens', 0)} tok {fmt_usd(h.get('usd'))} {fmt_s(h.get('duration_s'))}")
        return first + "\n" + TraceTree(self.spans).to_text()

    def body_html(self) -> str:
        """Everything, in reading order."""
        parts = [header_html(self.header, self.run_id)]
        if self.steps:
            parts.append("<h4>Steps</h4>" + steps_html(self.steps))
        if self.meters:
            parts.append("<h4>Budget</h4>" + meters_html(self.meters))
        chart = BudgetChart.from_spans(self.spans) if self.spans else None
        if chart is not None and chart.points:
            parts.append("<h4>Budget over steps</h4>" + chart.body_html())
        parts.append("<h4>Trace</h4>" + TraceTree(self.spans).body_html())
        if self.spans:
            parts.append("<h4>Timeline</h4>" + Timeline(self.spans).body_html())
        return "".join(parts)


def _header_from_spans(run_id: str, spans: Sequence[Any]) -> dict[str, Any]:
    run = next((s for s in spans if s.kind == "run" and s.run_id == run_id), None)
    if run is None:
        return {}
    a = run.attributes
    return {"agent": a.get(sc.GEN_AI_AGENT_NAME), "model": a.get(sc.GEN_AI_REQUEST_MODEL),
            "state": a.get(sc.AGENTNB_STATUS) or "running",
            "stop_reason": a.get(sc.AGENTNB_STOP_REASON), "tokens": _tokens(a) or 0,
            "usd": a.get(sc.AGENTNB_COST_USD), "duration_s": (run.end_ns - run.start_ns) / 1e9,
            "task": a.get(sc.AGENTNB_TASK), "output": a.get(sc.AGENTNB_OUTPUT),
            "steps": a.get(sc.AGENTNB_USAGE_STEPS)}
