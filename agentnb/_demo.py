"""The offline demo behind `agentnb demo`: an agent with a tool answers a task on a `sim:` model."""

from __future__ import annotations

from collections.abc import Callable

CATALOGUE = {
    "3": "a brass telescope, 40x zoom, in stock: 2",
    "7": "a walnut desk lamp with a linen shade, in stock: 12",
    "12": "a cast-iron kettle, 1.5 litres, out of stock",
}


def run_demo(*, model: str = "sim:careful", task: str = "What does key 7 hold in the catalogue?",
             echo: Callable[[str], None] = print) -> None:
    """Run the demo agent and print its answer, steps, tokens and cost.

    Example:
        >>> run_demo(echo=lambda line: None)
    """
    import agentnb as anb

    @anb.tool(effects={"read"})
    def lookup(key: str) -> str:
        """Look a key up in the product catalogue.

        Args:
            key: The catalogue key, e.g. "7".
        """
        if key not in CATALOGUE:
            msg = f"No key {key!r}; known keys are {sorted(CATALOGUE)}."
            raise anb.ModelRetry(msg)
        return CATALOGUE[key]

    agent = anb.Agent(
        model=model,
        name="catalogue",
        instructions="You answer questions from the product catalogue, using the lookup tool.",
        tools=[lookup],
        budget=anb.Budget(usd=0.05, model_calls=10, tool_calls=10),
        policy=anb.Policy(allow={"read"}),
    )
    result = agent.run(task)
    echo(f"Task:    {task}")
    echo(f"Model:   {model}")
    for step in result.steps:
        echo(f"  step {step.index} [{step.kind}] {_describe(step)}")
    echo(f"Answer:  {result.output}")
    usd = "unpriced" if result.usage.usd is None else f"${result.usage.usd:.6f}"
    echo(f"Status:  {result.status}" + (f" ({result.stop_reason})" if result.stop_reason else ""))
    echo(f"Usage:   {len(result.steps)} steps, {result.usage.input_tokens} input + "
         f"{result.usage.output_tokens} output tokens, {result.usage.model_calls} model calls, "
         f"{result.usage.tool_calls} tool calls, {usd}")
    echo(f"Run id:  {result.run_id}  (see it with `agentnb traces --run {result.run_id}`)")


def _describe(step: object) -> str:
    calls = getattr(step, "tool_calls", None) or []
    if calls:
        return ", ".join(_call_text(c) for c in calls)
    messages = getattr(step, "messages", None) or []
    text = " ".join(getattr(m, "text", "") for m in messages).strip()
    return (text[:90] + "...") if len(text) > 90 else text


def _call_text(call: object) -> str:
    name = getattr(call, "name", "?")
    arguments = getattr(call, "arguments", "")
    result = getattr(call, "result", None)
    text = f"{name}({arguments})"
    if result is not None:
        content = getattr(result, "content", result)
        text += f" -> {content!s:.60}"
    return text
