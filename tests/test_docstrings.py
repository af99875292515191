"""Every docstring `Example:` runs (STYLE B7): doctest over every agentnb module."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import agentnb

# Modules whose examples need a kernel, a browser or a server are exercised by their own tests.
SKIP_PREFIXES = ("agentnb.__main__",)


def _modules() -> list[str]:
    names = ["agentnb"]
    for info in pkgutil.walk_packages(agentnb.__path__, prefix="agentnb."):
        if not info.name.startswith(SKIP_PREFIXES):
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The module's docstring examples pass under doctest."""
    monkeypatch.setenv("AGENTNB_SIM_LATENCY", "0")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
                             | doctest.IGNORE_EXCEPTION_DETAIL,
                             verbose=False, report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
