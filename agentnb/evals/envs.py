"""`anb.envs`: seeded, resettable synthetic worlds with tools (public namespace).

Example:
    >>> from agentnb.evals import envs
    >>> envs.Catalogue(seed=1).tool_names
    ['lookup_order', 'search_products', 'refund']
"""

from __future__ import annotations

from agentnb.evals._environments import (
    Catalogue,
    Email,
    Environment,
    FileWorkspace,
    Order,
    Outbox,
    Product,
)

__all__ = ["Catalogue", "Email", "Environment", "FileWorkspace", "Order", "Outbox", "Product"]
