"""``python -m slmtune agent``: a request's trace on the tiny model, a suite measured with a router and a recorded
fallback, and the input checks that run before any model loads."""

from __future__ import annotations

import json

import pytest

from slmtune.cli import main
from slmtune.config import compose
from slmtune.data.registry import load_catalog
from slmtune.stages import agent

TINY = ["+recipe=tiny", "agent.max_new_tokens=48", "agent.closing_reserve=16", "agent.max_text_tokens=8",
        "tracking.mode=disabled"]


@pytest.mark.parametrize(("overrides", "message"), [
    ([], "either agent.request"),
    (["agent.request=hi"], "agent.tools: name the catalog tools"),
    (["agent.request=hi", "agent.suite=x.jsonl"], "either agent.request"),
    (["agent.suite=missing.jsonl"], "agent.suite: missing.jsonl is not a file"),
    (["agent.request=hi", "agent.tools=[cal.cancel_event]", "agent.fallback=gold"], "needs agent.suite"),
    (["agent.request=hi", "agent.tools=[cal.cancel_event]", "agent.fallback=http://127.0.0.1:1/v1"],
     "agent.fallback_model"),
    (["agent.request=hi", "agent.tools=[cal.cancel_event]", "agent.fallback=answers.jsonl"],
     "neither http(s)"),
    (["agent.request=hi", "agent.tools=[cal.cancel_event]", "agent.router=nope.json"], "agent.router: nope.json"),
])
def test_inputs_are_checked_before_a_model_loads(overrides, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message.replace("(", r"\(").replace(")", r"\)")):
        agent.check_inputs(compose(["+recipe=tiny", *overrides]))


def test_a_request_prints_its_trace_and_writes_it(tmp_path, capsys):
    out = tmp_path / "trace.json"
    main(["agent", *TINY, "agent.request=Cancel EVT-7731.", "agent.tools=[cal.cancel_event,cal.events_in_range]",
          "agent.max_steps=2", f"agent.output={out}"])
    printed = capsys.readouterr().out
    assert "step 1: slm (valid)" in printed and "stopped:" in printed
    trace = json.loads(out.read_text())
    assert trace["messages"][0] == {"role": "user", "content": "Cancel EVT-7731."}
    assert trace["steps"][0]["answered_by"] == "slm" and trace["steps"][0]["tokens_in"] > 0


def test_a_suite_with_a_router_that_rejects_the_random_model_goes_to_the_gold_fallback(tmp_path, capsys):
    catalog = load_catalog()
    cancel = catalog.get("cal.cancel_event").function_dict()
    rng = catalog.get("cal.events_in_range").function_dict()
    samples = [
        {"id": "s1", "category": "simple", "tools": [cancel, rng],
         "messages": [{"role": "user", "content": "Cancel EVT-7731."}],
         "tool_calls": [{"name": "cal.cancel_event", "arguments": {"event_id": "EVT-7731"}}]},
        {"id": "s2", "category": "irrelevance", "tools": [cancel],
         "messages": [{"role": "user", "content": "Tell me a joke."}], "tool_calls": []},
    ]
    suite = tmp_path / "suite.jsonl"
    suite.write_text("".join(json.dumps(s) + "\n" for s in samples))
    router = tmp_path / "router.json"  # p_correct = sigmoid(seq_logprob - 1) < 0.9 always: every step goes on
    router.write_text(json.dumps({
        "schema_version": 1, "model": {"name": "tiny", "source": "random:gemma3", "adapter_sha256": None},
        "signals": ["seq_logprob"], "calibrator": {"type": "temperature", "params": {"a": 1.0, "b": -1.0}},
        "operating_points": [{"target_precision": 0.9, "threshold": 0.9, "coverage": 0.5, "precision": 0.9}],
        "metrics": {k: {"value": 0.1, "ci_low": 0.05, "ci_high": 0.15} for k in ("auroc", "ece", "brier", "aurc")},
        "cascade": None, "fitted_on": {"suites": ["x"], "n": 10, "n_positive": 5, "cross_fit_folds": 5, "seed": 0}}))
    out = tmp_path / "report.json"
    main(["agent", *TINY, f"agent.suite={suite}", f"agent.router={router}", "agent.target_precision=0.9",
          "agent.fallback=gold", "agent.fallback_cost.usd_per_1m_input_tokens=1.0",
          "agent.fallback_cost.usd_per_1m_output_tokens=2.0", f"agent.output={out}"])
    summary = json.loads(out.read_text())["summary"]
    assert not (tmp_path / "report.json.rows.partial.jsonl").exists()  # only a killed run leaves its rows
    # every SLM answer of a random model is unsure, so the gold fallback answers every step and every task succeeds
    assert summary["successes"] == 2 and summary["share"] == {"fallback": 1.0}
    assert summary["reasons"]["low_confidence"] == summary["steps"] == 3
    fallback = summary["models"]["fallback"]
    assert fallback["tokens_in"] > 0 and fallback["cost_usd"] == pytest.approx(
        (fallback["tokens_in"] * 1.0 + fallback["tokens_out"] * 2.0) / 1e6)
    assert summary["models"]["slm"]["attempts"] == 3 and summary["cps_usd"] == pytest.approx(summary["cost_usd"] / 2)
    assert "share of steps: fallback 100.0 %" in capsys.readouterr().out
