"""The whole agentnb error tree, plus the signals tool code raises.

```
AgentnbError                      base; .message, .hint; str() = message + hint
├─ UsageError                     the caller misused the API (run() from a sync tool, bad arguments)
├─ ConfigError (also ValueError)  bad setting, env var or model string; names its source
├─ ModelError                     .model
│  ├─ ModelHTTPError              .status_code, .body, .headers (lowercased), .retryable
│  ├─ ModelTimeout (TimeoutError) .timeout_s
│  ├─ ModelConnectionError        .url; the server could not be reached
│  └─ UnexpectedModelOutput       .body (pretty-printed JSON when it parses)
├─ RunStopped                     .run_id, .reason, .checkpoint; a run ended by a kill switch
│  ├─ BudgetExceeded              .limit, .spent, .requested, .scope
│  ├─ LoopDetected                .repeated
│  ├─ RetriesExhausted            .attempts, .last_error
│  ├─ StopRequested
│  └─ WallTimeExceeded            .limit_s, .elapsed_s
├─ PolicyDenied                   .tool, .effect, .rule
│  ├─ WorkspaceViolation          .path, .workspace
│  └─ NetworkBlocked              .host, .url
├─ AuditChainBroken               .path, .line
├─ ReplayDiverged                 .step, .expected, .actual
├─ StoreError                     .path; a trace store or cache that cannot be read or written
├─ NotebookInvalid                .path, .problems[(cell_index, message)]
└─ JobFailed                      .notebook, .cell_index, .ename, .evalue

Signals raised by tool code. They are not AgentnbError subclasses; the runtime catches them:
  ModelRetry(message)             send a retry prompt to the model
  ToolFailed(message)             a terminal failure the model sees
Warnings:  AgentnbWarning(UserWarning) -> CostUnknownWarning
```

Every error pickles (batch jobs cross process and Dask boundaries): `__reduce__` rebuilds the
instance from its attribute dictionary, so subclasses with keyword-only constructors need no
code of their own.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

__all__ = [
    "AgentnbError",
    "AgentnbWarning",
    "AuditChainBroken",
    "BudgetExceeded",
    "BudgetScope",
    "ConfigError",
    "CostUnknownWarning",
    "JobFailed",
    "LoopDetected",
    "ModelConnectionError",
    "ModelError",
    "ModelHTTPError",
    "ModelRetry",
    "ModelTimeout",
    "NetworkBlocked",
    "NotebookInvalid",
    "PolicyDenied",
    "ReplayDiverged",
    "RetriesExhausted",
    "RunStopped",
    "StopReason",
    "StopRequested",
    "StoreError",
    "ToolFailed",
    "UnexpectedModelOutput",
    "UsageError",
    "WallTimeExceeded",
    "WorkspaceViolation",
]

StopReason = Literal["budget", "loop", "retries", "stop_requested", "wall_time", "policy"]
"""Why a kill switch ended a run."""

BudgetScope = Literal["run", "parent", "notebook", "batch", "scope"]
"""Which budget scope refused a reservation."""


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    obj = cls.__new__(cls)
    BaseException.__init__(obj, *args)
    obj.__dict__.update(state)
    return obj


class AgentnbError(Exception):
    """Base of every error agentnb raises.

    Example:
        >>> err = AgentnbError("Nothing to do.", hint="Pass a task.")
        >>> str(err)
        'Nothing to do. Hint: Pass a task.'
    """

    message: str
    """What happened, with which value."""
    hint: str | None
    """What to do about it."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.message} Hint: {self.hint}" if self.hint else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class UsageError(AgentnbError):
    """The caller misused the API."""


class ConfigError(AgentnbError, ValueError):
    """A bad setting, environment variable or model string.

    Example:
        >>> str(ConfigError("Unknown provider 'foo'.", source="argument"))
        "Unknown provider 'foo'. (from argument)"
    """

    def __init__(self, message: str, *, source: str | None = None, hint: str | None = None) -> None:
        self.source = source
        super().__init__(f"{message} (from {source})" if source else message, hint=hint)


class ModelError(AgentnbError):
    """A model call failed."""

    def __init__(self, message: str, *, model: str | None = None, hint: str | None = None) -> None:
        self.model = model
        super().__init__(message, hint=hint)


class ModelHTTPError(ModelError):
    """A provider answered with an HTTP error (or an error inside a 200 stream).

    Example:
        >>> e = ModelHTTPError(status_code=429, body='{"error": "slow down"}', model="openai:x")
        >>> e.retryable
        True
    """

    def __init__(
        self,
        *,
        status_code: int,
        body: str,
        model: str | None = None,
        headers: dict[str, str] | None = None,
        retryable: bool | None = None,
        message: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.body = body
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}
        self.retryable = (
            retryable if retryable is not None
            else status_code in (408, 409, 429) or status_code >= 500
        )
        if message is None:
            snippet = body if len(body) <= 300 else body[:300] + "..."
            message = f"Model {model!r} answered HTTP {status_code}: {snippet}"
        if hint is None:
            hint = _http_hint(status_code)
        super().__init__(message, model=model, hint=hint)


def _http_hint(status: int) -> str | None:
    if status == 401:
        return "Check the API key (the `api_key=` argument or the provider's *_API_KEY variable)."
    if status == 404:
        return "Check the model name and the base URL (they usually end in `/v1`)."
    if status == 429:
        return "The provider is rate limiting; lower the concurrency or raise `max_retries`."
    if status >= 500:
        return "The provider failed; it was retried. Try again later or add a `Fallback`."
    return None


class ModelTimeout(ModelError, TimeoutError):
    """A model call took longer than its per-attempt timeout."""

    def __init__(self, message: str, *, model: str | None = None, timeout_s: float | None = None,
                 hint: str | None = None) -> None:
        self.timeout_s = timeout_s
        super().__init__(message, model=model, hint=hint or "Raise `timeout_s=` on the model.")


class ModelConnectionError(ModelError, ConnectionError):
    """The model server could not be reached."""

    def __init__(self, message: str, *, model: str | None = None, url: str | None = None,
                 hint: str | None = None) -> None:
        self.url = url
        super().__init__(
            message, model=model,
            hint=hint or "Check `base_url=` (or OPENAI_BASE_URL / ANTHROPIC_BASE_URL) and "
            "that "
            "the server is running.",
        )


class UnexpectedModelOutput(ModelError):
    """A provider answered with something that is not its documented format."""

    def __init__(self, message: str, *, body: str = "", model: str | None = None,
                 hint: str | None = None) -> None:
        self.body = _pretty(body)
        super().__init__(message, model=model, hint=hint)


def _pretty(body: str) -> str:
    import json

    try:
        return json.dumps(json.loads(body), indent=2)
    except ValueError:
        return body


class RunStopped(AgentnbError):
    """A kill switch ended a run; a checkpoint was left."""

    def __init__(self, message: str, *, reason: StopReason, run_id: str | None = None,
                 checkpoint: int | None = None, hint: str | None = None) -> None:
        self.reason: StopReason = reason
        self.run_id = run_id
        self.checkpoint = checkpoint
        super().__init__(message, hint=hint)


class BudgetExceeded(RunStopped):
    """A reservation would have exceeded a budget limit, so the call was not made.

    Example:
        >>> from decimal import Decimal
        >>> e = BudgetExceeded(limit_name="usd", limit=Decimal("0.10"), spent=Decimal("0.08"),
        ...                    requested=Decimal("0.05"), scope="run")
        >>> e.message
        "Budget 'usd' of scope 'run' would be exceeded: spent 0.08, requested 0.05, limit 0.10."
    """

    def __init__(self, *, limit_name: str, limit: Decimal | int | float,
                 spent: Decimal | int | float, requested: Decimal | int | float,
                 scope: str = "run", scope_name: str | None = None, run_id: str | None = None,
                 checkpoint: int | None = None) -> None:
        self.limit_name = limit_name
        self.limit = limit
        self.spent = spent
        self.requested = requested
        self.scope = scope
        self.scope_name = scope_name
        label = f"{scope!r}" + (f" ({scope_name!r})" if scope_name and scope_name != scope else "")
        super().__init__(
            f"Budget {limit_name!r} of scope {label} would be exceeded: spent {spent}, "
            f"requested {requested}, limit {limit}.",
            reason="budget", run_id=run_id, checkpoint=checkpoint,
            hint="Raise the limit, lower `max_tokens`, or split the task.",
        )


class LoopDetected(RunStopped):
    """The same tool call or model output kept repeating."""

    def __init__(self, message: str, *, repeated: str, run_id: str | None = None,
                 checkpoint: int | None = None) -> None:
        self.repeated = repeated
        super().__init__(message, reason="loop", run_id=run_id, checkpoint=checkpoint,
                         hint="Change the instructions or the tool's answer so the model "
                         "can make progress.")


class RetriesExhausted(RunStopped):
    """A run used up its retries."""

    def __init__(self, message: str, *, attempts: int, last_error: str | None = None,
                 run_id: str | None = None, checkpoint: int | None = None) -> None:
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(message, reason="retries", run_id=run_id, checkpoint=checkpoint,
                         hint="Raise `Budget(retries=...)` or fix the cause in `last_error`.")


class StopRequested(RunStopped):
    """Somebody asked the run to stop."""

    def __init__(self, message: str = "Stop requested.", *, run_id: str | None = None,
                 checkpoint: int | None = None) -> None:
        super().__init__(message, reason="stop_requested", run_id=run_id, checkpoint=checkpoint)


class WallTimeExceeded(RunStopped):
    """A run ran past its wall-time limit."""

    def __init__(self, *, limit_s: float, elapsed_s: float, run_id: str | None = None,
                 checkpoint: int | None = None) -> None:
        self.limit_s = limit_s
        self.elapsed_s = elapsed_s
        super().__init__(f"Wall time {elapsed_s:.1f}s passed the limit of {limit_s:.1f}s.",
                         reason="wall_time", run_id=run_id, checkpoint=checkpoint,
                         hint="Raise `Budget(wall_s=...)`.")


class PolicyDenied(AgentnbError):
    """A tool call was refused by policy."""

    def __init__(self, message: str, *, tool: str | None = None, effect: str | None = None,
                 rule: str | None = None, hint: str | None = None) -> None:
        self.tool = tool
        self.effect = effect
        self.rule = rule
        super().__init__(message, hint=hint)


class WorkspaceViolation(PolicyDenied):
    """A file path left the workspace."""

    def __init__(self, message: str, *, path: str, workspace: str, tool: str | None = None) -> None:
        self.path = path
        self.workspace = workspace
        super().__init__(message, tool=tool, effect="write", rule="workspace",
                         hint=f"Use paths inside {workspace!r}.")


class NetworkBlocked(PolicyDenied):
    """A request went to a host outside the allow-list."""

    def __init__(self, message: str, *, host: str, url: str | None = None,
                 tool: str | None = None) -> None:
        self.host = host
        self.url = url
        super().__init__(message, tool=tool, effect="network", rule="network",
                         hint=f"Add {host!r} to `Policy(network=[...])` if it is trusted.")


class AuditChainBroken(AgentnbError):
    """An audit log failed verification."""

    def __init__(self, message: str, *, path: str, line: int | None) -> None:
        self.path = path
        self.line = line
        super().__init__(message, hint="The log was changed after it was written; keep the "
                         "file for investigation and start a new chain.")


class ReplayDiverged(AgentnbError):
    """A replay asked for something the recording does not hold."""

    def __init__(self, message: str, *, step: int, expected: str, actual: str) -> None:
        self.step = step
        self.expected = expected
        self.actual = actual
        super().__init__(message, hint="Something changed since the recording: tools, "
                         "instructions or the model settings.")


class StoreError(AgentnbError):
    """A trace store or cache could not be opened, read or written."""

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None) -> None:
        self.path = path
        super().__init__(message, hint=hint)


class NotebookInvalid(AgentnbError):
    """A notebook failed validation."""

    def __init__(self, message: str, *, path: str,
                 problems: list[tuple[int | None, str]] | None = None,
                 hint: str | None = None) -> None:
        self.path = path
        self.problems = problems or []
        super().__init__(message, hint=hint)


class JobFailed(AgentnbError):
    """A notebook job raised in a cell."""

    def __init__(self, message: str, *, notebook: str, cell_index: int | None = None,
                 ename: str | None = None, evalue: str | None = None) -> None:
        self.notebook = notebook
        self.cell_index = cell_index
        self.ename = ename
        self.evalue = evalue
        super().__init__(message)


class ModelRetry(Exception):
    """Raised by tool code to send a retry prompt to the model.

    Example:
        >>> raise ModelRetry("Key must be a number between 1 and 10.")
        Traceback (most recent call last):
        agentnb.ModelRetry: Key must be a number between 1 and 10.
    """

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class ToolFailed(Exception):
    """Raised by tool code for a terminal failure that the model sees as the tool's result."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class AgentnbWarning(UserWarning):
    """Base of agentnb's warnings."""


class CostUnknownWarning(AgentnbWarning):
    """A model call had no price, so its cost is unknown (usd=None), not zero."""
