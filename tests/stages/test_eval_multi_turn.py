"""``eval.suites=[bfcl:multi_turn_base]``: the suite loads as BFCL multi-turn entries, its report section, and (slow)
the eval stage on the tiny model end to end."""

from __future__ import annotations

import json

import pytest

from slmtune.config import compose
from slmtune.eval.multi_turn import MultiTurnEntry
from slmtune.rundir import RunDir, read_jsonl
from slmtune.stages import eval as eval_stage

pytest.importorskip("mpmath", reason="BFCL's simulators need mpmath")


def test_multi_turn_suites_load_as_entries(tmp_path):
    assert eval_stage.is_multi_turn("bfcl:multi_turn_base") and not eval_stage.is_multi_turn("bfcl:simple_python")
    entries = eval_stage.load_suite("bfcl:multi_turn_miss_param", RunDir(tmp_path), 2)
    assert len(entries) == 2 and all(isinstance(e, MultiTurnEntry) for e in entries)
    assert eval_stage.suite_file_name("bfcl:multi_turn_base") == "bfcl_multi_turn_base"


def test_report_shows_multi_turn_metrics():
    metrics = {"n": 3, "accuracy": 1 / 3, "turn_accuracy": 0.5, "turns_checked": 10,
               "failure_reasons": {"multi_turn:instance_state_mismatch": 2}, "failed": {"decode": 0},
               "steps_per_entry": 7.0, "calls_per_entry": 4.0, "refused_calls": 1, "tokens_in_per_entry": 30000.0,
               "output_tokens_per_entry": 200.0, "entry_wall_p50_s": 120.0, "cps_usd": 0.004,
               "prefix_cache": {"hits": 6, "misses": 1, "hit_rate": 6 / 7, "reused_tokens": 9000,
                                "prefilled_tokens": 2500}}
    report = {"model": {"name": "m", "source": "s", "adapter": None}, "dialect": "hermes", "vllm_tool_parser": "hermes",
              "device": "cpu", "dtype": "bf16", "batch_size": 1, "max_new_tokens": 128, "call_shape": "category",
              "max_text_tokens": 24, "closing_reserve": 16, "call_decision": {},
              "suites": {"bfcl:multi_turn_base": {"n": 3, "multi_turn": True,
                                                  "variants": {"base-constrained": metrics}}}}
    text = eval_stage.report_markdown(report)
    assert "| base-constrained | 3 | 33.3% | 50.0% (10 turns) | instance_state_mismatch 2 | 7 | 4 | 1 |" in text
    assert "| bfcl:multi_turn_base | 3 | 33.3% | n/a |" in eval_stage.summary_table(report)
    assert ("Prefix cache (base-constrained): 6/7 steps hit, 9000 prompt tokens reused, 2500 prefilled." in text)


@pytest.mark.slow
def test_eval_stage_runs_a_multi_turn_suite(tmp_path):
    cfg = compose(["+recipe=tiny", f"run.output_dir={tmp_path}", "eval.adapter=null",
                   "eval.suites=[bfcl:multi_turn_base]", "eval.limit=1", "tracking.mode=disabled"])
    report = eval_stage.run(cfg)
    suite = report["suites"]["bfcl:multi_turn_base"]
    assert suite["multi_turn"] and suite["n"] == 1
    metrics = suite["variants"]["base-constrained"]
    assert metrics["n"] == 1 and metrics["accuracy"] in (0.0, 1.0)
    cache = metrics["prefix_cache"]  # on by default: every step after an entry's first continues its prompt
    assert cache["hits"] + cache["misses"] == metrics["steps_per_entry"] and cache["misses"] == 1
    out = RunDir(cfg.run_dir).stage_dir("eval")
    (row,) = read_jsonl(out / "predictions-bfcl_multi_turn_base.jsonl")
    assert row["id"] == "multi_turn_base_0" and row["variant"] == "base-constrained" and row["steps"] >= 1
    assert json.loads((out / "report.json").read_text())["suites"]["bfcl:multi_turn_base"]["multi_turn"]
