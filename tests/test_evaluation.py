"""slmtune.evaluation: the grammar's answer shape per request category."""

from __future__ import annotations

import pytest

from slmtune.evaluation import call_shape, prepare_requests
from slmtune.families import FAMILIES
from slmtune.suites import EvalRequest

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
