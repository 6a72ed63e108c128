"""Benchmark: slmtune's batched, grammar-constrained decoding vs sequential unconstrained ``model.generate``.

Same model (embedded Gemma 3 270M unless ``--model``), same BFCL requests, same prompts and token budget. Reports
- samples/s of each arm and their ratio (target >= 3x),
- samples/s of the decoder asking the model for the logits of the decoded positions only (``logits_to_keep``, the
  default) over the same decoder computing full-vocabulary logits at every position (``full_logits=True``), and
  whether their answers are the same,
- grammar mask time per decoding step (bitmask fill + apply, p50/p99) as a share of the forward pass time of that
  step (target <= 5 %).

Usage: python scripts/bench_decode.py [--requests 20] [--batch-size N] [--max-new-tokens N] [--model SOURCE]
  [--no-generate] [--repeats N] [--no-write]
(batch size and token budget default to the ``gemma270m`` recipe's eval settings; ``--model random:gemma3`` is the
tiny random test model; ``--no-generate`` skips the sequential ``model.generate`` arm; ``--repeats`` alternates the
two decoder arms that many times and keeps each one's fastest run; ``--no-write`` leaves BENCHMARKS.md alone)
Prints a last line `samples_per_s_ratio=<x> logits_kept_ratio=<r> logits_kept_cpu_ratio=<c> mask_p50_pct=<y>
mask_p99_pct=<z>` and updates BENCHMARKS.md.
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
    parser.add_argument("--model", default="embedded:gemma3-270m", help="model source (resolve_source's syntax)")
    parser.add_argument("--no-generate", action="store_true", help="skip the sequential model.generate arm")
    parser.add_argument("--call-shape", default=None, help="eval.call_shape (default: the recipe's)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each decoder arm (fastest kept)")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()
    settings = compose(["+recipe=gemma270m"]).eval  # the eval stage's decoder settings
    args.batch_size = args.batch_size or settings.batch_size
    args.max_new_tokens = args.max_new_tokens or settings.max_new_tokens
    args.call_shape = args.call_shape or settings.call_shape

    import xgrammar as xgr

    family = FAMILIES["gemma3"]
    dialect = family.dialect()
    source = resolve_source(args.model)
    tokenizer = load_tokenizer(source)
    device = torch.device("cpu")
    dtype = resolve_dtype("auto", device)
    model = load_base_model(source, dtype=dtype, device=device).eval()
    requests = load_bfcl("simple_python", limit=args.requests)
    prepared = prepare_requests(requests, family, dialect, constrained=True, shape_policy=args.call_shape)
    end_id = tokenizer.convert_tokens_to_ids(family.end_of_turn)

    # Baseline: one request at a time, unconstrained, transformers' generate.
    started = time.perf_counter()
    baseline_tokens = 0
    for p in [] if args.no_generate else prepared:
        ids = tokenizer(p.prompt, add_special_tokens=False, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=args.max_new_tokens, do_sample=False,
                                 eos_token_id=[end_id, tokenizer.eos_token_id], pad_token_id=tokenizer.pad_token_id)
        baseline_tokens += out.shape[1] - ids["input_ids"].shape[1]
    baseline_s = time.perf_counter() - started

    # slmtune: batched, constrained, jump-forward; time the mask work and the forward passes per step.
    def make_decoder(full_logits: bool) -> Decoder:
        return Decoder(model, tokenizer, stop_strings=[family.end_of_turn], max_new_tokens=args.max_new_tokens,
                       call_trigger=dialect.call_trigger, max_text_tokens=settings.max_text_tokens,
                       closing_reserve=settings.closing_reserve, full_logits=full_logits)

    decoder, full_decoder = make_decoder(False), make_decoder(True)
    for p in prepared:  # compile outside the timed region, as a server caches compiled grammars
        decoder.compiled(p.grammar)
        full_decoder.compiled(p.grammar)
    decode_requests = [DecodeRequest(p.prompt, p.grammar) for p in prepared]
    # Before logits_to_keep: the same decoder computing every position's full-vocabulary logits. The two arms
    # alternate --repeats times and each keeps its fastest run (the CPU may be shared); the timed arm below is the
    # last run of the logits_to_keep decoder.
    # CPU seconds (this process, all threads) are reported too: on a shared CPU they measure the work done more
    # steadily than wall time.
    full_runs, kept_runs, full_cpu, kept_cpu = [], [], [], []
    for _ in range(args.repeats - 1):
        for arm, runs, cpu in ((full_decoder, full_runs, full_cpu), (decoder, kept_runs, kept_cpu)):
            started, cpu_started = time.perf_counter(), time.process_time()
            arm.generate(decode_requests, batch_size=args.batch_size)
            runs.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
    started, cpu_started = time.perf_counter(), time.process_time()
    full_generations = full_decoder.generate(decode_requests, batch_size=args.batch_size)
    full_runs.append(time.perf_counter() - started)
    full_cpu.append(time.process_time() - cpu_started)
    full_s = min(full_runs)
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
    started, cpu_started = time.perf_counter(), time.process_time()
    generations = decoder.generate(decode_requests, batch_size=args.batch_size)
    kept_runs.append(time.perf_counter() - started)
    kept_cpu.append(time.process_time() - cpu_started)
    ours_s = min(kept_runs)
    xgr.GrammarMatcher.fill_next_token_bitmask, xgr.apply_token_bitmask_inplace = fill, apply
    model.forward = forward

    # step_mask[i] is the mask work that preceded forward i; the first forward of a batch is the prefill.
    shares = [m / f for m, f in zip(step_mask[1:], step_forward[1:]) if m > 0]
    n = len(prepared)
    forced = sum(g.forced_tokens for g in generations)
    total = sum(g.output_tokens for g in generations)
    p50, p99 = 100 * statistics.median(shares), 100 * percentile(shares, 0.99)
    kept_ratio = full_s / ours_s
    same = sum(g.text == f.text for g, f in zip(generations, full_generations))
    model_name = "embedded Gemma 3 270M" if args.model == "embedded:gemma3-270m" else f"`{args.model}`"
    lines = [
        "## Decoding (`scripts/bench_decode.py`)", "",
        f"Command: `python scripts/bench_decode.py --requests {args.requests} --batch-size {args.batch_size} "
        f"--max-new-tokens {args.max_new_tokens} --call-shape {args.call_shape}"
        + (f" --model {args.model}" if args.model != "embedded:gemma3-270m" else "")
        + (" --no-generate" if args.no_generate else "")
        + (f" --repeats {args.repeats}" if args.repeats > 1 else "") + "`  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{dtype}; model: {model_name}; requests: first {n} BFCL simple_python.", "",
        "| arm | seconds | samples/s | output tokens | output tokens/s |", "|---|---|---|---|---|",
    ]
    if not args.no_generate:
        lines.append(f"| baseline: sequential unconstrained `model.generate` | {baseline_s:.1f} | "
                     f"{n / baseline_s:.3f} | {baseline_tokens} | {baseline_tokens / baseline_s:.1f} |")
    full_total = sum(g.output_tokens for g in full_generations)
    lines += [
        f"| slmtune, full-vocabulary logits at every position (before `logits_to_keep`) | {full_s:.1f} | "
        f"{n / full_s:.3f} | {full_total} | {full_total / full_s:.1f} |",
        f"| slmtune: batch {args.batch_size}, XGrammar-constrained (`eval.call_shape={args.call_shape}`), "
        f"jump-forward, logits of the decoded positions only | {ours_s:.1f} | {n / ours_s:.3f} | {total} | "
        f"{total / ours_s:.1f} |", "",
    ]
    ratio = None
    if not args.no_generate:
        ratio = (n / ours_s) / (n / baseline_s)
        lines.append(f"- samples/s ratio over `model.generate`: **{ratio:.2f}x** (target >= 3x)")
    lines += [
        f"- samples/s ratio of `logits_to_keep` over full logits: **{kept_ratio:.2f}x** (fastest of {args.repeats} "
        f"alternating runs each); in CPU seconds {min(full_cpu):.1f} -> {min(kept_cpu):.1f} "
        f"(**{min(full_cpu) / min(kept_cpu):.2f}x**); identical answers: {same} of {n}",
        f"- grammar mask time per step as a share of that step's forward pass: p50 **{p50:.2f} %**, "
        f"p99 **{p99:.2f} %** (target <= 5 %)",
        f"- jump-forward fed {forced} of {total} output tokens without a model decision",
    ]
    if not args.no_generate:
        lines.append(f"- output tokens/s ratio: {(total / ours_s) / (baseline_tokens / baseline_s):.2f}x (the "
                     "samples/s gain also counts that a constrained answer ends when its call is complete, while the "
                     "unconstrained base model often runs to the token budget)")
    lines.append("")
    if not args.no_write:
        update_section(ROOT / "BENCHMARKS.md", "## Decoding", "\n".join(lines))
    print("\n".join(lines))
    print(f"samples_per_s_ratio={'n/a' if ratio is None else f'{ratio:.2f}'} logits_kept_ratio={kept_ratio:.2f} "
          f"logits_kept_cpu_ratio={min(full_cpu) / min(kept_cpu):.2f} "
          f"mask_p50_pct={p50:.2f} mask_p99_pct={p99:.2f}")

if __name__ == "__main__":
    main()
