"""Stage 1 — data: verified, decontaminated tool-call samples from the function registry.

Usage: python -m slmtune data +recipe=gemma270m data.num_samples=20000
Writes <run>/data/{train,val,test}.jsonl, stats.json and card.md.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from slmtune.config import SlmtuneConfig
from slmtune.data.datasets_io import generate_dataset, write_dataset
from slmtune.data.registry import CATALOG_DIR, load_catalog
from slmtune.stages.common import dialect_of, input_hash, log, log_summary, prepare_run, tracked

SECTIONS = ["data"]


def catalog_fingerprint(directory: Path) -> str:
    """sha256 over the catalog files and the implementation modules they reference."""
    digest = hashlib.sha256()
    files = sorted(directory.glob("*.json")) + sorted((Path(__file__).parent.parent / "catalog").glob("*.py"))
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def upstream_stages(cfg: SlmtuneConfig) -> list[str]:
    """The stages this one reads (none: data is the first)."""
    return []


def stage_hash(cfg: SlmtuneConfig, run) -> str:
    catalog = Path(cfg.data.catalog_dir) if cfg.data.catalog_dir else CATALOG_DIR
    return (input_hash(run, cfg, SECTIONS, upstream_stages(cfg)) + ":" + catalog_fingerprint(catalog)[:16] + ":"
            + dialect_of(cfg).name)


def run(cfg: SlmtuneConfig) -> dict[str, Any]:
    run_dir = prepare_run(cfg)
    catalog_dir = Path(cfg.data.catalog_dir) if cfg.data.catalog_dir else CATALOG_DIR
    with run_dir.stage_output("data", stage_hash(cfg, run_dir)) as out, tracked(cfg, run_dir, "data") as tracker:
        registry = load_catalog(catalog_dir)
        dataset = generate_dataset(
            registry, num_samples=cfg.data.num_samples, category_mix=dict(cfg.data.category_mix),
            dialect_name=dialect_of(cfg).name, seed=cfg.data.seed, val_fraction=cfg.data.val_fraction,
            test_fraction_tools=cfg.data.test_fraction_tools, augment_probability=cfg.data.augment_probability,
            masking_probability=cfg.data.masking_probability, decontaminate=cfg.data.decontaminate)
        write_dataset(dataset, out)
        stats = dataset.stats
        log_summary(tracker, {"num_samples": stats["num_samples"], "num_tools": stats["num_tools"],
                              "num_domains": stats["num_domains"], "contamination_hits": stats["contamination_hits"]})
    log.info("data: %d samples (%s) from %d tools in %d domains -> %s", stats["num_samples"],
             stats["per_category"], stats["num_tools"], stats["num_domains"], run_dir.stage_dir("data"))
    return stats
