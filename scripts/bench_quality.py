"""Benchmark: function-calling quality of the base model and a tuned adapter, measured like the BFCL leaderboard.

Every request is decoded under the free call shape (``eval.call_shape=free``: text or any number of calls are
allowed, as vLLM's ``tool_choice=auto``), so the model decides whether to call; optionally (``--grammar``) also under
the category-shaped grammar (``eval.call_shape=category``) as a grammar-assisted column. Per BFCL category: AST
accuracy with its 95 % Wilson interval and the call / no-call confusion (called right, called wrong, declined; of
no-call requests, declined and called). The eval stage's library does the work (prompts, grammars, decoding,
scoring), with the recipe's eval settings.

Usage:
  python scripts/bench_quality.py --adapter DIR [--recipe gemma270m] [--n 100] [--categories a,b,...] [--grammar]
      [--models base,tuned] [--out outputs/quality] [--batch-size N]

Writes ``<out>/quality.json`` and ``<out>/quality.md`` after every (category, model, shape) cell, so a partial run
leaves a usable table; a killed run resumes where it stopped (decoded batches are kept in
``<out>/batches/*.batches.partial.jsonl``; finished cells are read back from ``quality.json`` when the settings match).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

import torch

from slmtune.config import compose
from slmtune.eval.decoding import Decoder, resolve_dtype
from slmtune.eval.evaluation import call_confusion, evaluate, prepare_requests, wilson_interval
from slmtune.eval.suites import load_bfcl
from slmtune.models.loading import attach_adapter, default_device, load_base_model, load_tokenizer, resolve_model_source
from slmtune.rundir import atomic_write_json, atomic_write_text, write_jsonl
from slmtune.stages.common import dialect_of, family_of

ROOT = Path(__file__).resolve().parent.parent
CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance", "live_simple",
              "live_multiple", "live_irrelevance")
# Published BFCL figures in the auto (free) setting, per category, for comparison (issue 22): FunctionGemma-270M's
# model card.
REFERENCE = {"FunctionGemma-270M": {"simple_python": 0.616, "multiple": 0.635, "parallel": 0.390,
                                    "parallel_multiple": 0.295, "irrelevance": 0.737}}


def machine() -> str:
    """The CPU model (or GPU name) and core count."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, {os.cpu_count()} CPU cores"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            name = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cell_metrics(rows: list[dict], wall_s: float) -> dict:
    """AST accuracy with its Wilson interval, the call confusion and the commonest text answers of one cell."""
    n = len(rows)
    correct = sum(bool(r["valid"]) for r in rows)
    texts = Counter(r["raw"].strip()[:80] for r in rows if not r.get("calls") and r.get("raw"))
    return {"n": n, "correct": correct, "ast": correct / n if n else None, "wilson95": wilson_interval(correct, n),
            "confusion": call_confusion(rows), "schema_valid": sum(bool(r["schema_valid"]) for r in rows),
            "failed": sum(r.get("failure") is not None for r in rows), "wall_s": round(wall_s, 1),
            "commonest_text_answers": texts.most_common(3)}


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def cell_text(cell: dict | None) -> str:
    if cell is None:
        return "—"
    low, high = cell["wilson95"]
    return f"{pct(cell['ast'])} [{pct(low)}, {pct(high)}]"


def decision_text(cell: dict | None) -> str:
    """Calls made / declines, e.g. ``called 40/100 (32 right)`` or ``declined 71/100``."""
    if cell is None:
        return "—"
    c = cell["confusion"]
    needs_call = c["called_right"] + c["called_wrong"] + c["declined"]
    if needs_call:
        return f"called {c['called_right'] + c['called_wrong']}/{needs_call} ({c['called_right']} right)"
    no_call = c["no_call_declined"] + c["no_call_called"]
    return f"declined {c['no_call_declined']}/{no_call}"


def markdown(result: dict) -> str:
    """The results as a markdown section (command, commit, machine, wall time, one row per category)."""
    models = result["models"]
    shapes = result["shapes"]
    lines = [f"Command: `{result['command']}`  ",
             f"Commit: {result['commit']}; machine: {result['machine']}; torch {result['torch']}, {result['dtype']}; "
             f"recipe `{result['recipe']}` eval settings (batch {result['batch_size']}, max_new_tokens "
             f"{result['max_new_tokens']}); adapter `{result['adapter']}`  ",
             f"Requests: the first {result['n']} of each BFCL category (all where it has fewer). Wall time "
             f"{result['wall_s'] / 60:.1f} min for the cells below.", "",
             "AST accuracy in %, [95 % Wilson interval]; *free* = text or any calls allowed (`tool_choice=auto`), "
             "*grammar* = the category-shaped grammar (forces one call on simple/multiple, one or more on "
             "parallel, leaves the choice on irrelevance).", ""]
    header = ["category", "n"]
    for model in models:
        header += [f"{model} free", f"{model} decision (free)"]
        if "category" in shapes:
            header.append(f"{model} grammar")
    header.append("FunctionGemma-270M")
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for category in result["categories"]:
        cells = result["cells"].get(category, {})
        n = next((c["n"] for c in cells.values()), None)
        row = [category, "—" if n is None else str(n)]
        for model in models:
            free = cells.get(f"{model}/free")
            row += [cell_text(free), decision_text(free)]
            if "category" in shapes:
                row.append(cell_text(cells.get(f"{model}/category")))
        reference = REFERENCE["FunctionGemma-270M"].get(category)
        row.append("—" if reference is None else f"{100 * reference:.1f}")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Call / no-call confusion, free shape, over the categories above (requests that need a call: "
              "called right / called wrong / declined; that need none: declined / called):", ""]
    for model in models:
        total = Counter()
        for cells in result["cells"].values():
            if f"{model}/free" in cells:
                total.update(cells[f"{model}/free"]["confusion"])
        needs = total["called_right"] + total["called_wrong"] + total["declined"]
        no = total["no_call_declined"] + total["no_call_called"]
        called = total["called_right"] + total["called_wrong"]
        if needs + no:
            lines.append(f"- {model}: {total['called_right']} / {total['called_wrong']} / {total['declined']} of "
                         f"{needs} (calls on {pct(called / needs if needs else None)} %); "
                         f"{total['no_call_declined']} / {total['no_call_called']} of {no}")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--adapter", default=None, help="a PEFT adapter directory (the tuned model)")
    parser.add_argument("--recipe", default="gemma270m")
    parser.add_argument("--n", type=int, default=100, help="requests per category (the first n)")
    parser.add_argument("--categories", default=",".join(CATEGORIES))
    parser.add_argument("--models", default="base,tuned", help="base, tuned or both, in the order to run")
    parser.add_argument("--grammar", action="store_true", help="also decode under the category-shaped grammar")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--out", default=str(ROOT / "outputs" / "quality"))
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or set(models) - {"base", "tuned"}:
        parser.error(f"--models: expected base and/or tuned, got {args.models!r}")
    if "tuned" in models and not args.adapter:
        parser.error("--models tuned needs --adapter")
    if args.adapter and not (Path(args.adapter) / "adapter_model.safetensors").is_file():
        parser.error(f"--adapter {args.adapter}: no adapter_model.safetensors there")
    categories = [c.strip() for c in args.categories.split(",") if c.strip()]
    shapes = ["free"] + (["category"] if args.grammar else [])

    cfg = compose([f"+recipe={args.recipe}"])
    settings = cfg.eval
    batch_size = args.batch_size or settings.batch_size
    family, dialect = family_of(cfg), dialect_of(cfg)
    source = resolve_model_source(cfg.model)
    tokenizer = load_tokenizer(source, cfg.model.trust_remote_code)
    device = default_device()
    dtype = resolve_dtype(settings.precision, device)
    model = load_base_model(source, dtype=dtype, trust_remote_code=cfg.model.trust_remote_code, device=device)
    if args.adapter:
        model = attach_adapter(model, args.adapter)
    model.eval()
    decoder = Decoder(model, tokenizer, stop_strings=[family.end_of_turn], max_new_tokens=settings.max_new_tokens,
                      call_trigger=dialect.call_trigger, max_text_tokens=settings.max_text_tokens,
                      closing_reserve=settings.closing_reserve)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    identity = {"recipe": args.recipe, "adapter": str(Path(args.adapter).resolve()) if args.adapter else None,
                "n": args.n, "batch_size": batch_size, "max_new_tokens": settings.max_new_tokens,
                "max_text_tokens": settings.max_text_tokens, "closing_reserve": settings.closing_reserve,
                "dtype": str(dtype), "source": source.identity}
    previous = {}
    if (out / "quality.json").is_file():  # an earlier run into this folder: resume it, if it measured the same thing
        old = json.loads((out / "quality.json").read_text(encoding="utf-8"))
        changed = [k for k, v in identity.items() if old.get(k) != v]
        if changed:
            sys.exit(f"{out / 'quality.json'} was written with other settings ({', '.join(changed)}); its decoded "
                     "batches would be reused: choose another --out or remove that folder")
        previous = old.get("cells", {})
    elif (out / "batches").is_dir() and any((out / "batches").iterdir()):
        sys.exit(f"{out / 'batches'} holds decoded batches but no quality.json says of what: choose another --out "
                 "or remove that folder")
    result = identity | {
        "command": "python scripts/bench_quality.py " + shlex.join(sys.argv[1:]), "commit": commit(),
        "machine": machine(), "torch": torch.__version__, "shapes": shapes,
        "wall_s": 0.0}
    result["cells"] = previous  # cells finished by an earlier run (interrupted, or of other models or categories)
    result["models"] = [m for m in ("base", "tuned") if m in models or any(
        key.startswith(m + "/") for cells in previous.values() for key in cells)]
    result["categories"] = categories + [c for c in previous if c not in categories]
    if any(key.endswith("/category") for cells in previous.values() for key in cells):
        result["shapes"] = ["free", "category"]
    result["wall_s"] = sum(c["wall_s"] for cells in result["cells"].values() for c in cells.values())

    def save() -> None:
        atomic_write_json(out / "quality.json", result)
        atomic_write_text(out / "quality.md", markdown(result))

    save()
    for category in categories:
        requests = load_bfcl(category, limit=args.n)
        for shape in shapes:
            prepared = prepare_requests(requests, family, dialect, constrained=True, shape_policy=shape)
            for weights in models:
                key = f"{weights}/{shape}"
                if key in result["cells"].get(category, {}):
                    print(f"{category} {key}: done before", flush=True)
                    continue
                base_only = weights == "base" and args.adapter
                with model.disable_adapter() if base_only else nullcontext():
                    log = out / "batches" / f"{category}--{weights}-{shape}.batches.partial.jsonl"
                    rows, wall = evaluate(prepared, decoder, dialect, batch_size=batch_size, tokenizer=tokenizer,
                                          batch_log=log)  # wall includes the batches an earlier run decoded
                cell = cell_metrics(rows, wall)
                result["cells"].setdefault(category, {})[key] = cell
                result["wall_s"] += wall
                write_jsonl(out / f"predictions-{category}--{weights}-{shape}.jsonl", rows)
                save()
                print(f"{category} {key}: {cell_text(cell)} {decision_text(cell)} ({wall:.0f} s)", flush=True)
    save()
    print(markdown(result))


if __name__ == "__main__":
    main()
