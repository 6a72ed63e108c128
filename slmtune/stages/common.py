"""What every stage shares: its run directory, input hash, tracker and model/dialect resolution."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slmtune.config import SlmtuneConfig, config_to_dict
from slmtune.models.dialects import get_dialect
from slmtune.models.families import FAMILIES, Family, family_for_model_type
from slmtune.models.sources import ResolvedSource, is_hub_source, local_source_path, resolve_hub, resolve_source
from slmtune.rundir import RunDir, files_fingerprint, stable_hash
from slmtune.tracking import Tracker, start_tracking

log = logging.getLogger("slmtune")


def family_of(cfg: SlmtuneConfig) -> Family:
    if cfg.model.family not in FAMILIES:
        raise ValueError(f"model.family: unknown family {cfg.model.family!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[cfg.model.family]


def dialect_of(cfg: SlmtuneConfig):
    return get_dialect(cfg.model.dialect or family_of(cfg).default_dialect)


def input_hash(run: RunDir, cfg: SlmtuneConfig, sections: list[str], upstream: list[str], *,
               files: Sequence[Path] = (), ignore: tuple[str, ...] = ()) -> str:
    """Hash of what a stage's output depends on: the config sections it reads (less the ``section.key`` names in
    ``ignore``, which say how to run it, not what it makes), the completion ids of the stages it reads from, and a
    fingerprint of the ``files`` outside the run it reads (a local model, a user suite, an adapter directory)."""
    config = config_to_dict(cfg)
    chosen = {s: dict(config[s]) for s in sections}
    for name in ignore:
        section, key = name.split(".", 1)
        chosen[section].pop(key)
    inputs = {"config": chosen, "upstream": {stage: run.completion_id(stage) for stage in upstream},
              "files": files_fingerprint(list(files)) if files else None}
    hub = hub_snapshots(cfg) if "model" in sections else {}
    if hub:  # a branch such as main moves: the commit it resolves to now is an input
        inputs["hub"] = hub
    return stable_hash(inputs)


def hub_snapshots(cfg: SlmtuneConfig) -> dict[str, str]:
    """``{"source"|"tokenizer_source": "<hub id>@<commit>"}`` for the model sources that are hub ids, resolved now
    (downloaded unless HF_HUB_OFFLINE; :class:`~slmtune.models.sources.HubModelUnavailableError` when impossible)."""
    found = {}
    for key in ("source", "tokenizer_source"):
        value = getattr(cfg.model, key)
        if is_hub_source(value):
            revision = cfg.model.revision if key == "source" else None
            found[key] = resolve_hub(value, revision=revision, trust_remote_code=cfg.model.trust_remote_code).identity
    return found


def resolved_model(cfg: SlmtuneConfig, run: RunDir, stage: str) -> ResolvedSource:
    """``model.source`` resolved to a local checkpoint, checked against ``model.family`` (the checkpoint's
    ``config.json`` ``model_type``), and recorded in run.json as what ``stage`` reads (identity, hub id and resolved
    commit, local path)."""
    source = resolve_source(cfg.model.source, tokenizer_source=cfg.model.tokenizer_source,
                            revision=cfg.model.revision, seed=cfg.model.seed,
                            trust_remote_code=cfg.model.trust_remote_code)
    config_path = Path(source.path) / "config.json"
    model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
    family = family_of(cfg)
    if model_type not in family.model_types:
        try:
            hint = f"; its family is {family_for_model_type(model_type).name}: set model.family accordingly"
        except ValueError as err:
            hint = f"; {err}"
        raise ValueError(f"model.family: {family.name!r} does not fit {source.identity} ({config_path}: model_type "
                         f"{model_type!r}, expected one of {list(family.model_types)}){hint}")
    run.record_model(stage, {"identity": source.identity, "hub_id": source.hub_id, "revision": source.revision,
                             "path": source.path})
    return source


def local_model_paths(cfg: SlmtuneConfig) -> list[Path]:
    """``model.source`` / ``model.tokenizer_source`` where they name local files (a checkpoint directory or a
    GGUF), whose contents an input hash must cover; embedded, random and hub sources are named by the config."""
    paths = (local_source_path(cfg.model.source), local_source_path(cfg.model.tokenizer_source))
    return [path for path in paths if path is not None]


@contextmanager
def tracked(cfg: SlmtuneConfig, run: RunDir, stage: str):
    """A W&B run for this stage (offline by default), finished however the stage ends."""
    tracker = start_tracking(cfg.tracking.mode, cfg.tracking.project, cfg.tracking.entity, run.root,
                             group=f"{cfg.recipe}-{cfg.run.name}", stage=stage, config=config_to_dict(cfg))
    try:
        yield tracker
    finally:
        tracker.finish()


def prepare_run(cfg: SlmtuneConfig) -> RunDir:
    run = RunDir(cfg.run_dir)
    run.root.mkdir(parents=True, exist_ok=True)
    run.update(config=config_to_dict(cfg))
    return run


def log_summary(tracker: Tracker, metrics: dict[str, Any]) -> None:
    flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}
    tracker.summary(flat)


def relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
