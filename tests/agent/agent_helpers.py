"""Shared helpers of the agent tests: a scripted policy and a registry whose tools record every call that runs."""

from __future__ import annotations

from slmtune.agent.loop import Price, Step
from slmtune.data.registry import ToolRegistry, tool_from_function


class ScriptedPolicy:
    """Answers with the given steps in order (priced with ``price``) and keeps the messages it was shown."""

    def __init__(self, steps: list[Step], name: str = "scripted", price: Price | None = None) -> None:
        self.steps, self.name, self.price, self.seen = list(steps), name, price or Price(), []

    def step(self, messages, tools):
        self.seen.append([dict(m) for m in messages])
        if not self.steps:
            raise AssertionError(f"policy {self.name!r} was asked more often than scripted")
        step = self.steps.pop(0)
        step.answered_by = step.answered_by or self.name
        step.cost_usd = self.price.cost(step.tokens_in, step.tokens_out, step.latency_s)
        return step


def recording_registry() -> tuple[ToolRegistry, list[tuple]]:
    """Two tools whose implementations record every call that actually runs (``buy`` fails above 1000 shares)."""
    ran: list[tuple] = []

    def get_price(symbol: str) -> dict:
        """Latest price of a stock.

        Args:
            symbol: Ticker symbol.
        """
        ran.append(("get_price", symbol))
        return {"symbol": symbol, "price": 101.5}

    def buy(symbol: str, quantity: int, limit: float) -> dict:
        """Buy shares at a limit price.

        Args:
            symbol: Ticker symbol.
            quantity: Number of shares.
            limit: Highest price to pay.
        """
        ran.append(("buy", symbol, quantity, limit))
        if quantity > 1000:
            raise RuntimeError("order too large")
        return {"order": "ORD-1", "filled": quantity}

    return ToolRegistry([tool_from_function(get_price), tool_from_function(buy)]), ran
