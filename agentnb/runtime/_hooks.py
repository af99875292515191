"""The runtime's seams to tracing and governance: configured once, imported lazily.

Kept in one place so that the per-call path looks each seam up once per process, not per call.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentnb.core import CostUnknownWarning, Settings
from agentnb.core._messages import PART_FIELDS, parts_json

if TYPE_CHECKING:
    from collections.abc import Iterable

    from opentelemetry.trace import Span, Tracer
    from pydantic import BaseModel

    from agentnb.core import Message
    from agentnb.models import ModelResponse

__all__ = ["aflush", "audit", "audit_log", "configure_once", "display_hook", "end_span",
           "redact", "redact_obj", "redaction_epoch", "register_display", "tracer",
           "warn_unpriced"]

# Guards the one-time set-up below (tracing configuration, the redactor) and the warned-model
# set; both are touched from the loop thread and from user threads.
_lock = threading.Lock()
_configured: tuple[Path, bool, str | None] | None = None
_warned: set[str] = set()
_redactor: Any = None
_audits: dict[Path, Any] = {}
_audit_by_home: dict[Path, Any] = {}
"""`_audits` by home: spelled differently, two homes still share the log of one path."""


def configure_once(settings: Settings) -> None:
    """Point tracing at the settings' home and install the secret redactor, once per home.

    Tracing on/off and the OTLP endpoint are process-wide: a run whose settings differ from the
    last configured ones switches them (the home, `trace` and `otlp_endpoint` form the key).
    """
    global _configured, _redactor
    key = (settings.home, settings.trace, settings.otlp_endpoint)
    if _configured == key:
        # A key exported since the last run (a notebook cell) must be redacted from now on.
        if _redactor is not None:
            _redactor.reload_env()
        return
    with _lock:
        if _configured == key:
            return
        from agentnb.governance import default_redactor
        from agentnb.tracing import configure, set_redactor

        configure(settings)
        if _redactor is None:
            _redactor = default_redactor()
            set_redactor(_redactor.redact)
        _configured = key


def redact_obj(value: Any) -> Any:
    """Redact secrets from a JSON-able value before it reaches a checkpoint or a recording."""
    redactor = _redactor
    if redactor is None:
        return value
    return redactor.redact_obj(value)


def redact_parts(parts: Iterable[BaseModel]) -> list[dict[str, Any]]:
    """`redact_obj(parts_json(parts))`, made by hand: a message part's fields are text, flags
    and None under fixed names, none named like a secret, so each text but the part's `kind`
    (a literal of the schema, like a message's role) is redacted and nothing is walked. A part
    type without a known field list goes through `redact_obj`.

    Example:
        >>> from agentnb.core import TextPart
        >>> redact_parts([TextPart(text="hi")])
        [{'kind': 'text', 'text': 'hi'}]
    """
    redactor = _redactor
    if redactor is None:
        return parts_json(parts)
    redact, memo = redactor.redact, redactor.memo
    out: list[dict[str, Any]] = []
    for part in parts:
        names = PART_FIELDS.get(type(part))
        if names is None:
            out.append(redactor.redact_obj(part.model_dump(mode="json")))
            continue
        dump: dict[str, Any] = {}
        for name in names:
            value = getattr(part, name)
            if type(value) is str and name != "kind":
                done = memo.get(value)
                dump[name] = redact(value) if done is None else done
            else:
                dump[name] = value
        out.append(dump)
    return out


def redact_message(message: Message) -> dict[str, Any]:
    """`redact_obj(message.json_dict())`, made by hand: the role (a literal) as it is, the
    parts as `redact_parts`.

    Example:
        >>> from agentnb.core import Message
        >>> redact_message(Message.user("hi"))
        {'role': 'user', 'parts': [{'kind': 'text', 'text': 'hi'}]}
    """
    return {"role": message.role, "parts": redact_parts(message.parts)}


def redact_response(response: ModelResponse) -> dict[str, Any]:
    """`redact_obj(response.json_dict())`, made by hand: the parts as `redact_parts`, the usage
    (counts and a decimal) and the finish reason (a literal) as they are, the provider's texts
    redacted. The recordings keep this.

    Example:
        >>> from agentnb.core import TextPart
        >>> from agentnb.models import ModelResponse
        >>> r = ModelResponse(parts=(TextPart(text="hi"),), model_name="m")
        >>> redact_response(r) == r.json_dict()
        True
    """
    if _redactor is None:
        return response.json_dict()
    choices = response.extra_choices
    return {
        "parts": redact_parts(response.parts), "usage": response.usage.json_dict(),
        "finish_reason": response.finish_reason,
        "raw_finish_reason": _text_or_none(response.raw_finish_reason),
        "model_name": redact(response.model_name),
        "provider_id": _text_or_none(response.provider_id),
        "extra_choices": [{"index": c.index, "parts": redact_parts(c.parts),
                           "finish_reason": c.finish_reason} for c in choices] if choices else [],
    }


def _text_or_none(text: str | None) -> str | None:
    return None if text is None else redact(text)


def redaction_epoch() -> int:
    """Changes whenever the redactor learns a secret: a key for caching redacted values."""
    redactor = _redactor
    return -1 if redactor is None else int(getattr(redactor, "secret_count", 0))


def redact(text: str) -> str:
    """Redact secrets from one string (a short one seen before is looked up in the
    redactor's memo, without calling it)."""
    redactor = _redactor
    if redactor is None:
        return text
    done = redactor.memo.get(text)
    return redactor.redact(text) if done is None else done


def tracer() -> Tracer:
    """agentnb's tracer."""
    from agentnb.tracing import tracer as get

    return get()


async def aflush() -> None:
    """Write every finished span now, off the event loop."""
    from agentnb.tracing import aflush as flush_spans

    await flush_spans()


def end_span(span: Span | None, attrs: dict[str, Any] | None = None) -> None:
    """Set attributes (skipping None) and end a span."""
    if span is None:
        return
    if attrs:
        span.set_attributes({k: v for k, v in attrs.items() if v is not None})
    span.end()


def warn_unpriced(model_id: str) -> None:
    """Warn once per model id that its calls have no price (usd is None, never a silent 0)."""
    with _lock:
        if model_id in _warned:
            return
        _warned.add(model_id)
    warnings.warn(
        f"Model {model_id!r} has no price, so the run's `usage.usd` is None (unknown, not 0). "
        "Call `anb.set_price(...)` to price it.",
        CostUnknownWarning, stacklevel=3)


def audit_log(home: Path) -> Any:
    """The `AuditLog` under `home/audit/` (one object per path in this process)."""
    log = _audit_by_home.get(home)  # per step: no path building, no lock once known
    if log is not None:
        return log
    from agentnb.governance import AuditLog

    path = home / "audit" / "audit.jsonl"
    with _lock:
        log = _audits.get(path)
        if log is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            log = _audits[path] = AuditLog(path)
        _audit_by_home[home] = log
    return log


def audit(home: Path, event: str, **fields: Any) -> None:
    """Append one record to the hash-chained audit log under `home/audit/` (blocking: call
    through `asyncio.to_thread`; a run keeps its records for its step's checkpoint instead).

    The log redacts with the process-wide default redactor, the one the runtime uses."""
    audit_log(home).append(event, **fields)


# The notebook layer (above us) registers how a Run displays; the runtime never imports it.
_display: dict[str, Any] = {}


def register_display(kind: str, fn: Any) -> None:
    """Register a display function (`"mimebundle"` or `"display"`) for `Run` objects."""
    _display[kind] = fn


def display_hook(kind: str) -> Any:
    """The registered display function of that kind, or None."""
    return _display.get(kind)
