"""HTML fragments and formatting shared by the static views (`_html.py`) and the run widget.

The stylesheet and colours, the escaping and number formatting helpers, `wrap` (the `.anb`
container), and the fragments the run widget reuses for its panes: `steps_html`, `meters_html`
and the run's summary bar (`run_header` facts rendered by `header_html`). Self-contained HTML:
inline CSS, no script, no external asset.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

__all__ = [
    "meters_html",
    "steps_html",
]

KIND_COLOURS = {
    "run": "#3b5bdb", "step": "#868e96", "model_call": "#7048e8", "tool_call": "#2b8a3e",
    "approval": "#e67700", "retry": "#c92a2a", "cache": "#1098ad", "budget": "#d9480f",
    "stop": "#c92a2a", "delegation": "#3b5bdb",
}
"""Bar and badge colour per `agentnb.kind`."""

STATE_COLOURS = {"ready": "#1971c2", "awaiting_approval": "#e67700", "done": "#2b8a3e",
                 "failed": "#c92a2a", "stopped": "#c92a2a", "running": "#7048e8"}

CSS = """
.anb{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;
font-size:13px;line-height:1.45;color:#212529;max-width:1100px}
.anb h4{margin:10px 0 4px;font-size:14px}
.anb .anb-head{display:flex;flex-wrap:wrap;gap:6px 16px;align-items:baseline;padding:6px 8px;
background:#f1f3f5;border-radius:6px}
.anb .anb-badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;
font-weight:600}
.anb .anb-kind{display:inline-block;padding:0 6px;border-radius:4px;color:#fff;font-size:11px}
.anb .anb-muted{color:#868e96}
.anb details{margin:2px 0 2px 0}
.anb details details{margin-left:18px}
.anb summary{cursor:pointer}
.anb .anb-step{border:1px solid #dee2e6;border-radius:6px;padding:4px 8px;margin:4px 0}
.anb .anb-msg{margin:2px 0 2px 12px;white-space:pre-wrap}
.anb .anb-role{font-weight:600;color:#495057}
.anb .anb-reason{margin:2px 0 2px 12px;color:#5f3dc4;font-style:italic}
.anb table{border-collapse:collapse;margin:4px 0 4px 12px}
.anb td,.anb th{border:1px solid #dee2e6;padding:2px 6px;vertical-align:top;text-align:left}
.anb pre{margin:0;white-space:pre-wrap;font-size:12px}
.anb .anb-meter{display:flex;align-items:center;gap:8px;margin:2px 0}
.anb .anb-bar{width:220px;height:10px;background:#e9ecef;border-radius:5px;overflow:hidden}
.anb .anb-fill{height:100%}
"""


# -- formatting ---------------------------------------------------------------------------------

def esc(value: Any) -> str:
    """HTML-escape any value's text."""
    return html.escape(str(value), quote=True)


def fmt_usd(value: Any) -> str:
    """`$0.000123`, or a dash when unknown."""
    if value is None:
        return "–"
    amount = Decimal(str(value))
    return f"${amount:.4f}" if amount >= 1 else f"${amount:.6f}"


def fmt_s(seconds: float | None) -> str:
    """`12 ms`, `1.25 s`."""
    if seconds is None:
        return "–"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def badge(text: str, colour: str, cls: str = "anb-badge") -> str:
    """A coloured pill."""
    return f'<span class="{cls}" style="background:{colour}">{esc(text)}</span>'


def wrap(body: str, *, title: str | None = None) -> str:
    """Wrap a fragment in the `.anb` container with its stylesheet."""
    head = f"<h4>{esc(title)}</h4>" if title else ""
    return f'<div class="anb"><style>{CSS}</style>{head}{body}</div>'


def _pretty_json(text: str | None) -> str:
    if text is None:
        return ""
    try:
        return json.dumps(json.loads(text), indent=1, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(text)


# -- steps and meters (shared with the widget) --------------------------------------------------

def _parts_html(message: Any) -> str:
    out = []
    for part in message.parts:
        kind = part.kind
        if kind in ("text", "refusal", "thinking"):
            out.append(esc(part.text))
        elif kind == "tool_call":
            out.append(f"→ <code>{esc(part.name)}</code>({esc(part.arguments)})")
        elif kind == "tool_result":
            flag = " (error)" if part.is_error else ""
            out.append(f"← <code>{esc(part.name)}</code>{flag}: {esc(part.content)}")
    return "<br>".join(out)


def step_summary(step: Any) -> str:
    """`#2 tools · ok · 152 tok · $0.000197 · 12 ms` for one `Step`."""
    u = step.usage
    tokens = u.input_tokens + u.output_tokens
    bits = [f"#{step.index} {step.kind}", step.status]
    if tokens:
        bits.append(f"{tokens} tok")
    if u.model_calls:
        bits.append(fmt_usd(u.usd))
    bits.append(fmt_s(step.duration_s))
    if step.stop_reason:
        bits.append(f"stopped: {step.stop_reason}")
    return " · ".join(bits)


def steps_html(steps: Sequence[Any], *, open_last: bool = True) -> str:
    """The steps of a run: messages, tool calls with arguments and results, reason, usage."""
    if not steps:
        return '<p class="anb-muted">No steps yet: press Step or Continue.</p>'
    out = []
    for n, step in enumerate(steps):
        colour = {"model": KIND_COLOURS["model_call"], "tools": KIND_COLOURS["tool_call"],
                  "approval": KIND_COLOURS["approval"]}.get(step.kind, "#495057")
        body = []
        for message in step.messages:
            body.append(f'<div class="anb-msg"><span class="anb-role">{esc(message.role)}:'
                        f"</span> {_parts_html(message)}</div>")
        if step.reason:
            body.append(f'<div class="anb-reason">reason: {esc(step.reason)}</div>')
        if step.tool_calls:
            rows = ["<tr><th>tool</th><th>arguments</th><th>status</th><th>result</th>"
                    "<th>time</th></tr>"]
            for call in step.tool_calls:
                decision = f"<br><span class='anb-muted'>{esc(call.decision)}</span>" if (
                    call.decision) else ""
                rows.append(
                    f"<tr><td><code>{esc(call.name)}</code></td>"
                    f"<td><pre>{esc(_pretty_json(call.arguments))}</pre></td>"
                    f"<td>{esc(call.status)}{decision}</td>"
                    f'<td class="anb-result"><pre>{esc(call.result or "")}</pre></td>'
                    f"<td>{esc(fmt_s(call.duration_s))}</td></tr>")
            body.append(f"<table>{''.join(rows)}</table>")
        if step.error:
            body.append(f'<div class="anb-msg" style="color:#c92a2a">{esc(step.error)}</div>')
        is_open = " open" if (open_last and n == len(steps) - 1) or len(steps) <= 6 else ""
        out.append(f'<details class="anb-step" data-step="{step.index}"{is_open}><summary>'
                   f"{badge(step.kind, colour, 'anb-kind')} {esc(step_summary(step))}"
                   f"</summary>{''.join(body)}</details>")
    return "".join(out)


def meters_html(snapshots: Sequence[Any]) -> str:
    """One bar per budget scope (`BudgetSnapshot`): the largest fraction of any limit used."""
    if not snapshots:
        return '<p class="anb-muted">No budget scope is open.</p>'
    out = []
    for snap in snapshots:
        frac = min(max(float(snap.fraction_used), 0.0), 1.0)
        colour = "#2b8a3e" if frac < 0.7 else "#e67700" if frac < 0.9 else "#c92a2a"
        limits = snap.limits
        bits = [f"{fmt_usd(snap.spent.usd)}" + (f" / {fmt_usd(limits.usd)}"
                                                if limits.usd is not None else "")]
        for name, spent in (("steps", snap.spent.steps), ("tokens", snap.spent.tokens),
                            ("model_calls", snap.spent.model_calls),
                            ("tool_calls", snap.spent.tool_calls)):
            limit = getattr(limits, name)
            if limit is not None:
                bits.append(f"{name} {spent}/{limit}")
        out.append(
            f'<div class="anb-meter"><span style="min-width:150px"><b>{esc(snap.kind)}</b> '
            f'<span class="anb-muted">{esc(snap.name)[:28]}</span></span>'
            f'<div class="anb-bar" title="{frac:.0%}"><div class="anb-fill" '
            f'style="width:{frac * 100:.1f}%;background:{colour}"></div></div>'
            f"<span>{frac:.0%} · {esc(', '.join(bits))}</span></div>")
    return "".join(out)


# -- the run's summary bar (shared with the widget) ---------------------------------------------

def run_header(run: Any) -> dict[str, Any]:
    """The summary facts of a live `Run`."""
    u = run.usage
    try:
        model = run.agent.resolved_model.info.id
    except Exception:  # a model without info still displays
        model = None
    return {"agent": run.agent.agent_name, "model": model, "state": run.state,
            "stop_reason": run.stop_reason, "tokens": u.input_tokens + u.output_tokens,
            "usd": u.usd, "duration_s": run.elapsed_s(), "task": run.task,
            "output": None if run.output is None else str(run.output),
            "steps": len(run.steps), "error": run.error}


def run_snapshots(run: Any) -> list[Any]:
    """Budget snapshots of the run's scope and every enclosing scope, outermost first."""
    chain = []
    scope = run.scope if run.scope is not None else getattr(run, "_parent_scope", None)
    while scope is not None:
        chain.append(scope)
        scope = scope.parent
    return [s.snapshot() for s in reversed(chain)]


def header_html(h: dict[str, Any], run_id: str) -> str:
    """The coloured summary bar."""
    if not h:
        return f'<div class="anb-head">run <code>{esc(run_id)}</code>: no spans stored</div>'
    state = str(h.get("state") or "?")
    stop = f" ({h['stop_reason']})" if h.get("stop_reason") else ""
    items = [badge(state + stop, STATE_COLOURS.get(state, "#495057")),
             f"<b>{esc(h.get('agent') or 'agent')}</b>",
             f'<span class="anb-muted">{esc(h.get("model") or "")}</span>',
             f"<code>{esc(run_id)}</code>",
             f"{h.get('tokens', 0)} tokens", esc(fmt_usd(h.get("usd"))),
             esc(fmt_s(h.get("duration_s")))]
    if h.get("steps") is not None:
        items.append(f"{h['steps']} steps")
    out = "".join(f"<span>{i}</span>" for i in items)
    extra = ""
    if h.get("task"):
        extra += f'<div class="anb-msg"><span class="anb-role">task:</span> {esc(h["task"])}</div>'
    if h.get("output"):
        extra += (f'<div class="anb-msg"><span class="anb-role">output:</span> '
                  f"{esc(h['output'])}</div>")
    if h.get("error"):
        extra += f'<div class="anb-msg" style="color:#c92a2a">{esc(h["error"])}</div>'
    return f'<div class="anb-head">{out}</div>{extra}'
