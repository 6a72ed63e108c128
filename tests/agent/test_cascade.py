"""slmtune.agent.cascade: which steps go to the fallback and why, and what every attempt costs."""

from __future__ import annotations

import json

import pytest
from agent_helpers import ScriptedPolicy, recording_registry

from slmtune.agent.cascade import VerifierCascade, check_calls
from slmtune.agent.executors import RegistryExecutor
from slmtune.agent.loop import Price, Step, run_turn
from slmtune.router import Router

SLM_PRICE = Price(usd_per_1m_input=1.0, usd_per_1m_output=2.0)
LLM_PRICE = Price(usd_per_1m_input=10.0, usd_per_1m_output=40.0)
GOOD = {"name": "buy", "arguments": {"symbol": "ACME", "quantity": 3, "limit": 101.5}}


def router() -> Router:
    """p_correct = sigmoid(seq_logprob); the 0.9 target keeps answers with p >= 0.5 (seq_logprob >= 0)."""
    return Router.from_dict({
        "schema_version": 1, "model": {"name": "tiny", "source": "random:gemma3", "adapter_sha256": None},
        "signals": ["seq_logprob"], "calibrator": {"type": "temperature", "params": {"a": 1.0, "b": 0.0}},
        "operating_points": [{"target_precision": 0.9, "threshold": 0.5, "coverage": 0.5, "precision": 0.9}],
        "metrics": {k: {"value": 0.1, "ci_low": 0.05, "ci_high": 0.15} for k in ("auroc", "ece", "brier", "aurc")},
        "cascade": None, "fitted_on": {"suites": ["synthetic"], "n": 10, "n_positive": 5, "cross_fit_folds": 5,
                                       "seed": 0}})


def slm(*steps: Step) -> ScriptedPolicy:
    return ScriptedPolicy(list(steps), name="slm", price=SLM_PRICE)


def llm(*steps: Step) -> ScriptedPolicy:
    return ScriptedPolicy(list(steps), name="llm", price=LLM_PRICE)


def confident(**kwargs) -> Step:
    return Step(signals={"seq_logprob": 2.0}, tokens_in=100, tokens_out=10, **kwargs)


def unsure(**kwargs) -> Step:
    return Step(signals={"seq_logprob": -2.0}, tokens_in=100, tokens_out=10, **kwargs)


def run(primary, fallback, *, use_router=True, max_steps=4):
    registry, ran = recording_registry()
    cascade = VerifierCascade(primary, fallback, router=router() if use_router else None, target_precision=0.9)
    messages = [{"role": "user", "content": "Buy 3 ACME at 101.5."}]
    trace = run_turn(messages, RegistryExecutor(registry, ["get_price", "buy"]), cascade, max_steps=max_steps)
    return trace, ran, messages


def test_a_valid_confident_slm_answer_is_kept_and_the_fallback_never_asked():
    fallback = llm()
    trace, ran, _ = run(slm(confident(calls=[GOOD]), confident(content="Done.")), fallback)
    assert [(r.answered_by, r.reason) for r in trace.steps] == [("slm", "valid"), ("slm", "valid")]
    assert ran == [("buy", "ACME", 3, 101.5)] and fallback.seen == []
    assert trace.steps[0].step.p_correct == pytest.approx(0.8808, abs=1e-4)
    assert trace.cost_usd == pytest.approx(2 * (100 * 1.0 + 10 * 2.0) / 1e6)


def test_an_invalid_slm_call_goes_to_the_fallback_and_never_runs():
    bad = {"name": "buy", "arguments": {"symbol": "ACME", "quantity": "3", "limit": 101.5}}
    trace, ran, messages = run(slm(confident(calls=[bad]), confident(content="Done.")),
                               llm(Step(calls=[GOOD], tokens_in=200, tokens_out=20)))
    first = trace.steps[0]
    assert (first.answered_by, first.reason) == ("llm", "invalid_call")
    assert ran == [("buy", "ACME", 3, 101.5)]  # only the fallback's call ran
    assert first.step.attempts[0].calls == [bad] and first.step.attempts[0].reason == "invalid_call"
    assert messages[1] == {"role": "assistant", "tool_calls": [GOOD]}  # the rejected answer left no message
    # both attempts are paid: the SLM's rejected one and the fallback's
    assert first.cost_usd == pytest.approx((100 * 1.0 + 10 * 2.0 + 200 * 10.0 + 20 * 40.0) / 1e6)
    assert (first.tokens_in, first.tokens_out) == (300, 30)
    d = first.to_dict()
    assert d["usage"]["tokens_in"] == 200 and d["attempts"][0]["tokens_in"] == 100
    json.dumps(trace.to_dict())


def test_an_unknown_tool_and_an_unreadable_answer_are_invalid_calls():
    tools = RegistryExecutor(recording_registry()[0], ["buy"]).tools()
    assert "unknown tool 'sell'" in check_calls(Step(calls=[{"name": "sell", "arguments": {}}]), tools)
    assert "unreadable" in check_calls(Step(content="<tool_call>{", error="bad JSON"), tools)
    assert check_calls(Step(calls=[GOOD]), tools) is None and check_calls(Step(content="hi"), tools) is None


def test_a_low_confidence_answer_goes_to_the_fallback_text_answers_too():
    trace, ran, _ = run(slm(unsure(calls=[GOOD]), unsure(content="Done?")),
                        llm(Step(calls=[GOOD]), Step(content="Done.")))
    assert [(r.answered_by, r.reason) for r in trace.steps] == [("llm", "low_confidence"), ("llm", "low_confidence")]
    assert trace.steps[0].step.attempts[0].p_correct == pytest.approx(0.1192, abs=1e-4)
    assert trace.answer == "Done." and ran == [("buy", "ACME", 3, 101.5)]


def test_route_text_false_keeps_text_answers_without_asking_the_router():
    registry, _ = recording_registry()
    cascade = VerifierCascade(slm(unsure(content="Hello.")), llm(), router=router(), target_precision=0.9,
                              route_text=False)
    trace = run_turn([{"role": "user", "content": "hi"}], RegistryExecutor(registry, ["buy"]), cascade, max_steps=2)
    assert (trace.steps[0].answered_by, trace.steps[0].reason) == ("slm", "valid")


def test_an_execution_error_is_re_asked_from_the_fallback_once():
    huge = {"name": "buy", "arguments": {"symbol": "ACME", "quantity": 5000, "limit": 101.5}}
    trace, ran, messages = run(slm(confident(calls=[huge]), confident(content="Done.")),
                               llm(Step(calls=[GOOD])))
    assert ran == [("buy", "ACME", 5000, 101.5), ("buy", "ACME", 3, 101.5)]
    assert (trace.steps[0].answered_by, trace.steps[0].reason) == ("llm", "execution_error")
    assert trace.steps[0].step.attempts[0].reason == "execution_error"
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]  # the failed call taken back
    assert json.loads(messages[2]["content"]) == {"order": "ORD-1", "filled": 3}


def test_without_a_fallback_the_slm_answer_is_kept_with_its_reason_and_an_invalid_call_never_runs():
    bad = {"name": "buy", "arguments": {"symbol": "ACME"}}
    trace, ran, _ = run(slm(unsure(calls=[GOOD]), confident(calls=[bad]), confident(content="ok")), None)
    assert [(r.answered_by, r.reason) for r in trace.steps] == [
        ("slm", "low_confidence"), ("slm", "invalid_call"), ("slm", "valid")]
    assert ran == [("buy", "ACME", 3, 101.5)]


def test_a_router_needs_signals_and_a_known_target():
    with pytest.raises(ValueError, match="no confidence signals"):
        run(slm(Step(calls=[GOOD])), llm())
    with pytest.raises(ValueError, match="no operating point"):
        VerifierCascade(slm(), llm(), router=router(), target_precision=0.99)
