"""Ids and content hashing."""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any

__all__ = ["canonical_json", "content_hash", "new_id"]


def new_id(prefix: str) -> str:
    """Make a unique id that sorts by creation time.

    Example:
        >>> new_id("run").startswith("run_")
        True
    """
    return f"{prefix}_{time.time_ns() // 1000:014x}{os.urandom(5).hex()}"


def _default(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        return dump(mode="json")
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    return str(obj)


def canonical_json(obj: Any) -> str:
    """Serialise to JSON with sorted keys and no spaces, so equal values give equal text.

    Example:
        >>> canonical_json({"b": 1, "a": [1, 2]})
        '{"a":[1,2],"b":1}'
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_default,
                      ensure_ascii=False)


def content_hash(obj: Any) -> str:
    """SHA-256 hex digest of the canonical JSON of a value.

    Example:
        >>> content_hash({"a": 1}) == content_hash({"a": 1})
        True
    """
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()
