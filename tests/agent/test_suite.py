"""slmtune.agent.suite: tasks from data samples, gold recordings as a fallback, CPS and shares of a cascade."""

from __future__ import annotations

import json

import pytest
from agent_helpers import ScriptedPolicy, recording_registry
from test_cascade import SLM_PRICE, confident, router, unsure

from slmtune.agent.cascade import VerifierCascade
from slmtune.agent.loop import Price, Step
from slmtune.agent.policies import RecordedPolicy
from slmtune.agent.suite import gold_recordings, run_suite, tasks_from_samples
from slmtune.data.registry import ToolRegistry, tool_from_function

PRICE_CALL = {"name": "get_price", "arguments": {"symbol": "ACME"}}
BUY_CALL = {"name": "buy", "arguments": {"symbol": "ACME", "quantity": 3, "limit": 101.5}}


def samples(registry) -> list[dict]:
    tools = [registry.get("get_price").function_dict(), registry.get("buy").function_dict()]
    result = json.dumps({"symbol": "ACME", "price": 101.5})
    ask = [{"role": "user", "content": "Buy 3 ACME at the current price."}]
    return [
        {"id": "a", "category": "simple", "tools": tools[:1], "messages": [{"role": "user", "content": "ACME?"}],
         "tool_calls": [PRICE_CALL]},
        # two samples of one multi-turn conversation: its first step, and its second after the first's result
        {"id": "b1", "category": "multi_turn", "tools": tools, "messages": ask, "tool_calls": [PRICE_CALL]},
        {"id": "b2", "category": "multi_turn", "tools": tools,
         "messages": ask + [{"role": "assistant", "tool_calls": [PRICE_CALL]},
                            {"role": "tool", "name": "get_price", "content": result}],
         "tool_calls": [{"name": "buy", "arguments": {"symbol": "ACME", "quantity": 3, "limit": 101.5}}]},
        {"id": "c", "category": "irrelevance", "tools": tools[:1],
         "messages": [{"role": "user", "content": "Tell me a joke."}], "tool_calls": []},
    ]


def test_tasks_join_the_samples_of_one_conversation():
    registry, _ = recording_registry()
    tasks = tasks_from_samples(samples(registry))
    assert [t.id for t in tasks] == ["a", "b2", "c"]
    (turn,) = tasks[1].turns
    assert turn.answers == [{"tool_calls": [PRICE_CALL]}, {"tool_calls": [BUY_CALL]}, {"content": None}]
    assert turn.messages == samples(registry)[1]["messages"]
    assert tasks[2].gold_calls == [] and tasks[2].turns[0].answers == [{"content": None}]


def test_cascade_over_a_suite_reports_cps_and_shares():
    registry, ran = recording_registry()
    tasks = tasks_from_samples(samples(registry))
    records = gold_recordings(tasks, registry, count_tokens=lambda messages, tools, answer: (1000, 50))
    assert len(records) == 2 + 3 + 1  # a: call + text, b: two calls + text, c: text
    fallback = RecordedPolicy(records, name="llm", price=Price(usd_per_1m_input=10.0, usd_per_1m_output=40.0))
    slm = ScriptedPolicy([
        confident(calls=[PRICE_CALL]), confident(content="101.5"),                        # a: the SLM alone
        confident(calls=[PRICE_CALL]), unsure(calls=[{"name": "buy", "arguments": {"symbol": "ACME", "quantity": 3,
                                                                                    "limit": 99.0}}]),
        confident(content="Bought."),                                                     # b: step 2 re-asked
        confident(calls=[PRICE_CALL]), confident(content="ACME is at 101.5."),            # c: a wrong call
    ], name="slm", price=SLM_PRICE)
    report = run_suite(tasks, registry, VerifierCascade(slm, fallback, router=router(), target_precision=0.9),
                       max_steps=4)
    rows, summary = report["rows"], report["summary"]
    assert [r["success"] for r in rows] == [True, True, False]
    assert summary["successes"] == 2 and summary["steps"] == 7
    assert summary["share"] == pytest.approx({"slm": 6 / 7, "llm": 1 / 7})
    assert summary["tasks_using"] == pytest.approx({"slm": 1.0, "llm": 1 / 3})
    assert summary["reasons"] == {"valid": 6, "invalid_call": 0, "low_confidence": 1, "execution_error": 0}
    slm_cost = 7 * (100 * 1.0 + 10 * 2.0) / 1e6          # every SLM answer, the rejected one included
    llm_cost = (1000 * 10.0 + 50 * 40.0) / 1e6
    assert summary["models"]["slm"]["attempts"] == 7 and summary["models"]["llm"]["attempts"] == 1
    assert summary["models"]["llm"]["cost_usd"] == pytest.approx(llm_cost)
    assert summary["cost_usd"] == pytest.approx(slm_cost + llm_cost)
    assert summary["cps_usd"] == pytest.approx((slm_cost + llm_cost) / 2)
    assert ("buy", "ACME", 3, 99.0) not in ran  # the re-asked answer never ran
    json.dumps(report)


def test_the_gold_fallback_alone_solves_every_task_and_a_failing_run_is_a_failed_row():
    registry, _ = recording_registry()
    tasks = tasks_from_samples(samples(registry))
    oracle = RecordedPolicy(gold_recordings(tasks, registry), name="llm")
    assert run_suite(tasks, registry, oracle, max_steps=4)["summary"]["success_rate"] == 1.0

    class Broken:
        def step(self, messages, tools):
            raise ConnectionError("endpoint down")

    report = run_suite(tasks[:1], registry, Broken(), max_steps=2)
    assert report["rows"][0]["failure"] == "ConnectionError: endpoint down"
    assert report["summary"]["failed_runs"] == 1 and report["summary"]["cps_usd"] is None


def test_an_answer_that_repeats_the_defaults_or_writes_integral_floats_still_matches():
    def convert(amount: float, currency: str = "USD") -> float:
        """Convert an amount."""
        return amount * 2

    registry = ToolRegistry([tool_from_function(convert)])
    sample = {"id": "x", "tools": [registry.get("convert").function_dict()],
              "messages": [{"role": "user", "content": "Convert 5."}],
              "tool_calls": [{"name": "convert", "arguments": {"amount": 5}}]}
    tasks = tasks_from_samples([sample])

    def outcome(arguments: dict) -> bool:
        policy = ScriptedPolicy([Step(calls=[{"name": "convert", "arguments": arguments}]), Step(content="10")])
        return run_suite(tasks, registry, policy, max_steps=3)["rows"][0]["success"]

    assert outcome({"amount": 5.0, "currency": "USD"})
    assert not outcome({"amount": 5, "currency": "EUR"})
    assert not outcome({"amount": 6})


def ask_conversation(registry) -> dict:
    """A multi-turn sample of the ``ask`` flow: the assistant asks for the stock, the user answers, then two calls."""
    tools = [registry.get("get_price").function_dict(), registry.get("buy").function_dict()]
    result = json.dumps({"symbol": "ACME", "price": 101.5}, ensure_ascii=False)
    return {"id": "m1", "category": "multi_turn", "tools": tools, "tool_calls": [], "messages": [
        {"role": "user", "content": "Buy 3 shares at the current price."},
        {"role": "assistant", "content": "Which stock?"},
        {"role": "user", "content": "ACME."},
        {"role": "assistant", "tool_calls": [PRICE_CALL]},
        {"role": "tool", "name": "get_price", "content": result},
        {"role": "assistant", "tool_calls": [BUY_CALL]},
        {"role": "tool", "name": "buy", "content": json.dumps({"order": "ORD-1", "filled": 3})},
        {"role": "assistant", "content": "Bought 3 ACME."}]}


def test_a_multi_turn_conversation_runs_turn_by_turn_and_the_fallback_follows_any_wording():
    registry, ran = recording_registry()
    (task,) = tasks_from_samples([ask_conversation(registry)])
    assert [len(t.messages) for t in task.turns] == [1, 1]
    assert task.turns[0].answers == [{"content": "Which stock?"}]
    assert task.turns[1].answers == [{"tool_calls": [PRICE_CALL]}, {"tool_calls": [BUY_CALL]},
                                     {"content": "Bought 3 ACME."}]
    fallback = RecordedPolicy(gold_recordings([task], registry), name="llm")
    ran.clear()  # the recordings ran the gold calls
    # the SLM asks in its own words, then is unsure of its buy: the fallback's recording still matches
    slm = ScriptedPolicy([confident(content="What ticker do you mean?"), confident(calls=[PRICE_CALL]),
                          unsure(calls=[BUY_CALL]), confident(content="Done.")], name="slm", price=SLM_PRICE)
    report = run_suite([task], registry, VerifierCascade(slm, fallback, router=router(), target_precision=0.9),
                       max_steps=4)
    row = report["rows"][0]
    assert row["success"] and [t["stopped"] for t in row["turns"]] == ["answer", "answer"]
    assert [s["answered_by"] for s in row["turns"][1]["steps"]] == ["slm", "llm", "slm"]
    assert ran == [("get_price", "ACME"), ("buy", "ACME", 3, 101.5)]


def test_calling_in_the_ask_turn_fails_the_task_even_when_the_calls_add_up():
    registry, _ = recording_registry()
    (task,) = tasks_from_samples([ask_conversation(registry)])
    guesser = ScriptedPolicy([Step(calls=[PRICE_CALL]), Step(content="ACME is 101.5; which stock did you mean?"),
                              Step(calls=[BUY_CALL]), Step(content="Bought.")])
    assert not run_suite([task], registry, guesser, max_steps=4)["rows"][0]["success"]
