"""Workspace confinement: escape attempts are refused, paths inside come back resolved."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import pytest

from agentnb.core import UsageError, WorkspaceViolation
from agentnb.governance import check_workspace, path_params_of


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "Sandbox"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "a.txt").write_text("hi")
    (tmp_path / "secret.txt").write_text("top secret")
    (tmp_path / "Sandbox2").mkdir()
    return root


ESCAPES = [
    "../secret.txt",
    "notes/../../secret.txt",
    "notes/../a.txt",  # stays inside, but `..` is refused outright
    "./../secret.txt",
    "..",
    "notes/..",
    "/etc/passwd",
    "~/.ssh/id_rsa",
    "~root/.bashrc",
    "%2e%2e/secret.txt",
    "%2E%2E%2Fsecret.txt",
    "..%2fsecret.txt",
    "..\\secret.txt",
    "notes\\..\\..\\secret.txt",
    "C:\\Windows\\system32",
    "c:/windows/win.ini",
    "\\\\server\\share\\x",
    "file:///etc/passwd",
    "file:/etc/passwd",
    "http://example.com/x",
    "data:text/plain,hi",
    "mailto:x",
    "notes/a.txt\x00.png",
    "",
    "/tmp/../etc/passwd",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_escape_attempts_are_refused(ws: Path, path: str) -> None:
    """Each traversal form raises WorkspaceViolation carrying the path and the workspace."""
    with pytest.raises(WorkspaceViolation) as info:
        check_workspace({"path": path}, ["path"], ws, tool="write_file")
    err = info.value
    assert err.path == path
    assert err.workspace == str(ws.resolve())
    assert err.tool == "write_file"
    assert err.rule == "workspace"
    assert repr(path) in err.message


def test_absolute_paths_outside_are_refused(ws: Path, tmp_path: Path) -> None:
    """An absolute path to a sibling folder (even one sharing a name prefix) is refused."""
    for outside in (tmp_path / "secret.txt", tmp_path / "Sandbox2" / "x", tmp_path):
        with pytest.raises(WorkspaceViolation, match="outside"):
            check_workspace({"p": str(outside)}, {"p"}, ws)


def test_case_tricks_are_refused(ws: Path, tmp_path: Path) -> None:
    """Case variants of the workspace name never count as inside (component-wise, exact)."""
    for trick in (tmp_path / "SANDBOX" / "x", tmp_path / "sandbox" / "notes",
                  tmp_path / "SANDBOX2" / "y", tmp_path / "sandbox2"):
        with pytest.raises(WorkspaceViolation):
            check_workspace({"p": str(trick)}, {"p"}, ws)
    with pytest.raises(WorkspaceViolation):
        check_workspace({"p": f"{tmp_path}/sandbox/../SANDBOX2"}, {"p"}, ws)


def test_symlink_out_of_the_workspace_is_refused(ws: Path, tmp_path: Path) -> None:
    """A symlink inside the workspace that points outside is refused, as is a path through it."""
    (ws / "link").symlink_to(tmp_path / "secret.txt")
    (ws / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    (ws / "dangling").symlink_to(tmp_path / "not-yet" / "x")
    for path in ("link", "dirlink/secret.txt", "dirlink", "dangling"):
        with pytest.raises(WorkspaceViolation, match="resolves outside"):
            check_workspace({"path": path}, ["path"], ws)


def test_symlink_inside_the_workspace_is_followed(ws: Path) -> None:
    """A symlink that stays inside is allowed and comes back as its real path."""
    (ws / "alias").symlink_to(ws / "notes" / "a.txt")
    out = check_workspace({"path": "alias"}, ["path"], ws)
    assert out["path"] == str((ws / "notes" / "a.txt").resolve())


def test_paths_inside_resolve_against_the_workspace(ws: Path) -> None:
    """Relative paths are taken from the workspace (not the cwd) and returned absolute."""
    out = check_workspace({"path": "notes/new.txt", "text": "x", "other": "../x"}, ["path"], ws)
    assert out == {"path": str(ws.resolve() / "notes" / "new.txt"), "text": "x", "other": "../x"}
    assert check_workspace({"path": "."}, ["path"], ws)["path"] == str(ws.resolve())
    inside_abs = str(ws / "notes" / "a.txt")
    assert check_workspace({"path": inside_abs}, ["path"], ws)["path"] == str(
        (ws / "notes" / "a.txt").resolve())


def test_types_lists_and_missing_values(ws: Path) -> None:
    """Path stays Path, lists/tuples are checked item by item, None and absent are skipped."""
    out = check_workspace({"a": Path("notes/a.txt"), "b": ["x", "y"], "c": ("z",), "d": None},
                          ["a", "b", "c", "d", "e"], ws)
    assert out["a"] == ws.resolve() / "notes" / "a.txt"
    assert out["b"] == [str(ws.resolve() / "x"), str(ws.resolve() / "y")]
    assert out["c"] == (str(ws.resolve() / "z"),)
    assert out["d"] is None
    with pytest.raises(WorkspaceViolation, match="'../x'"):
        check_workspace({"b": ["ok", "../x"]}, ["b"], ws)


def test_non_path_values_are_refused(ws: Path) -> None:
    """An int or dict where a path is expected is refused, not coerced."""
    for value in (3, {"p": "x"}, b"notes"):
        with pytest.raises(WorkspaceViolation, match="not a path"):
            check_workspace({"p": value}, ["p"], ws)


def test_input_is_not_mutated_and_single_name_works(ws: Path) -> None:
    """check_workspace returns a new dict; a bare string names one parameter."""
    args = {"path": "notes/a.txt"}
    out = check_workspace(args, "path", ws)
    assert args == {"path": "notes/a.txt"}
    assert out["path"].endswith("a.txt")


def test_workspace_given_through_a_symlink(tmp_path: Path, ws: Path) -> None:
    """A workspace reached through a symlink is compared by its real path."""
    (tmp_path / "wslink").symlink_to(ws, target_is_directory=True)
    out = check_workspace({"p": "notes/a.txt"}, ["p"], tmp_path / "wslink")
    assert out["p"] == str(ws.resolve() / "notes" / "a.txt")
    with pytest.raises(WorkspaceViolation):
        check_workspace({"p": str(tmp_path / "secret.txt")}, ["p"], tmp_path / "wslink")


def test_path_params_from_annotations() -> None:
    """Parameters annotated with Path-like types (also optional, listed, Annotated) are paths."""

    def tool(*, a: Path, b: str, c: Path | None, d: list[Path], e: Annotated[Path, "x"],
             f: os.PathLike[str], g: Sequence[PurePosixPath], h: int = 0,
             i: dict[str, Any] | None = None) -> None: ...

    assert path_params_of(tool) == frozenset({"a", "c", "d", "e", "f", "g"})


def test_path_params_explicit_and_unresolvable() -> None:
    """Explicit names are added; unknown names are a UsageError; string annotations still work."""

    def tool(dest: str, src: Path) -> None: ...

    assert path_params_of(tool, ["dest"]) == frozenset({"dest", "src"})
    assert path_params_of(tool, "dest") == frozenset({"dest", "src"})
    with pytest.raises(UsageError, match="'dst'"):
        path_params_of(tool, ["dst"])

    def broken(x: Undefined, y: Path) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    assert path_params_of(broken) == frozenset({"y"})
