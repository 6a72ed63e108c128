"""Dataset generation, writing and loading: synthesis → verification → decontamination → train/val/test.

:func:`generate_dataset` holds out whole catalog tools (stratified by domain) for the test split, so test tools are
unseen in train and val; derives augmented/masked variants of the training tools; builds samples per category until
``num_samples`` verified, uncontaminated, unique samples exist (or a bounded number of attempts is spent, then the
shortfall is reported); and returns a :class:`GeneratedDataset`. :func:`write_dataset` writes the DESIGN §2 ``data/``
directory (``train.jsonl``, ``val.jsonl``, ``test.jsonl``, ``stats.json``, ``card.md``); :func:`load_dataset_dict`
reads it back as a ``datasets.DatasetDict``.

In the DatasetDict the columns with heterogeneous nested structure — ``tools``, ``tool_calls`` and ``provenance`` —
are stored as JSON strings (Arrow needs one schema per column, and every tool has its own parameter schema);
``messages`` stays a list of ``{"role", "content", "name", "tool_calls"}`` structs (``tool_calls`` a JSON string,
``""`` when the message has none; ``name`` ``""`` unless it is a tool result: the ``multi_turn`` shapes of
:mod:`slmtune.data.multiturn`). :func:`decode_row` turns a row back into a sample.
"""

from __future__ import annotations

import json
import math
import platform
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmtune.data.augmentation import Augmenter
from slmtune.data.multiturn import is_conversation
from slmtune.data.registry import Tool, ToolRegistry
from slmtune.data.synthesis import (
    CATEGORIES,
    DEFAULT_CATEGORY_MIX,
    SampleBuilder,
    SynthesisConfig,
    ToolProfile,
    add_derived_profiles,
    build_profiles,
)
from slmtune.data.verification import REASONS, ToolLookup, VerificationStats, verify_sample
from slmtune.progress import Progress
from slmtune.rundir import iter_jsonl, write_jsonl

SPLITS = ("train", "val", "test")
JSON_COLUMNS = ("tools", "tool_calls", "provenance")


@dataclass
class GeneratedDataset:
    """Samples per split (``train``, ``val``, ``test``) and the generation statistics (``stats.json``).

    Samples share their tool function dicts (one object per tool, for speed and memory): treat them as read-only
    or copy before editing."""

    splits: dict[str, list[dict[str, Any]]]
    stats: dict[str, Any]
    registry: ToolRegistry | None = field(default=None, repr=False)   # every tool used, derived ones included


def normalise_mix(category_mix: Mapping[str, float]) -> dict[str, float]:
    unknown = set(category_mix) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"category_mix: unknown categories {sorted(unknown)}; known: {list(CATEGORIES)}")
    if any(w < 0 for w in category_mix.values()):
        raise ValueError("category_mix: weights must be >= 0")
    total = float(sum(category_mix.values()))
    if total <= 0:
        raise ValueError("category_mix: weights sum to zero")
    return {c: category_mix.get(c, 0.0) / total for c in CATEGORIES if category_mix.get(c, 0.0) > 0}


def allocate(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split ``total`` into integer counts proportional to ``weights`` (largest remainder; deterministic)."""
    raw = {k: total * w for k, w in weights.items()}
    counts = {k: int(math.floor(v)) for k, v in raw.items()}
    rest = total - sum(counts.values())
    for k in sorted(raw, key=lambda k: (-(raw[k] - counts[k]), k))[:rest]:
        counts[k] += 1
    return counts


def hold_out_tools(tools: Sequence[Tool], fraction: float, seed: int) -> set[str]:
    """Names of whole tools held out for the test split: ``fraction`` of the tools, allocated to domains in
    proportion to their size (largest remainder), every domain keeping at least one training tool."""
    if fraction <= 0:
        return set()
    by_domain: dict[str, list[Tool]] = defaultdict(list)
    for tool in tools:
        by_domain[tool.domain or "general"].append(tool)
    rng = random.Random(f"holdout:{seed}")
    total = round(fraction * len(tools))
    quotas = {d: fraction * len(ts) for d, ts in by_domain.items()}
    counts = {d: min(int(q), len(by_domain[d]) - 1) for d, q in quotas.items()}
    order = sorted(quotas, key=lambda d: (-(quotas[d] - int(quotas[d])), rng.random()))
    for d in order:
        if sum(counts.values()) >= total:
            break
        if counts[d] < len(by_domain[d]) - 1:
            counts[d] += 1
    held: set[str] = set()
    for domain in sorted(by_domain):
        candidates = sorted(t.name for t in by_domain[domain] if t.queries)
        rng.shuffle(candidates)
        held.update(candidates[:counts[domain]])
    return held


def _dedupe_key(sample: Mapping[str, Any]) -> str:
    user = "\n".join(m["content"] for m in sample["messages"] if m["role"] == "user")
    return sample["category"] + "\x00" + user + "\x00" + ",".join(t["name"] for t in sample["tools"])


def generate_dataset(
    registry: ToolRegistry | Iterable[Tool],
    *,
    num_samples: int,
    category_mix: Mapping[str, float] | None = None,
    dialect_name: str = "hermes",
    seed: int = 0,
    val_fraction: float = 0.05,
    test_fraction_tools: float = 0.15,
    test_fraction: float | None = None,
    augment_probability: float = 0.5,
    masking_probability: float = 0.1,
    variants_per_tool: int = 3,
    masked_per_tool: int = 1,
    mask_params_probability: float = 0.5,
    augment_test: bool = False,
    decontaminate: bool = True,
    synthesis: SynthesisConfig | None = None,
    dialect: Any = None,
    bfcl_index: Any = None,
    max_attempts_factor: float = 4.0,
) -> GeneratedDataset:
    """Generate ``num_samples`` verified samples (all splits together).

    - ``category_mix``: relative weights of the categories (normalised; missing = 0).
    - ``test_fraction_tools``: share of catalog tools held out (stratified by domain) for ``test``; ``test_fraction``
      (default: the same number) is the share of samples in ``test``; ``val_fraction`` the share in ``val`` (val
      uses the training tools). Test samples offer held-out tools only (distractors too, where enough exist).
    - ``augment_probability`` / ``masking_probability``: chance that a training tool slot shows a derived /
      masked variant (``variants_per_tool`` derived and ``masked_per_tool`` masked variants per tool).
    - ``dialect``: an object overriding ``dialect_name`` (anything with ``render_calls`` and ``parse``).
    - ``bfcl_index``: a prebuilt :class:`~slmtune.data.decontamination.BfclIndex` (default: loaded when
      ``decontaminate``; raises with the install command when bfcl-eval is missing).
    """
    started = time.perf_counter()
    tools = list(registry)
    if not tools:
        raise ValueError("generate_dataset: the registry holds no tools")
    mix = normalise_mix(category_mix or DEFAULT_CATEGORY_MIX)
    if dialect is None:
        from slmtune.models.dialects import get_dialect
        dialect = get_dialect(dialect_name)
    if decontaminate and bfcl_index is None:
        from slmtune.data.decontamination import BfclIndex
        bfcl_index = BfclIndex.load()
    excluded_bfcl = sorted(t.name for t in tools if decontaminate and bfcl_index.is_bfcl_function(t.name))
    tools = [t for t in tools if t.name not in set(excluded_bfcl)]

    held_out = hold_out_tools(tools, test_fraction_tools, seed)
    train_tools = [t for t in tools if t.name not in held_out]
    test_tools = [t for t in tools if t.name in held_out]

    augmenter = Augmenter(seed=seed, forbidden_names=bfcl_index.function_names if decontaminate else (),
                          mask_params_probability=mask_params_probability, reserved_names=[t.name for t in tools])
    use_variants = augment_probability > 0 or masking_probability > 0
    train_profiles = build_profiles(train_tools)
    derived_count = 0
    if use_variants:
        derived = augmenter.derive_pool(train_tools, variants_per_tool=variants_per_tool,
                                        masked_per_tool=masked_per_tool)
        add_derived_profiles(train_profiles, derived)
        derived_count += sum(len(v) for v in derived.values())
    test_profiles = build_profiles(test_tools)
    if augment_test and use_variants:
        derived = augmenter.derive_pool(test_tools, variants_per_tool=variants_per_tool,
                                        masked_per_tool=masked_per_tool)
        add_derived_profiles(test_profiles, derived)
        derived_count += sum(len(v) for v in derived.values())

    dialect_renamed = _make_dialect_safe(train_profiles, dialect, augmenter)
    dialect_renamed += _make_dialect_safe(test_profiles, dialect, augmenter)

    all_tools: dict[str, Tool] = {}
    for profiles in (train_profiles, test_profiles):
        for group in profiles.values():
            for profile in group:
                all_tools[profile.name] = profile.tool
    lookup = ToolLookup(all_tools)

    config = synthesis or SynthesisConfig()
    config = SynthesisConfig(**{**config.__dict__, "augment_probability": augment_probability,
                                "masking_probability": masking_probability})
    n_test = 0 if not test_tools else round(num_samples * (test_fraction if test_fraction is not None
                                                             else test_fraction_tools))
    n_val = round(num_samples * val_fraction)
    n_train = num_samples - n_test - n_val

    vstats = VerificationStats()
    contamination: Counter = Counter()
    contamination_examples: list[str] = []
    duplicates = 0
    unbuildable = 0
    attempts_total = 0
    seen: set[str] = set()
    shortfall: dict[str, dict[str, int]] = {}
    progress = Progress("data: verified samples", total=num_samples, unit="samples")

    def run(builder: SampleBuilder, split_index: int, split: str, target: int) -> list[dict[str, Any]]:
        nonlocal duplicates, unbuildable, attempts_total
        out: list[dict[str, Any]] = []
        for category, count in allocate(target, mix).items():
            kept = 0
            attempt = 0
            max_attempts = int(count * max_attempts_factor) + 50
            while kept < count and attempt < max_attempts:
                sample_seed = ((seed & 0xFFFFFFFF) << 32) | (split_index << 28) | (CATEGORIES.index(category) << 24) \
                    | attempt
                attempt += 1
                sample = builder.build(category, sample_seed)
                if sample is None:
                    unbuildable += 1
                    continue
                reasons = verify_sample(sample, lookup, dialect)
                vstats.record(reasons, sample["id"])
                if reasons:
                    continue
                if decontaminate:
                    hits = bfcl_index.check(sample)
                    if hits:
                        contamination["samples"] += 1
                        for hit in hits:
                            contamination[hit.split(":", 1)[0]] += 1
                        if len(contamination_examples) < 20:
                            contamination_examples.append(hits[0])
                        continue
                key = _dedupe_key(sample)
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                out.append(sample)
                kept += 1
                progress.update(1, note=split)
            attempts_total += attempt
            if kept < count:
                shortfall.setdefault(split, {})[category] = count - kept
        return out

    splits: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    if n_train + n_val > 0:
        builder = SampleBuilder(train_profiles, config, use_variants=use_variants)
        seen_pool = run(builder, 0, "train+val", n_train + n_val)
        rng = random.Random(f"split:{seed}")
        by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for sample in seen_pool:
            by_category[sample["category"]].append(sample)
        val_counts = allocate(min(n_val, len(seen_pool)), {c: len(v) / max(1, len(seen_pool))
                                                            for c, v in by_category.items()})
        for category in sorted(by_category):
            group = by_category[category]
            rng.shuffle(group)
            k = val_counts.get(category, 0)
            splits["val"].extend(group[:k])
            splits["train"].extend(group[k:])
    if n_test > 0:
        test_builder = SampleBuilder(test_profiles, config, use_variants=augment_test and use_variants,
                                     fallback=build_profiles(train_tools))
        splits["test"] = run(test_builder, 1, "test", n_test)
    progress.close()

    for split in SPLITS:
        rng = random.Random(f"order:{seed}:{split}")
        rng.shuffle(splits[split])
        for i, sample in enumerate(splits[split]):
            sample["id"] = f"{split}-{i:06d}"

    kept_hits = sum(1 for s in SPLITS for sample in splits[s] if bfcl_index.check(sample)) if decontaminate else None
    elapsed = time.perf_counter() - started
    stats = _stats(splits, tools=tools, train_tools=train_tools, held_out=held_out, vstats=vstats,
                   contamination=contamination, contamination_examples=contamination_examples,
                   kept_hits=kept_hits, decontaminate=decontaminate, bfcl_index=bfcl_index,
                   excluded_bfcl=excluded_bfcl, duplicates=duplicates, unbuildable=unbuildable,
                   attempts=attempts_total, shortfall=shortfall, derived_count=derived_count,
                   dialect_renamed=dialect_renamed,
                   elapsed=elapsed, num_samples=num_samples,
                   settings={"category_mix": mix, "dialect": dialect_name if dialect_name else None, "seed": seed,
                             "val_fraction": val_fraction, "test_fraction_tools": test_fraction_tools,
                             "test_fraction": test_fraction, "augment_probability": augment_probability,
                             "masking_probability": masking_probability, "variants_per_tool": variants_per_tool,
                             "masked_per_tool": masked_per_tool, "augment_test": augment_test,
                             "decontaminate": decontaminate})
    return GeneratedDataset(splits=splits, stats=stats, registry=ToolRegistry(all_tools.values()))


def _dialect_accepts(dialect: Any, function: Mapping[str, Any]) -> bool:
    validate = getattr(dialect, "validate_tools", None)
    if validate is None:
        return True
    try:
        validate([function])
    except (ValueError, TypeError):
        return False
    return True


def _make_dialect_safe(profiles: dict[str, list[ToolProfile]], dialect: Any, augmenter: Augmenter) -> list[str]:
    """Tools the dialect cannot express (e.g. dotted names or keyword parameters for ``pythonic``): an original
    is replaced by a variant with identifier-safe names (op ``dialect_safe``), a derived variant is dropped.
    Returns the original names that were replaced."""
    renamed = []
    for source, group in profiles.items():
        original = group[0]
        kept = [p for p in group[1:] if _dialect_accepts(dialect, p.function)]
        if not _dialect_accepts(dialect, original.function):
            fixed = augmenter.dialect_safe(original.tool)
            if fixed is None or not _dialect_accepts(dialect, fixed.tool.function_dict()):
                raise ValueError(f"dialect {getattr(dialect, 'name', dialect)!r} cannot express tool {source!r}")
            original = ToolProfile.build(fixed.tool, source=source, ops=fixed.ops)
            renamed.append(source)
        group[:] = [original] + kept
    return renamed


def _multi_turn_stats(samples: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Conversations by flow, their assistant turns (targets) by kind, and arguments taken from tool results."""
    conversations = [s for s in samples if is_conversation(s)]
    turns = [m for s in conversations for m in s["messages"] if m.get("role") == "assistant"]
    return {"conversations": len(conversations),
            "flows": dict(sorted(Counter(s["provenance"].get("flow") for s in conversations).items())),
            "assistant_turns": len(turns), "call_turns": sum(1 for m in turns if m.get("tool_calls")),
            "text_turns": sum(1 for m in turns if not m.get("tool_calls")),
            "tool_results": sum(1 for s in conversations for m in s["messages"] if m.get("role") == "tool"),
            "arguments_from_results": sum(len(s["provenance"].get("from_results") or []) for s in conversations)}


def _stats(splits: Mapping[str, list[dict[str, Any]]], **kw: Any) -> dict[str, Any]:
    everything = [s for split in SPLITS for s in splits[split]]
    per_category = Counter(s["category"] for s in everything)
    per_domain = Counter(s["domain"] for s in everything)
    augmentation = Counter(op for s in everything for op in s["provenance"]["augmentation"])
    tool_names = {t["name"] for s in everything for t in s["tools"]}
    tools: list[Tool] = kw["tools"]
    vstats: VerificationStats = kw["vstats"]
    contamination: Counter = kw["contamination"]
    per_split = {}
    for split in SPLITS:
        samples = splits[split]
        per_split[split] = {
            "num_samples": len(samples),
            "per_category": {c: n for c in CATEGORIES if (n := sum(1 for s in samples if s["category"] == c))},
            "num_source_tools": len({n for s in samples for n in s["provenance"]["source_tools"]}),
        }
    return {
        "num_samples": len(everything),
        "num_samples_requested": kw["num_samples"],
        "num_tools": len(tools),
        "num_domains": len({t.domain or "general" for t in tools}),
        "num_implemented_tools": sum(1 for t in tools if t.implementation is not None),
        "num_derived_tools": kw["derived_count"],
        "dialect_renamed_tools": kw["dialect_renamed"],
        "num_tool_names_in_samples": len(tool_names),
        "per_category": {c: per_category[c] for c in CATEGORIES if per_category[c]},
        "multi_turn": _multi_turn_stats(everything),
        "per_domain": dict(sorted(per_domain.items())),
        "per_split": per_split,
        "held_out_tools": sorted(kw["held_out"]),
        "rejected_by_reason": {r: int(vstats.by_reason.get(r, 0)) for r in REASONS},
        "verification": vstats.as_dict(),
        "contamination_hits": int(contamination.get("samples", 0)),
        "contamination": {
            "checked": kw["decontaminate"],
            "samples_dropped": int(contamination.get("samples", 0)),
            "function_name_hits": int(contamination.get("function_name", 0)),
            "ngram_hits": int(contamination.get("ngram", 0)),
            "hits_in_kept_samples": kw["kept_hits"],
            "examples": kw["contamination_examples"],
            "catalog_tools_excluded_for_bfcl_names": kw["excluded_bfcl"],
            "bfcl_index": kw["bfcl_index"].summary() if kw["decontaminate"] else None,
        },
        "duplicates_dropped": kw["duplicates"],
        "unbuildable_attempts": kw["unbuildable"],
        "attempts": kw["attempts"],
        "shortfall": kw["shortfall"],
        "augmentation_ops": dict(sorted(augmentation.items())),
        "generation_seconds": round(kw["elapsed"], 3),
        "verified_samples_per_minute": round(len(everything) / kw["elapsed"] * 60, 1) if kw["elapsed"] else None,
        "settings": kw["settings"],
    }


# ----------------------------------------------------------------------------------------------------------------
# Writing and reading

def write_dataset(dataset: GeneratedDataset, out_dir: Path | str) -> Path:
    """Write ``train.jsonl``, ``val.jsonl``, ``test.jsonl``, ``stats.json`` and ``card.md`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        write_jsonl(out / f"{split}.jsonl", dataset.splits.get(split, []))
    (out / "stats.json").write_text(json.dumps(dataset.stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "card.md").write_text(render_card(dataset), encoding="utf-8")
    return out


def _table(rows: Iterable[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_card(dataset: GeneratedDataset) -> str:
    """The dataset card (markdown): what, how, counts, verification and decontamination results."""
    s = dataset.stats
    settings = s.get("settings", {})
    c = s["contamination"]
    v = s["verification"]
    example = next((x for split in SPLITS for x in dataset.splits.get(split, [])), None)
    parts = [
        "# slmtune synthetic function-calling dataset",
        "",
        "## What",
        f"{s['num_samples']} function-calling samples in the five BFCL single-turn categories "
        f"(simple, multiple, parallel, parallel_multiple, irrelevance) and multi-turn conversations with executed "
        f"tool results (`multi_turn`: {s['multi_turn']['conversations']} conversations, "
        f"{s['multi_turn']['assistant_turns']} assistant turns, {s['multi_turn']['arguments_from_results']} "
        f"arguments taken from a tool result), built from {s['num_tools']} catalog tools "
        f"in {s['num_domains']} domains ({s['num_implemented_tools']} with executable implementations) and "
        f"{s['num_derived_tools']} derived tools. Each sample holds the offered tools (OpenAI function objects), "
        "the messages, the gold `tool_calls` (empty for irrelevance; arguments as JSON objects in schema order) "
        "and its provenance (source catalog tools, augmentation ops, templates, seed). A `multi_turn` sample holds "
        "the whole conversation in `messages` (assistant calls, `tool` results, text answers; every assistant "
        "message is a target) and an empty `tool_calls`.",
        "",
        "## How",
        "- **Query synthesis**: catalog query templates realised with catalog values said naturally (numbers as "
        "digits, lists as \"a, b and c\", booleans/enums via mentions, dates as ISO or spelled out), wrapped in "
        "varied phrasings; parallel requests are compact lists or joined clauses.",
        "- **Unseen-tool augmentation** (training tools only): renamed functions and parameters, paraphrased "
        "descriptions, reordered and safely retyped parameters, and Hammer-style function masking "
        f"(augment probability {settings.get('augment_probability')}, masking probability "
        f"{settings.get('masking_probability')}).",
        f"- **Unseen-tool test split**: {len(s['held_out_tools'])} whole catalog tools (stratified by domain) are "
        "held out; `test` uses only them, `train`/`val` never show them.",
        "- **Verification** (every sample): format (renders and parses back unchanged through the "
        f"`{settings.get('dialect')}` dialect), schema (JSON Schema), execution (implementations run without error), "
        "grounding (every argument value stated in the user turn or the parameter's default).",
        "- **Decontamination** against BFCL v4: no BFCL function name and no word 8-gram of a BFCL question.",
        "",
        "## Counts",
        _table(((split, d["num_samples"], d["num_source_tools"],
                 ", ".join(f"{k} {n}" for k, n in d["per_category"].items()))
                for split, d in s["per_split"].items()), ("split", "samples", "catalog tools", "per category")),
        "",
        _table(((k, n) for k, n in s["per_category"].items()), ("category", "samples")),
        "",
        _table(((k, n) for k, n in s["per_domain"].items()), ("domain", "samples")),
        "",
        "(`general`: chit-chat irrelevance requests that belong to no catalog domain.)",
        "",
        "## Verification",
        f"{v['checked']} candidate samples checked, {v['passed']} passed, {v['rejected']} rejected.",
        "",
        _table(((r, n) for r, n in s["rejected_by_reason"].items()), ("rejected by reason", "samples")),
        "",
        f"Duplicates dropped: {s['duplicates_dropped']}. Shortfall: {s['shortfall'] or 'none'}.",
        "",
        "## Decontamination",
    ]
    if c["checked"]:
        idx = c["bfcl_index"] or {}
        parts += [
            f"Checked against {idx.get('files')} BFCL files ({idx.get('questions')} questions, "
            f"{idx.get('function_names')} function names, {idx.get('ngrams')} distinct 8-grams).",
            f"Samples dropped: {c['samples_dropped']} (function-name hits {c['function_name_hits']}, 8-gram hits "
            f"{c['ngram_hits']}). Catalog tools excluded for BFCL names: "
            f"{c['catalog_tools_excluded_for_bfcl_names'] or 'none'}. **Hits in the kept data: "
            f"{c['hits_in_kept_samples']}.**",
        ]
    else:
        parts.append("Not run (decontaminate=false).")
    parts += [
        "",
        "## Files",
        "`train.jsonl`, `val.jsonl`, `test.jsonl` (one sample per line), `stats.json`, this card. "
        "`slmtune.data.datasets_io.load_dataset_dict(dir)` loads a `datasets.DatasetDict`; there `tools`, `tool_calls` "
        "and `provenance` are JSON strings (heterogeneous schemas) — `decode_row` restores a sample.",
        "",
        f"Generated in {s['generation_seconds']} s on {platform.platform()} with seed {settings.get('seed')}.",
    ]
    if example is not None:
        parts += ["", "## Example", "```json", json.dumps(example, indent=2, ensure_ascii=False)[:3000], "```"]
    return "\n".join(parts) + "\n"


def _features() -> Any:
    import datasets
    return datasets.Features({
        "id": datasets.Value("string"),
        "category": datasets.Value("string"),
        "domain": datasets.Value("string"),
        "messages": [{"role": datasets.Value("string"), "content": datasets.Value("string"),
                      "name": datasets.Value("string"), "tool_calls": datasets.Value("string")}],
        "tools": datasets.Value("string"),
        "tool_calls": datasets.Value("string"),
        "provenance": datasets.Value("string"),
    })


def to_row(sample: Mapping[str, Any]) -> dict[str, Any]:
    """A sample as a DatasetDict row (``tools``/``tool_calls``/``provenance`` as JSON strings)."""
    return {
        "id": sample["id"], "category": sample["category"], "domain": sample["domain"],
        "messages": [{"role": m["role"], "content": m.get("content"), "name": m.get("name") or "",
                      "tool_calls": json.dumps(m["tool_calls"], ensure_ascii=False) if m.get("tool_calls") else ""}
                     for m in sample["messages"]],
        **{k: json.dumps(sample.get(k, [] if k != "provenance" else {}), ensure_ascii=False) for k in JSON_COLUMNS},
    }


def decode_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`to_row`."""
    out = dict(row)
    for key in JSON_COLUMNS:
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    if isinstance(out.get("messages"), list):
        out["messages"] = [_decode_message(m) for m in out["messages"]]
    return out


def _decode_message(row: Mapping[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": row["role"]}
    if row.get("content") is not None or not row.get("tool_calls"):
        message["content"] = row.get("content")
    if row.get("tool_calls"):
        message["tool_calls"] = json.loads(row["tool_calls"])
    if row.get("name"):
        message["name"] = row["name"]
    return message


def load_dataset_dict(directory: Path | str) -> Any:
    """``train``/``val``/``test`` JSONL files as a ``datasets.DatasetDict`` (JSON-string columns, see module doc)."""
    import datasets
    directory = Path(directory)
    features = _features()
    out = {}
    for split in SPLITS:
        path = directory / f"{split}.jsonl"
        if not path.exists():
            continue
        rows = []
        for line, sample in iter_jsonl(path):
            try:
                rows.append(to_row(sample))
            except (KeyError, TypeError) as err:
                raise ValueError(f"{path}:{line}: not a sample: missing or malformed field {err}") from None
        columns = {name: [r[name] for r in rows] for name in features}
        out[split] = datasets.Dataset.from_dict(columns, features=features)
    return datasets.DatasetDict(out)


def profile_registry(profiles: Mapping[str, Sequence[ToolProfile]]) -> ToolRegistry:
    """A registry of every tool in a profile pool (originals and derived)."""
    return ToolRegistry(p.tool for group in profiles.values() for p in group)
