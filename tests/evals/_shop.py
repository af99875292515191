"""Shared scenarios for the evals tests: a support agent in the `Catalogue` world."""

from __future__ import annotations

import agentnb as anb
from agentnb.evals import Scenario, Suite, checks, envs

WORLD = envs.Catalogue(seed=7)


def scenarios(world: envs.Catalogue = WORLD) -> list[Scenario]:
    """Support tasks whose checks inspect the reply, the trajectory and the world afterwards."""
    o42, _o45, o51 = world.orders[42], world.orders[45], world.orders[51]
    p = world.products[3]
    noun = p.name.split()[-1]
    return [
        Scenario("refund-42", f"Refund ${o42.total} for order 42.",
                 checks=[checks.tool_called("refund", with_args={"order_id": 42}, ok=True),
                         checks.env_check(lambda env: env.refunds.get(42) == o42.total,
                                          name="order 42 refunded in full"),
                         checks.status("done")]),
        Scenario("partial-refund-45", "Refund $5 for order 45 because the box was dented.",
                 checks=[checks.env_check(lambda env: env.refunds.get(45) == 5,
                                          name="order 45 refunded $5"),
                         checks.tool_called("refund", times=1)]),
        Scenario("status-51", "Look up order 51 and tell me its status.",
                 checks=[checks.tool_called("lookup_order", with_args={"order_id": 51}, ok=True),
                         checks.contains(o51.status), checks.tool_not_called("refund"),
                         checks.no_retries()]),
        Scenario("search", f'Search products for "{noun}".',
                 checks=[checks.tool_called("search_products", ok=True),
                         checks.contains(p.name), checks.tool_not_called("refund")]),
        Scenario("status-44", "Look up order 44: what did the customer pay?",
                 checks=[checks.contains(str(world.orders[44].total)),
                         checks.tool_not_called("refund"), checks.max_steps(3)]),
        Scenario("refund-48", f"Refund ${world.orders[48].total} for order 48.",
                 checks=[checks.env_check(lambda env: env.refunds.get(48) == world.orders[48].total,
                                          name="order 48 refunded"),
                         checks.no_retries()]),
    ]


def suite() -> Suite:
    """The shop suite over the seeded catalogue."""
    return Suite(scenarios(), environment=WORLD, name="shop")


def agent() -> anb.Agent:
    """The support agent definition (its model is replaced per suite model)."""
    return anb.Agent(model="sim:careful", name="support",
                     instructions="You are a support agent for a small shop. Use the tools.")
