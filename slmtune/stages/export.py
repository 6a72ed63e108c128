"""Stage 5 — export: what the serving team receives, verified by reloading it the way they will.

Usage: python -m slmtune export +recipe=gemma270m [export.overwrite=true]
       python -m slmtune export +recipe=gemma270m export.verify=<export dir>   (re-check an export's manifest)
       python -m slmtune export +recipe=gemma270m 'export.gguf=[f16,q8_0]'   (also GGUF files under export/gguf/)
Writes <run>/export/{merged/, adapter/, README.md, router.json, verification.json, manifest.json}. An existing
export is never replaced unless export.overwrite=true.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slmtune.config import SlmtuneConfig, config_to_dict
from slmtune.export.assemble import export_run
from slmtune.export.checks import ExportVerificationError
from slmtune.export.manifest import verify_manifest
from slmtune.rundir import RunDir, read_jsonl
from slmtune.stages.common import (
    dialect_of,
    family_of,
    input_hash,
    local_model_paths,
    log,
    log_summary,
    prepare_run,
    resolved_model,
    tracked,
)

SECTIONS = ["model", "export"]
UPSTREAM = ["data", "train", "eval", "calibrate"]


class ExportExistsError(FileExistsError):
    pass


def upstream_stages(cfg: SlmtuneConfig) -> list[str]:
    """The stages this one reads: all of them, unless export.verify only re-checks an export's manifest."""
    return [] if cfg.export.verify else list(UPSTREAM)


def stage_hash(cfg: SlmtuneConfig, run: RunDir) -> str:
    return input_hash(run, cfg, SECTIONS, UPSTREAM, files=local_model_paths(cfg),
                      ignore=("export.overwrite", "export.verify"))


def run(cfg: SlmtuneConfig) -> dict[str, Any]:
    if cfg.export.verify:
        return verify(Path(cfg.export.verify))
    run_dir = prepare_run(cfg)
    current = stage_hash(cfg, run_dir)
    final = run_dir.stage_dir("export")
    if final.exists() and not cfg.export.overwrite:
        raise ExportExistsError(f"{final} already exists; pass export.overwrite=true to replace it (or delete it)")
    smoke = [(r["prompt"], r["grammar"], r["raw"]) for r in read_jsonl(run_dir.stage_dir("eval") / "smoke.jsonl")]
    eval_report = json.loads((run_dir.stage_dir("eval") / "report.json").read_text())
    source = resolved_model(cfg, run_dir, "export")
    with run_dir.stage_output("export", current) as out, tracked(cfg, run_dir, "export") as tracker:
        result = export_run(
            base_dir=source.path, base_identity=source.identity, base_revision=source.revision,
            base_hub_id=source.hub_id,
            adapter_dir=run_dir.stage_dir("train") / "adapter", out_dir=out, overwrite=True,
            family=family_of(cfg), dialect=dialect_of(cfg), config=config_to_dict(cfg),
            router_json=run_dir.stage_dir("calibrate") / "router.json",
            data_stats=json.loads((run_dir.stage_dir("data") / "stats.json").read_text()),
            eval_report=eval_report, eval_dtype=eval_report["dtype"], eval_device=eval_report["device"],
            smoke=smoke, model_name=cfg.model.name, atol=cfg.export.logits_atol,
            max_shard_size=cfg.export.max_shard_size, max_new_tokens=eval_report["max_new_tokens"],
            decoder_options={"call_trigger": dialect_of(cfg).call_trigger,
                             "max_text_tokens": eval_report["max_text_tokens"],
                             "closing_reserve": eval_report["closing_reserve"]},
            trust_remote_code=cfg.model.trust_remote_code, gguf=list(cfg.export.gguf))
        verification = result["verification"]
        log_summary(tracker, {"max_abs_logit_diff": verification.get("logits", {}).get("max_abs_logit_diff")})
    log.info("export: verified (%s) -> %s", json.dumps(verification)[:400], final)
    return {"out_dir": str(final), "verification": verification}


def verify(export_dir: Path) -> dict[str, Any]:
    """Re-check every file of an export against its manifest; raise naming each changed file."""
    problems = verify_manifest(export_dir)
    if problems:
        raise ExportVerificationError(f"{export_dir}: export verification failed:\n  " + "\n  ".join(problems),
                                      {"problems": problems})
    log.info("export: %s matches its manifest", export_dir)
    return {"out_dir": str(export_dir), "problems": []}
