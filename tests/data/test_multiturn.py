"""Multi-turn conversations: building (chain / ask / summary flows over executed tools), verification of every turn,
the dataset's category mix, stats and DatasetDict round trip."""

from __future__ import annotations

import copy
import json

import pytest

from slmtune.data.datasets_io import (
    decode_row,
    generate_dataset,
    load_dataset_dict,
    normalise_mix,
    to_row,
    write_dataset,
)
from slmtune.data.multiturn import MULTI_TURN, result_text, summarise_result, value_at
from slmtune.data.registry import load_catalog
from slmtune.data.synthesis import SampleBuilder, build_profiles
from slmtune.data.verification import _UserText, verify_sample
from slmtune.models.dialects import get_dialect


@pytest.fixture(scope="module")
def registry():
    return load_catalog()


@pytest.fixture(scope="module")
def conversations(registry):
    builder = SampleBuilder(build_profiles(list(registry)), use_variants=False)
    built = [builder.build(MULTI_TURN, seed) for seed in range(200)]
    return [c for c in built if c is not None]


def by_flow(conversations, flow):
    return [c for c in conversations if c["provenance"]["flow"] == flow]


def test_every_flow_is_built_and_verified(conversations, registry):
    hermes = get_dialect("hermes")
    assert len(conversations) >= 150
    for flow in ("chain", "ask", "summary"):
        assert len(by_flow(conversations, flow)) >= 20, flow
    for sample in conversations:
        assert sample["category"] == MULTI_TURN and sample["tool_calls"] == []
        assert verify_sample(sample, registry, hermes) == [], sample
        messages = sample["messages"]
        assert messages[0]["role"] == "user"
        assert messages[-1]["role"] == "assistant" and isinstance(messages[-1]["content"], str)
        for i, message in enumerate(messages):
            if message.get("tool_calls"):   # every call's result is the tool's real output, as JSON text
                call = message["tool_calls"][0]
                result = registry.get(call["name"]).implementation(**call["arguments"])
                assert messages[i + 1] == {"role": "tool", "name": call["name"], "content": result_text(result)}


def test_chain_takes_a_value_from_the_first_result(conversations):
    for sample in by_flow(conversations, "chain"):
        messages = sample["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
        (ref,) = sample["provenance"]["from_results"]
        taken = value_at(json.loads(messages[ref["tool_message"]]["content"]), ref["path"])
        value = messages[ref["message"]]["tool_calls"][ref["call"]]["arguments"][ref["argument"]]
        assert taken == value
        said = _UserText(messages[0]["content"])     # the user does not say the value
        assert not said.contains(str(value)) and not (isinstance(value, int) and float(value) in said.numbers)


def test_ask_flow_asks_for_a_missing_required_value(conversations):
    for sample in by_flow(conversations, "ask"):
        roles = [m["role"] for m in sample["messages"]]
        assert roles == ["user", "assistant", "user", "assistant", "tool", "assistant"]
        assert sample["messages"][1]["content"].endswith("?") and "tool_calls" not in sample["messages"][1]


def test_summary_states_result_values():
    import random

    text = summarise_result({"status": "delayed", "gate": "B12", "ok": True, "legs": [{"id": 7}]}, random.Random(0))
    assert "status: delayed" in text and "gate: B12" in text and "ok" not in text.split(";")[0]
    assert summarise_result([], random.Random(0)) == "The call returned no results."


def first(conversations, flow):
    return copy.deepcopy(by_flow(conversations, flow)[0])


def test_a_wrong_tool_result_fails_execution(conversations, registry):
    sample = first(conversations, "summary")
    result = json.loads(sample["messages"][2]["content"])
    sample["messages"][2]["content"] = json.dumps({"forged": result}, ensure_ascii=False)
    assert verify_sample(sample, registry, get_dialect("hermes")) == ["execution"]


def test_a_chained_value_that_differs_from_the_result_fails_grounding(conversations, registry):
    sample = first(conversations, "chain")
    ref = sample["provenance"]["from_results"][0]
    arguments = sample["messages"][ref["message"]]["tool_calls"][0]["arguments"]
    value = arguments[ref["argument"]]
    arguments[ref["argument"]] = value + "x" if isinstance(value, str) else value + 1
    assert "grounding" in verify_sample(sample, registry, get_dialect("hermes"))


def test_a_chained_value_without_its_reference_fails_grounding(conversations, registry):
    sample = first(conversations, "chain")
    sample["provenance"]["from_results"] = []
    assert verify_sample(sample, registry, get_dialect("hermes")) == ["grounding"]


def test_a_reference_to_a_later_or_non_tool_message_fails_grounding(conversations, registry):
    sample = first(conversations, "chain")
    sample["provenance"]["from_results"][0]["tool_message"] = 0      # the user turn, not a result
    assert verify_sample(sample, registry, get_dialect("hermes")) == ["grounding"]


def test_an_ask_answer_is_what_grounds_the_call(conversations, registry):
    sample = first(conversations, "ask")
    sample["messages"][2]["content"] = "Whatever you think."
    assert verify_sample(sample, registry, get_dialect("hermes")) == ["grounding"]


@pytest.mark.parametrize("damage", ["drop_tool_message", "end_on_call", "rename_result", "empty_answer"])
def test_broken_conversation_shapes_fail_format(conversations, registry, damage):
    sample = first(conversations, "summary")
    messages = sample["messages"]
    if damage == "drop_tool_message":
        del messages[2]
    elif damage == "end_on_call":
        del messages[2:]
    elif damage == "rename_result":
        messages[2]["name"] = "other_tool"
    else:
        messages[-1]["content"] = ""
    assert verify_sample(sample, registry, get_dialect("hermes")) == ["format"]


def test_a_call_that_breaks_its_schema_fails_schema(conversations, registry):
    sample = first(conversations, "summary")
    sample["messages"][1]["tool_calls"][0]["arguments"]["not_a_parameter"] = 1
    assert "schema" in verify_sample(sample, registry, get_dialect("hermes"))


def test_dataset_mix_stats_and_round_trip(registry, tmp_path):
    assert normalise_mix({"simple": 1, "multi_turn": 1}) == {"simple": 0.5, "multi_turn": 0.5}
    dataset = generate_dataset(registry, num_samples=120, category_mix={"simple": 0.5, "multi_turn": 0.5}, seed=3,
                               decontaminate=False)
    stats = dataset.stats
    assert stats["per_category"] == {"simple": 60, "multi_turn": 60}
    mt = stats["multi_turn"]
    assert mt["conversations"] == 60 and mt["assistant_turns"] == mt["call_turns"] + mt["text_turns"]
    assert mt["text_turns"] >= 60 and sum(mt["flows"].values()) == 60
    held_out = set(stats["held_out_tools"])
    tests = [s for s in dataset.splits["test"] if s["category"] == MULTI_TURN]
    assert tests and all(set(s["provenance"]["source_tools"]) <= held_out for s in tests)
    for split in ("train", "test"):
        for sample in dataset.splits[split][:20]:
            assert decode_row(json.loads(json.dumps(to_row(sample)))) == sample
    loaded = load_dataset_dict(write_dataset(dataset, tmp_path / "data"))
    rows = [decode_row(row) for row in loaded["train"]]
    assert rows == dataset.splits["train"]
    assert "multi_turn" in (tmp_path / "data" / "card.md").read_text()
