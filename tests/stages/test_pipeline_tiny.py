"""End to end on the `tiny` recipe: every artifact of DESIGN §2, resume/skip, export re-verification; train and eval
forced to fp32, and again to bf16 (what ``precision=auto`` picks on CPUs with native bf16 and on most GPUs)."""

import json
import math
import shutil

import pytest

from slmtune.config import compose
from slmtune.router import Router
from slmtune.rundir import RunDir, read_jsonl
from slmtune.stages import export as export_stage
from slmtune.stages import pipeline
from slmtune.stages.export import ExportExistsError


def tiny(output_dir, *overrides: str, precision: str = "fp32"):
    """The tiny recipe's config with train and eval precision forced (``auto`` would depend on the CPU)."""
    return compose(["+recipe=tiny", f"run.output_dir={output_dir}", f"train.precision={precision}",
                    f"eval.precision={precision}", *overrides])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    cfg = tiny(tmp_path_factory.mktemp("outputs"))
    result = pipeline.run(cfg)
    return cfg, RunDir(cfg.run_dir), result


def test_pipeline_produces_every_artifact(tiny_run):
    cfg, run, result = tiny_run
    root = run.root
    for relative in ("run.json", "data/train.jsonl", "data/val.jsonl", "data/test.jsonl", "data/stats.json",
                     "data/card.md", "train/adapter/adapter_model.safetensors", "train/metrics.jsonl",
                     "eval/report.json", "eval/report.md", "eval/predictions-synthetic.jsonl",
                     "eval/predictions-bfcl_simple_python.jsonl", "calibrate/router.json", "calibrate/signals.jsonl",
                     "export/manifest.json", "export/README.md", "export/merged/config.json",
                     "export/adapter/adapter_config.json", "export/router.json"):
        assert (root / relative).is_file(), relative
    assert list((root / "wandb").glob("offline-run-*")), "no offline W&B run"
    assert not list(root.glob(".*.partial")), "a partial stage directory was left behind"
    record = json.loads((root / "run.json").read_text())
    assert {s: r["status"] for s, r in record["stages"].items()} == dict.fromkeys(
        ["data", "train", "eval", "calibrate", "export"], "completed")
    assert record["config"]["recipe"] == "tiny" and "torch" in record["versions"]


def test_predictions_have_the_contract_fields(tiny_run):
    _, run, _ = tiny_run
    rows = read_jsonl(run.stage_dir("eval") / "predictions-synthetic.jsonl")
    assert rows and {r["variant"] for r in rows} == {"base-constrained", "tuned-constrained"}
    for row in rows:
        for key in ("id", "category", "raw", "calls", "valid", "error", "schema_valid", "latency_s",
                    "output_tokens", "signals", "truncated", "text_allowed"):
            assert key in row, key
        assert isinstance(row["calls"], list)
    report = json.loads((run.stage_dir("eval") / "report.json").read_text())
    metrics = report["suites"]["bfcl:simple_python"]["variants"]["tuned-constrained"]
    # the grammar makes every finished answer schema-valid (a random model may still run out of tokens)
    assert metrics["schema_validity_rate"] == 1.0 - metrics["truncated"] / metrics["n"]
    assert metrics["truncated"] < metrics["n"]
    assert metrics["energy_j_per_request"] is None and metrics["energy_unavailable_reason"]
    # the category-shaped grammar forces the calls of single-turn call requests: the model decides only on
    # irrelevance requests and on the turns of multi-turn conversations (a text turn needs no call)
    every_row = [r for path in run.stage_dir("eval").glob("predictions-*.jsonl") for r in read_jsonl(path)
                 if r["variant"] == "tuned-constrained"]
    call_turns = sum(r.get("expects_call") is True for r in every_row)
    no_call = sum(r["category"] == "irrelevance" or r.get("expects_call") is False for r in every_row)
    decision = report["call_decision"]["tuned-constrained"]
    assert (decision["call_requests"], decision["no_call_requests"]) == (call_turns, no_call)


def test_multi_turn_conversations_train_and_evaluate_per_turn(tiny_run):
    _, run, _ = tiny_run
    stats = json.loads((run.stage_dir("data") / "stats.json").read_text())
    assert stats["per_category"]["multi_turn"] == stats["multi_turn"]["conversations"] > 0
    summary = json.loads((run.stage_dir("train") / "summary.json").read_text())
    assert summary["multi_turn"]["kept"] > 0 and summary["multi_turn"]["assistant_turns_trained"] >= \
        2 * summary["multi_turn"]["kept"] - summary["multi_turn"]["cut_to_fit"]
    rows = read_jsonl(run.stage_dir("eval") / "predictions-synthetic_multi_turn.jsonl")
    assert rows and all(r["category"] == "multi_turn" and r["id"] == f"{r['conversation']}/turn{r['turn']}"
                        for r in rows)
    assert {r["expects_call"] for r in rows} == {True, False}
    report = json.loads((run.stage_dir("eval") / "report.json").read_text())
    for variant, metrics in report["suites"]["synthetic:multi_turn"]["variants"].items():
        per_conversation = {}
        for r in rows:
            if r["variant"] == variant:
                per_conversation.setdefault(r["conversation"], []).append(r["valid"])
        assert metrics["multi_turn"]["conversations"] == len(per_conversation)
        assert metrics["multi_turn"]["succeeded"] == sum(all(v) for v in per_conversation.values())


def test_export_re_decodes_one_whole_eval_batch_as_one_batch(tiny_run):
    cfg, run, _ = tiny_run
    smoke = read_jsonl(run.stage_dir("eval") / "smoke.jsonl")
    first_suite = read_jsonl(run.stage_dir("eval") / f"predictions-{cfg.eval.suites[0]}.jsonl")
    assert len(smoke) == min(cfg.eval.batch_size, cfg.eval.limit)
    assert {r["id"] for r in smoke} <= {r["id"] for r in first_suite}
    answers = json.loads((run.stage_dir("export") / "verification.json").read_text())["answers"]
    assert (answers["n"], answers["batch_size"], answers["passed"]) == (len(smoke), len(smoke), True)


def test_router_json_loads_and_decides(tiny_run):
    cfg, run, _ = tiny_run
    router = Router.load(run.stage_dir("calibrate") / "router.json")
    signals = read_jsonl(run.stage_dir("calibrate") / "signals.jsonl")[0]["signals"]
    use_slm, p = router.decide(signals, 0.95)
    assert isinstance(use_slm, bool) and 0.0 <= p <= 1.0


def test_rerun_skips_every_stage_and_rebuilds_only_a_deleted_export(tiny_run):
    cfg, run, _ = tiny_run
    again = pipeline.run(cfg)
    assert set(again["timings"].values()) == {"skipped"}
    # export.overwrite says what may happen to an export, not what it holds: nothing to redo
    overwrite = tiny(cfg.run.output_dir, "export.overwrite=true")
    assert set(pipeline.run(overwrite)["timings"].values()) == {"skipped"}
    # a changed upstream input would rebuild the export: refused before any stage runs, not after them
    record = run.record()
    changed = tiny(cfg.run.output_dir, "calibrate.bootstrap=60")
    with pytest.raises(ExportExistsError, match=r"would rebuild it \(stages to run: calibrate, export\)"):
        pipeline.run(changed)
    assert run.record()["stages"] == record["stages"]
    before = {s: run.stage_record(s)["completion_id"] for s in ("data", "train", "eval", "calibrate")}
    import shutil

    shutil.rmtree(run.stage_dir("export"))
    rebuilt = pipeline.run(cfg)
    assert [s for s, t in rebuilt["timings"].items() if t != "skipped"] == ["export"]
    assert before == {s: run.stage_record(s)["completion_id"] for s in before}


def test_export_refuses_to_overwrite_and_verify_names_a_tampered_file(tiny_run):
    cfg, run, _ = tiny_run
    with pytest.raises(ExportExistsError, match="export.overwrite"):
        export_stage.run(cfg)
    export_dir = run.stage_dir("export")
    assert export_stage.verify(export_dir)["problems"] == []
    card = export_dir / "README.md"
    card.write_text(card.read_text() + "\ntampered\n")
    with pytest.raises(RuntimeError, match="README.md: sha256 mismatch"):
        export_stage.verify(export_dir)


def _answers(run: RunDir) -> dict:
    return json.loads((run.stage_dir("export") / "verification.json").read_text())["answers"]


def test_fp32_run_checks_the_eval_s_own_answers(tiny_run):
    _, run, _ = tiny_run
    assert json.loads((run.stage_dir("train") / "summary.json").read_text())["precision"] == "torch.float32"
    assert json.loads((run.stage_dir("eval") / "report.json").read_text())["dtype"] == "torch.float32"
    answers = _answers(run)
    assert answers["compute_dtype"] == "float32" and answers["passed"]
    # eval and check decoded in fp32 on this CPU: base + adapter reproduces the eval's answers to the last bit
    assert answers["eval_answers"] == {**answers["eval_answers"], "dtype": "float32", "checked": True,
                                       "passed": True, "differing": []}


def test_pipeline_with_train_and_eval_in_bf16(tiny_run, tmp_path_factory):
    """Train (bf16 autocast) and eval (bf16 weights) forced to bf16, from a copy of the fp32 run (its data stage is
    reused): every stage completes and the export verifies itself, comparing merged with base + adapter in fp32;
    the eval's bf16 answers are reported beside them, not checked."""
    cfg, run, _ = tiny_run
    output_dir = tmp_path_factory.mktemp("outputs-bf16")
    shutil.copytree(run.root, output_dir / run.root.relative_to(cfg.run.output_dir))
    # the tuned model only (no base variant): half the eval, and every stage still runs in bf16
    bf16 = tiny(output_dir, "export.overwrite=true", "eval.compare_base=false", precision="bf16")
    result = pipeline.run(bf16)
    assert result["timings"]["data"] == "skipped" and "skipped" not in [
        result["timings"][s] for s in ("train", "eval", "calibrate", "export")]
    bf16_run = RunDir(bf16.run_dir)
    assert {s: r["status"] for s, r in bf16_run.record()["stages"].items()} == dict.fromkeys(
        ["data", "train", "eval", "calibrate", "export"], "completed")
    summary = json.loads((bf16_run.stage_dir("train") / "summary.json").read_text())
    assert summary["precision"] == "torch.bfloat16" and summary["global_step"] == bf16.train.max_steps
    assert math.isfinite(summary["train_loss"]) and math.isfinite(summary["best_eval_loss"])
    report = json.loads((bf16_run.stage_dir("eval") / "report.json").read_text())
    assert report["dtype"] == "torch.bfloat16"
    rows = read_jsonl(bf16_run.stage_dir("eval") / "predictions-synthetic.jsonl")
    for row in rows:
        assert all(math.isfinite(v) for v in row["signals"].values()), row["signals"]
    answers = _answers(bf16_run)
    assert answers["passed"] and answers["compute_dtype"] == "float32" and not answers["mismatches"]
    assert answers["eval_answers"] == {**answers["eval_answers"], "dtype": "bfloat16", "checked": False,
                                       "passed": True}
    card = (bf16_run.stage_dir("export") / "README.md").read_text()
    assert "(bfloat16 on cpu) reproduced by base + adapter here" in card and "reported, not checked" in card
