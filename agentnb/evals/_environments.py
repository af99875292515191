"""Synthetic environments: seeded, resettable worlds that tools act on and checks inspect.

An environment holds state (orders and refunds, files, sent emails) and offers tools that act on
it. The tools are ordinary agentnb `Tool`s with declared effects. Each tool resolves the world it
acts on at call time: the run's `ctx.environment` when that is an environment of the same kind
(the `Suite` passes a fresh copy to every run, so concurrent runs never share state), otherwise
the instance the tools were taken from (a plain `agent.run(...)` in a notebook).

Fault injection is seeded: `fail_rate` makes a tool fail with that probability on each call
(the draw depends on the seed, the tool and the call's ordinal, so a run is reproducible), and
`slow_s` makes each call of a faulty tool take that long.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import random
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

from agentnb.core import ToolFailed, UsageError
from agentnb.runtime import RunContext, Tool

__all__ = ["Catalogue", "Email", "Environment", "FileWorkspace", "Order", "Outbox", "Product"]


class Environment:
    """Base of the synthetic environments: seed, reset, fresh copies, tools, fault injection.

    Subclasses fill `_populate()` (the initial state, from `self.seed`) and `_tool_functions()`
    (the functions that become tools; each takes `ctx` first and the world as `env`).

    Args:
        seed: seeds the initial state and the fault draws.
        fail_rate: probability (0..1) that a call of a faulty tool fails.
        slow_s: seconds each call of a faulty tool takes.
        faulty: names of the tools faults apply to (default: every tool).
    """

    kind: ClassVar[str] = "environment"

    def __init__(self, *, seed: int = 0, fail_rate: float = 0.0, slow_s: float = 0.0,
                 faulty: Iterable[str] | None = None) -> None:
        if not 0.0 <= fail_rate <= 1.0:
            msg = f"fail_rate must be between 0 and 1, got {fail_rate!r}."
            raise UsageError(msg, hint="Pass e.g. `fail_rate=0.2`.")
        if slow_s < 0:
            msg = f"slow_s must be >= 0, got {slow_s!r}."
            raise UsageError(msg)
        self.seed = seed
        self.fail_rate = fail_rate
        self.slow_s = slow_s
        self.faulty = None if faulty is None else frozenset(faulty)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        """Every tool call this world received, in order: (tool name, arguments)."""
        self.faults: list[str] = []
        """Names of the tools whose calls failed by injection, in order."""
        self._tools: list[Tool] | None = None
        self._populate()

    # -- to override -----------------------------------------------------------------------

    def _populate(self) -> None:
        raise NotImplementedError

    def _tool_functions(self) -> list[tuple[Callable[..., Any], set[str]]]:
        raise NotImplementedError

    # -- public ----------------------------------------------------------------------------

    def reset(self) -> None:
        """Put the world back in its initial seeded state (calls and faults are cleared too)."""
        self.calls = []
        self.faults = []
        self._populate()

    def fresh(self) -> Self:
        """A new, independent world in the initial state, with the same settings.

        Example:
            >>> env = Catalogue(seed=1)
            >>> copy = env.fresh()
            >>> copy is not env and copy.orders == env.orders
            True
        """
        clone = copy.copy(self)
        clone._tools = None
        clone.reset()
        return clone

    @property
    def tools(self) -> list[Tool]:
        """The agentnb `Tool`s acting on this world (on the run's environment when it has one)."""
        if self._tools is None:
            self._tools = [self._make_tool(fn, effects) for fn, effects in self._tool_functions()]
        return list(self._tools)

    @property
    def tool_names(self) -> list[str]:
        """The names of `tools`."""
        return [t.name for t in self.tools]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed!r})"

    # -- plumbing --------------------------------------------------------------------------

    def _resolve(self, ctx: RunContext | None) -> Self:
        env = getattr(ctx, "environment", None)
        return env if isinstance(env, type(self)) else self

    async def _fault(self, name: str) -> None:
        if self.faulty is not None and name not in self.faulty:
            return
        if self.slow_s > 0:
            await asyncio.sleep(self.slow_s)
        if self.fail_rate > 0:
            ordinal = sum(1 for n, _ in self.calls if n == name)
            if random.Random(f"{self.seed}|{name}|{ordinal}").random() < self.fail_rate:
                self.faults.append(name)
                msg = f"{name} is temporarily unavailable (injected fault); try the call again."
                raise ToolFailed(msg)

    def _make_tool(self, fn: Callable[..., Any], effects: set[str]) -> Tool:
        import functools
        import inspect

        params = list(inspect.signature(fn).parameters.values())[1:]  # drop `env`

        @functools.wraps(fn)
        async def wrapper(ctx: RunContext, **kwargs: Any) -> Any:
            env = self._resolve(ctx)
            await env._fault(fn.__name__)
            env.calls.append((fn.__name__, dict(kwargs)))
            return fn(env, **kwargs)

        ctx_param = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                      annotation=RunContext)
        wrapper.__signature__ = inspect.Signature([ctx_param, *params])  # type: ignore[attr-defined]
        hints = dict(getattr(fn, "__annotations__", {}))
        hints.pop("env", None)
        hints["ctx"] = RunContext
        wrapper.__annotations__ = hints
        return Tool(wrapper, name=fn.__name__, effects=effects)


# -- the product catalogue -----------------------------------------------------------------

_NOUNS = ("lamp", "kettle", "chair", "desk", "mug", "blanket", "backpack", "umbrella", "headphones",
          "notebook", "teapot", "bookshelf", "pillow", "toaster", "clock", "mirror")
_ADJECTIVES = ("oak", "steel", "linen", "ceramic", "bamboo", "wool", "glass", "copper")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Product:
    """One product of a `Catalogue`."""

    id: int
    """Product id."""
    name: str
    """Product name (`"oak lamp"`)."""
    price: float
    """Unit price in USD."""
    stock: int
    """Units in stock."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Order:
    """One order of a `Catalogue`."""

    id: int
    """Order id."""
    customer: str
    """The customer's email."""
    product_id: int
    """What was ordered."""
    quantity: int
    """How many."""
    total: float
    """What the customer paid, in USD."""
    status: str
    """`delivered`, `shipped` or `processing`."""


class Catalogue(Environment):
    """A shop: products, orders and refunds, with tools to look orders up, search and refund.

    Order ids run from 40 (so `order 42` exists); totals, products and statuses follow the seed.
    Tools: `lookup_order(order_id)` (read), `search_products(query)` (read),
    `refund(order_id, amount)` (money). A refund above what is left to refund fails.

    Args:
        seed: seeds the catalogue and the fault draws.
        n_products: how many products.
        n_orders: how many orders (ids 40, 41, ...).
        fail_rate: probability that a call of a faulty tool fails.
        slow_s: seconds each call of a faulty tool takes.
        faulty: names of the tools faults apply to (default: every tool).

    Example:
        >>> env = Catalogue(seed=1)
        >>> order = env.orders[42]
        >>> env.refund_order(42, order.total)["refunded"] == order.total
        True
        >>> env.refunds[42] == order.total
        True
    """

    kind: ClassVar[str] = "catalogue"

    def __init__(self, seed: int = 0, *, n_products: int = 12, n_orders: int = 20,
                 fail_rate: float = 0.0, slow_s: float = 0.0,
                 faulty: Iterable[str] | None = None) -> None:
        self.n_products = n_products
        self.n_orders = n_orders
        self.products: dict[int, Product] = {}
        self.orders: dict[int, Order] = {}
        self.refunds: dict[int, float] = {}
        """Refunded USD by order id."""
        super().__init__(seed=seed, fail_rate=fail_rate, slow_s=slow_s, faulty=faulty)

    def _populate(self) -> None:
        rng = random.Random(f"catalogue|{self.seed}")
        names = [f"{a} {n}" for n in _NOUNS for a in _ADJECTIVES]
        rng.shuffle(names)
        self.products = {
            i: Product(id=i, name=names[i - 1], price=round(rng.uniform(5, 120), 2),
                       stock=rng.randint(0, 40))
            for i in range(1, self.n_products + 1)
        }
        customers = ("ada", "grace", "alan", "edsger", "barbara", "donald", "frances", "ken")
        self.orders = {}
        for oid in range(40, 40 + self.n_orders):
            product = self.products[rng.randint(1, self.n_products)]
            quantity = rng.randint(1, 3)
            self.orders[oid] = Order(
                id=oid, customer=f"{rng.choice(customers)}@example.com", product_id=product.id,
                quantity=quantity, total=round(product.price * quantity, 2),
                status=rng.choice(("delivered", "delivered", "shipped", "processing")))
        self.refunds = {}

    # Plain methods: the state changes checks and notebooks can also call directly.

    def order_info(self, order_id: int) -> dict[str, Any]:
        """The order as a dict, with its product name and what was refunded."""
        order = self.orders.get(order_id)
        if order is None:
            msg = f"There is no order {order_id!r}; order ids run from 40 to {39 + self.n_orders}."
            raise ToolFailed(msg)
        info = dataclasses.asdict(order)
        info["product"] = self.products[order.product_id].name
        info["refunded"] = self.refunds.get(order_id, 0.0)
        return info

    def refund_order(self, order_id: int, amount: float) -> dict[str, Any]:
        """Refund `amount` USD on an order; fails above what is left to refund."""
        order = self.orders.get(order_id)
        if order is None:
            msg = f"There is no order {order_id!r} to refund."
            raise ToolFailed(msg)
        left = round(order.total - self.refunds.get(order_id, 0.0), 2)
        if amount <= 0 or amount > left + 1e-9:
            msg = f"Cannot refund {amount!r} USD on order {order_id}: {left} USD is refundable."
            raise ToolFailed(msg)
        self.refunds[order_id] = round(self.refunds.get(order_id, 0.0) + amount, 2)
        return {"order_id": order_id, "refunded": amount, "total_refunded": self.refunds[order_id]}

    def find_products(self, query: str) -> list[dict[str, Any]]:
        """Products whose name shares a word with `query`."""
        words = {w.rstrip("s") for w in query.lower().split()}
        return [dataclasses.asdict(p) for p in self.products.values()
                if words & {w.rstrip("s") for w in p.name.split()}]

    def _tool_functions(self) -> list[tuple[Callable[..., Any], set[str]]]:
        def lookup_order(env: Catalogue, order_id: int) -> dict[str, Any]:
            """Look up an order by its id: customer, product, total paid, status, refunded.

            Args:
                order_id: the order number.
            """
            return env.order_info(order_id)

        def search_products(env: Catalogue, query: str) -> list[dict[str, Any]]:
            """Search the product catalogue by name; returns matching products with prices.

            Args:
                query: words to search for in product names.
            """
            return env.find_products(query)

        def refund(env: Catalogue, order_id: int, amount: float) -> dict[str, Any]:
            """Refund money to the customer of an order.

            Args:
                order_id: the order number.
                amount: the amount to refund, in USD.
            """
            return env.refund_order(order_id, amount)

        return [(lookup_order, {"read"}), (search_products, {"read"}), (refund, {"money"})]


# -- a file workspace ------------------------------------------------------------------------


class FileWorkspace(Environment):
    """A folder of text files the tools read, write and list, confined to its root.

    Each fresh copy gets its own temporary folder holding the initial `files`.
    Tools: `read_file(path)` (read), `write_file(path, content)` (write), `list_files()` (read).

    Args:
        root: the folder (default: a new temporary folder).
        files: initial files, relative path -> text.
        seed: seeds the fault draws.
        fail_rate: probability that a call of a faulty tool fails.
        slow_s: seconds each call of a faulty tool takes.
        faulty: names of the tools faults apply to (default: every tool).

    Example:
        >>> ws = FileWorkspace(files={"notes.txt": "buy milk"})
        >>> ws.read("notes.txt"), ws.list()
        ('buy milk', ['notes.txt'])
    """

    kind: ClassVar[str] = "workspace"

    def __init__(self, root: str | Path | None = None, *, files: Mapping[str, str] | None = None,
                 seed: int = 0, fail_rate: float = 0.0, slow_s: float = 0.0,
                 faulty: Iterable[str] | None = None) -> None:
        self.initial_files = dict(files or {})
        self._given_root = Path(root) if root is not None else None
        self.root = self._given_root or self._temporary_root()
        super().__init__(seed=seed, fail_rate=fail_rate, slow_s=slow_s, faulty=faulty)

    def _temporary_root(self) -> Path:
        """A new temporary folder, removed when this workspace object is collected (or at
        exit), as `tempfile.TemporaryDirectory` does; a given `root` is never removed."""
        root = Path(tempfile.mkdtemp(prefix="agentnb-ws-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, root, ignore_errors=True)
        return root

    def _populate(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        for rel, text in self.initial_files.items():
            path = self._path(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")

    def fresh(self) -> Self:
        """A new world in a new temporary folder, holding the initial files."""
        clone = copy.copy(self)
        clone._tools = None
        clone.root = clone._temporary_root()
        clone.reset()
        return clone

    def _path(self, rel: str) -> Path:
        root = self.root.resolve()
        path = (root / rel).resolve()
        if path != root and root not in path.parents:
            msg = f"Path {rel!r} is outside the workspace."
            raise ToolFailed(msg)
        return path

    def read(self, path: str) -> str:
        """The text of a file."""
        p = self._path(path)
        if not p.is_file():
            msg = f"No file {path!r} in the workspace; it holds {self.list()!r}."
            raise ToolFailed(msg)
        return p.read_text(encoding="utf-8")

    def write(self, path: str, content: str) -> str:
        """Write a file (parents created)."""
        p = self._path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content, encoding="utf-8")
        return f"wrote {len(content)} characters to {path}"

    def list(self) -> list[str]:
        """Relative paths of every file, sorted."""
        root = self.root.resolve()
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    @property
    def files(self) -> dict[str, str]:
        """Every file's text by relative path."""
        return {rel: self.read(rel) for rel in self.list()}

    def _tool_functions(self) -> list[tuple[Callable[..., Any], set[str]]]:
        def read_file(env: FileWorkspace, path: str) -> str:
            """Read a text document from the workspace.

            Args:
                path: the document's path inside the workspace.
            """
            return env.read(path)

        def write_file(env: FileWorkspace, path: str, content: str) -> str:
            """Write (create or overwrite) a text document in the workspace.

            Args:
                path: the document's path inside the workspace.
                content: the text to write.
            """
            return env.write(path, content)

        def list_files(env: FileWorkspace) -> list[str]:
            """List every document in the workspace."""
            return env.list()

        return [(read_file, {"read"}), (write_file, {"write"}), (list_files, {"read"})]


# -- an email outbox -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Email:
    """One sent email."""

    to: str
    """Recipient address."""
    subject: str
    """Subject line."""
    body: str
    """Body text."""


class Outbox(Environment):
    """An email outbox and an address book; sent mail lands in `outbox` (nothing leaves).

    Tools: `send_email(to, subject, body)` (network), `find_contact(name)` (read).

    Args:
        contacts: name -> address (default: a small seeded address book).
        seed: seeds the fault draws.
        fail_rate: probability that a call of a faulty tool fails.
        slow_s: seconds each call of a faulty tool takes.
        faulty: names of the tools faults apply to (default: every tool).

    Example:
        >>> box = Outbox()
        >>> _ = box.send("ada@example.com", "Hi", "Hello Ada")
        >>> [m.to for m in box.outbox]
        ['ada@example.com']
    """

    kind: ClassVar[str] = "outbox"

    def __init__(self, *, contacts: Mapping[str, str] | None = None, seed: int = 0,
                 fail_rate: float = 0.0, slow_s: float = 0.0,
                 faulty: Iterable[str] | None = None) -> None:
        self.contacts = dict(contacts or {"Ada": "ada@example.com", "Grace": "grace@example.com",
                                          "Alan": "alan@example.com"})
        self.outbox: list[Email] = []
        """Sent emails, in order."""
        super().__init__(seed=seed, fail_rate=fail_rate, slow_s=slow_s, faulty=faulty)

    def _populate(self) -> None:
        self.outbox = []

    def send(self, to: str, subject: str, body: str) -> str:
        """Put an email in the outbox; fails on an address without `@`."""
        if "@" not in to:
            msg = f"{to!r} is not an email address."
            raise ToolFailed(msg)
        self.outbox.append(Email(to=to, subject=subject, body=body))
        return f"sent to {to}"

    def _tool_functions(self) -> list[tuple[Callable[..., Any], set[str]]]:
        def send_email(env: Outbox, to: str, subject: str, body: str) -> str:
            """Send an email.

            Args:
                to: the recipient's email address.
                subject: the subject line.
                body: the message text.
            """
            return env.send(to, subject, body)

        def find_contact(env: Outbox, name: str) -> str:
            """Find a contact's address in the address book.

            Args:
                name: the contact's name.
            """
            for known, address in env.contacts.items():
                if known.lower() == name.lower():
                    return address
            msg = f"No contact named {name!r}; known: {sorted(env.contacts)!r}."
            raise ToolFailed(msg)

        return [(send_email, {"network"}), (find_contact, {"read"})]
