"""slmtune.eval.evaluation: the grammar's answer shape per request category, and the call / no-call decision."""

from __future__ import annotations

import pytest

from slmtune.eval.decoding import Generation
from slmtune.eval.evaluation import (
    call_confusion,
    call_decision,
    call_shape,
    prepare_requests,
    score_generation,
    wilson_interval,
)
from slmtune.eval.suites import EvalRequest
from slmtune.models.families import FAMILIES

FAMILY = FAMILIES["qwen2"]
DIALECT = FAMILY.dialect()  # hermes
TOOL = {"name": "get_time", "description": "Current time in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.mark.parametrize(("category", "shape"), [
    ("simple", (False, 1)), ("simple_python", (False, 1)), ("live_simple", (False, 1)),
    ("multiple", (False, 1)), ("live_multiple", (False, 1)),
    ("parallel", (False, None)), ("parallel_multiple", (False, None)), ("live_parallel_multiple", (False, None)),
    ("irrelevance", (True, None)), ("live_irrelevance", (True, None)), ("live_relevance", (True, None)),
    ("something_else", (True, None)),
])
def test_category_shapes(category, shape):
    assert call_shape(category) == shape
    assert call_shape(category, "free") == (True, None)


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="call shape policy"):
        call_shape("simple", "strict")


def request(category: str) -> EvalRequest:
    return EvalRequest(id=f"{category}_0", category=category, messages=[{"role": "user", "content": "Time in Oslo?"}],
                       tools=[TOOL], possible_answer=None, suite="test")


def test_grammars_follow_the_shape():
    simple, irrelevance = prepare_requests([request("simple"), request("irrelevance")], FAMILY, DIALECT,
                                           constrained=True)
    assert simple.grammar == DIALECT.grammar([TOOL], allow_text=False, max_calls=1)
    assert irrelevance.grammar == DIALECT.grammar([TOOL], allow_text=True)
    free = prepare_requests([request("simple")], FAMILY, DIALECT, constrained=True, shape_policy="free")[0]
    assert free.grammar == irrelevance.grammar
    unconstrained = prepare_requests([request("simple")], FAMILY, DIALECT, constrained=False)[0]
    assert unconstrained.grammar is None and unconstrained.prompt == simple.prompt
    assert [p.text_allowed for p in (simple, irrelevance, free, unconstrained)] == [False, True, True, True]


def row(category: str, called: bool, text_allowed: bool | None = True) -> dict:
    return {"category": category, "calls": [{"get_time": {"city": "Oslo"}}] if called else [],
            "text_allowed": text_allowed}


def test_call_decision_counts_only_the_answers_the_model_chose():
    rows = [row("simple", True), row("simple_python", False), row("parallel", True), row("live_relevance", False),
            row("irrelevance", False), row("live_irrelevance", True),
            row("simple", True, text_allowed=False),  # the grammar forced this call
            row("irrelevance", False, text_allowed=None)]  # never decoded (its request could not be prepared)
    assert call_decision(rows) == {"call_requests": 4, "call_rate": 0.5, "no_call_requests": 2, "decline_rate": 0.5,
                                   "balanced_accuracy": 0.5}


def test_call_decision_is_unbalanced_without_both_kinds():
    decision = call_decision([row("irrelevance", False), row("simple", True, text_allowed=False)])
    assert decision == {"call_requests": 0, "call_rate": None, "no_call_requests": 1, "decline_rate": 1.0,
                        "balanced_accuracy": None}


@pytest.mark.parametrize(("category", "valid"), [("irrelevance", True), ("live_irrelevance", True),
                                                 ("live_relevance", False), ("simple", False)])
def test_an_undecodable_answer_is_no_call(category, valid):
    # a call cut off mid-way: BFCL's relevance runner scores it "no call", right only where none was needed
    prepared = prepare_requests([request(category)], FAMILY, DIALECT, constrained=False)[0]
    cut = Generation('<tool_call>\n{"name": "get_time", "arguments": {"city": "Os', output_tokens=12,
                     forced_tokens=0, truncated=True, latency_s=0.1, batch_size=1)
    row = score_generation(prepared, cut, DIALECT, registry=None)
    assert row["valid"] is valid and row["schema_valid"] is False and row["calls"] == []
    assert row["error"].startswith("parse: ") and row["error"].endswith("(scored as no call)") is valid


def test_wilson_interval_matches_known_values():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and high == pytest.approx(0.1611, abs=1e-4)
    low, high = wilson_interval(20, 20)
    assert low == pytest.approx(0.8389, abs=1e-4) and high == 1.0
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_call_confusion_counts_each_kind_of_decision():
    def row(category, calls, valid, failure=None):
        return {"category": category, "calls": calls, "valid": valid, "failure": failure}

    call = [{"f": {}}]
    rows = [row("simple_python", call, True), row("multiple", call, False), row("live_simple", [], False),
            row("parallel", [], False, failure="decode"), row("irrelevance", [], True),
            row("live_irrelevance", call, False), row("irrelevance", [], False, failure="decode")]
    assert call_confusion(rows) == {"called_right": 1, "called_wrong": 1, "declined": 2, "no_call_declined": 1,
                                    "no_call_called": 2}
