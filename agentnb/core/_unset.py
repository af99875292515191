"""The UNSET sentinel: "not given" is not None ("off")."""

from __future__ import annotations

import enum
from typing import Final, Literal

__all__ = ["UNSET", "Unset"]


class Unset(enum.Enum):
    """Type of `UNSET`; use `X | Unset` in signatures."""

    token = 0

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> Literal[False]:
        return False


UNSET: Final = Unset.token
"""A keyword argument that was not given: use the configured default."""
