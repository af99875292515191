"""Keep optional modules that other packages import eagerly but rarely use off the start-up path.

`jsonschema` (which `nbformat`, and so papermill, imports) loads `rfc3987_syntax` when it is
installed, and that module builds a Lark Earley parser for RFC 3987 at import time: about 1.4 s
of CPU on this project's 2-core machines, paid by every process that reads a notebook (each
`agentnb run`, each batch worker). It is installed in every JupyterLab environment
(`jupyter-events` asks for `jsonschema[format-nongpl]`), and it is used only to check the `iri`
and `iri-reference` string formats, which notebook validation never asks for.

`defer_rfc3987_syntax()` puts a stand-in module in its place whose `is_valid_syntax` imports the
real module on its first call and hands over to it, so a format check that does need it still
gets the real answer. Nothing is patched in jsonschema itself.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

__all__ = ["defer_rfc3987_syntax"]

_NAME = "rfc3987_syntax"
_lock = threading.Lock()


def _load_real(stub: types.ModuleType) -> Any:
    with _lock:
        if sys.modules.get(_NAME) is stub:
            del sys.modules[_NAME]
        real = importlib.import_module(_NAME)
        stub.is_valid_syntax = real.is_valid_syntax  # pyright: ignore[reportAttributeAccessIssue]
        return real


def defer_rfc3987_syntax() -> bool:
    """Defer importing `rfc3987_syntax` until one of its checks runs; True when deferred.

    Does nothing (returns False) when the module is already imported or not installed.

    Example:
        >>> import sys
        >>> deferred = defer_rfc3987_syntax()
        >>> deferred in (True, False)
        True
        >>> "rfc3987_syntax" not in sys.modules or not deferred or sys.modules["rfc3987_syntax"]
        True
    """
    if _NAME in sys.modules:
        return False
    try:
        installed = importlib.util.find_spec(_NAME) is not None
    except (ImportError, ValueError):
        installed = False
    if not installed:
        return False
    stub = types.ModuleType(_NAME, "Stand-in: the real module is imported on first use.")

    real: list[Any] = []  # the real `is_valid_syntax`, once loaded

    def is_valid_syntax(term: str, value: str) -> bool:
        """Check `value` against RFC 3987 rule `term` with the real `rfc3987_syntax`."""
        if not real:
            real.append(_load_real(stub).is_valid_syntax)
        return bool(real[0](term, value))

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(_load_real(stub), name)

    stub.is_valid_syntax = is_valid_syntax  # pyright: ignore[reportAttributeAccessIssue]
    stub.__getattr__ = __getattr__  # pyright: ignore[reportAttributeAccessIssue]
    stub.__agentnb_deferred__ = True  # pyright: ignore[reportAttributeAccessIssue]
    sys.modules[_NAME] = stub
    return True
