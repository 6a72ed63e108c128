"""slmtune.agent.loop: calls are validated, executed and fed back; a text answer or the step limit ends a turn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from agent_helpers import ScriptedPolicy, recording_registry

from slmtune.agent.executors import RegistryExecutor
from slmtune.agent.loop import LocalModelPolicy, Step, ToolCallError, run_turn
from slmtune.data.registry import load_catalog, make_tool, validate_call
from slmtune.models.families import FAMILIES
from slmtune.models.sources import resolve_source


def test_calls_run_and_their_results_are_fed_back_until_a_text_answer():
    registry, ran = recording_registry()
    executor = RegistryExecutor(registry, ["get_price", "buy"])
    policy = ScriptedPolicy([
        Step(calls=[{"name": "get_price", "arguments": {"symbol": "ACME"}}]),
        Step(calls=[{"name": "buy", "arguments": {"symbol": "ACME", "quantity": 3, "limit": 101.5}}]),
        Step(content="Bought 3 ACME at up to 101.5."),
    ])
    messages = [{"role": "user", "content": "Buy 3 ACME at the current price."}]
    trace = run_turn(messages, executor, policy, max_steps=5)

    assert ran == [("get_price", "ACME"), ("buy", "ACME", 3, 101.5)]
    assert trace.stopped == "answer" and trace.answer == "Bought 3 ACME at up to 101.5."
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    result = json.dumps({"symbol": "ACME", "price": 101.5})
    assert messages[2] == {"role": "tool", "name": "get_price", "content": result}
    # the second step saw the first call's executed result
    assert policy.seen[1][-1]["content"] == messages[2]["content"]
    assert [r.reason for r in trace.steps] == ["valid", "valid", "valid"]
    assert trace.calls() == [[{"name": "get_price", "arguments": {"symbol": "ACME"}}],
                             [{"name": "buy", "arguments": {"symbol": "ACME", "quantity": 3, "limit": 101.5}}]]
    json.dumps(trace.to_dict())  # the trace is JSON


def test_the_step_limit_ends_a_turn_that_never_answers():
    registry, ran = recording_registry()
    policy = ScriptedPolicy([Step(calls=[{"name": "get_price", "arguments": {"symbol": "X"}}]) for _ in range(5)])
    trace = run_turn([{"role": "user", "content": "loop"}], RegistryExecutor(registry, ["get_price"]), policy,
                     max_steps=3)
    assert trace.stopped == "max_steps" and trace.answer is None
    assert len(trace.steps) == 3 and len(ran) == 3
    with pytest.raises(ValueError, match="max_steps"):
        run_turn([], RegistryExecutor(registry, ["get_price"]), policy, max_steps=0)


def test_an_invalid_call_is_never_executed_and_its_error_is_fed_back():
    registry, ran = recording_registry()
    executor = RegistryExecutor(registry, ["get_price", "buy"])
    policy = ScriptedPolicy([
        Step(calls=[{"name": "buy", "arguments": {"symbol": "ACME", "quantity": "three", "limit": 101.5}}]),
        Step(calls=[{"name": "buy", "arguments": {"symbol": "ACME", "quantity": 3}}]),  # missing required limit
        Step(content="I could not place the order."),
    ])
    messages = [{"role": "user", "content": "Buy three ACME."}]
    trace = run_turn(messages, executor, policy, max_steps=5)
    assert ran == []  # neither call ran
    assert [r.reason for r in trace.steps] == ["invalid_call", "invalid_call", "valid"]
    first = json.loads(messages[2]["content"])["error"]
    assert "invalid call to 'buy'" in first and "quantity" in first
    assert "limit" in json.loads(messages[4]["content"])["error"]
    assert trace.steps[0].results[0].error_kind == "invalid_call"


def test_an_unknown_or_unoffered_tool_is_refused():
    registry, ran = recording_registry()
    executor = RegistryExecutor(registry, ["get_price"])  # buy is registered but not offered
    policy = ScriptedPolicy([Step(calls=[{"name": "os.system", "arguments": {"command": "rm -rf /"}},
                                         {"name": "buy", "arguments": {"symbol": "A", "quantity": 1, "limit": 1.0}}]),
                             Step(content="done")])
    messages = [{"role": "user", "content": "x"}]
    trace = run_turn(messages, executor, policy, max_steps=3)
    assert ran == []
    kinds = [r.error_kind for r in trace.steps[0].results]
    assert kinds == ["unknown_tool", "unknown_tool"]
    assert trace.steps[0].reason == "invalid_call"
    assert "unknown tool 'os.system'" in json.loads(messages[2]["content"])["error"]
    with pytest.raises(ToolCallError) as err:
        executor.execute("buy", {})
    assert err.value.kind == "unknown_tool"


def test_an_exception_in_the_tool_is_an_execution_error_fed_back():
    registry, ran = recording_registry()
    order = {"name": "buy", "arguments": {"symbol": "A", "quantity": 5000, "limit": 1.0}}
    policy = ScriptedPolicy([Step(calls=[order]), Step(content="The order was too large.")])
    messages = [{"role": "user", "content": "Buy 5000 A."}]
    trace = run_turn(messages, RegistryExecutor(registry, ["buy"]), policy, max_steps=3)
    assert ran == [("buy", "A", 5000, 1.0)]
    assert trace.steps[0].reason == "execution_error"
    assert "RuntimeError: order too large" in json.loads(messages[2]["content"])["error"]


def test_registry_executor_refuses_tools_it_cannot_run():
    registry, _ = recording_registry()
    with pytest.raises(ValueError, match="not in the registry"):
        RegistryExecutor(registry, ["nope"])
    with pytest.raises(ValueError, match="at least one"):
        RegistryExecutor(registry, [])
    registry.add(make_tool({"name": "declared_only", "parameters": {"type": "object", "properties": {}}}))
    executor = RegistryExecutor(registry, ["declared_only"])  # offered: its schema is known
    with pytest.raises(ToolCallError, match="no implementation") as err:
        executor.execute("declared_only", {})
    assert err.value.kind == "execution_error"


class TriggerLM(torch.nn.Module):
    """A causal LM pushed to write ``pieces`` (the dialect's call trigger) wherever it may: the token after each piece
    is the next piece, anywhere else the first one. A tiny random model would otherwise answer in text."""

    def __init__(self, model, pieces: list[int]) -> None:
        super().__init__()
        self.inner, self.next, self.first = model, dict(zip(pieces, pieces[1:])), pieces[0]

    @property
    def device(self):
        return self.inner.device

    def get_output_embeddings(self):
        return self.inner.get_output_embeddings()

    def forward(self, input_ids=None, **kwargs):
        out = self.inner(input_ids=input_ids, **kwargs)
        for row, token in enumerate(input_ids[:, -1].tolist()):
            out.logits[row, -1, self.next.get(token, self.first)] += 50.0
        return out


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(resolve_source("random:gemma3").path)
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def test_local_model_policy_gives_schema_valid_calls_on_a_tiny_model(tiny):
    model, tokenizer = tiny
    family = FAMILIES["gemma3"]
    trigger = tokenizer(family.dialect().call_trigger, add_special_tokens=False)["input_ids"]
    registry = load_catalog()
    names = ["cal.cancel_event", "cal.events_in_range"]
    executor = RegistryExecutor(registry, names)
    policy = LocalModelPolicy(TriggerLM(model, trigger), tokenizer, family, max_new_tokens=64, max_text_tokens=8)
    messages = [{"role": "user", "content": "Cancel EVT-7731."}]
    trace = run_turn(messages, executor, policy, max_steps=2)
    assert len(trace.steps) == 2 and trace.stopped == "max_steps"
    # the policy's decoder continued the first step's prompt cache: the calls and results it rendered extend it
    assert (policy.decoder.prefix_cache_stats.hits, policy.decoder.prefix_cache_stats.misses) == (1, 1)
    for record in trace.steps:
        step = record.step
        assert step.answered_by == "slm" and step.error is None and step.calls
        assert step.tokens_in > 0 and step.tokens_out > 0 and step.latency_s > 0
        assert set(step.signals) >= {"seq_logprob", "name_margin", "num_calls"}
        assert step.signals["num_calls"] == len(step.calls)
        for call in step.calls:  # the grammar allows only offered tools with schema-valid arguments
            assert call["name"] in names
            assert validate_call(registry.get(call["name"]), call) == []
        assert [r.name for r in record.results] == [c["name"] for c in step.calls]
    # the second step's prompt carried the first step's result
    prompt, grammar = policy.prompt(messages[:3], executor.tools())
    assert prompt.count("<tool_response>") == 1 and grammar is not None
    assert messages[2]["role"] == "tool" and messages[2]["content"] in prompt
