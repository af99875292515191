"""Ids and content hashing."""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from agentnb.core._json import canonical_json

__all__ = ["content_hash", "new_id"]


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
