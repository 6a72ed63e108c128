"""scripts/bench_quality.py: the per-cell metrics and the markdown table it writes (the decoding itself is the eval
library's, tested under tests/eval; a real run takes hours on 2 cores and is run by hand)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from slmtune.config import PACKAGE_ROOT


@pytest.fixture(scope="module")
def bench():
    path = PACKAGE_ROOT / "scripts" / "bench_quality.py"
    spec = importlib.util.spec_from_file_location("bench_quality", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_quality"] = module
    spec.loader.exec_module(module)
    return module


def row(category, calls, valid, raw=""):
    return {"category": category, "calls": calls, "valid": valid, "raw": raw, "schema_valid": True, "failure": None}


REFUSAL = "None of the available tools can do that, so I cannot call one for this request."


def test_a_cell_counts_accuracy_interval_confusion_and_the_commonest_text_answer(bench):
    rows = [row("multiple", [{"f": {}}], True), row("multiple", [{"f": {}}], False)] + \
        [row("multiple", [], False, REFUSAL) for _ in range(3)]
    cell = bench.cell_metrics(rows, 12.0)
    assert cell["n"] == 5 and cell["correct"] == 1 and cell["ast"] == pytest.approx(0.2)
    low, high = cell["wilson95"]
    assert 0.03 < low < 0.04 and 0.62 < high < 0.63
    assert cell["confusion"] == {"called_right": 1, "called_wrong": 1, "declined": 3, "no_call_declined": 0,
                                 "no_call_called": 0}
    assert cell["commonest_text_answers"] == [(REFUSAL[:80], 3)]
    assert bench.decision_text(cell) == "called 2/5 (1 right)"


def test_the_markdown_table_has_a_row_per_category_and_the_reference_column(bench):
    tuned = bench.cell_metrics([row("irrelevance", [], True, REFUSAL), row("irrelevance", [{"f": {}}], False)], 3.0)
    result = {"command": "python scripts/bench_quality.py --n 2", "commit": "abc1234", "machine": "test CPU, 2 cores",
              "torch": "2.x", "dtype": "torch.bfloat16", "recipe": "gemma270m", "batch_size": 5, "max_new_tokens": 128,
              "adapter": "/a", "n": 2, "wall_s": 60.0, "models": ["base", "tuned"], "shapes": ["free"],
              "categories": ["irrelevance", "multiple"], "cells": {"irrelevance": {"tuned/free": tuned}}}
    text = bench.markdown(result)
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| category | n | base free |")
    assert lines[1].startswith("| irrelevance | 2 | — | — | 50.0 [") and lines[1].endswith("| declined 1/2 | 73.7 |")
    assert lines[2] == "| multiple | — | — | — | — | — | 63.5 |"
    assert "- tuned: 0 / 0 / 0 of 0 (calls on — %); 1 / 1 of 2" in text
