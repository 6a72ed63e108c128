"""Stage 2 — train: a LoRA / QLoRA adapter on the data stage's training split, loss on assistant tokens only.

Usage: python -m slmtune train +recipe=qwen7b   (multi-GPU: accelerate launch -m slmtune train +recipe=qwen7b)
Writes <run>/train/{adapter/, checkpoints/, metrics.jsonl, summary.json}. A killed run resumes from its last
checkpoint in <run>/.train.partial when started again with the same inputs (train.resume=auto).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from slmtune.config import SlmtuneConfig
from slmtune.data.multiturn import is_conversation
from slmtune.eval.decoding import resolve_dtype
from slmtune.models.loading import (
    default_device,
    load_base_model,
    load_tokenizer,
    resolve_model_source,
    sharded_training,
)
from slmtune.rundir import RunDir, atomic_write_json, read_jsonl, write_jsonl
from slmtune.stages.common import (
    dialect_of,
    family_of,
    input_hash,
    local_model_paths,
    log,
    log_summary,
    prepare_run,
    resolved_model,
    tracked,
)
from slmtune.train.trainer import (
    LeftPadCollator,
    check_label_masks,
    examples_to_dataset,
    lora_config,
    make_trainer_class,
    save_adapter,
    tokenize_examples,
)

SECTIONS = ["model", "train"]


def upstream_stages(cfg: SlmtuneConfig) -> list[str]:
    """The stages this one reads: the data stage's splits."""
    return ["data"]


def stage_hash(cfg: SlmtuneConfig, run) -> str:
    # train.resume says where to continue from, not what to make (train.resume=never still drops checkpoints)
    return input_hash(run, cfg, SECTIONS, upstream_stages(cfg), files=local_model_paths(cfg), ignore=("train.resume",))


def run(cfg: SlmtuneConfig) -> dict[str, Any]:
    if int(os.environ.get("RANK", "0")) != 0:
        # Other ranks of a distributed launch only train; rank 0 owns run.json, the partial directory and tracking.
        run_dir = RunDir(cfg.run_dir)
        return _train(cfg, run_dir.stage_dir("data"), run_dir.partial_dir("train"), report_to_wandb=False)
    run_dir = prepare_run(cfg)
    current = stage_hash(cfg, run_dir)
    partial = run_dir.partial_dir("train")
    previous = run_dir.stage_record("train") or {}
    if partial.exists() and (cfg.train.resume == "never" or previous.get("input_hash") != current):
        shutil.rmtree(partial)  # checkpoints of other inputs are never resumed
    resolved_model(cfg, run_dir, "train")
    with run_dir.stage_output("train", current, keep_partial=True) as out, \
            tracked(cfg, run_dir, "train") as tracker:
        summary = _train(cfg, run_dir.stage_dir("data"), out, report_to_wandb=tracker.enabled)
        log_summary(tracker, summary)
    log.info("train: %s", json.dumps(summary))
    return summary


def _train(cfg: SlmtuneConfig, data_dir: Path, out: Path, report_to_wandb: bool) -> dict[str, Any]:
    from peft import get_peft_model, prepare_model_for_kbit_training
    from trl import SFTConfig

    started = time.time()
    family, dialect = family_of(cfg), dialect_of(cfg)
    source = resolve_model_source(cfg.model)
    tokenizer = load_tokenizer(source, cfg.model.trust_remote_code)
    train_samples = read_jsonl(data_dir / "train.jsonl")[: cfg.train.max_train_samples]
    val_samples = read_jsonl(data_dir / "val.jsonl")[: cfg.train.max_eval_samples]
    train_examples, dropped = tokenize_examples(train_samples, tokenizer, family, dialect, cfg.train.max_length)
    conversations = sum(1 for s in train_samples if is_conversation(s))
    val_examples, _ = tokenize_examples(val_samples, tokenizer, family, dialect, cfg.train.max_length)
    if not train_examples:
        raise ValueError(f"{data_dir / 'train.jsonl'}: no training example fits train.max_length="
                         f"{cfg.train.max_length}")
    collator = LeftPadCollator(tokenizer.pad_token_id, cfg.train.decision_loss_weight)
    # Start-up check: the loss mask of real batches covers exactly the assistant completions.
    # (with conversations among the first examples: every assistant turn, no user or tool-result token)
    probe = train_examples[:8] + [e for e in train_examples[8:] if e.targets][:4]
    check_label_masks(collator([e.feature() for e in probe]), probe, tokenizer)

    device = default_device()  # cuda:LOCAL_RANK on a GPU machine
    compute_dtype = training_dtype(cfg.train.precision, device)
    qlora = cfg.train.method == "qlora"
    # The trainer's arguments come before the model: creating them sets up the distributed state, which is what
    # makes DeepSpeed ZeRO-3's partitioned init and FSDP's cpu-ram-efficient loading apply to from_pretrained.
    checkpoints = out / "checkpoints"
    args = SFTConfig(
        output_dir=str(checkpoints), max_steps=cfg.train.max_steps, learning_rate=cfg.train.learning_rate,
        lr_scheduler_type=cfg.train.lr_scheduler, warmup_steps=cfg.train.warmup_ratio,
        weight_decay=cfg.train.weight_decay, per_device_train_batch_size=cfg.train.batch_size,
        per_device_eval_batch_size=cfg.train.batch_size,
        gradient_accumulation_steps=cfg.train.gradient_accumulation_steps, logging_steps=cfg.train.logging_steps,
        eval_strategy="steps" if val_examples else "no", eval_steps=cfg.train.eval_steps, save_strategy="steps",
        save_steps=cfg.train.save_steps, save_total_limit=cfg.train.save_total_limit,
        load_best_model_at_end=bool(val_examples), metric_for_best_model="eval_loss", greater_is_better=False,
        bf16=compute_dtype == torch.bfloat16, fp16=compute_dtype == torch.float16, use_cpu=device.type == "cpu",
        gradient_checkpointing=cfg.train.gradient_checkpointing, seed=cfg.train.seed, data_seed=cfg.train.seed,
        train_sampling_strategy="group_by_length", length_column_name="length", remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True}, dataloader_num_workers=0,
        report_to=["wandb"] if report_to_wandb else [], disable_tqdm=True,
    )
    sharded = sharded_training()
    model = load_base_model(source, dtype=torch.float32 if device.type == "cpu" and not qlora else compute_dtype,
                            quantize_4bit=qlora, trust_remote_code=cfg.model.trust_remote_code, device=device,
                            sharded=sharded)
    if qlora and sharded:
        # prepare_model_for_kbit_training would upcast the non-4-bit weights to fp32, and FSDP / ZeRO-3 shard one
        # dtype (the 4-bit weights are stored in the compute dtype): only let checkpointed inputs carry gradients
        if cfg.train.gradient_checkpointing:
            model.enable_input_require_grads()
    elif qlora:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.train.gradient_checkpointing)
    lora = cfg.train.lora
    adapter_config = lora_config(family, lora.r, lora.alpha, lora.dropout, lora.target_modules,
                                 top_layers=lora.top_layers, num_layers=model.config.num_hidden_layers)
    model = get_peft_model(model, adapter_config)
    trainable, total = model.get_nb_trainable_parameters()

    trainer_class, throughput_class = make_trainer_class()
    throughput = throughput_class()
    trainer = trainer_class(model=model, args=args, train_dataset=examples_to_dataset(train_examples),
                            eval_dataset=examples_to_dataset(val_examples) if val_examples else None,
                            data_collator=collator, processing_class=tokenizer, callbacks=[throughput])
    throughput.trainer = trainer
    trainer.accelerator.wait_for_everyone()  # rank 0 has removed stale checkpoints before any rank looks
    resume = None
    if cfg.train.resume == "auto" and checkpoints.is_dir():
        resume = last_complete_checkpoint(checkpoints)
    elif cfg.train.resume not in ("auto", "never"):
        resume = cfg.train.resume
    if resume:
        log.info("train: resuming from %s", resume)
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.accelerator.wait_for_everyone()  # every rank is done writing checkpoints before rank 0 moves them
    # every rank takes part (sharded states are gathered), the main process writes
    if not save_adapter(trainer, out / "adapter"):
        return {"global_step": trainer.state.global_step, "rank": trainer.accelerator.process_index}
    history = trainer.state.log_history
    write_jsonl(out / "metrics.jsonl", history)
    eval_losses = [h["eval_loss"] for h in history if "eval_loss" in h]
    summary = {
        "global_step": trainer.state.global_step, "train_loss": result.training_loss,
        "best_eval_loss": min(eval_losses) if eval_losses else None,
        "best_checkpoint": Path(trainer.state.best_model_checkpoint).name if trainer.state.best_model_checkpoint
        else None, "resumed_from": resume,
        "train_examples": len(train_examples), "dropped_too_long": dropped,
        "multi_turn": {"conversations": conversations,
                       "kept": sum(1 for e in train_examples if e.targets),
                       "cut_to_fit": sum(1 for e in train_examples if e.cut),
                       "assistant_turns_trained": sum(len(e.targets) for e in train_examples if e.targets)},
        "trainable_parameters": trainable,
        "total_parameters": total, "method": cfg.train.method, "precision": str(compute_dtype),
        "device": str(device), "world_size": trainer.accelerator.num_processes,
        "tokens_per_s": throughput.tokens_per_s,
        "duration_s": round(time.time() - started, 1),
    }
    atomic_write_json(out / "summary.json", summary)
    return summary


def training_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The compute dtype for ``train.precision`` on ``device``; fp16 is refused on CPU, where accelerate applies no
    fp16 autocast: the run would train in fp32 while its summary said float16."""
    dtype = resolve_dtype(precision, device)
    if dtype == torch.float16 and device.type == "cpu":
        raise ValueError("train.precision=fp16 needs a GPU (on CPU, fp16 mixed precision is not applied and training "
                         "would silently run in fp32); use train.precision=bf16, fp32 or auto")
    return dtype


def last_complete_checkpoint(checkpoints: Path) -> str | None:
    """The newest checkpoint the Trainer finished writing (trainer_state.json is its last file).

    A run killed while saving leaves a checkpoint directory without it (or with it cut short); such directories are
    skipped and removed, so checkpoint rotation never counts them.
    """
    complete = []
    for path in checkpoints.glob("checkpoint-*"):
        step = path.name.removeprefix("checkpoint-")
        if not (path.is_dir() and step.isdigit()):
            continue
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
            complete.append((int(step), path))
        except (OSError, ValueError):
            log.warning("train: ignoring incomplete checkpoint %s (the run was killed while saving it)", path)
            shutil.rmtree(path, ignore_errors=True)
    return str(max(complete)[1]) if complete else None
