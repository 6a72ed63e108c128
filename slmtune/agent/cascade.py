"""The verifier cascade: the SLM answers every step; a step is re-asked from the fallback when one of its calls fails
validation, when the router's confidence is below the operating point, or when one of its calls fails as it runs.

Usage::

    router = Router.load("outputs/gemma270m/main/export/router.json")
    cascade = VerifierCascade(slm, fallback=llm, router=router, target_precision=0.9)
    trace = run_turn(messages, executor, cascade, max_steps=4)
    for record in trace.steps:
        print(record.answered_by, record.reason, record.tokens_in, record.tokens_out, record.cost_usd)

Each step of the trace records who answered (``answered_by``), why (:data:`~slmtune.agent.loop.REASONS`), the
router's ``p_correct``, and the tokens, latency and cost of every attempt (the SLM's rejected answer is paid too).
"""

from __future__ import annotations

from slmtune.agent.loop import Policy, Step
from slmtune.data.registry import ToolSchemaError, make_tool, validate_call
from slmtune.router import Router

__all__ = ["VerifierCascade", "check_calls"]


def check_calls(step: Step, tools: list[dict]) -> str | None:
    """Why ``step``'s answer is not a valid use of ``tools`` (unreadable output, a tool not offered, arguments that
    fail its JSON Schema), or ``None`` when every call validates (a text answer is valid)."""
    if step.error is not None:
        return f"unreadable answer: {step.error}"
    offered = {}
    for i, tool in enumerate(tools):
        try:
            built = make_tool(tool, source=f"tools[{i}]")
        except ToolSchemaError as err:
            return f"offered tool not usable: {err}"
        offered[built.name] = built
    for call in step.calls:
        tool = offered.get(call["name"])
        if tool is None:
            return f"unknown tool {call['name']!r}"
        problems = validate_call(tool, call)
        if problems:
            return f"invalid call to {call['name']!r}: " + "; ".join(problems)
    return None


class VerifierCascade:
    """A :class:`~slmtune.agent.loop.Policy` (and recovering policy) over a ``primary`` (the SLM) and an optional
    ``fallback``.

    Each step: the primary answers; the answer is checked (:func:`check_calls`), then, with a ``router``, kept only if
    ``router.decide(step.signals, target_precision)`` keeps it (``route_text=False`` keeps text answers without
    asking the router). A rejected answer is re-asked from the fallback, whose answer is taken as it is; without a
    fallback the primary's answer is kept and the reason records what was wrong with it. A primary answer whose call
    fails when it runs is re-asked from the fallback once (:meth:`recover`)."""

    def __init__(self, primary: Policy, fallback: Policy | None = None, *, router: Router | None = None,
                 target_precision: float = 0.95, route_text: bool = True) -> None:
        if router is not None:
            router.threshold_for(target_precision)  # fails now, naming the available targets, if there is none
        self.primary, self.fallback, self.router = primary, fallback, router
        self.target_precision, self.route_text = target_precision, route_text

    def verdict(self, step: Step, tools: list[dict]) -> str:
        """``valid``, ``invalid_call`` or ``low_confidence`` for a primary answer (sets its ``p_correct``)."""
        if check_calls(step, tools) is not None:
            return "invalid_call"
        if self.router is None or (not step.calls and not self.route_text):
            return "valid"
        if step.signals is None:
            raise ValueError(f"policy {step.answered_by!r} gives no confidence signals, which the router needs; "
                             "route only a local model, or drop the router")
        keep, step.p_correct = self.router.decide(step.signals, self.target_precision)
        return "valid" if keep else "low_confidence"

    def step(self, messages: list[dict], tools: list[dict]) -> Step:
        first = self.primary.step(messages, tools)
        first.reason = self.verdict(first, tools)
        if first.reason == "valid" or self.fallback is None:
            return first
        return self._escalate(messages, tools, first)

    def recover(self, messages: list[dict], tools: list[dict], failed: Step, error: str) -> Step | None:
        """The fallback's answer for a step whose (kept, primary) answer failed as it ran; ``None`` when there is no
        fallback or the answer already came from it."""
        if self.fallback is None or failed.attempts or failed.reason != "valid":
            return None
        failed.reason = "execution_error"
        return self._escalate(messages, tools, failed)

    def _escalate(self, messages: list[dict], tools: list[dict], rejected: Step) -> Step:
        answer = self.fallback.step(messages, tools)
        answer.reason = rejected.reason
        answer.attempts = [*rejected.attempts, rejected]
        return answer
