"""Ids, content hashing and this process's id."""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from agentnb.core._json import canonical_json

__all__ = ["content_hash", "current_pid", "new_id"]

_pid = os.getpid()


def _after_fork() -> None:
    global _pid  # one value per process, set again in a forked child
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def current_pid() -> int:
    """This process's id: read once, and again in a forked child (`os.getpid()` is a system
    call each time, and the stores check it on every read and write to notice a fork).

    Example:
        >>> import os
        >>> current_pid() == os.getpid()
        True
    """
    return _pid


def new_id(prefix: str) -> str:
    """Make a unique id that sorts by creation time.

    Example:
        >>> new_id("run").startswith("run_")
        True
    """
    return f"{prefix}_{time.time_ns() // 1000:014x}{os.urandom(5).hex()}"


def content_hash(obj: Any) -> str:
    """SHA-256 hex digest of the canonical JSON of a value.

    Example:
        >>> content_hash({"a": 1}) == content_hash({"a": 1})
        True
    """
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()
