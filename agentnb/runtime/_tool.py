"""`@tool`: a Python function the model may call, with its JSON schema and argument validation.

The schema comes from the signature, the type hints and the Google docstring (`Args:`), through a
pydantic model built once per tool; the same model validates the arguments the model sends, so
what the model is shown and what it is held to cannot drift apart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import re
import time
import typing
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path, PurePath
from typing import Any, Literal, overload

import pydantic
import pydantic_core

from agentnb.core import ModelRetry, ToolDefinition, ToolFailed, UsageError
from agentnb.runtime._context import RunContext

__all__ = ["Tool", "ToolOutcome", "ToolStatus", "tool"]

ToolStatus = Literal["ok", "error", "retry", "denied"]
"""How a tool call ended: ok, error (the model sees it), retry (a retry prompt), denied."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ToolOutcome:
    """The result of one tool call as the model will see it."""

    content: str
    """The result text (JSON for structured results)."""
    status: ToolStatus = "ok"
    """How the call ended."""
    error_type: str | None = None
    """The exception type, for spans, when the tool raised."""
    duration_s: float = 0.0
    """How long the call took."""

    @property
    def is_error(self) -> bool:
        """True unless the call succeeded."""
        return self.status != "ok"


_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters)\s*:\s*$")
_SECTION = re.compile(r"^\s*[A-Z][A-Za-z ]*:\s*$")
_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google docstring into its description and the `Args:` descriptions."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    arg_indent: int | None = None
    for line in lines:
        if _ARGS_HEADER.match(line):
            section, current, arg_indent = "args", None, None
            continue
        if _SECTION.match(line) and not line.startswith((" ", "\t")):
            section, current = "other", None
            continue
        if section is None:
            description.append(line)
        elif section == "args" and line.strip():
            indent = len(line) - len(line.lstrip())
            match = _ARG_LINE.match(line)
            if match and (arg_indent is None or indent <= arg_indent):
                arg_indent = indent
                name = str(match.group(1)).lstrip("*")
                args[name] = str(match.group(3)).strip()
                current = name
            elif current is not None:
                args[current] = f"{args[current]} {line.strip()}".strip()
    return "\n".join(description).strip(), args


def _is_context(annotation: Any, name: str) -> bool:
    if annotation is RunContext:
        return True
    origin = typing.get_origin(annotation)
    if origin is not None and RunContext in typing.get_args(annotation):
        return True
    return annotation is inspect.Parameter.empty and name == "ctx"


def _mentions_path(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return True
    return any(_mentions_path(a) for a in typing.get_args(annotation))


class Tool:
    """A function the model may call. Build one with `@tool`.

    Calling the `Tool` object calls the function unchanged, so a tool stays testable as plain
    Python.

    Example:
        >>> @tool(effects={"read"})
        ... def lookup(key: str) -> str:
        ...     '''Look a key up in the catalogue.
        ...
        ...     Args:
        ...         key: the catalogue key.
        ...     '''
        ...     return key.upper()
        >>> lookup.definition.parameters["properties"]["key"]["description"]
        'the catalogue key.'
        >>> lookup("a")
        'A'
    """

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        effects: Iterable[str] = (),
        name: str | None = None,
        description: str | None = None,
        path_params: Iterable[str] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        if not callable(function):
            msg = f"`@tool` needs a function, got {function!r}."
            raise UsageError(msg, hint="Decorate a `def` or `async def` function.")
        self.function = function
        self.name = name or getattr(function, "__name__", "tool")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.name):
            msg = f"Tool name {self.name!r} is not valid for model APIs."
            raise UsageError(msg, hint="Use letters, digits, `_` or `-` (at most 64 characters).")
        self.effects = frozenset(effects)
        self.timeout_s = timeout_s
        self._is_async = inspect.iscoroutinefunction(function)
        doc_description, arg_docs = _parse_docstring(inspect.getdoc(function))
        self.description = description if description is not None else doc_description
        self.takes_context, fields, detected_paths = self._fields(arg_docs)
        self._param_names = tuple(fields)
        self.path_params = (frozenset(path_params) if path_params is not None
                            else frozenset(detected_paths))
        self._args_model: type[pydantic.BaseModel] = pydantic.create_model(  # type: ignore[call-overload]
            f"{self.name}_arguments",
            __config__=pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True),
            **fields,
        )
        schema = self._args_model.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        schema.setdefault("properties", {})
        self._definition = ToolDefinition(name=self.name, description=self.description,
                                          parameters=schema, effects=self.effects)
        self.__doc__ = getattr(function, "__doc__", None)
        self.__wrapped__ = function

    def _fields(self, arg_docs: dict[str, str]) -> tuple[bool, dict[str, Any], list[str]]:
        signature = inspect.signature(self.function)
        try:
            hints = typing.get_type_hints(self.function, include_extras=True)
        except (NameError, TypeError) as exc:
            msg = f"Cannot read the type hints of tool {self.name!r}: {exc}."
            raise UsageError(msg, hint="Import the annotated types at module level.") from None
        takes_context = False
        fields: dict[str, Any] = {}
        paths: list[str] = []
        for index, (pname, param) in enumerate(signature.parameters.items()):
            annotation = hints.get(pname, param.annotation)
            if index == 0 and _is_context(annotation, pname):
                takes_context = True
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                msg = (f"Tool {self.name!r} takes `*{pname}`; the model can only pass named "
                       "arguments.")
                raise UsageError(msg, hint="List the parameters explicitly.")
            if annotation is inspect.Parameter.empty:
                annotation = Any
            if _mentions_path(annotation):
                paths.append(pname)
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[pname] = (annotation,
                             pydantic.Field(default, description=arg_docs.get(pname) or None))
        return takes_context, fields, paths

    @property
    def definition(self) -> ToolDefinition:
        """What the model sees: name, description, JSON schema (and the declared effects)."""
        return self._definition

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool({self.name!r}, effects={sorted(self.effects)!r})"

    def validate(self, arguments: str | dict[str, Any]) -> dict[str, Any]:
        """Validate the model's arguments; return them as Python values by parameter name.

        Raises:
            pydantic.ValidationError: the arguments are malformed JSON or do not fit the schema.
        """
        if isinstance(arguments, str):
            model = self._args_model.model_validate_json(arguments.strip() or "{}")
        else:
            model = self._args_model.model_validate(arguments)
        return {name: getattr(model, name) for name in self._param_names}

    async def call(self, values: dict[str, Any], ctx: RunContext | None) -> Any:
        """Run the function with validated values, awaiting it or running it in a thread."""
        args: tuple[Any, ...] = (ctx,) if self.takes_context else ()
        if self._is_async:
            coro = typing.cast("Awaitable[Any]", self.function(*args, **values))
        else:
            coro = asyncio.to_thread(self.function, *args, **values)
        if self.timeout_s is not None:
            async with asyncio.timeout(self.timeout_s):
                return await coro
        return await coro

    async def execute(self, arguments: str | dict[str, Any], ctx: RunContext | None,
                      *, validated: dict[str, Any] | None = None) -> ToolOutcome:
        """Validate and run one call; turn every ordinary failure into an outcome the model sees.

        Fatal errors (cancellation, a kill switch raised from a delegate) propagate.
        """
        start = time.perf_counter()
        if validated is None:
            try:
                validated = self.validate(arguments)
            except pydantic.ValidationError as exc:
                return ToolOutcome(content=_retry_text(self.name, exc), status="retry",
                                   error_type="ValidationError",
                                   duration_s=time.perf_counter() - start)
        try:
            value = await self.call(validated, ctx)
        except ModelRetry as exc:
            return ToolOutcome(content=f"{exc.message}\nFix the arguments and call {self.name!r} "
                               "again.", status="retry", error_type="ModelRetry",
                               duration_s=time.perf_counter() - start)
        except ToolFailed as exc:
            return ToolOutcome(content=exc.message, status="error", error_type="ToolFailed",
                               duration_s=time.perf_counter() - start)
        except TimeoutError:
            return ToolOutcome(content=f"Tool {self.name!r} timed out after {self.timeout_s}s.",
                               status="error", error_type="TimeoutError",
                               duration_s=time.perf_counter() - start)
        except Exception as exc:
            if _is_fatal(exc):
                raise
            return ToolOutcome(content=f"Tool {self.name!r} raised {type(exc).__name__}: {exc}",
                               status="error", error_type=type(exc).__name__,
                               duration_s=time.perf_counter() - start)
        return ToolOutcome(content=render_result(value), duration_s=time.perf_counter() - start)


def _is_fatal(exc: BaseException) -> bool:
    from agentnb.core import RunStopped

    # A kill switch from a delegate stops the parent; a UsageError (e.g. a sync `agent.run`
    # inside a tool) is a programming error the user must see, not something the model can fix.
    return isinstance(exc, (RunStopped, UsageError)) or getattr(exc, "_agentnb_fatal", False)


def _retry_text(name: str, exc: pydantic.ValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(arguments)"
        problems.append(f"- {loc}: {err.get('msg', 'invalid')}")
    return (f"The arguments for {name!r} were invalid:\n" + "\n".join(problems)
            + f"\nFix the arguments and call {name!r} again.")


_SURROGATE = re.compile("[\ud800-\udfff]")


def render_result(value: Any) -> str:
    """Turn a tool's return value into the text the model sees (JSON unless it is a string).

    A lone surrogate (bytes decoded with 'surrogateescape') becomes U+FFFD: no store, hash or
    request body can carry it, and the rest of the text is kept."""
    if isinstance(value, str):
        return _valid_text(value)
    if value is None:
        return "null"
    if isinstance(value, Path):
        return _valid_text(str(value))
    try:
        return pydantic_core.to_json(value).decode()
    except pydantic_core.PydanticSerializationError:
        return repr(value)


def _valid_text(text: str) -> str:
    try:
        text.encode()
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


@overload
def tool(function: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    effects: Iterable[str] = (),
    name: str | None = None,
    description: str | None = None,
    path_params: Iterable[str] | None = None,
    timeout_s: float | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    effects: Iterable[str] = (),
    name: str | None = None,
    description: str | None = None,
    path_params: Iterable[str] | None = None,
    timeout_s: float | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function into a `Tool` the model may call; usable bare or with options.

    Args:
        function: the function (when used as a bare `@tool`).
        effects: declared side effects (`read`, `write`, `network`, `money`, `exec`, ...); the
            policy decides on them. No effects means effect-free.
        name: the name the model sees (default: the function's name).
        description: overrides the docstring's description.
        path_params: parameters holding file paths, confined to `Policy(workspace=...)`
            (default: those annotated `Path`).
        timeout_s: per-call time limit; a call that takes longer is an error result.

    Example:
        >>> @tool
        ... async def add(a: int, b: int = 1) -> int:
        ...     '''Add two numbers.'''
        ...     return a + b
        >>> add.definition.parameters["required"]
        ['a']
    """
    def wrap(fn: Callable[..., Any]) -> Tool:
        return Tool(fn, effects=effects, name=name, description=description,
                    path_params=path_params, timeout_s=timeout_s)

    if function is not None:
        return wrap(function)
    return wrap
