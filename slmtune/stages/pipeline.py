"""All five stages in order, skipping each stage whose inputs (config and upstream outputs) did not change; and one
stage after the upstream stages it reads that are not up to date (:func:`run_stage`, what ``python -m slmtune
<stage>`` runs), so any stage runs from a fresh directory.

Usage: python -m slmtune pipeline +recipe=gemma270m
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Sequence
from typing import Any

from slmtune.config import STAGES, SlmtuneConfig
from slmtune.rundir import RunDir
from slmtune.stages.common import hub_snapshots, log, prepare_run
from slmtune.stages.export import ExportExistsError


class UpstreamStageError(FileNotFoundError):
    """A stage's upstream stage has not completed and cannot be run here."""


def stage_module(stage: str):
    return importlib.import_module(f"slmtune.stages.{stage}")


def up_to_date(cfg: SlmtuneConfig, run_dir: RunDir, stage: str) -> bool:
    """The stage completed with the inputs this config gives it now (False when a stage it reads has not)."""
    try:
        return run_dir.is_current(stage, stage_module(stage).stage_hash(cfg, run_dir))
    except FileNotFoundError:  # an upstream stage has not completed
        return False


def stale_stages(cfg: SlmtuneConfig, run_dir: RunDir, stages: Sequence[str] = STAGES) -> list[str]:
    """Of ``stages`` (in pipeline order), from the first one whose inputs changed (or that has not completed) to the
    last: what a run may rerun. Export reads every stage, so it reruns whenever this is not empty."""
    for index, stage in enumerate(stages):
        if not up_to_date(cfg, run_dir, stage):
            return list(stages[index:])
    return []


def upstream_of(cfg: SlmtuneConfig, stage: str) -> list[str]:
    """The stages ``stage`` reads with this config, directly or through the stages they read, in pipeline order
    (none for inputs given explicitly: ``eval.adapter=<dir>``, ``calibrate.predictions``, ``export.verify``)."""
    needed: set[str] = set()
    todo = [stage]
    while todo:
        for upstream in stage_module(todo.pop()).upstream_stages(cfg):
            if upstream not in needed:
                needed.add(upstream)
                todo.append(upstream)
    return [s for s in STAGES if s in needed]


def check_inputs(cfg: SlmtuneConfig, stages: Sequence[str]) -> None:
    """Each stage's own check of the inputs its config names explicitly (a user suite, an adapter directory, a
    predictions file), so a typo stops the run before hours of upstream stages rather than after them."""
    for stage in stages:
        check = getattr(stage_module(stage), "check_inputs", None)
        if check is not None:
            check(cfg)


def refuse_export_replacement(cfg: SlmtuneConfig, run_dir: RunDir, to_run: list[str]) -> None:
    """Raise before any stage runs when ``to_run`` would rebuild an existing export without export.overwrite."""
    if "export" in to_run and not cfg.export.verify and run_dir.stage_dir("export").exists() \
            and not cfg.export.overwrite:
        # export depends on every stage: refuse now rather than after hours of training
        raise ExportExistsError(f"{run_dir.stage_dir('export')} exists and this run would rebuild it (stages to "
                                f"run: {', '.join(to_run)}); pass export.overwrite=true to replace it (or delete it)")


def run_if_stale(cfg: SlmtuneConfig, run_dir: RunDir, stage: str, stale: list[str], why: str) -> tuple[bool, Any]:
    """Run ``stage`` unless it is not in ``stale`` or is up to date as things are now (a stage after the first stale
    one may not read it: eval with eval.adapter=null); returns (whether it ran, its result). ``why`` prefixes the
    log lines."""
    if stage not in stale or up_to_date(cfg, run_dir, stage):
        log.info("%s: %s is up to date (inputs unchanged) — skipped", why, stage)
        return False, None
    return True, stage_module(stage).run(cfg)


def run_stage(cfg: SlmtuneConfig, stage: str) -> Any:
    """Run ``stage`` after the upstream stages it reads (:func:`upstream_of`) that have not completed with these
    inputs — what ``python -m slmtune <stage>`` does, so any stage runs from a fresh directory.

    A distributed launch (``WORLD_SIZE`` > 1) runs no upstream stage: every rank would; it names the stage to run
    first instead.
    """
    run_dir = RunDir(cfg.run_dir)
    upstream = upstream_of(cfg, stage)
    stale = stale_stages(cfg, run_dir, upstream)
    if stale and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UpstreamStageError(f"{run_dir.stage_dir(stale[0])}: stage '{stale[0]}' has not completed with these "
                                 f"inputs, and a distributed launch does not run upstream stages; run `python -m "
                                 f"slmtune {stale[0]} +recipe={cfg.recipe}` (one process) first")
    refuse_export_replacement(cfg, run_dir, [*stale, stage])
    check_inputs(cfg, [*upstream, stage])
    if stale:
        log.info("%s: running upstream stages first: %s (not completed with these inputs)", stage, ", ".join(stale))
    for upstream_stage in upstream:
        run_if_stale(cfg, run_dir, upstream_stage, stale, why=stage)
    return stage_module(stage).run(cfg)


def run(cfg: SlmtuneConfig) -> dict[str, Any]:
    run_dir = prepare_run(cfg)
    hub_snapshots(cfg)  # a hub model that is neither cached nor downloadable stops the run now, not after data
    stale = stale_stages(cfg, run_dir)
    refuse_export_replacement(cfg, run_dir, stale)
    check_inputs(cfg, STAGES)
    results: dict[str, Any] = {}
    timings: dict[str, float | str] = {}
    for stage in STAGES:
        started = time.time()
        ran, result = run_if_stale(cfg, run_dir, stage, stale, why="pipeline")
        if not ran:
            timings[stage] = "skipped"
            continue
        results[stage] = result
        timings[stage] = round(time.time() - started, 1)
    print(f"\nslmtune pipeline — {cfg.recipe}/{cfg.run.name} in {run_dir.root}")
    print("stage seconds: " + ", ".join(f"{s} {t}" for s, t in timings.items()))
    report = run_dir.stage_dir("eval") / "report.json"
    if report.is_file():
        import json

        from slmtune.stages.eval import summary_table

        print(summary_table(json.loads(report.read_text())))
    return {"timings": timings, "results": results}
