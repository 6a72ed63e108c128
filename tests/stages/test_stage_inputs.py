"""What each stage's input hash covers (files outside the run, not run-only settings) and how stages name bad input."""

from __future__ import annotations

import json

import pytest

from slmtune.config import compose
from slmtune.rundir import RunDir
from slmtune.stages import calibrate, export, train
from slmtune.stages import eval as eval_stage


def config(tmp_path, *overrides):
    return compose(["+recipe=tiny", f"run.output_dir={tmp_path / 'outputs'}", *overrides])


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_hash_covers_user_suites_and_an_adapter_directory(tmp_path):
    suite = write(tmp_path / "suite.jsonl", [{"id": "q1"}])
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    cfg = config(tmp_path, f"eval.suites=[{suite}]", f"eval.adapter={adapter}")
    run = RunDir(cfg.run_dir)
    first = eval_stage.stage_hash(cfg, run)
    assert eval_stage.stage_hash(cfg, run) == first
    write(suite, [{"id": "q1"}, {"id": "q2"}])
    second = eval_stage.stage_hash(cfg, run)
    (adapter / "adapter_model.safetensors").write_bytes(b"retrained")
    assert len({first, second, eval_stage.stage_hash(cfg, run)}) == 3


def test_calibrate_hash_covers_its_predictions_and_the_fallbacks(tmp_path):
    predictions = write(tmp_path / "predictions.jsonl", [{"id": "q1", "valid": True}])
    fallback = write(tmp_path / "fallback.jsonl", [{"id": "q1", "valid": True}])
    cfg = config(tmp_path, f"calibrate.predictions=[{predictions}]", f"calibrate.fallback.predictions={fallback}")
    run = RunDir(cfg.run_dir)
    first = calibrate.stage_hash(cfg, run)
    write(fallback, [{"id": "q1", "valid": False}])
    second = calibrate.stage_hash(cfg, run)
    write(predictions, [{"id": "q1", "valid": False}])
    assert len({first, second, calibrate.stage_hash(cfg, run)}) == 3


def test_run_only_settings_leave_the_hash_alone(tmp_path):
    cfg = config(tmp_path)
    run = RunDir(cfg.run_dir)
    for stage in ("data", "train", "eval", "calibrate"):
        with run.stage_output(stage, "h") as out:
            (out / "done").write_text(stage)
    assert train.stage_hash(cfg, run) == train.stage_hash(config(tmp_path, "train.resume=never"), run)
    assert train.stage_hash(cfg, run) != train.stage_hash(config(tmp_path, "train.max_steps=3"), run)
    assert export.stage_hash(cfg, run) == export.stage_hash(config(tmp_path, "export.overwrite=true"), run)
    assert export.stage_hash(cfg, run) != export.stage_hash(config(tmp_path, "export.max_shard_size=1GB"), run)


def test_a_local_model_directory_is_fingerprinted(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    cfg = config(tmp_path, f"model.source={model}")
    run = RunDir(cfg.run_dir)
    with run.stage_output("data", "h") as out:
        (out / "done").write_text("data")
    before = train.stage_hash(cfg, run)
    (model / "model.safetensors").write_bytes(b"new weights")
    assert train.stage_hash(cfg, run) != before


def test_calibrate_names_the_file_and_line_of_a_row_without_a_verdict(tmp_path):
    good = {"id": "q", "variant": "tuned-constrained", "valid": True, "signals": {"seq_logprob": -1.0}}
    path = write(tmp_path / "predictions.jsonl", [good, {**good, "valid": None}])
    with pytest.raises(ValueError, match=rf"^{path}:2: valid: expected true or false"):
        calibrate.select_rows([path], 2)
    write(path, [good, good])
    with pytest.raises(ValueError, match="needs at least 7"):
        calibrate.select_rows([path], 7)


def test_calibrate_names_a_malformed_fallback_file(tmp_path):
    fallback = write(tmp_path / "fallback.jsonl", [{"id": "q1", "valid": True}, {"id": "q2"}])
    cfg = config(tmp_path, f"calibrate.fallback.predictions={fallback}")
    with pytest.raises(ValueError, match=rf"{fallback}:2: needs 'id' and 'valid'"):
        calibrate._fallback_correctness(cfg.calibrate.fallback, [{"id": "q1"}])


@pytest.mark.parametrize("jump_forward", [True, False])
def test_eval_jump_forward_reaches_the_decoder(tmp_path, monkeypatch, jump_forward):
    """``eval.jump_forward=false`` makes the decoder sample grammar-forced text token by token, as vLLM does."""

    class Built(Exception):
        pass

    def decoder(model, tokenizer, **options):
        raise Built(options)

    monkeypatch.setattr(eval_stage, "Decoder", decoder)
    cfg = config(tmp_path, f"eval.jump_forward={str(jump_forward).lower()}")
    with pytest.raises(Built) as built:
        eval_stage._evaluate(cfg, {}, None, tmp_path, None, tmp_path)
    assert built.value.args[0]["jump_forward"] is jump_forward
