"""GPU recipes from the hub, offline, on CPU: `pipeline +recipe=qwen7b` (QLoRA, nf4 on CPU) and `+recipe=llama1b`
(LoRA) to a verified export, with HF_HUB_OFFLINE=1 and a hub cache of tiny random models under the recipes' own hub
ids (``tests/hubcache.py``), shrunk by overrides: qwen7b adds 4-bit training and the merge of a QLoRA adapter into
the unquantised base, llama1b plain LoRA in another family and dialect.  Precision stays ``auto`` (bf16 where the CPU
has it).
"""

from __future__ import annotations

import json

import pytest

from slmtune.config import compose
from slmtune.export.manifest import verify_manifest
from slmtune.rundir import RunDir
from slmtune.stages import pipeline

SHRINK = ["data.num_samples=40", "train.max_steps=2", "train.batch_size=2", "train.gradient_accumulation_steps=1",
          "train.eval_steps=2", "train.save_steps=2", "train.max_eval_samples=2", "train.logging_steps=1",
          "eval.limit=8", "eval.suites=[synthetic,bfcl:simple_python]", "eval.batch_size=8", "eval.max_new_tokens=48",
          "eval.closing_reserve=16", "calibrate.folds=2", "calibrate.bootstrap=20", "tracking.mode=disabled"]
TOKEN = "hf_slmtuneTestTokenNeverWritten"
HUB_IDS = {"qwen7b": "Qwen/Qwen2.5-7B-Instruct", "llama1b": "meta-llama/Llama-3.2-1B-Instruct"}


@pytest.fixture(scope="module", params=["qwen7b", "llama1b"])
def hub_run(request, offline_hub, tmp_path_factory):
    cache, commits = offline_hub
    recipe = request.param
    with pytest.MonkeyPatch.context() as env:
        env.delenv("HF_HOME", raising=False)
        env.setenv("HF_HUB_CACHE", str(cache))
        env.setenv("HF_HUB_OFFLINE", "1")
        env.setenv("HF_TOKEN", TOKEN)
        cfg = compose([f"+recipe={recipe}", f"run.output_dir={tmp_path_factory.mktemp(recipe)}", *SHRINK])
        pipeline.run(cfg)
    return cfg, RunDir(cfg.run_dir), HUB_IDS[recipe], commits[HUB_IDS[recipe]]


def test_hub_recipe_reaches_a_verified_export(hub_run):
    cfg, run, hub_id, commit = hub_run
    record = json.loads(run.record_path.read_text())
    assert {s: r["status"] for s, r in record["stages"].items()} == dict.fromkeys(
        ["data", "train", "eval", "calibrate", "export"], "completed")
    export = run.stage_dir("export")
    verification = json.loads((export / "verification.json").read_text())
    assert verification["passed"] and verification["answers"]["passed"] and verification["answers"]["n"] > 0
    assert verify_manifest(export) == []
    summary = json.loads((run.stage_dir("train") / "summary.json").read_text())
    assert summary["method"] == cfg.train.method and summary["global_step"] == 2
    # the merge loaded the base without quantisation: plain full-precision safetensors, no pickles
    merged = json.loads((export / "merged" / "config.json").read_text())
    assert "quantization_config" not in merged and verification["merge"]["dtype"] == "float32"
    assert not [p for p in (export / "merged").iterdir() if p.suffix in (".bin", ".pt", ".pth")]


def test_every_stage_records_the_resolved_commit(hub_run):
    cfg, run, hub_id, commit = hub_run
    record = json.loads(run.record_path.read_text())
    for stage in ("train", "eval", "export"):
        model = record["models"][stage]
        assert (model["hub_id"], model["revision"], model["identity"]) == (hub_id, commit, f"{hub_id}@{commit}")
        assert model["path"].endswith(f"/snapshots/{commit}")
    manifest = json.loads((run.stage_dir("export") / "manifest.json").read_text())
    assert manifest["base_model"]["identity"] == f"{hub_id}@{commit}"
    assert (manifest["base_model"]["hub_id"], manifest["base_model"]["revision"]) == (hub_id, commit)
    card = (run.stage_dir("export") / "README.md").read_text()
    assert f"| base model | `{hub_id}` revision `{commit}` |" in card
    assert f"vllm serve {hub_id} --revision {commit} --enable-lora" in card
    adapter = json.loads((run.stage_dir("export") / "adapter" / "adapter_config.json").read_text())
    assert (adapter["base_model_name_or_path"], adapter["revision"]) == (hub_id, commit)
    report = json.loads((run.stage_dir("eval") / "report.json").read_text())
    assert report["model"]["source"] == f"{hub_id}@{commit}"


def test_the_hub_token_is_written_nowhere(hub_run):
    _, run, _, _ = hub_run
    leaks = [path for path in run.root.rglob("*") if path.is_file() and TOKEN.encode() in path.read_bytes()]
    assert leaks == []
