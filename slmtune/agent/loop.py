"""The agent loop: ask a policy for one assistant turn, validate and execute its calls, feed the results back, and
stop on a text answer or a step limit. The multi-turn evaluation and ``python -m slmtune agent`` drive this loop.

Messages use slmtune's shapes (:meth:`slmtune.models.families.Family.render_prompt`): a user turn
``{"role": "user", "content": text}``, an assistant turn with calls ``{"role": "assistant", "tool_calls": [{"name",
"arguments"}, ...]}`` or with text ``{"role": "assistant", "content": text}``, and one tool result per call
``{"role": "tool", "name": tool name, "content": result text}``.

Usage::

    executor = RegistryExecutor(load_catalog(), ["convert_currency"])
    policy = LocalModelPolicy(model, tokenizer, FAMILIES["gemma3"])
    messages = [{"role": "user", "content": "How much is 120 EUR in USD?"}]
    trace = run_turn(messages, executor, policy, max_steps=4)   # messages now end with the answer
    print(trace.answer, trace.to_dict())

A policy never runs a tool: it returns calls (:class:`Step`). The loop hands each call to the executor, which checks
it against its tool's JSON Schema before anything runs and runs only a registered Python function
(:class:`~slmtune.agent.executors.RegistryExecutor`); a refused or failed call becomes a tool message with the
error text, so the model can correct itself on the next step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from slmtune.data.registry import make_tool
from slmtune.models.dialects import Dialect, normalize_call
from slmtune.models.families import Family

__all__ = [
    "REASONS", "LocalModelPolicy", "Policy", "Price", "RecoveringPolicy", "Step", "StepRecord", "ToolCallError",
    "ToolExecutor", "ToolResult", "TurnTrace", "run_turn",
]

# Why a step's answer is the one taken: the first answer was fine (valid), or it was re-asked because a call failed
# validation (invalid_call), the router's confidence was below the operating point (low_confidence), or a call
# failed when it ran (execution_error). Without a fallback the reason records what went wrong with the answer kept.
REASONS = ("valid", "invalid_call", "low_confidence", "execution_error")
ERROR_KINDS = ("unknown_tool", "invalid_call", "execution_error")


def reason_of(kind: str) -> str:
    """The step reason (:data:`REASONS`) a :class:`ToolCallError` kind stands for: an unknown tool is an invalid
    call."""
    return "execution_error" if kind == "execution_error" else "invalid_call"


class ToolCallError(Exception):
    """A call the executor refused (``unknown_tool``, ``invalid_call``) or that failed when it ran
    (``execution_error``); the loop feeds ``str(err)`` back to the model as the tool's result."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"ToolCallError kind {kind!r} is not one of {list(ERROR_KINDS)}")
        super().__init__(message)
        self.kind = kind

    @property
    def reason(self) -> str:
        return reason_of(self.kind)


@runtime_checkable
class ToolExecutor(Protocol):
    """The tools a conversation may call and the only way they run."""

    def tools(self) -> list[dict]:
        """The tools offered to the model (OpenAI function dicts: name, description, JSON Schema parameters)."""
        ...

    def execute(self, name: str, arguments: dict) -> str:
        """Run one call and return the text of its ``tool`` message; raise :class:`ToolCallError` when the call is
        refused (unknown tool, arguments that fail the tool's schema) or fails."""
        ...


@dataclass(frozen=True)
class Price:
    """What one model's answers cost: per million input/output tokens (both given), else its wall time at
    ``usd_per_hour`` (as the eval's CPS inputs, ``eval.cost``)."""

    usd_per_1m_input: float | None = None
    usd_per_1m_output: float | None = None
    usd_per_hour: float = 0.0

    def __post_init__(self) -> None:
        if (self.usd_per_1m_input is None) != (self.usd_per_1m_output is None):
            raise ValueError("Price: give both usd_per_1m_input and usd_per_1m_output, or neither")
        for name in ("usd_per_1m_input", "usd_per_1m_output", "usd_per_hour"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"Price.{name} must be a number >= 0, got {value!r}")

    def cost(self, tokens_in: int, tokens_out: int, latency_s: float) -> float:
        if self.usd_per_1m_input is not None and self.usd_per_1m_output is not None:
            return (tokens_in * self.usd_per_1m_input + tokens_out * self.usd_per_1m_output) / 1e6
        return latency_s / 3600 * self.usd_per_hour


@dataclass
class Step:
    """One assistant turn from a policy: calls (``[{"name", "arguments"}]``) or a text answer (``content``).

    ``signals``: the confidence signals of the answer (the eval's, :func:`slmtune.eval.evaluation.confidence_signals`)
    where the policy has them; ``error``: why the model's output could not be read as calls (it is then kept as
    text); ``p_correct``: the router's estimate where one was asked; ``reason``: why this answer was taken
    (:data:`REASONS`); ``attempts``: earlier answers for this step that were re-asked, each with its own ``reason``.
    """

    content: str | None = None
    calls: list[dict] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    signals: dict[str, float] | None = None
    answered_by: str = ""
    raw: str | None = None
    error: str | None = None
    cost_usd: float = 0.0
    p_correct: float | None = None
    reason: str = "valid"
    attempts: list[Step] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Policy(Protocol):
    """Whatever writes the assistant's turns: a local model, an endpoint, recorded answers, a cascade of these."""

    def step(self, messages: list[dict], tools: list[dict]) -> Step:
        """One assistant turn for the conversation ``messages`` with ``tools`` offered (text or calls)."""
        ...


@runtime_checkable
class RecoveringPolicy(Protocol):
    """A policy that can answer a step again after one of its calls failed (the cascade's fallback)."""

    def recover(self, messages: list[dict], tools: list[dict], failed: Step, error: str) -> Step | None:
        """Another answer for the step whose answer ``failed`` with ``error``, or ``None`` to keep it."""
        ...


@dataclass
class ToolResult:
    """One executed (or refused) call and the text fed back for it."""

    name: str
    arguments: dict
    content: str
    ok: bool
    error_kind: str | None = None   # a ToolCallError kind when not ok
    latency_s: float = 0.0


@dataclass
class StepRecord:
    """One step of a turn: the answer taken (``step``, with any re-asked ``step.attempts``) and its calls' results."""

    index: int
    step: Step
    results: list[ToolResult] = field(default_factory=list)

    @property
    def answered_by(self) -> str:
        return self.step.answered_by

    @property
    def reason(self) -> str:
        """:data:`REASONS`: why the answer was re-asked, else what went wrong with its calls, else ``valid``."""
        if self.step.reason != "valid":
            return self.step.reason
        failed = next((r for r in self.results if not r.ok), None)
        if self.step.error is not None:
            return "invalid_call"
        return "valid" if failed is None else reason_of(failed.error_kind)

    def _all(self) -> list[Step]:
        return [*self.step.attempts, self.step]

    @property
    def tokens_in(self) -> int:
        return sum(s.tokens_in for s in self._all())

    @property
    def tokens_out(self) -> int:
        return sum(s.tokens_out for s in self._all())

    @property
    def cost_usd(self) -> float:
        return sum(s.cost_usd for s in self._all())

    @property
    def latency_s(self) -> float:
        return sum(s.latency_s for s in self._all()) + sum(r.latency_s for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "answered_by": self.answered_by, "reason": self.reason,
                "calls": self.step.calls, "content": self.step.content if not self.step.calls else None,
                "results": [asdict(r) for r in self.results], "tokens_in": self.tokens_in,
                "tokens_out": self.tokens_out, "cost_usd": self.cost_usd, "latency_s": round(self.latency_s, 4),
                "p_correct": self.step.p_correct, "signals": self.step.signals, "error": self.step.error,
                "usage": _usage(self.step),
                "attempts": [{"answered_by": a.answered_by, "reason": a.reason, "calls": a.calls,
                              "content": a.content if not a.calls else None, "p_correct": a.p_correct,
                              "error": a.error, "signals": a.signals} | _usage(a) for a in self.step.attempts]}


def _usage(step: Step) -> dict[str, Any]:
    """One answer's own tokens, cost and latency (a step record's totals add its re-asked attempts and tool time)."""
    return {"tokens_in": step.tokens_in, "tokens_out": step.tokens_out, "cost_usd": step.cost_usd,
            "latency_s": round(step.latency_s, 4)}


@dataclass
class TurnTrace:
    """What :func:`run_turn` did: every step, how it stopped (``answer`` or ``max_steps``) and the text answer."""

    steps: list[StepRecord] = field(default_factory=list)
    stopped: str = "max_steps"
    answer: str | None = None

    @property
    def tokens_in(self) -> int:
        return sum(s.tokens_in for s in self.steps)

    @property
    def tokens_out(self) -> int:
        return sum(s.tokens_out for s in self.steps)

    @property
    def cost_usd(self) -> float:
        return sum(s.cost_usd for s in self.steps)

    @property
    def latency_s(self) -> float:
        return sum(s.latency_s for s in self.steps)

    def calls(self) -> list[list[dict]]:
        """The calls each step made, step by step (a text step adds none)."""
        return [record.step.calls for record in self.steps if record.step.calls]

    def answered_by(self) -> dict[str, int]:
        """Steps per answering policy name."""
        counts: dict[str, int] = {}
        for record in self.steps:
            counts[record.answered_by] = counts.get(record.answered_by, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {"stopped": self.stopped, "answer": self.answer, "steps": [s.to_dict() for s in self.steps],
                "answered_by": self.answered_by(), "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
                "cost_usd": self.cost_usd, "latency_s": round(self.latency_s, 4)}


def result_text(value: Any) -> str:
    """A tool's return value as the text of its ``tool`` message: strings as is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def error_text(err: ToolCallError) -> str:
    """The ``tool`` message fed back for a refused or failed call."""
    return json.dumps({"error": str(err)}, ensure_ascii=False)


def _execute(executor: ToolExecutor, call: dict) -> ToolResult:
    started = time.perf_counter()
    try:
        content, ok, kind = executor.execute(call["name"], call["arguments"]), True, None
    except ToolCallError as err:
        content, ok, kind = error_text(err), False, err.kind
    return ToolResult(call["name"], call["arguments"], content, ok, kind, time.perf_counter() - started)


def _perform(messages: list[dict], executor: ToolExecutor, step: Step) -> list[ToolResult]:
    """Append the step's assistant message and (for calls) one tool message per executed call."""
    if not step.calls:
        messages.append({"role": "assistant", "content": step.content or ""})
        return []
    messages.append({"role": "assistant", "tool_calls": [{"name": c["name"], "arguments": c["arguments"]}
                                                         for c in step.calls]})
    results = []
    for call in step.calls:
        result = _execute(executor, call)
        results.append(result)
        messages.append({"role": "tool", "name": result.name, "content": result.content})
    return results


def run_turn(messages: list[dict], executor: ToolExecutor, policy: Policy, *, max_steps: int) -> TurnTrace:
    """Run the agent on ``messages`` (in place) until the policy answers in text or ``max_steps`` steps were taken.

    Each step: the policy answers; its calls are appended as an assistant message and handed to the executor one by
    one (it validates each before running it), and each result (or the error of a refused or failed call) is
    appended as a ``tool`` message. A policy with ``recover`` (:class:`RecoveringPolicy`) is asked once to answer a
    step again when one of its calls failed; the failed answer's messages are then taken back (its calls that ran
    are not undone: keep state-changing tools out of a cascade with a fallback, or make them idempotent).
    """
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be an integer >= 1, got {max_steps!r}")
    tools = executor.tools()
    trace = TurnTrace()
    for index in range(max_steps):
        mark = len(messages)
        step = policy.step(messages, tools)
        _check_step(step)
        results = _perform(messages, executor, step)
        failed = next((r for r in results if not r.ok), None)
        if failed is not None and isinstance(policy, RecoveringPolicy):
            retry = policy.recover(messages[:mark], tools, step, failed.content)
            if retry is not None:
                _check_step(retry)
                del messages[mark:]
                step, results = retry, _perform(messages, executor, retry)
        trace.steps.append(StepRecord(index, step, results))
        if not step.calls:
            trace.stopped, trace.answer = "answer", step.content or ""
            break
    return trace


def _check_step(step: Any) -> None:
    if not isinstance(step, Step):
        raise TypeError(f"a policy's step() must return a Step, got {type(step).__name__}")
    for i, call in enumerate(step.calls):
        if not isinstance(call, Mapping) or not isinstance(call.get("name"), str) \
                or not isinstance(call.get("arguments"), Mapping):
            raise TypeError(f"Step.calls[{i}] must be {{'name': str, 'arguments': dict}}, got {call!r}")
    if step.reason not in REASONS:
        raise ValueError(f"Step.reason {step.reason!r} is not one of {list(REASONS)}")


def function_dicts(tools: list[dict]) -> list[dict]:
    """Offered tools (OpenAI tools or function dicts, BFCL type names allowed) as standard function dicts."""
    return [make_tool(tool, source=f"tools[{i}]").function_dict() for i, tool in enumerate(tools)]


class LocalModelPolicy:
    """A local causal LM (optionally with a PEFT adapter) as a policy: the family renders the prompt, the dialect
    builds an XGrammar grammar over the offered tools in the free call shape (a text answer or one or more calls,
    as ``tool_choice=auto``), the eval's :class:`~slmtune.eval.decoding.Decoder` decodes greedily, the dialect parses
    the answer, and the eval's confidence signals come with it (what ``router.json`` was calibrated on)."""

    def __init__(self, model, tokenizer, family: Family, dialect: str | Dialect | None = None, *, name: str = "slm",
                 max_new_tokens: int = 256, max_text_tokens: int | None = None, closing_reserve: int = 16,
                 price: Price | None = None, decoder=None) -> None:
        """``max_text_tokens`` cuts a text answer (as the eval does; ``None`` keeps it to ``max_new_tokens``);
        ``decoder`` reuses an existing :class:`~slmtune.eval.decoding.Decoder` (its compiled grammars); one built
        here keeps the conversation's KV cache between steps (``prefix_cache``), so a step prefills only what the
        conversation added since the previous one."""
        from slmtune.eval.decoding import Decoder

        self.family = family
        self.dialect = family.dialect(dialect)
        self.name = name
        self.price = price or Price()
        self.tokenizer = tokenizer
        self.decoder = decoder or Decoder(model, tokenizer, stop_strings=[family.end_of_turn],
                                          max_new_tokens=max_new_tokens, call_trigger=self.dialect.call_trigger,
                                          max_text_tokens=max_text_tokens, closing_reserve=closing_reserve,
                                          prefix_cache=True)

    def prompt(self, messages: list[dict], tools: list[dict]) -> tuple[str, str | None]:
        """The rendered prompt and the grammar (``None`` without tools) for one step."""
        fns = function_dicts(tools)
        prompt = self.family.render_prompt(messages, fns, self.dialect)
        grammar = self.dialect.grammar(fns, allow_text=True) if fns else None
        return prompt, grammar

    def step(self, messages: list[dict], tools: list[dict]) -> Step:
        from slmtune.eval.decoding import DecodeRequest
        from slmtune.eval.evaluation import confidence_signals

        prompt, grammar = self.prompt(messages, tools)
        generation = self.decoder.generate([DecodeRequest(prompt, grammar)], batch_size=1)[0]
        parsed = self.dialect.parse(generation.text)
        calls = [normalize_call(c) for c in parsed.calls] if not parsed.error else []
        spans = self.dialect.spans(generation.text) if calls else []
        tokens_in = len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        content = None if calls else (parsed.content if not parsed.error else generation.text)
        return Step(content=content, calls=calls, tokens_in=tokens_in, tokens_out=generation.output_tokens,
                    latency_s=generation.latency_s, signals=confidence_signals(generation, spans, len(calls)),
                    answered_by=self.name, raw=generation.text, error=parsed.error,
                    cost_usd=self.price.cost(tokens_in, generation.output_tokens, generation.latency_s))
