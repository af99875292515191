"""An example eval file for the agentnb pytest plugin (run with `pytest --agentnb`).

Not collected by the project's own test run (the name does not start with `test_`); the plugin
tests run it in a subprocess. `SHOP_POLICY=strict` denies the `money` effect, which breaks the
refund scenarios: a regression the baseline comparison must catch.
"""

from __future__ import annotations

import json
import os

import pytest

import agentnb as anb
from agentnb.evals import Judge, Scenario, checks, envs
from agentnb.models import FunctionModel

WORLD = envs.Catalogue(seed=3)


def make_agent() -> anb.Agent:
    """The shop's support agent; its policy comes from `SHOP_POLICY`."""
    strict = os.environ.get("SHOP_POLICY") == "strict"
    policy = anb.Policy(allow={"read"}, deny={"money"}) if strict else None
    return anb.Agent(model="sim:expert", name="shop-support", policy=policy,
                     instructions="You are the shop's support agent. Use the tools.")


@pytest.mark.agentnb(agent=make_agent, environment=WORLD, min_pass_rate=0.5)
def test_shop() -> list[Scenario]:
    """Refunds change the world; look-ups answer from it."""
    o41, o43 = WORLD.orders[41], WORLD.orders[43]
    return [
        Scenario("refund-41", f"Refund ${o41.total} for order 41.",
                 checks=[checks.env_check(lambda env: env.refunds.get(41) == o41.total,
                                          name="order 41 refunded"), checks.no_denied()]),
        Scenario("refund-43", f"Refund ${o43.total} for order 43.",
                 checks=[checks.env_check(lambda env: env.refunds.get(43) == o43.total,
                                          name="order 43 refunded"), checks.no_denied()]),
        Scenario("status-46", "Look up order 46 and tell me its status.",
                 checks=[checks.contains(WORLD.orders[46].status),
                         checks.tool_not_called("refund")]),
        Scenario("status-47", "Look up order 47 and tell me its status.",
                 checks=[checks.contains(WORLD.orders[47].status)]),
    ]


def _greeting_judge(messages: list[anb.Message], info: object) -> str:
    answer = messages[-1].text.split("<<<")[1].split(">>>")[0].strip()
    ok = answer.lower().startswith(("dear", "hello", "hi"))
    return json.dumps({"passed": ok, "reason": "opens with a greeting" if ok else
                       f"the reply opens with {answer.split()[0]!r} instead of greeting "
                       "the customer"})


TONE = Judge("The reply opens by greeting the customer.",
             model=FunctionModel(_greeting_judge, name="greeting"), cache=False)


@pytest.mark.agentnb(agent=make_agent, environment=WORLD)
def test_tone() -> list[Scenario]:
    """A house-style rule the agent does not follow: fails with the judge's reason."""
    return [Scenario("greet", "Look up order 42 and tell me its status.",
                     checks=[checks.tool_called("lookup_order"), checks.judge(TONE)])]


def test_fixture_style(agentnb_eval: object) -> None:
    """The fixture form: run scenarios inside an ordinary test and inspect the report."""
    report = agentnb_eval(  # type: ignore[operator]
        [Scenario("search", 'Search products for "lamp".',
                  checks=[checks.tool_called("search_products")])],
        make_agent(), environment=WORLD)
    assert report.pass_rate == 1.0
