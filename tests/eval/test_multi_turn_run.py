"""Driving BFCL multi-turn entries through the agent loop (scripted policies, no model) and their metrics."""

from __future__ import annotations

import json

import pytest
from bfcl_trajectories import as_keywords

from slmtune.agent.loop import Step, ToolCallError
from slmtune.eval.multi_turn import FORCE_TERMINATED, MAX_STEPS_PER_TURN, load_bfcl_multi_turn
from slmtune.eval.multi_turn_run import BfclToolExecutor, evaluate_multi_turn, run_entry, summarize_multi_turn

pytest.importorskip("mpmath", reason="BFCL's simulators need mpmath")


class GroundTruthPolicy:
    """Calls the current turn's ground truth in one step, then answers in text."""

    def __init__(self, entry):
        self.entry = entry
        self.seen: list[list[dict]] = []

    def step(self, messages, tools):
        self.seen.append(tools)
        turn = sum(m["role"] == "user" for m in messages) - 1
        if messages[-1]["role"] == "tool" or not self.entry.ground_truth[turn]:
            return Step(content="done", tokens_in=10, tokens_out=2)
        return Step(calls=[as_keywords(self.entry, c) for c in self.entry.ground_truth[turn]], tokens_in=10,
                    tokens_out=5)


class Looping:
    """Calls the same function on every step."""

    def __init__(self, name="pwd", arguments=None):
        self.call = {"name": name, "arguments": arguments or {}}

    def step(self, messages, tools):
        return Step(calls=[self.call])


@pytest.fixture(scope="module")
def entries():
    return load_bfcl_multi_turn("multi_turn_base", limit=6)


def test_ground_truth_conversation_passes(entries):
    for entry in entries:
        row = run_entry(entry, GroundTruthPolicy(entry))
        assert row["valid"], (entry.id, row["error"])
        assert row["turn_valid"] == [True] * len(entry.turns)
        assert row["steps"] == 2 * len(entry.turns) and row["refused_calls"] == 0
        assert row["calls"] == sum(len(t) for t in entry.ground_truth)
        assert row["tokens_in"] == 10 * row["steps"]
        assert [t["answer"] for t in row["turns"]] == ["done"] * len(entry.turns)


def test_miss_func_offers_the_held_out_functions_at_their_turn():
    entry = load_bfcl_multi_turn("multi_turn_miss_func", limit=1)[0]
    (turn, added), = entry.added_tools.items()
    policy = GroundTruthPolicy(entry)
    row = run_entry(entry, policy)
    assert row["valid"], row["error"]
    names = [{t["name"] for t in tools} for tools in policy.seen]
    first_at_turn = sum(1 if not entry.ground_truth[t] else 2 for t in range(turn))
    assert not {d["name"] for d in added} & names[first_at_turn - 1]
    assert {d["name"] for d in added} <= names[first_at_turn]


def test_a_model_that_never_stops_is_force_quit(entries):
    row = run_entry(entries[0], Looping())
    assert not row["valid"] and row["error_type"] == FORCE_TERMINATED
    assert len(row["turns"]) == 1 and row["steps"] == MAX_STEPS_PER_TURN + 1  # the conversation ends there
    assert row["turn_valid"] == [False] * len(entries[0].turns)


def test_refused_calls_are_fed_back_and_recorded(entries):
    class Unknown:
        def __init__(self):
            self.fed_back = []

        def step(self, messages, tools):
            if messages[-1]["role"] == "tool":
                self.fed_back += [messages[-2]["content"], messages[-1]["content"]]
                return Step(content="sorry")
            return Step(calls=[{"name": "rm_rf", "arguments": {}}, {"name": "cd", "arguments": {"nope": 1}}])

    policy = Unknown()
    row = run_entry(entries[0], policy)
    assert row["refused_calls"] == 2 * len(entries[0].turns) and not row["valid"]
    assert "name 'rm_rf' is not defined" in json.loads(policy.fed_back[0])["error"]
    assert "missing a required argument: 'folder'" in json.loads(policy.fed_back[1])["error"]
    executor = BfclToolExecutor(entries[0])
    with pytest.raises(ToolCallError) as err:
        executor.execute("cd", {"nope": 1})
    assert err.value.kind == "invalid_call"
    with pytest.raises(ToolCallError) as err:
        executor.execute("eval", {"source": "1"})
    assert err.value.kind == "unknown_tool"


def test_resume_and_failures(entries, tmp_path):
    log = tmp_path / "mt.batches.partial.jsonl"
    rows, _ = evaluate_multi_turn(entries[:2], GroundTruthPolicy(entries[0]), batch_log=log)
    assert rows[0]["valid"]

    class Broken:
        def step(self, messages, tools):
            raise RuntimeError("decoder exploded")

    seen = []
    again, _ = evaluate_multi_turn(entries[:3], Broken(), batch_log=log, on_entry=seen.extend)
    assert again[:2] == rows  # recorded entries are not run again
    assert again[2]["failure"] == "decode" and "exploded" in again[2]["error"] and not again[2]["valid"]
    assert len(seen) == 3

    metrics = summarize_multi_turn(again, 36.0, usd_per_hour=1.0)
    assert metrics["n"] == 3 and metrics["failed"]["decode"] == 1
    assert metrics["cost_usd"] == pytest.approx(0.01)
    assert metrics["accuracy"] == pytest.approx(sum(r["valid"] for r in again) / 3)
    looped = run_entry(entries[0], Looping())
    metrics = summarize_multi_turn([rows[0], looped], 10.0, usd_per_hour=0.0, usd_per_1m_input=1.0,
                                   usd_per_1m_output=2.0)
    assert metrics["accuracy"] == 0.5 and metrics["failure_reasons"] == {FORCE_TERMINATED: 1}
    assert metrics["turn_accuracy"] == pytest.approx(len(entries[0].turns) / (2 * len(entries[0].turns)))
    assert metrics["cost_basis"] == "tokens"
