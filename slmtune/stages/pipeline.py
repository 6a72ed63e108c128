"""All five stages in order, skipping each stage whose inputs (config and upstream outputs) did not change.

Usage: python -m slmtune pipeline +recipe=gemma270m
"""

from __future__ import annotations

import importlib
import time
from typing import Any

from slmtune.config import STAGES, SlmtuneConfig
from slmtune.rundir import RunDir
from slmtune.stages.common import hub_snapshots, log, prepare_run
from slmtune.stages.export import ExportExistsError


def stage_module(stage: str):
    return importlib.import_module(f"slmtune.stages.{stage}")


def stale_stages(cfg: SlmtuneConfig, run_dir: RunDir) -> list[str]:
    """From the first stage whose inputs changed (or that has not completed) to the last: what a pipeline run may
    rerun. Export reads every stage, so it reruns whenever this is not empty."""
    for index, stage in enumerate(STAGES):
        try:
            current = run_dir.is_current(stage, stage_module(stage).stage_hash(cfg, run_dir))
        except FileNotFoundError:  # an upstream stage has not completed
            current = False
        if not current:
            return list(STAGES[index:])
    return []


def run(cfg: SlmtuneConfig) -> dict[str, Any]:
    run_dir = prepare_run(cfg)
    hub_snapshots(cfg)  # a hub model that is neither cached nor downloadable stops the run now, not after data
    stale = stale_stages(cfg, run_dir)
    if stale and run_dir.stage_dir("export").exists() and not cfg.export.overwrite:
        # export depends on every stage: refuse now rather than after hours of training
        raise ExportExistsError(f"{run_dir.stage_dir('export')} exists and this pipeline would rebuild it (stages to "
                                f"run: {', '.join(stale)}); pass export.overwrite=true to replace it (or delete it)")
    results: dict[str, Any] = {}
    timings: dict[str, float | str] = {}
    for stage in STAGES:
        module = stage_module(stage)
        # a stage after the first stale one may not read it (eval with eval.adapter=null): hash it as things are now
        if stage not in stale or run_dir.is_current(stage, module.stage_hash(cfg, run_dir)):
            log.info("pipeline: %s is up to date (inputs unchanged) — skipped", stage)
            timings[stage] = "skipped"
            continue
        started = time.time()
        results[stage] = module.run(cfg)
        timings[stage] = round(time.time() - started, 1)
    print(f"\nslmtune pipeline — {cfg.recipe}/{cfg.run.name} in {run_dir.root}")
    print("stage seconds: " + ", ".join(f"{s} {t}" for s, t in timings.items()))
    report = run_dir.stage_dir("eval") / "report.json"
    if report.is_file():
        import json

        from slmtune.stages.eval import summary_table

        print(summary_table(json.loads(report.read_text())))
    return {"timings": timings, "results": results}
