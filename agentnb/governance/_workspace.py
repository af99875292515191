"""Workspace confinement: file-path arguments must resolve inside the workspace folder.

`check_workspace` looks at the arguments a tool declares as paths (`path_params_of`: parameters
annotated `Path`/`PurePath`/`os.PathLike`, optionally inside `| None`, `list[...]` or similar,
plus names given explicitly) and refuses, with `WorkspaceViolation`:

- any `..` component, even one that would come back inside (`a/../b`);
- `~` expansion (`~`, `~user/...`);
- absolute paths outside the workspace (absolute paths inside are allowed);
- symlinks whose real target lies outside (the real path is compared, not the spelling);
- NUL bytes, backslashes, Windows drive letters (`C:`) and UNC prefixes, URLs (`file://...`,
  `scheme://...`) and percent-encoded text (`%2e%2e`);
- an empty path, and values that are not strings or path objects.

The comparison is component-wise and case-sensitive on the real paths. On a case-insensitive
file system a case variant of the workspace (`/tmp/SANDBOX/x` for workspace `/tmp/Sandbox`) is
therefore refused even though it would land inside: refusing is the safe mistake, and a string
prefix test (where `/tmp/Sandbox2` passes as "inside" `/tmp/Sandbox`) is never used.

Paths are checked when the call is made; a symlink created afterwards by another process is
not seen (the usual check-then-use race). Tools that must be safe against that should open
files with `os.open(..., dir_fd=...)` and `O_NOFOLLOW`.
"""

from __future__ import annotations

import inspect
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any

from agentnb.core import UsageError, WorkspaceViolation

__all__ = ["check_workspace", "path_params_of"]

_DRIVE = re.compile(r"^[A-Za-z]:")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")


def _refuse(raw: object, workspace: Path, tool: str | None, why: str) -> WorkspaceViolation:
    msg = f"Path {raw!r} of tool {tool!r} is refused: {why} (workspace {str(workspace)!r})."
    return WorkspaceViolation(msg, path=str(raw), workspace=str(workspace), tool=tool)


def _confine(raw: object, workspace: Path, tool: str | None) -> str:
    """Check one path value and return its real path inside `workspace`."""
    if isinstance(raw, PurePath):
        text = str(raw)
    elif isinstance(raw, str):
        text = raw
    else:
        raise _refuse(raw, workspace, tool, f"a {type(raw).__name__} is not a path")
    checks = (
        (not text, "the path is empty"),
        ("\x00" in text, "it contains a NUL byte"),
        ("\\" in text, "backslashes are not path separators here"),
        (bool(_DRIVE.match(text)), "Windows drive letters are not allowed"),
        ("://" in text or text.lower().startswith("file:"), "URLs are not file paths"),
        (bool(_PERCENT.search(text)), "percent-encoded characters are not allowed"),
        (text.startswith("~"), "`~` expansion is not allowed"),
        (".." in Path(text).parts, "`..` components are not allowed"),
    )
    for failed, why in checks:
        if failed:
            raise _refuse(raw, workspace, tool, why)
    if _URL.match(text) and not text.startswith("/"):
        raise _refuse(raw, workspace, tool, "scheme-prefixed paths are not allowed")
    candidate = Path(text) if os.path.isabs(text) else workspace / text
    real = Path(os.path.realpath(candidate))
    if real != workspace and workspace not in real.parents:
        where = "it resolves" if real != candidate else "it is"
        raise _refuse(raw, workspace, tool, f"{where} outside the workspace ({str(real)!r})")
    return str(real)


def check_workspace(
    args: Mapping[str, Any],
    path_params: Iterable[str],
    workspace: str | Path,
    tool: str | None = None,
) -> dict[str, Any]:
    """Refuse path arguments that leave `workspace`; return the arguments with real paths.

    Relative paths are taken relative to the workspace (not the current directory). Each
    checked argument comes back as the absolute real path, with the type it came in (`str` or
    `Path`); lists and tuples of paths are checked item by item. Arguments that are absent or
    None are left alone.

    Raises:
        WorkspaceViolation: a path leaves the workspace, or is not a plain file path.

    Example:
        >>> import tempfile
        >>> ws = Path(tempfile.mkdtemp())
        >>> check_workspace({"path": "notes/a.txt"}, {"path"}, ws)["path"] == str(
        ...     ws.resolve() / "notes" / "a.txt")
        True
        >>> check_workspace({"path": "../etc/passwd"}, {"path"}, ws)
        Traceback (most recent call last):
        agentnb.WorkspaceViolation: Path '../etc/passwd' of tool None is refused: ...
    """
    if isinstance(path_params, str):
        path_params = [path_params]
    root = Path(os.path.realpath(Path(workspace).expanduser()))
    out = dict(args)
    for name in path_params:
        value = out.get(name)
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            items = [_typed(item, _confine(item, root, tool)) for item in value]  # pyright: ignore[reportUnknownVariableType,reportUnknownArgumentType]
            out[name] = type(value)(items) if isinstance(value, tuple) else items  # pyright: ignore[reportUnknownArgumentType]
        else:
            out[name] = _typed(value, _confine(value, root, tool))
    return out


def _typed(original: object, real: str) -> Any:
    return Path(real) if isinstance(original, PurePath) else real


def _is_path_type(hint: object) -> bool:
    if isinstance(hint, type):
        return hasattr(hint, "__fspath__")  # PurePath, os.PathLike and their subclasses
    origin = typing.get_origin(hint)
    if origin is None:
        return False
    if isinstance(origin, type) and hasattr(origin, "__fspath__"):
        return True
    if origin is typing.Annotated:
        return _is_path_type(typing.get_args(hint)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, set, frozenset, Iterable) or (
        isinstance(origin, type) and issubclass(origin, Iterable)
    ):
        return any(_is_path_type(arg) for arg in typing.get_args(hint) if arg is not Ellipsis)
    return False


def path_params_of(
    fn: Callable[..., Any], path_params: Iterable[str] | None = None
) -> frozenset[str]:
    """Names of `fn`'s parameters that hold file paths.

    A parameter is a path when it is annotated `Path` (or `PurePath`, `os.PathLike`, or one of
    those inside `| None`, `list[...]`, `Annotated[...]`), or is named in `path_params`.

    Raises:
        UsageError: a name in `path_params` is not a parameter of `fn`.

    Example:
        >>> def save(path: Path, text: str, backup: str | None = None) -> None: ...
        >>> sorted(path_params_of(save, ["backup"]))
        ['backup', 'path']
    """
    signature = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # unresolvable annotations fall back to their text
        hints = {}
    names: set[str] = set()
    for name, parameter in signature.parameters.items():
        hint = hints.get(name, parameter.annotation)
        if isinstance(hint, str):
            if re.search(r"\b(?:Path|PurePath|PathLike|PosixPath)\b", hint):
                names.add(name)
        elif _is_path_type(hint):
            names.add(name)
    if path_params is not None:
        if isinstance(path_params, str):
            path_params = [path_params]
        for name in path_params:
            if name not in signature.parameters:
                fn_name = getattr(fn, "__name__", repr(fn))
                msg = f"path_params names {name!r}, which is not a parameter of {fn_name!r}."
                raise UsageError(msg, hint=f"Parameters are {list(signature.parameters)!r}.")
            names.add(name)
    return frozenset(names)
