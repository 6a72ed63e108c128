"""Benchmark: slmtune's batched, grammar-constrained decoding vs sequential unconstrained ``model.generate``.

Same model (embedded Gemma 3 270M), same BFCL requests, same prompts and token budget. Reports
- samples/s of each arm and their ratio (target >= 3x),
- grammar mask time per decoding step (bitmask fill + apply, p50/p99) as a share of the forward pass time of that
  step (target <= 5 %).

Usage: python scripts/bench_decode.py [--requests 20] [--batch-size N] [--max-new-tokens N]
(batch size and token budget default to the ``gemma270m`` recipe's eval settings)
Prints a last line `samples_per_s_ratio=<x> mask_p50_pct=<y> mask_p99_pct=<z>` and updates BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from benchmarks_md import update_section

from slmtune.config import compose
from slmtune.eval.decoding import Decoder, DecodeRequest, resolve_dtype
from slmtune.eval.evaluation import prepare_requests
from slmtune.eval.suites import load_bfcl
from slmtune.models.families import FAMILIES
from slmtune.models.loading import load_base_model, load_tokenizer
from slmtune.models.sources import resolve_source

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=None)
    args = parser.parse_args()
    settings = compose(["+recipe=gemma270m"]).eval  # the eval stage's decoder settings
    args.batch_size = args.batch_size or settings.batch_size
    args.max_new_tokens = args.max_new_tokens or settings.max_new_tokens

    import xgrammar as xgr

    family = FAMILIES["gemma3"]
    dialect = family.dialect()
    source = resolve_source("embedded:gemma3-270m")
    tokenizer = load_tokenizer(source)
    device = torch.device("cpu")
    dtype = resolve_dtype("auto", device)
    model = load_base_model(source, dtype=dtype, device=device).eval()
    requests = load_bfcl("simple_python", limit=args.requests)
    prepared = prepare_requests(requests, family, dialect, constrained=True, shape_policy=settings.call_shape)
    end_id = tokenizer.convert_tokens_to_ids(family.end_of_turn)

    # Baseline: one request at a time, unconstrained, transformers' generate.
    started = time.perf_counter()
    baseline_tokens = 0
    for p in prepared:
        ids = tokenizer(p.prompt, add_special_tokens=False, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=args.max_new_tokens, do_sample=False,
                                 eos_token_id=[end_id, tokenizer.eos_token_id], pad_token_id=tokenizer.pad_token_id)
        baseline_tokens += out.shape[1] - ids["input_ids"].shape[1]
    baseline_s = time.perf_counter() - started

    # slmtune: batched, constrained, jump-forward; time the mask work and the forward passes per step.
    decoder = Decoder(model, tokenizer, stop_strings=[family.end_of_turn], max_new_tokens=args.max_new_tokens,
                      call_trigger=dialect.call_trigger, max_text_tokens=settings.max_text_tokens,
                      closing_reserve=settings.closing_reserve)
    for p in prepared:  # compile outside the timed region, as a server caches compiled grammars
        decoder.compiled(p.grammar)
    mask_time = {"t": 0.0}
    step_mask: list[float] = []
    step_forward: list[float] = []
    fill, apply, forward = xgr.GrammarMatcher.fill_next_token_bitmask, xgr.apply_token_bitmask_inplace, model.forward

    def timed_fill(self, *a, **k):
        t = time.perf_counter()
        try:
            return fill(self, *a, **k)
        finally:
            mask_time["t"] += time.perf_counter() - t

    def timed_apply(*a, **k):
        t = time.perf_counter()
        try:
            return apply(*a, **k)
        finally:
            mask_time["t"] += time.perf_counter() - t

    def timed_forward(*a, **k):
        step_mask.append(mask_time["t"])
        mask_time["t"] = 0.0
        t = time.perf_counter()
        out = forward(*a, **k)
        step_forward.append(time.perf_counter() - t)
        return out

    xgr.GrammarMatcher.fill_next_token_bitmask = timed_fill
    xgr.apply_token_bitmask_inplace = timed_apply
    model.forward = timed_forward
    started = time.perf_counter()
    generations = decoder.generate([DecodeRequest(p.prompt, p.grammar) for p in prepared], batch_size=args.batch_size)
    ours_s = time.perf_counter() - started
    xgr.GrammarMatcher.fill_next_token_bitmask, xgr.apply_token_bitmask_inplace = fill, apply
    model.forward = forward

    # step_mask[i] is the mask work that preceded forward i; the first forward of a batch is the prefill.
    shares = [m / f for m, f in zip(step_mask[1:], step_forward[1:]) if m > 0]
    n = len(prepared)
    ratio = (n / ours_s) / (n / baseline_s)
    forced = sum(g.forced_tokens for g in generations)
    total = sum(g.output_tokens for g in generations)
    p50, p99 = 100 * statistics.median(shares), 100 * percentile(shares, 0.99)
    lines = [
        "## Decoding (`scripts/bench_decode.py`)", "",
        f"Command: `python scripts/bench_decode.py --requests {args.requests} --batch-size {args.batch_size} "
        f"--max-new-tokens {args.max_new_tokens}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{dtype}; model: embedded Gemma 3 270M; requests: first {n} BFCL simple_python.", "",
        "| arm | seconds | samples/s | output tokens | output tokens/s |", "|---|---|---|---|---|",
        f"| baseline: sequential unconstrained `model.generate` | {baseline_s:.1f} | {n / baseline_s:.3f} | "
        f"{baseline_tokens} | {baseline_tokens / baseline_s:.1f} |",
        f"| slmtune: batch {args.batch_size}, XGrammar-constrained (`eval.call_shape={settings.call_shape}`), "
        f"jump-forward | {ours_s:.1f} | {n / ours_s:.3f} | {total} | {total / ours_s:.1f} |",
        "", f"- samples/s ratio: **{ratio:.2f}x** (target >= 3x)",
        f"- grammar mask time per step as a share of that step's forward pass: p50 **{p50:.2f} %**, "
        f"p99 **{p99:.2f} %** (target <= 5 %)",
        f"- jump-forward fed {forced} of {total} output tokens without a model decision",
        f"- output tokens/s ratio: {(total / ours_s) / (baseline_tokens / baseline_s):.2f}x (the samples/s gain also "
        "counts that a constrained answer ends when its call is complete, while the unconstrained base model "
        "often runs to the token budget)", "",
    ]
    update_section(ROOT / "BENCHMARKS.md", "## Decoding", "\n".join(lines))
    print("\n".join(lines))
    print(f"samples_per_s_ratio={ratio:.2f} mask_p50_pct={p50:.2f} mask_p99_pct={p99:.2f}")


if __name__ == "__main__":
    main()
