"""``python -m slmtune <stage>`` from a fresh directory: the upstream stages it reads run first, unless they are up
to date or its inputs are given explicitly."""

from __future__ import annotations

import json
import logging

import pytest

from slmtune.config import STAGES, compose
from slmtune.rundir import RunDir
from slmtune.stages import pipeline
from slmtune.stages.export import ExportExistsError
from slmtune.stages.pipeline import UpstreamStageError, run_stage, stage_module, upstream_of


def config(tmp_path, *overrides):
    return compose(["+recipe=tiny", f"run.output_dir={tmp_path / 'outputs'}", *overrides])


@pytest.fixture
def calls(monkeypatch):
    """Every stage's run() replaced by one that records its name (and writes nothing)."""
    ran: list[str] = []
    for stage in STAGES:
        monkeypatch.setattr(stage_module(stage), "run", lambda cfg, stage=stage: ran.append(stage))
    return ran


@pytest.fixture
def predictions(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text(json.dumps({"id": "q", "valid": True}) + "\n")
    return path


def complete(cfg, stage: str) -> None:
    """Record ``stage`` as completed with the inputs ``cfg`` gives it."""
    run = RunDir(cfg.run_dir)
    with run.stage_output(stage, stage_module(stage).stage_hash(cfg, run)) as out:
        (out / "done").write_text(stage)


def test_upstream_follows_what_each_stage_reads(tmp_path, predictions):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    assert upstream_of(config(tmp_path), "data") == []
    assert upstream_of(config(tmp_path), "train") == ["data"]
    assert upstream_of(config(tmp_path), "eval") == ["data", "train"]
    assert upstream_of(config(tmp_path), "calibrate") == ["data", "train", "eval"]
    assert upstream_of(config(tmp_path), "export") == ["data", "train", "eval", "calibrate"]
    assert upstream_of(config(tmp_path, "eval.adapter=null"), "eval") == ["data"]  # the synthetic suite
    assert upstream_of(config(tmp_path, f"eval.adapter={adapter}", "eval.suites=[bfcl:simple_python]"),
                       "eval") == []
    assert upstream_of(config(tmp_path, "eval.suites=[bfcl:simple_python]"), "eval") == ["data", "train"]
    assert upstream_of(config(tmp_path, f"calibrate.predictions=[{predictions}]"), "calibrate") == []
    assert upstream_of(config(tmp_path, f"export.verify={tmp_path}"), "export") == []


def test_a_fresh_directory_runs_every_upstream_stage_in_order(tmp_path, calls, caplog):
    caplog.set_level(logging.INFO, logger="slmtune")
    run_stage(config(tmp_path), "export")
    assert calls == ["data", "train", "eval", "calibrate", "export"]
    assert "export: running upstream stages first: data, train, eval, calibrate" in caplog.text


def test_explicit_inputs_run_no_upstream_stage(tmp_path, calls, predictions):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    run_stage(config(tmp_path, f"calibrate.predictions=[{predictions}]"), "calibrate")
    run_stage(config(tmp_path, f"export.verify={tmp_path}"), "export")
    run_stage(config(tmp_path, f"eval.adapter={adapter}", "eval.suites=[bfcl:simple_python]"), "eval")
    assert calls == ["calibrate", "export", "eval"]


def test_up_to_date_upstream_stages_are_reused_and_stale_ones_rerun(tmp_path, calls, caplog):
    caplog.set_level(logging.INFO, logger="slmtune")
    cfg = config(tmp_path)
    complete(cfg, "data")
    run_stage(cfg, "train")
    assert calls == ["train"] and "train: data is up to date" in caplog.text
    run_stage(config(tmp_path, "data.seed=7"), "train")  # the data stage's inputs changed: it reruns
    assert calls == ["train", "data", "train"]


def test_a_typo_in_an_explicit_input_stops_before_any_upstream_stage(tmp_path, calls):
    with pytest.raises(FileNotFoundError, match="eval.suites: 'missing.jsonl'"):
        run_stage(config(tmp_path, "eval.suites=[synthetic,missing.jsonl]"), "eval")
    with pytest.raises(FileNotFoundError, match="eval.adapter: .*nowhere is not a directory"):
        run_stage(config(tmp_path, f"eval.adapter={tmp_path / 'nowhere'}"), "eval")
    with pytest.raises(FileNotFoundError, match="calibrate.fallback.predictions: no such file"):
        run_stage(config(tmp_path, f"calibrate.fallback.predictions={tmp_path / 'nowhere.jsonl'}"), "calibrate")
    assert calls == []


def test_an_export_that_would_be_replaced_is_refused_before_upstream_stages(tmp_path, calls):
    cfg = config(tmp_path)
    RunDir(cfg.run_dir).stage_dir("export").mkdir(parents=True)
    with pytest.raises(ExportExistsError, match=r"stages to run: data, train, eval, calibrate, export"):
        run_stage(cfg, "export")
    assert calls == []


def test_a_distributed_launch_names_the_missing_stage_instead_of_running_it(tmp_path, calls, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UpstreamStageError, match=r"stage 'data' has not completed .* `python -m slmtune data "
                                                 r"\+recipe=tiny`"):
        run_stage(config(tmp_path), "train")
    assert calls == []


def test_fresh_directory_train_runs_data_first_with_progress_bars(tmp_path, monkeypatch, caplog, capsys):
    """The real stages, as small as they go: data first, then training, with tqdm bars drawn on stderr."""
    monkeypatch.setenv("SLMTUNE_PROGRESS", "bar")
    caplog.set_level(logging.INFO, logger="slmtune")
    cfg = config(tmp_path, "data.num_samples=24", "data.decontaminate=false", "train.max_steps=1",
                 "train.max_train_samples=2", "train.max_eval_samples=0", "train.save_steps=1")
    summary = pipeline.run_stage(cfg, "train")
    run = RunDir(cfg.run_dir)
    assert {s: r["status"] for s, r in run.record()["stages"].items()} == {"data": "completed", "train": "completed"}
    assert summary["global_step"] == 1 and (run.stage_dir("train") / "adapter" / "adapter_config.json").is_file()
    assert "train: running upstream stages first: data" in caplog.text
    err = capsys.readouterr().err
    assert "data: verified samples" in err and "24/24" in err and "train: steps" in err and "1/1" in err
