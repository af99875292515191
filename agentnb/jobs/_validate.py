"""Notebook validation: nbformat's schema plus our contract (a parameters cell, typed parameters).

Reads every version nbformat reads (v3 is upgraded), so an old notebook validates the same as a
new one. Problems carry the cell index; empty, truncated and non-JSON files give one clear
`NotebookInvalid`, never a traceback.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from agentnb.core import NotebookInvalid, UsageError

__all__ = ["ParamSpec", "Problem", "ValidationReport", "check_parameters", "read_notebook",
           "validate_notebook"]

Severity = Literal["error", "warning"]
"""An error makes the notebook invalid; a warning is reported and allowed."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Problem:
    """One reason a notebook is invalid or questionable."""

    cell_index: int | None
    """The 0-based index of the cell, or None for the whole notebook."""
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = "notebook" if self.cell_index is None else f"cell {self.cell_index}"
        return f"{self.severity}: {where}: {self.message}"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ParamSpec:
    """A parameter inferred from the parameters cell."""

    name: str
    type: str
    """`int`, `float`, `str`, `bool`, `list`, `dict`, `NoneType`, or the declared annotation."""
    default: Any = None
    declared: bool = False
    """True when the type came from an annotation (or a pydantic model) rather than the value."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ValidationReport:
    """The outcome of `validate_notebook`.

    Example:
        >>> report = ValidationReport(path="nb.ipynb", problems=(), parameters={},
        ...                           parameters_cell=0, nbformat="4.5")
        >>> report.ok
        True
    """

    path: str
    problems: tuple[Problem, ...]
    parameters: dict[str, ParamSpec]
    parameters_cell: int | None
    """Index of the `parameters`-tagged cell, or None (parameters are injected at the top)."""
    nbformat: str
    """The version the file was written in, e.g. `4.5` or `3.0`."""

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings are allowed)."""
        return not any(p.severity == "error" for p in self.problems)

    @property
    def errors(self) -> list[Problem]:
        """The problems that make the notebook invalid."""
        return [p for p in self.problems if p.severity == "error"]

    def raise_for_problems(self) -> None:
        """Raise `NotebookInvalid` listing every error, if there is one."""
        if self.ok:
            return
        lines = "; ".join(str(p) for p in self.errors)
        raise NotebookInvalid(
            f"Notebook {self.path!r} is invalid: {lines}",
            path=self.path, problems=[(p.cell_index, p.message) for p in self.errors],
            hint="Fix the cells named above; `agentnb validate` lists every problem.",
        )


def read_notebook(path: str | Path) -> tuple[Any, str]:
    """Read a notebook of any version nbformat knows, upgraded to v4.

    Returns:
        The notebook node and the version it was written in.

    Raises:
        NotebookInvalid: the file is missing, empty, not JSON, or not a notebook.
    """
    import nbformat

    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotebookInvalid(f"No notebook at {where!r}.", path=where,
                              hint="Check the path.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookInvalid(f"Cannot read {where!r}: {exc}.", path=where) from None
    if not text.strip():
        raise NotebookInvalid(f"Notebook {where!r} is empty (0 bytes of JSON).", path=where,
                              problems=[(None, "empty file")],
                              hint="Save the notebook again from Jupyter.")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        msg = (f"Notebook {where!r} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
               f"{exc.msg}); the file may be truncated.")
        raise NotebookInvalid(msg, path=where, problems=[(None, exc.msg)],
                              hint="Restore it from version control or save it again.") from None
    if not isinstance(raw, dict) or "nbformat" not in raw:
        raise NotebookInvalid(f"{where!r} is JSON but not a notebook (no `nbformat` field).",
                              path=where, problems=[(None, "no nbformat field")])
    version = f"{raw.get('nbformat')}.{raw.get('nbformat_minor', 0)}"
    try:
        with warnings.catch_warnings(record=True) as caught:
            # nbformat "repairs" duplicate or missing ids with a warning; we report them instead.
            warnings.simplefilter("always")
            nb = nbformat.reads(text, as_version=4)
        del caught  # the repairs are reported by _duplicate_ids
    except Exception as exc:
        raise NotebookInvalid(f"nbformat cannot read {where!r} (version {version}): {exc}",
                              path=where, problems=[(None, str(exc))]) from None
    return nb, version


def _raw_cell_ids(path: str | Path) -> list[Any]:
    """Cell ids as written in the file, before nbformat repairs duplicates."""
    cells = json.loads(Path(path).read_text(encoding="utf-8")).get("cells")
    if not isinstance(cells, list):
        return []
    return [c.get("id") if isinstance(c, dict) else None for c in cells]


def _schema_problems(nb: Any) -> list[Problem]:
    from nbformat import ValidationError
    from nbformat.validator import iter_validate

    problems: list[Problem] = []
    try:
        errors = list(iter_validate(nb))
    except ValidationError as exc:  # pragma: no cover - iter_validate yields instead
        errors = [exc]
    for error in errors[:20]:
        path = list(getattr(error, "absolute_path", []) or [])
        in_cell = len(path) > 1 and path[0] == "cells" and isinstance(path[1], int)
        cell = path[1] if in_cell else None
        field = "/".join(str(p) for p in path)
        problems.append(Problem(cell_index=cell,
                                message=f"schema: {error.message} (at {field or 'top level'})"))
    return problems


def _duplicate_ids(ids: list[Any]) -> list[Problem]:
    seen: dict[str, int] = {}
    problems = []
    for index, cell_id in enumerate(ids):
        if cell_id is None:
            continue
        if cell_id in seen:
            problems.append(Problem(
                cell_index=index,
                message=f"duplicate cell id {cell_id!r} (first used by cell {seen[cell_id]})",
            ))
        else:
            seen[cell_id] = index
    return problems


_LITERAL_TYPES = {bool: "bool", int: "int", float: "float", str: "str", list: "list",
                  dict: "dict", tuple: "list", type(None): "NoneType"}


def _infer_parameters(source: str, cell_index: int) -> tuple[dict[str, ParamSpec], list[Problem]]:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return {}, [Problem(cell_index=cell_index,
                            message=f"parameters cell is not valid Python: {exc.msg} "
                            f"(line {exc.lineno})")]
    params: dict[str, ParamSpec] = {}
    problems: list[Problem] = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and _is_pydantic_model(node):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    default = _literal(item.value) if item.value is not None else None
                    params[item.target.id] = ParamSpec(
                        name=item.target.id, type=ast.unparse(item.annotation),
                        default=default, declared=True)
            continue
        target, value, annotation = None, None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value, annotation = node.target, node.value, node.annotation
        if not isinstance(target, ast.Name):
            continue
        default = _literal(value) if value is not None else None
        if annotation is not None:
            kind, declared = ast.unparse(annotation), True
        elif value is not None and _is_literal(value):
            kind, declared = _LITERAL_TYPES.get(type(default), "object"), False
        else:
            problems.append(Problem(
                cell_index=cell_index, severity="warning",
                message=f"parameter {target.id!r} is not a literal; its type cannot be checked"))
            kind, declared = "object", False
        params[target.id] = ParamSpec(name=target.id, type=kind, default=default,
                                      declared=declared)
    return params, problems


def _is_pydantic_model(node: ast.ClassDef) -> bool:
    return any(ast.unparse(base).split(".")[-1] == "BaseModel" for base in node.bases)


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _literal(node: ast.expr | None) -> Any:
    if node is None or not _is_literal(node):
        return None
    return ast.literal_eval(node)


_ACCEPTS: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
    "list": (list, tuple), "dict": (dict,),
}


def _type_ok(spec: ParamSpec, value: Any) -> bool:
    kind = spec.type.replace(" ", "")
    if kind in ("object", "Any", "typing.Any"):
        return True
    if spec.default is None and not spec.declared:
        return True  # `x = None` says nothing about the type
    optional = kind.endswith("|None") or kind.startswith(("Optional[", "None|"))
    if value is None:
        return optional or kind == "NoneType"
    base = kind.removesuffix("|None").removeprefix("None|")
    if base.startswith("Optional["):
        base = base.removeprefix("Optional[").removesuffix("]")
    base = base.split("[", 1)[0]
    accepted = _ACCEPTS.get(base)
    if accepted is None:
        return True  # a declared type we cannot check statically, e.g. Literal[...]
    if base in ("int", "float") and isinstance(value, bool):
        return False
    return isinstance(value, accepted)


def check_parameters(report: ValidationReport, params: Mapping[str, Any]) -> None:
    """Check passed parameters against those the notebook declares.

    Raises:
        UsageError: an unknown parameter name or a value of the wrong type, naming it.

    Example:
        >>> spec = ParamSpec(name="n", type="int", default=3)
        >>> report = ValidationReport(path="nb.ipynb", problems=(), parameters={"n": spec},
        ...                           parameters_cell=0, nbformat="4.5")
        >>> check_parameters(report, {"n": 5})
    """
    if report.parameters_cell is None:
        return  # nothing declared: papermill injects at the top, as documented in the warning
    for name, value in params.items():
        spec = report.parameters.get(name)
        if spec is None:
            known = ", ".join(sorted(report.parameters)) or "none"
            raise UsageError(
                f"Unknown parameter {name!r} for notebook {report.path!r}.",
                hint=f"The parameters cell (cell {report.parameters_cell}) declares: {known}.",
            )
        if not _type_ok(spec, value):
            raise UsageError(
                f"Parameter {name!r} of notebook {report.path!r} expects {spec.type}, "
                f"got {type(value).__name__} {value!r}.",
                hint=f"Pass a {spec.type} (default: {spec.default!r}).",
            )


def validate_notebook(
    path: str | Path, params: Mapping[str, Any] | None = None
) -> ValidationReport:
    """Validate a notebook file: schema, cell ids, the parameters cell, and passed parameters.

    Raises:
        NotebookInvalid: the file cannot be read as a notebook at all.
        UsageError: `params` names an unknown parameter or has a value of the wrong type.

    Example:
        >>> import nbformat, tempfile, os
        >>> nb = nbformat.v4.new_notebook()
        >>> nb.cells.append(nbformat.v4.new_code_cell("n = 3", metadata={"tags": ["parameters"]}))
        >>> path = os.path.join(tempfile.mkdtemp(), "nb.ipynb")
        >>> nbformat.write(nb, path)
        >>> validate_notebook(path, {"n": 4}).parameters["n"].type
        'int'
    """
    nb, version = read_notebook(path)
    problems = [*_schema_problems(nb), *_duplicate_ids(_raw_cell_ids(path))]
    tagged = [i for i, c in enumerate(nb.cells)
              if "parameters" in (c.get("metadata", {}).get("tags") or [])]
    parameters: dict[str, ParamSpec] = {}
    cell_index = tagged[0] if tagged else None
    if not tagged:
        problems.append(Problem(
            cell_index=None, severity="warning",
            message="no cell is tagged `parameters`; parameters will be injected at the top"))
    else:
        if len(tagged) > 1:
            problems.append(Problem(
                cell_index=tagged[1], severity="warning",
                message=f"several cells are tagged `parameters` ({tagged}); the first is used"))
        cell = nb.cells[tagged[0]]
        if cell.get("cell_type") != "code":
            problems.append(Problem(cell_index=tagged[0],
                                    message="the `parameters` cell is not a code cell"))
        else:
            parameters, found = _infer_parameters(cell.get("source", ""), tagged[0])
            problems.extend(found)
    report = ValidationReport(path=str(path), problems=tuple(problems), parameters=parameters,
                              parameters_cell=cell_index, nbformat=version)
    if params:
        check_parameters(report, params)
    return report
