"""Conventions as tests (STYLE B8): exports, layers, pickling, module size, import time."""

from __future__ import annotations

import importlib
import inspect
import pickle
import subprocess
import sys
import types
from pathlib import Path

import pytest

import agentnb
from agentnb import core

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["agentnb.core", "agentnb.tracing", "agentnb.models", "agentnb.governance",
            "agentnb.runtime", "agentnb.evals", "agentnb.notebook", "agentnb.jobs",
            "agentnb.testing"]


def _existing(name: str) -> types.ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


@pytest.mark.parametrize("name", ["agentnb", *PACKAGES])
def test_all_is_sorted_casefold(name: str) -> None:
    """Every public `__all__` is sorted with `key=str.casefold`."""
    module = importlib.import_module(name)
    names = list(module.__all__)
    assert names == sorted(names, key=str.casefold)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", ["agentnb", *PACKAGES])
def test_all_resolves(name: str) -> None:
    """Every name in `__all__` can be imported from its package."""
    module = importlib.import_module(name)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_complete(name: str) -> None:
    """Every public, non-module name a layer package holds is listed in its `__all__`."""
    module = importlib.import_module(name)
    public = {
        n for n, v in vars(module).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType)
        and n not in {"annotations", "TYPE_CHECKING"}
    }
    assert public - set(module.__all__) == set()


def test_public_classes_read_as_agentnb() -> None:
    """Top-level classes report `agentnb` as their module, as httpx's do."""
    assert agentnb.BudgetExceeded.__module__ == "agentnb"
    assert repr(agentnb.Usage).startswith("<class 'agentnb.Usage")


def test_unknown_attribute_is_an_attribute_error() -> None:
    """A misspelt top-level name gives a plain AttributeError naming it."""
    with pytest.raises(AttributeError, match="Agnet"):
        agentnb.Agnet


def _error_classes() -> list[type[BaseException]]:
    return [v for v in vars(core).values()
            if inspect.isclass(v) and issubclass(v, core.AgentnbError)]


def _instance(cls: type[BaseException]) -> BaseException:
    sig = inspect.signature(cls.__init__)
    kwargs: dict[str, object] = {}
    args: list[object] = []
    for p in list(sig.parameters.values())[1:]:
        if p.default is not inspect.Parameter.empty or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        value: object = 1 if p.name in {"status_code", "attempts", "step"} else "x"
        if p.name in {"limit", "spent", "requested", "limit_s", "elapsed_s"}:
            value = 1.5
        if p.name == "reason":
            value = "budget"
        if p.kind == p.KEYWORD_ONLY:
            kwargs[p.name] = value
        else:
            args.append(value)
    return cls(*args, **kwargs)


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_errors_pickle(cls: type[BaseException]) -> None:
    """Every AgentnbError subclass survives pickle with its fields and message."""
    err = _instance(cls)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert str(back) == str(err)
    assert vars(back) == vars(err)


def test_error_messages_carry_hints() -> None:
    """`str()` of an error is its message followed by the hint."""
    err = core.UsageError("Bad thing 'x'.", hint="Do y.")
    assert str(err) == "Bad thing 'x'. Hint: Do y."
    assert err.message == "Bad thing 'x'."


def test_config_error_is_value_error_and_timeout_is_timeout_error() -> None:
    """Errors a user would catch by stdlib type also have that base."""
    assert issubclass(core.ConfigError, ValueError)
    assert issubclass(core.ModelTimeout, TimeoutError)


def test_no_module_over_1000_lines() -> None:
    """No source module exceeds 1,000 lines (STYLE B1)."""
    too_long = {str(p.relative_to(ROOT)): n for p in (ROOT / "agentnb").rglob("*.py")
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > 1000}
    assert too_long == {}


def test_layers_only_import_downward() -> None:
    """import-linter's contracts in pyproject.toml hold."""
    exe = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_import_is_fast_and_light() -> None:
    """`import agentnb` loads no heavy dependency (pandas, httpx, matplotlib, ipywidgets)."""
    code = ("import sys, agentnb; heavy = [m for m in ('pandas', 'httpx', 'matplotlib', "
            "'ipywidgets', 'papermill', 'pydantic') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
