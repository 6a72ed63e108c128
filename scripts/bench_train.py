"""Benchmark LoRA training: slmtune's training path vs a naive TRL baseline, same model, data, LoRA and steps.

Both arms fine-tune the embedded Gemma 3 270M (``embedded:gemma3-270m``) with the gemma270m recipe's LoRA (r=16,
alpha=32, attention and MLP projections of the recipe's ``top_layers``), the same learning rate, batch size, number
of optimizer steps, seed and precision (``precision=auto`` for the CPU: fp32 without native bf16), on the same pool
of real tool-call samples: ``generate_dataset`` on the built-in catalog, rendered for the gemma3 family in the
hermes dialect, keeping the samples that fit ``--max-length``.

- ``slmtune``: ``ToolCallTrainer`` as the train stage builds it — pre-tokenised prompt/completion, left-padded,
  length-grouped batches, loss over the completion window only (``logits_to_keep``).
- ``naive``: TRL ``SFTTrainer`` on a prompt/completion text dataset that TRL tokenises (``completion_only_loss``,
  TRL's collator padding every batch to ``max_length`` via ``pad_to_multiple_of``, no packing) with the standard
  full-logits causal-LM loss of ``transformers.Trainer.compute_loss`` (every position projected to the 262k-token
  vocabulary). Note: TRL 1.16's own default loss is a chunked "fused LM head" that never builds the full logits; on
  CPU it still projects every position (padding included). ``--arms slmtune,naive,trl_default`` adds that arm
  (TRL 1.16 defaults: pad to the longest in the batch, fused head) for reference.

Each arm runs in its own subprocess, so its peak RSS (``ru_maxrss``) is its own. Throughput is trained tokens per
second of optimizer-step time, counting only real (non-pad) tokens in both arms, over every step but the first
(warm-up); peak RSS covers the whole arm (model load included).

    python scripts/bench_train.py --quick          # < 10 min on 2 cores; updates BENCHMARKS.md
    python scripts/bench_train.py                  # the gemma270m recipe's shape: batch 4, max_length 1024, 16 steps
    python scripts/bench_train.py --quick --no-write

The last line printed is ``tokens_per_s_ratio=<x> peak_rss_ratio=<y>`` (slmtune / naive). The ``## Training``
section of BENCHMARKS.md is replaced; other sections are kept.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks_md import update_section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECTION = "## Training"
MODEL_SOURCE = "embedded:gemma3-270m"
FAMILY, DIALECT, RECIPE = "gemma3", "hermes", "gemma270m"
TARGET_TOKENS_RATIO, TARGET_RSS_RATIO = 1.5, 0.7


# -- one arm (runs in a subprocess) --------------------------------------------------------------------------------


def run_arm(arm: str, samples_path: Path, args: argparse.Namespace) -> dict:
    import torch

    torch.manual_seed(args.seed)
    from peft import get_peft_model
    from transformers import Trainer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from slmtune.config import compose
    from slmtune.eval.decoding import resolve_dtype
    from slmtune.models.families import FAMILIES
    from slmtune.models.loading import load_base_model, load_tokenizer
    from slmtune.models.sources import resolve_source
    from slmtune.rundir import read_jsonl
    from slmtune.train.trainer import (
        LeftPadCollator,
        examples_to_dataset,
        lora_config,
        make_trainer_class,
        render_example,
        tokenize_examples,
    )

    started = time.perf_counter()
    family = FAMILIES[FAMILY]
    source = resolve_source(MODEL_SOURCE)
    tokenizer = load_tokenizer(source)
    samples = read_jsonl(samples_path)
    # The shared pool: samples whose prompt+completion fit max_length - 1 (TRL appends an EOS to each completion).
    examples, kept = [], []
    for sample in samples:
        fits, _ = tokenize_examples([sample], tokenizer, family, DIALECT, args.max_length - 1)
        if fits:
            examples += fits
            kept.append(sample)
    dropped = len(samples) - len(kept)

    device = torch.device("cpu")
    dtype = resolve_dtype(args.precision, device)
    model = load_base_model(source, dtype=dtype, device=device)
    lora = compose([f"+recipe={RECIPE}"]).train.lora
    torch.manual_seed(args.seed)
    adapter_config = lora_config(family, lora.r, lora.alpha, lora.dropout, lora.target_modules,
                                 top_layers=lora.top_layers, num_layers=model.config.num_hidden_layers)
    model = get_peft_model(model, adapter_config)
    rss_after_load = peak_rss_mib()

    steps: list[dict] = []

    class Meter(TrainerCallback):
        def on_step_begin(self, a, state, control, **kwargs):
            self.t0 = time.perf_counter()
            self.n0 = len(batches)

        def on_step_end(self, a, state, control, **kwargs):
            seen = batches[self.n0:]
            steps.append({"seconds": time.perf_counter() - self.t0, "tokens": sum(b[0] for b in seen),
                          "positions": sum(b[1] for b in seen), "targets": sum(b[2] for b in seen),
                          "projected": sum(b[3] for b in seen)})

    batches: list[tuple[int, int, int, int]] = []

    def count(inputs) -> None:
        # (real tokens, positions run through the model, loss targets, positions projected to the vocabulary)
        mask = inputs["attention_mask"]
        rows, width = mask.shape
        projected = rows * (int(inputs["logits_window"]) if "logits_window" in inputs else width)
        batches.append((int(mask.sum()), mask.numel(), int((inputs["labels"] != -100).sum()), projected))

    output_dir = tempfile.mkdtemp(prefix=f"bench-{arm}-")
    common = dict(
        output_dir=output_dir, max_steps=args.steps, learning_rate=3e-4,
        lr_scheduler_type="constant", per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=1,
        logging_steps=1, save_strategy="no", eval_strategy="no", bf16=dtype == torch.bfloat16, fp16=False,
        use_cpu=True, gradient_checkpointing=False, seed=args.seed, data_seed=args.seed, dataloader_num_workers=0,
        report_to=[], disable_tqdm=True,
    )
    if arm == "slmtune":
        base_class, _ = make_trainer_class()
        config = SFTConfig(**common, train_sampling_strategy="group_by_length", length_column_name="length",
                           remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True})
        dataset, collator = examples_to_dataset(examples), LeftPadCollator(tokenizer.pad_token_id)
    else:
        from datasets import Dataset

        pairs = [render_example(s, family, DIALECT) for s in kept]
        dataset = Dataset.from_dict({"prompt": [p for p, _ in pairs], "completion": [c for _, c in pairs]})
        collator = None  # TRL's DataCollatorForLanguageModeling
        if arm == "naive":
            config = SFTConfig(**common, max_length=args.max_length, pad_to_multiple_of=args.max_length,
                               packing=False, padding_free=False)

            class FullLogitsSFTTrainer(SFTTrainer):
                def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                    # transformers' causal-LM loss: the model computes logits for every position
                    return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                                num_items_in_batch=num_items_in_batch)

            base_class = FullLogitsSFTTrainer
        elif arm == "trl_default":
            config = SFTConfig(**common, max_length=args.max_length)
            base_class = SFTTrainer
        else:
            raise ValueError(f"unknown arm {arm!r}")

    class Counting(base_class):
        def compute_loss(self, model, inputs, *a, **k):
            count(inputs)
            return super().compute_loss(model, inputs, *a, **k)

    trainer = Counting(model=model, args=config, train_dataset=dataset, data_collator=collator,
                       processing_class=tokenizer, callbacks=[Meter()])
    train_started = time.perf_counter()
    result = trainer.train()
    train_seconds = time.perf_counter() - train_started
    shutil.rmtree(output_dir, ignore_errors=True)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    measured = steps[1:] if len(steps) > 1 else steps
    seconds = sum(s["seconds"] for s in measured)
    tokens = sum(s["tokens"] for s in measured)
    return {
        "arm": arm, "optimizer_steps": trainer.state.global_step, "pool": len(examples),
        "dropped_too_long": dropped, "precision": str(dtype).removeprefix("torch."),
        "tokens_per_s": tokens / seconds, "targets_per_s": sum(s["targets"] for s in measured) / seconds,
        "real_tokens": sum(s["tokens"] for s in steps), "positions": sum(s["positions"] for s in steps),
        "target_tokens": sum(s["targets"] for s in steps), "projected": sum(s["projected"] for s in steps),
        "step_seconds": [round(s["seconds"], 2) for s in steps],
        "train_seconds": train_seconds, "train_loss": result.training_loss, "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None, "rss_after_load_mib": rss_after_load,
        "peak_rss_mib": peak_rss_mib(), "arm_seconds": time.perf_counter() - started,
        "torch_threads": torch.get_num_threads(),
    }


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- driver --------------------------------------------------------------------------------------------------------


def generate_samples(num_samples: int, seed: int, path: Path) -> dict:
    from slmtune.data.datasets_io import generate_dataset
    from slmtune.data.registry import load_catalog

    t0 = time.perf_counter()
    dataset = generate_dataset(load_catalog(), num_samples=num_samples, dialect_name=DIALECT, seed=seed)
    train = dataset.splits["train"]
    with path.open("w", encoding="utf-8") as handle:
        for sample in train:
            handle.write(json.dumps(sample, ensure_ascii=False) + "\n")
    return {"generated": num_samples, "train_split": len(train), "seconds": time.perf_counter() - t0}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_line(precision: str) -> str:
    import torch

    from slmtune.eval.decoding import cpu_supports_bf16

    bf16 = "native bf16 (AVX512-BF16/AMX)" if cpu_supports_bf16() else "no native bf16 (AVX2 only)"
    return (f"{cpu_model()}, {os.cpu_count()} cores, {bf16}; Linux {platform.release()}, Python "
            f"{platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
            f"precision {precision} (precision=auto)")



def render_section(command: str, args, data: dict, arms: dict[str, dict], tokens_ratio: float, rss_ratio: float,
                   loadavg: tuple[float, float], wall: float) -> str:
    from slmtune.config import compose

    lora = compose([f"+recipe={RECIPE}"]).train.lora
    slm, naive = arms["slmtune"], arms["naive"]
    names = list(arms)

    def row(label: str, fmt) -> str:
        return f"| {label} | " + " | ".join(fmt(arms[n]) for n in names) + " |"

    rows = [
        "| measure | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        row("optimizer steps (batch size)", lambda a: f"{a['optimizer_steps']} ({args.batch_size})"),
        row("**trained tokens/s** (real, non-pad tokens; steps 2..N)", lambda a: f"**{a['tokens_per_s']:.1f}**"),
        row("completion (loss) tokens/s", lambda a: f"{a['targets_per_s']:.1f}"),
        row("real tokens / positions computed (all steps)", lambda a: f"{a['real_tokens']:,} / {a['positions']:,}"),
        row("positions projected to the 262k vocabulary (all steps)", lambda a: f"{a['projected']:,}"),
        row("step times (s)", lambda a: ", ".join(f"{s:.1f}" for s in a["step_seconds"])),
        row("trainer.train() wall time", lambda a: f"{a['train_seconds']:.1f} s"),
        row("train loss (first → last step)", lambda a: f"{a['first_loss']:.3f} → {a['last_loss']:.3f}"),
        row("RSS after model + LoRA load", lambda a: f"{a['rss_after_load_mib']:,.0f} MiB"),
        row("**peak RSS** (whole arm process)", lambda a: f"**{a['peak_rss_mib']:,.0f} MiB**"),
    ]
    tokens_met = "met" if tokens_ratio >= TARGET_TOKENS_RATIO else "NOT met"
    rss_met = "met" if rss_ratio <= TARGET_RSS_RATIO else "NOT met"
    return "\n".join([
        f"{SECTION} (`scripts/bench_train.py`)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine_line(slm['precision'])}  ",
        f"Date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC; load average at start "
        f"{loadavg[0]:.2f} (1 min), {loadavg[1]:.2f} (5 min); the arms ran one after the other.  ",
        f"Model: Gemma 3 270M (`{MODEL_SOURCE}`), LoRA of the `{RECIPE}` recipe (r={lora.r}, "
        f"{'all layers' if lora.top_layers is None else f'last {lora.top_layers} layers'}); data: `generate_dataset` "
        f"({data['generated']} samples, {DIALECT} dialect) train split rendered for `{FAMILY}`, the "
        f"{slm['pool']} samples that fit max_length={args.max_length} ({slm['dropped_too_long']} longer dropped "
        f"in both arms); same seed, learning rate, batch size {args.batch_size} and {args.steps} optimizer steps.  ",
        "Arms: **slmtune** = the train stage's `ToolCallTrainer` (left-padded, length-grouped batches, loss over the "
        "completion window only); **naive** = TRL `SFTTrainer` on the prompt/completion texts, tokenised by TRL, "
        "`completion_only_loss`, padded to max_length (`pad_to_multiple_of`), no packing, full-logits loss "
        "(`transformers.Trainer.compute_loss`)"
        + ("; **trl_default** = TRL 1.16 `SFTTrainer` defaults (pad to longest, TRL's chunked fused LM head, which "
           "on CPU still projects every position)" if "trl_default" in arms else "")
        + ". Same precision and `gradient_checkpointing=False` in every arm. Tokens/s counts real (non-pad) tokens "
        "in every arm, over optimizer-step time excluding the first (warm-up) step; each arm is its own process, "
        "so peak RSS is per arm.",
        "",
        *rows,
        "",
        f"**tokens/s ratio slmtune / naive: {tokens_ratio:.2f}** (target ≥ {TARGET_TOKENS_RATIO}: {tokens_met}); "
        f"**peak RSS ratio slmtune / naive: {rss_ratio:.2f}** (target ≤ {TARGET_RSS_RATIO}: {rss_met}). "
        f"Naive ran {naive['positions'] / max(naive['real_tokens'], 1):.2f} positions per real token (padding "
        f"to max_length) and projected {naive['projected'] / max(slm['projected'], 1):.1f}× as many positions "
        f"to the vocabulary as slmtune's completion windows. Whole benchmark: {wall / 60:.1f} min.",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="batch 2, max_length 768, 6 steps (< 10 min, 2 cores)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--num-samples", type=int, default=300, help="samples generated (all splits)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--arms", default="slmtune,naive", help="comma list of slmtune, naive, trl_default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument("--benchmarks", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--arm", help=argparse.SUPPRESS)  # internal: run one arm, print its JSON
    parser.add_argument("--samples-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    quick = {"steps": 6, "batch_size": 2, "max_length": 768}
    full = {"steps": 16, "batch_size": 4, "max_length": 1024}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    if args.arm:
        print("ARM_RESULT " + json.dumps(run_arm(args.arm, Path(args.samples_file), args)), flush=True)
        return

    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if not {"slmtune", "naive"} <= set(arms):
        parser.error("--arms must include slmtune and naive")
    t0 = time.perf_counter()
    loadavg = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        samples_path = Path(tmp) / "train.jsonl"
        data = generate_samples(args.num_samples, args.seed, samples_path)
        print(f"data: {data['train_split']} training samples generated in {data['seconds']:.1f} s", flush=True)
        results = {}
        for arm in arms:
            command = [sys.executable, __file__, "--arm", arm, "--samples-file", str(samples_path),
                       "--steps", str(args.steps), "--batch-size", str(args.batch_size),
                       "--max-length", str(args.max_length), "--precision", args.precision, "--seed", str(args.seed)]
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false"}
            proc = subprocess.run(command, capture_output=True, text=True, env=env)
            line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("ARM_RESULT ")), None)
            if proc.returncode != 0 or line is None:
                sys.exit(f"arm {arm} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            results[arm] = json.loads(line.removeprefix("ARM_RESULT "))
            r = results[arm]
            print(f"{arm}: {r['tokens_per_s']:.1f} tokens/s, peak RSS {r['peak_rss_mib']:.0f} MiB, "
                  f"steps {r['step_seconds']}, {r['arm_seconds']:.0f} s", flush=True)
    wall = time.perf_counter() - t0
    tokens_ratio = results["slmtune"]["tokens_per_s"] / results["naive"]["tokens_per_s"]
    rss_ratio = results["slmtune"]["peak_rss_mib"] / results["naive"]["peak_rss_mib"]
    command = "python scripts/bench_train.py" + (" --quick" if args.quick else "")
    defaults = quick if args.quick else full
    for key in ("steps", "batch_size", "max_length"):
        if getattr(args, key) != defaults[key]:
            command += f" --{key.replace('_', '-')} {getattr(args, key)}"
    if args.arms != "slmtune,naive":
        command += f" --arms {args.arms}"
    section = render_section(command, args, data, results, tokens_ratio, rss_ratio, loadavg, wall)
    print(section)
    if not args.no_write:
        update_section(Path(args.benchmarks), SECTION, section)
    print(f"tokens_per_s_ratio={tokens_ratio:.2f} peak_rss_ratio={rss_ratio:.2f}")


if __name__ == "__main__":
    main()
