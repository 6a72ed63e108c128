"""LoRA / QLoRA supervised fine-tuning on tool-call samples, loss on assistant tokens only.

Samples are rendered with the model family's prompt format and tool-call dialect, tokenised as prompt and completion
separately (so the boundary is exact and identical to inference, where the prompt is tokenised alone) and checked at
start-up: every example's loss mask must cover exactly its completion tokens.

Speed and memory: batches are left-padded and grouped by length, so every sequence's completion sits in the last
columns; the model computes the vocabulary projection only for that completion window (``logits_to_keep``) instead
of every position. For Gemma's 262k-token vocabulary the projection is most of the FLOPs and activation memory, and
the loss needs no other position.
"""

from __future__ import annotations

import logging
import math
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from slmtune.models.families import Family
from slmtune.progress import Progress

log = logging.getLogger(__name__)

NO_CALL_ANSWER = "None of the available tools can do that, so I cannot call one for this request."
IGNORE_INDEX = -100


class LabelMaskError(RuntimeError):
    """The loss mask does not cover exactly the assistant completion."""


@dataclass
class TokenizedExample:
    input_ids: list[int]
    completion_start: int  # index of the first completion token
    completion: str        # the completion text (for the start-up mask check)


def render_example(sample: dict, family: Family, dialect) -> tuple[str, str]:
    """(prompt, completion) text of one training sample in the family's format."""
    calls = sample.get("tool_calls") or []
    content = None if calls else sample.get("answer") or NO_CALL_ANSWER
    prompt = family.render_prompt(sample["messages"], sample["tools"], dialect)
    completion = family.render_completion(calls, content, dialect, tools=sample["tools"])
    return prompt, completion


def tokenize_examples(samples: Sequence[dict], tokenizer, family: Family, dialect, max_length: int
                      ) -> tuple[list[TokenizedExample], int]:
    """Tokenise samples; drop (and count) those longer than ``max_length`` rather than truncating their target."""
    examples, dropped = [], 0
    for sample in samples:
        prompt, completion = render_example(sample, family, dialect)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
        if len(prompt_ids) + len(completion_ids) > max_length:
            dropped += 1
            continue
        examples.append(TokenizedExample(prompt_ids + completion_ids, len(prompt_ids), completion))
    return examples, dropped


def check_label_masks(batch: dict[str, torch.Tensor], examples: Sequence[TokenizedExample], tokenizer) -> None:
    """Fail unless each row's unmasked labels are exactly its completion's tokens (decoded text included)."""
    for row, example in enumerate(examples):
        completion = example.completion
        labels = batch["labels"][row]
        kept = labels[labels != IGNORE_INDEX].tolist()
        expected = example.input_ids[example.completion_start:]
        if not kept:
            raise LabelMaskError(f"example {row}: the loss mask is empty (no assistant tokens are trained)")
        if kept != expected:
            raise LabelMaskError(f"example {row}: the loss mask covers {len(kept)} tokens, expected exactly the "
                                 f"{len(expected)} completion tokens (prompt/tool-schema tokens leaked or target cut)")
        if tokenizer.decode(kept) != completion:
            raise LabelMaskError(f"example {row}: trained tokens decode to {tokenizer.decode(kept)!r}, "
                                 f"expected the completion {completion!r}")


class LeftPadCollator:
    """Left-pads a batch; labels are -100 outside completions; adds position ids and the completion window size.

    ``decision_weight`` != 1 adds ``loss_weights``: 1 on every completion token except the first, which weighs
    ``decision_weight``. The first completion token is where the model decides between a call and a plain-text answer
    (every dialect's call marker starts the completion and differs from the no-call answer's first token; a test
    checks this per family); in the mean over a 20-60-token completion that one token otherwise weighs little.
    """

    def __init__(self, pad_id: int, decision_weight: float = 1.0) -> None:
        if decision_weight <= 0:
            raise ValueError(f"decision_weight must be > 0, got {decision_weight}")
        self.pad_id = pad_id
        self.decision_weight = decision_weight

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        batch = len(features)
        input_ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        labels = torch.full((batch, width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.long)
        weights = torch.zeros((batch, width), dtype=torch.float32)
        window = 1
        for row, feature in enumerate(features):
            ids = feature["input_ids"]
            offset = width - len(ids)
            input_ids[row, offset:] = torch.tensor(ids)
            mask[row, offset:] = 1
            start = feature["completion_start"]
            labels[row, offset + start:] = torch.tensor(ids[start:])
            weights[row, offset + start:] = 1.0
            weights[row, offset + start] = self.decision_weight
            window = max(window, len(ids) - start + 1)  # +1: the position predicting the first completion token
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        batch_inputs = {"input_ids": input_ids, "attention_mask": mask, "position_ids": positions, "labels": labels,
                        "logits_window": torch.tensor(window)}
        if self.decision_weight != 1.0:
            batch_inputs["loss_weights"] = weights
        return batch_inputs


def completion_window_loss(model, inputs: dict[str, torch.Tensor], full_logits: bool = False
                           ) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over completion tokens, projecting to the vocabulary only over the completion window.

    With ``loss_weights`` in ``inputs`` (see ``LeftPadCollator``) the mean is weighted. Returns (loss, number of target
    tokens). ``full_logits`` computes every position's logits (the naive baseline).
    """
    labels = inputs["labels"]
    window = labels.shape[1] if full_logits else int(inputs["logits_window"])
    outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                    position_ids=inputs["position_ids"], use_cache=False, logits_to_keep=window)
    logits = outputs.logits[:, :-1, :].float()
    targets = labels[:, labels.shape[1] - window + 1:]
    count = int((targets != IGNORE_INDEX).sum())
    token_losses = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                     ignore_index=IGNORE_INDEX, reduction="none")
    if "loss_weights" not in inputs:
        return token_losses.sum() / max(count, 1), count
    weights = inputs["loss_weights"][:, labels.shape[1] - window + 1:].reshape(-1).to(token_losses.dtype)
    return (token_losses * weights).sum() / weights.sum().clamp(min=1e-8), count


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_trainer_class():
    """Build the SFTTrainer subclass lazily (importing trl is slow)."""
    from transformers import TrainerCallback
    from trl import SFTTrainer

    class ToolCallTrainer(SFTTrainer):
        """SFTTrainer whose loss projects to the vocabulary only over the completion window."""

        full_logits = False

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, count = completion_window_loss(model, inputs, full_logits=self.full_logits)
            self._tokens_seen = getattr(self, "_tokens_seen", 0) + int(inputs["attention_mask"].sum())
            return (loss, None) if return_outputs else loss

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            with torch.no_grad():
                loss, _ = completion_window_loss(model, inputs)
            return loss.detach(), None, None

    class ThroughputCallback(TrainerCallback):
        """Logs trained tokens per second of training-step time (evaluation excluded) and peak memory, and shows
        the steps done with ETA on the main process (:class:`~slmtune.progress.Progress`)."""

        def __init__(self) -> None:
            self.trainer = None
            self.tokens_per_s: float | None = None
            self.step_seconds = 0.0
            self.step_started: float | None = None
            self.start_tokens = 0
            self.progress: Progress | None = None
            self.progress_tokens = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.start_tokens = self.progress_tokens = getattr(self.trainer, "_tokens_seen", 0)
            if state.is_world_process_zero:
                self.progress = Progress("train: steps", total=state.max_steps, unit="steps",
                                         initial=state.global_step)

        def on_step_begin(self, args, state, control, **kwargs):
            self.step_started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if self.step_started is not None:
                self.step_seconds += time.perf_counter() - self.step_started
                self.step_started = None
            if self.progress is not None:
                tokens = getattr(self.trainer, "_tokens_seen", 0)
                self.progress.update(1, tok=tokens - self.progress_tokens)
                self.progress_tokens = tokens

        def on_train_end(self, args, state, control, **kwargs):
            if self.progress is not None:
                self.progress.close()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.progress is not None and logs and "loss" in logs:
                self.progress.note = f"loss {logs['loss']:.4g}"
            if logs is None or self.step_seconds <= 0:
                return
            tokens = getattr(self.trainer, "_tokens_seen", 0) - self.start_tokens
            logs["tokens_per_s"] = self.tokens_per_s = round(tokens / self.step_seconds, 2)
            logs["peak_rss_mb"] = round(peak_rss_mb(), 1)
            if args.device.type == "cuda":  # this rank's GPU
                logs["peak_gpu_mem_mb"] = round(torch.cuda.max_memory_allocated(args.device) / 2**20, 1)

    return ToolCallTrainer, ThroughputCallback


def save_adapter(trainer, adapter_dir: Path) -> bool:
    """Save the trained PEFT adapter (safetensors) of ``trainer``'s model; every process must call it.

    The state dict comes from the trainer's accelerator, which gathers it where FSDP or DeepSpeed ZeRO-3 sharded the
    model (a collective operation: each rank takes part); only the main process writes. Returns whether this
    process wrote ``adapter_dir``."""
    accelerator = trainer.accelerator
    state_dict = accelerator.get_state_dict(trainer.model_wrapped)
    if not accelerator.is_main_process:
        return False
    model = accelerator.unwrap_model(trainer.model)
    model.save_pretrained(str(adapter_dir), state_dict=state_dict, safe_serialization=True)
    log.info("train: adapter saved to %s", adapter_dir)
    return True


def lora_config(family: Family, r: int, alpha: int, dropout: float, target_modules: Sequence[str] | None, *,
                top_layers: int | None = None, num_layers: int | None = None):
    """PEFT LoRA config: the family's target modules unless given; with ``top_layers``, only the last
    ``top_layers`` of the model's ``num_layers`` decoder layers are adapted (the backward pass then stops there)."""
    from peft import LoraConfig

    layers = None
    if top_layers is not None:
        if num_layers is None or not 1 <= top_layers <= num_layers:
            raise ValueError(f"train.lora.top_layers={top_layers} needs 1 <= top_layers <= the model's "
                             f"{num_layers} layers")
        layers = list(range(num_layers - top_layers, num_layers))
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, bias="none", task_type="CAUSAL_LM",
                      target_modules=list(target_modules or family.lora_target_modules), layers_to_transform=layers)


def examples_to_dataset(examples: Sequence[TokenizedExample]):
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [e.input_ids for e in examples],
                              "completion_start": [e.completion_start for e in examples],
                              "length": [len(e.input_ids) for e in examples]})


def steps_per_epoch(num_examples: int, batch_size: int, accumulation: int, world_size: int = 1) -> int:
    return max(1, math.ceil(num_examples / (batch_size * world_size)) // max(accumulation, 1))
