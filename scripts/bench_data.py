"""Benchmark data generation: verified samples per minute on one core.

Runs ``slmtune.data.datasets_io.generate_dataset`` end to end in this single process (synthesis of all five categories
with augmentation, the four verifiers on every sample, BFCL decontamination, train/val/test split) and reports
verified samples kept per minute. The named baseline, measured in the same run on the same samples, is the
straightforward verification path — ``registry.validate_call`` (a fresh jsonschema validator per call) plus
``registry.execute`` (which validates again) — against slmtune's cached per-schema validators.

    python scripts/bench_data.py                       # 20,000 samples, hermes dialect, updates BENCHMARKS.md
    python scripts/bench_data.py --num-samples 5000 --no-write

The last line printed is ``verified_samples_per_min=<x>``. The ``## Data generation`` section of BENCHMARKS.md is
replaced (other sections are kept); the file is created if absent.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks_md import update_section  # noqa: E402

import slmtune.data.verification as verification  # noqa: E402
from slmtune.data.datasets_io import generate_dataset  # noqa: E402
from slmtune.data.decontamination import BfclIndex  # noqa: E402
from slmtune.data.registry import load_catalog, validate_call  # noqa: E402
from slmtune.data.verification import ToolLookup, check_format, check_grounding, clear_caches, verify_sample  # noqa: E402
from slmtune.models.dialects import get_dialect  # noqa: E402

SECTION = "## Data generation"
TARGET_PER_MIN = 50_000


def baseline_verify(sample: dict, registry, dialect, lookup) -> list[str]:
    """Same four checks, the straightforward way: validate_call builds a jsonschema validator per call and
    registry.execute validates once more before running the implementation."""
    reasons = []
    if not check_format(sample, dialect):
        reasons.append("format")
    schema_ok = True
    for call in sample["tool_calls"]:
        tool = registry.get(call["name"])
        if validate_call(tool, call):
            schema_ok = False
    if not schema_ok:
        reasons.append("schema")
    else:
        for call in sample["tool_calls"]:
            if registry.get(call["name"]).implementation is None:
                continue
            try:
                registry.execute(call)
            except Exception:  # noqa: BLE001
                reasons.append("execution")
                break
    if not check_grounding(sample, lookup):
        reasons.append("grounding")
    return reasons


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-samples", type=int, default=20_000)
    parser.add_argument("--dialect", default="hermes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--catalog-dir", default=None)
    parser.add_argument("--baseline-samples", type=int, default=3000,
                        help="samples re-verified by both verification paths for the ratio")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument("--benchmarks", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()

    t0 = time.perf_counter()
    registry = load_catalog(args.catalog_dir) if args.catalog_dir else load_catalog()
    index = BfclIndex.load()
    dialect = get_dialect(args.dialect)
    setup_s = time.perf_counter() - t0

    # Time spent inside catalog implementations (the execution check), to tell it apart from slmtune's own work.
    impl_seconds: dict[str, float] = {}
    plain_execute = verification._execute

    def timed_execute(tool, arguments):
        start = time.perf_counter()
        try:
            return plain_execute(tool, arguments)
        finally:
            function = getattr(tool.implementation, "__wrapped__", tool.implementation)
            key = f"{tool.domain}:{getattr(function, '__name__', '?')}"
            impl_seconds[key] = impl_seconds.get(key, 0.0) + time.perf_counter() - start

    verification._execute = timed_execute
    t0 = time.perf_counter()
    dataset = generate_dataset(registry, num_samples=args.num_samples, dialect_name=args.dialect, seed=args.seed,
                               bfcl_index=index)
    gen_s = time.perf_counter() - t0
    verification._execute = plain_execute
    impl_total = sum(impl_seconds.values())
    slowest = sorted(impl_seconds.items(), key=lambda kv: -kv[1])[:3]
    stats = dataset.stats
    kept = stats["num_samples"]
    per_min = rate(kept, gen_s) * 60

    # Verification alone: cached (slmtune) vs the named baseline, same samples, same process.
    samples = [s for split in dataset.splits.values() for s in split][: args.baseline_samples]
    full = dataset.registry
    lookup = ToolLookup(full)
    clear_caches()          # cold: validators compiled and calls executed again, as the baseline does
    t0 = time.perf_counter()
    for s in samples:
        assert verify_sample(s, full, dialect) == []
    cached_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in samples:
        assert baseline_verify(s, full, dialect, lookup) == []
    base_s = time.perf_counter() - t0
    speedup = base_s / cached_s if cached_s else float("inf")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    command = f"python scripts/bench_data.py --num-samples {args.num_samples} --dialect {args.dialect}" + \
              (f" --seed {args.seed}" if args.seed else "") + \
              (f" --catalog-dir {args.catalog_dir}" if args.catalog_dir else "")
    machine = (f"{platform.platform()}, {platform.machine()}, Python {platform.python_version()}, "
               f"{os.cpu_count()} CPUs visible (run single-process, single-threaded: one core)")
    rows = [
        ("catalog", f"{stats['num_tools']} tools, {stats['num_domains']} domains, "
                    f"{stats['num_derived_tools']} derived tools"),
        ("verified samples kept", f"{kept:,} of {args.num_samples:,} requested "
                                  f"({stats['verification']['checked']:,} candidates verified)"),
        ("rejected by reason", ", ".join(f"{k} {v}" for k, v in stats["rejected_by_reason"].items())),
        ("contamination hits dropped / in kept data",
         f"{stats['contamination_hits']} / {stats['contamination']['hits_in_kept_samples']}"),
        ("setup (catalog + BFCL index + dialect)", f"{setup_s:.2f} s"),
        ("generation wall time (synthesis + 4 verifiers + decontamination + split)", f"{gen_s:.2f} s"),
        ("of which inside catalog implementations (execution check)",
         f"{impl_total:.2f} s; slowest: " + ", ".join(f"{k} {v:.2f} s" for k, v in slowest)),
        ("**verified samples / minute (end to end)**", f"**{per_min:,.0f}** (target ≥ {TARGET_PER_MIN:,}: "
                                                       f"{'met' if per_min >= TARGET_PER_MIN else 'NOT met'})"),
        (f"verification only, slmtune (cold caches: per-schema validators, memoised executions), "
         f"{len(samples):,} samples",
         f"{rate(len(samples), cached_s):,.0f} samples/s"),
        ("verification only, baseline (validate_call + registry.execute)",
         f"{rate(len(samples), base_s):,.0f} samples/s"),
        ("speed-up vs baseline", f"{speedup:.1f}×"),
        ("peak RSS", f"{peak_mib:,.0f} MiB"),
    ]
    table = "\n".join(["| measure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])
    body = "\n".join([
        f"{SECTION} (`scripts/bench_data.py`)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}  ",
        f"Date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        table,
        "",
    ])
    print(body)
    if not args.no_write:
        update_section(Path(args.benchmarks), SECTION, body)
        print(f"updated {args.benchmarks}")
    print(f"verified_samples_per_min={per_min:.0f}")


if __name__ == "__main__":
    main()
