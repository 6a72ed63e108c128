"""The held-out synthetic multi-turn suite: one teacher-forced request per assistant turn, per-turn scoring (a text
turn needs no call), whole-conversation success, the call decision over text turns, and synthetic:<category>."""

from __future__ import annotations

import json

import pytest

from slmtune.eval.decoding import Generation
from slmtune.eval.evaluation import call_decision, conversation_success, prepare_requests, score_generation, summarize
from slmtune.eval.suites import load_synthetic_split
from slmtune.models.dialects import get_dialect
from slmtune.models.families import FAMILIES
from slmtune.stages.eval import load_suite, suite_file_name

TOOL = {"name": "get_time", "description": "Local time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
CALL = {"name": "get_time", "arguments": {"city": "Oslo"}}
CONVERSATION = {
    "id": "test-000001", "category": "multi_turn", "domain": "general", "tools": [TOOL], "tool_calls": [],
    "messages": [
        {"role": "user", "content": "What time is it where I am?"},
        {"role": "assistant", "content": "Which city are you in?"},
        {"role": "user", "content": "Oslo."},
        {"role": "assistant", "tool_calls": [CALL]},
        {"role": "tool", "name": "get_time", "content": '{"time": "10:15"}'},
        {"role": "assistant", "content": "It is 10:15."},
    ],
    "provenance": {"flow": "ask", "from_results": []},
}
SIMPLE = {"id": "test-000000", "category": "simple", "domain": "general", "tools": [TOOL],
          "messages": [{"role": "user", "content": "Time in Oslo?"}], "tool_calls": [CALL], "provenance": {}}
HERMES_CALL = '<tool_call>\n{"name": "get_time", "arguments": {"city": "Oslo"}}\n</tool_call>'


@pytest.fixture
def split(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in (SIMPLE, CONVERSATION)), encoding="utf-8")
    return path


def test_each_assistant_turn_is_one_request_with_the_gold_history(split):
    simple, *turns = load_synthetic_split(split)
    assert simple.conversation is None and simple.category == "simple"
    assert [t.id for t in turns] == [f"test-000001/turn{k}" for k in range(3)]
    assert all(t.category == "multi_turn" and t.conversation == "test-000001" for t in turns)
    assert [len(t.messages) for t in turns] == [1, 3, 5]
    assert turns[2].messages == CONVERSATION["messages"][:5]
    assert [t.score_as for t in turns] == ["irrelevance", "multiple", "irrelevance"]
    assert [t.expects_call for t in turns] == [False, True, False]
    assert turns[1].possible_answer == [{"get_time": {"city": ["Oslo"]}}]
    assert turns[0].possible_answer is None and turns[2].possible_answer is None


def test_synthetic_category_suite_keeps_that_category(split):
    turns = load_synthetic_split(split, categories=("multi_turn",))
    assert {t.conversation for t in turns} == {"test-000001"}
    assert load_synthetic_split(split, categories=("simple",), limit=1)[0].id == "test-000000"
    assert suite_file_name("synthetic:multi_turn") == "synthetic_multi_turn"
    assert suite_file_name("synthetic_multi_turn") == "user_synthetic_multi_turn"   # a user path cannot clash

    class Run:
        def stage_dir(self, name):
            return split.parent

    assert len(load_suite("synthetic:multi_turn", Run(), None)) == 3
    with pytest.raises(ValueError, match="no synthetic category 'dialogue'"):
        load_suite("synthetic:dialogue", Run(), None)


def generation(text: str) -> Generation:
    return Generation(text, output_tokens=5, forced_tokens=0, truncated=False, latency_s=0.1, batch_size=1)


def test_turns_are_scored_by_what_they_expect(split):
    family, dialect = FAMILIES["gemma3"], get_dialect("hermes")
    turns = load_synthetic_split(split, categories=("multi_turn",))
    prepared = prepare_requests(turns, family, dialect, constrained=True)
    assert all(p.text_allowed for p in prepared)          # the model decides between text and a call
    assert prepared[2].prompt == family.render_prompt(CONVERSATION["messages"][:5], [TOOL], dialect)
    rows = [score_generation(p, generation(text), dialect, None)
            for p, text in zip(prepared, ("Which city?", HERMES_CALL, "It is 10:15."))]
    assert [r["valid"] for r in rows] == [True, True, True]
    assert [r["expects_call"] for r in rows] == [False, True, False]
    wrong = [score_generation(p, generation(text), dialect, None)
             for p, text in zip(prepared, (HERMES_CALL, "Sure.", HERMES_CALL))]
    assert [r["valid"] for r in wrong] == [False, False, False]
    assert conversation_success(rows) == {"conversations": 1, "succeeded": 1, "success_rate": 1.0, "turns": 3,
                                          "turn_accuracy": 1.0}
    mixed = rows[:2] + wrong[2:]
    assert conversation_success(mixed)["success_rate"] == 0.0
    assert conversation_success(mixed)["turn_accuracy"] == pytest.approx(2 / 3)
    assert summarize(mixed, 1.0, usd_per_hour=1.0)["multi_turn"]["succeeded"] == 0
    assert summarize([], 1.0, usd_per_hour=1.0)["multi_turn"] is None
    # text turns count as requests that need no call in the call decision
    decision = call_decision(wrong)
    assert decision["call_requests"] == 1 and decision["no_call_requests"] == 2
    assert decision["call_rate"] == 0.0 and decision["decline_rate"] == 0.0


def test_model_card_and_report_show_conversation_success():
    from slmtune.export.card import render_model_card
    from slmtune.stages.eval import report_markdown

    success = {"conversations": 4, "succeeded": 1, "success_rate": 0.25, "turns": 10, "turn_accuracy": 0.6}
    variant = summarize([], 1.0, usd_per_hour=1.0) | {"multi_turn": success, "per_category": {"multi_turn": 0.6}}
    report = {"model": {"name": "m", "source": "s", "adapter": None}, "dialect": "hermes", "vllm_tool_parser": "hermes",
              "device": "cpu", "dtype": "float32", "batch_size": 1, "max_new_tokens": 8, "call_shape": "category",
              "max_text_tokens": 4, "closing_reserve": 0, "call_decision": {},
              "suites": {"synthetic:multi_turn": {"n": 10, "variants": {"tuned-constrained": variant}}}}
    card = render_model_card({"vllm_tool_parser": "hermes", "dialect": "hermes", "eval_report": report})
    assert "| multi-turn conversations, all turns right | n/a | 25.0% | n/a |" in card
    assert "| tuned-constrained | 4 | 1 (25.0%) | 10 | 60.0% |" in report_markdown(report)
