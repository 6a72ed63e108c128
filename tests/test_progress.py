"""Progress: tqdm bars on a terminal, periodic log lines with counts elsewhere (CI, log files)."""

import io
import logging
import sys

import pytest

from slmtune.progress import Progress, format_seconds, progress_mode


def test_mode_follows_the_terminal_and_the_environment(monkeypatch):
    monkeypatch.delenv("SLMTUNE_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert progress_mode() == "log"
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert progress_mode() == "bar"
    monkeypatch.setenv("SLMTUNE_PROGRESS", "off")
    assert progress_mode() == "off"
    monkeypatch.setenv("SLMTUNE_PROGRESS", "loud")
    with pytest.raises(ValueError, match="SLMTUNE_PROGRESS: 'loud'"):
        progress_mode()


def test_log_lines_carry_counts_rate_eta_and_rates_of_amounts(caplog):
    caplog.set_level(logging.INFO, logger="slmtune")
    with Progress("eval: bfcl:simple_python tuned-constrained", total=10, unit="requests", mode="log",
                  log_every_fraction=0.25, min_interval_s=0) as bar:
        for _ in range(10):
            bar.update(1, tok=20)
    lines = [r.getMessage() for r in caplog.records]
    # 25%, 50%, 75% and the end: one line each, not one per update
    assert [line.split(": ")[2].split(" ")[0] for line in lines] == ["3/10", "5/10", "8/10", "10/10"]
    assert lines[0].startswith("eval: bfcl:simple_python tuned-constrained: 3/10 requests (30%)")
    assert "ETA" in lines[0] and "requests/s" in lines[0] and "tok/s" in lines[0]
    assert "(100%)" in lines[-1] and "ETA" not in lines[-1]


def test_log_lines_come_every_interval_and_at_a_short_end(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="slmtune")
    now = [0.0]
    monkeypatch.setattr("slmtune.progress.time.perf_counter", lambda: now[0])
    bar = Progress("train: steps", total=1000, unit="steps", mode="log", initial=100, log_every_s=30)
    for _ in range(3):
        now[0] += 20
        bar.update(1)  # 20 s, 40 s, 60 s after the start: a line at 40 s (>= 30 s since the start) only
    bar.close()  # stopped short of the total: says where
    bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "102/1000" in lines[0] and "103/1000" in lines[1]
    # rate and ETA from this run's 2 steps in 40 s, not from the 100 resumed ones
    assert "0.05 steps/s, ETA 4:59:20" in lines[0]


def test_fast_loops_log_only_their_end(caplog):
    caplog.set_level(logging.INFO, logger="slmtune")
    with Progress("data: verified samples", total=300, unit="samples", mode="log") as bar:
        for _ in range(300):
            bar.update(1, note="train+val")
    assert [r.getMessage().split(",")[0] for r in caplog.records] == [
        "data: verified samples: 300/300 samples (100%)"]


def test_a_bar_draws_on_stderr_and_off_is_silent(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="slmtune")
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with Progress("export: build and checks", total=4, unit="steps", mode="bar") as bar:
        for note in ("merged", "logits", "answers", "manifest"):
            bar.update(1, note=note)
    assert "export: build and checks" in err.getvalue() and "4/4" in err.getvalue()
    with Progress("quiet", total=2, mode="off") as bar:
        bar.update(2)
    assert "quiet" not in err.getvalue() and not caplog.records


def test_format_seconds():
    assert (format_seconds(59.6), format_seconds(61), format_seconds(3725)) == ("01:00", "01:01", "1:02:05")


def test_eval_counts_each_decoded_batch_with_its_tokens(caplog):
    """The eval stage's hook: evaluate reports every batch's rows as it finishes; the line has requests and tok/s."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from slmtune.eval.decoding import Decoder
    from slmtune.eval.evaluation import evaluate, prepare_requests
    from slmtune.eval.suites import EvalRequest
    from slmtune.models.families import FAMILIES
    from slmtune.models.sources import resolve_source
    from slmtune.stages.eval import count_decoded

    caplog.set_level(logging.INFO, logger="slmtune")
    path = resolve_source("random:gemma3").path
    decoder = Decoder(AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path),
                      stop_strings=["<end_of_turn>"], max_new_tokens=3)
    family = FAMILIES["gemma3"]
    requests = [EvalRequest(id=f"r{i}", category="irrelevance", messages=[{"role": "user", "content": text}],
                            tools=[], possible_answer=[], suite="test") for i, text in enumerate(("a", "bb", "ccc"))]
    prepared = prepare_requests(requests, family, family.dialect(), constrained=False)
    batches = []
    with Progress("eval: suite base-constrained", total=3, unit="requests", mode="log", min_interval_s=0) as bar:
        def on_batch(rows):
            batches.append(len(rows))
            count_decoded(bar, rows)

        rows, _ = evaluate(prepared, decoder, family.dialect(), batch_size=2, on_batch=on_batch)
    assert batches == [2, 1] and bar.done == 3
    assert bar.amounts["tok"] == sum(row["output_tokens"] for row in rows) > 0
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("eval: suite base-constrained: 2/3 requests (67%)") and "tok/s" in lines[0]
    assert lines[-1].startswith("eval: suite base-constrained: 3/3 requests (100%)")
