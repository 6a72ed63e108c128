"""All five stages in order, skipping each stage whose inputs (config and upstream outputs) did not change.

Usage: python -m slmtune pipeline +recipe=gemma270m
"""

from __future__ import annotations

import importlib
import time
from typing import Any

from slmtune.config import STAGES, SlmtuneConfig
from slmtune.stages.common import log, prepare_run


def stage_module(stage: str):
    return importlib.import_module(f"slmtune.stages.{stage}")


def run(cfg: SlmtuneConfig) -> dict[str, Any]:
    run_dir = prepare_run(cfg)
    results: dict[str, Any] = {}
    timings: dict[str, float | str] = {}
    for stage in STAGES:
        module = stage_module(stage)
        if run_dir.is_current(stage, module.stage_hash(cfg, run_dir)):
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
