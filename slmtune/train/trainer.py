"""LoRA / QLoRA supervised fine-tuning on tool-call samples, loss on assistant tokens only.

Samples are rendered with the model family's prompt format and tool-call dialect, tokenised as prompt and completion
separately (so the boundary is exact and identical to inference, where the prompt is tokenised alone) and checked at
start-up: every example's loss mask must cover exactly its completion tokens.

A ``multi_turn`` conversation (:mod:`slmtune.data.multiturn`) is one example with a target per assistant turn:
:func:`render_segments` cuts the text that ``Family.render_prompt`` renders for the whole conversation (the same text
the exported chat template renders) into alternating context and target segments — each target is what
``render_completion`` makes of that assistant message (calls in the dialect, or text; plus the end-of-turn token),
and everything else (system, user turns, tool results in the family's tool-result markup, turn openers) is context
without loss. Segments are tokenised separately, so each target starts on a token boundary exactly as it does when
its history is the prompt at inference.

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

from slmtune.data.multiturn import is_conversation
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
    completion_start: int  # index of the first completion token (of the first target)
    completion: str        # the completion text (for the start-up mask check): all targets' texts joined
    targets: tuple[tuple[int, int], ...] = ()   # token [start, end) of every target; () = one, to the end
    target_texts: tuple[str, ...] = ()          # the text of every target
    cut: bool = False                           # a conversation cut after its last target that fit max_length

    def spans(self) -> tuple[tuple[int, int], ...]:
        """Token ``[start, end)`` of every target (single-turn: one, from ``completion_start`` to the end)."""
        return self.targets or ((self.completion_start, len(self.input_ids)),)

    def feature(self) -> dict[str, Any]:
        """The collator's input for this example."""
        starts, ends = zip(*self.spans(), strict=True)
        return {"input_ids": self.input_ids, "completion_start": self.completion_start,
                "target_starts": list(starts), "target_ends": list(ends)}


def render_example(sample: dict, family: Family, dialect) -> tuple[str, str]:
    """(prompt, completion) text of one single-turn training sample in the family's format."""
    calls = sample.get("tool_calls") or []
    content = None if calls else sample.get("answer") or NO_CALL_ANSWER
    prompt = family.render_prompt(sample["messages"], sample["tools"], dialect)
    completion = family.render_completion(calls, content, dialect, tools=sample["tools"])
    return prompt, completion


def render_segments(sample: dict, family: Family, dialect) -> list[tuple[str, bool]]:
    """``[(text, is_target), ...]`` whose texts joined are the sample's training text.

    Single-turn: (prompt, False), (completion, True). A ``multi_turn`` conversation: for each assistant message,
    the context since the previous target (``render_prompt`` of the history before it, which ends with the
    assistant-turn opener) and the target (``render_completion`` of that message). Raises ``ValueError`` when the
    family's rendering of a longer history does not continue the shorter one (then training text and serving text
    would differ)."""
    if not is_conversation(sample):
        prompt, completion = render_example(sample, family, dialect)
        return [(prompt, False), (completion, True)]
    messages, tools = sample["messages"], sample["tools"]
    segments: list[tuple[str, bool]] = []
    consumed = ""
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        prompt = family.render_prompt(messages[:i], tools, dialect)
        if not prompt.startswith(consumed):
            raise ValueError(f"sample {sample.get('id')}: family {family.name} renders messages[:{i}] without the "
                             "earlier turns' text as its prefix; training text would differ from serving text")
        completion = family.render_completion(message.get("tool_calls") or [], message.get("content"), dialect,
                                              tools=tools)
        segments += [(prompt[len(consumed):], False), (completion, True)]
        consumed = prompt + completion
    if not segments:
        raise ValueError(f"sample {sample.get('id')}: a multi_turn sample without an assistant message")
    if not family.render_prompt(messages, tools, dialect).startswith(consumed):
        raise ValueError(f"sample {sample.get('id')}: family {family.name} renders the whole conversation "
                         "differently from its turns")
    return segments


def tokenize_sample(sample: dict, tokenizer, family: Family, dialect) -> TokenizedExample:
    """One sample's token ids with its target spans (segments of :func:`render_segments` tokenised separately)."""
    ids: list[int] = []
    targets: list[tuple[int, int]] = []
    texts: list[str] = []
    for text, is_target in render_segments(sample, family, dialect):
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        if is_target:
            targets.append((len(ids), len(ids) + len(piece)))
            texts.append(text)
        ids += piece
    single = len(targets) == 1 and targets[0][1] == len(ids)
    return TokenizedExample(ids, targets[0][0], "".join(texts), () if single else tuple(targets),
                            () if single else tuple(texts))


def fit_length(example: TokenizedExample, max_length: int) -> TokenizedExample | None:
    """``example`` if it fits ``max_length`` tokens; a conversation that does not is cut after its last assistant
    turn that fits (its first turns stay a complete training example, never a target cut in the middle); None
    when not even the first target fits."""
    if len(example.input_ids) <= max_length:
        return example
    if not example.targets:
        return None
    keep = [i for i, (_, end) in enumerate(example.targets) if end <= max_length]
    if not keep:
        return None
    n = keep[-1] + 1
    end = example.targets[n - 1][1]
    return TokenizedExample(example.input_ids[:end], example.completion_start, "".join(example.target_texts[:n]),
                            example.targets[:n], example.target_texts[:n], cut=True)


def tokenize_examples(samples: Sequence[dict], tokenizer, family: Family, dialect, max_length: int
                      ) -> tuple[list[TokenizedExample], int]:
    """Tokenise samples; drop (and count) those longer than ``max_length`` rather than truncating their target (a
    conversation keeps the turns that fit, :func:`fit_length`)."""
    examples, dropped = [], 0
    for sample in samples:
        example = fit_length(tokenize_sample(sample, tokenizer, family, dialect), max_length)
        if example is None:
            dropped += 1
            continue
        examples.append(example)
    return examples, dropped


def check_label_masks(batch: dict[str, torch.Tensor], examples: Sequence[TokenizedExample], tokenizer) -> None:
    """Fail unless each row's unmasked labels are exactly its targets' tokens, at their positions (for a
    conversation: every assistant turn, no user, system or tool-result token), each decoding to its text."""
    for row, example in enumerate(examples):
        labels = batch["labels"][row]
        offset = labels.shape[0] - len(example.input_ids)  # left padding
        positions = (labels != IGNORE_INDEX).nonzero().flatten().tolist()
        kept = labels[labels != IGNORE_INDEX].tolist()
        spans = example.spans()
        expected_positions = [offset + i for start, end in spans for i in range(start, end)]
        expected = [example.input_ids[i] for start, end in spans for i in range(start, end)]
        if not kept:
            raise LabelMaskError(f"example {row}: the loss mask is empty (no assistant tokens are trained)")
        if kept != expected or positions != expected_positions:
            raise LabelMaskError(f"example {row}: the loss mask covers {len(kept)} tokens, expected exactly the "
                                 f"{len(expected)} tokens of its {len(spans)} assistant target(s) (prompt, user, "
                                 "tool-result or tool-schema tokens leaked, or a target cut)")
        texts = example.target_texts or (example.completion,)
        for (start, end), text in zip(spans, texts, strict=True):
            got = tokenizer.decode(labels[offset + start:offset + end].tolist())
            if got != text:
                raise LabelMaskError(f"example {row}: trained tokens decode to {got!r}, expected the completion "
                                     f"{text!r}")


class LeftPadCollator:
    """Left-pads a batch; labels are -100 outside completions; adds position ids and the completion window size.

    A feature may carry ``target_starts``/``target_ends`` (several targets: a conversation's assistant turns); labels
    are then set on those spans only, and the completion window starts at the first.

    ``decision_weight`` != 1 adds ``loss_weights``: 1 on every completion token except the first of each target,
    which weighs ``decision_weight``. The first completion token is where the model decides between a call and a
    plain-text answer (every dialect's call marker starts the completion and differs from the no-call answer's first
    token; a test checks this per family); in the mean over a 20-60-token completion that one token otherwise weighs
    little.
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
            starts = feature.get("target_starts") or [start]
            ends = feature.get("target_ends") or [len(ids)]
            for first, end in zip(starts, ends, strict=True):
                labels[row, offset + first:offset + end] = torch.tensor(ids[first:end])
                weights[row, offset + first:offset + end] = 1.0
                weights[row, offset + first] = self.decision_weight
            # +1: the position predicting the first completion token
            window = max(window, len(ids) - min(starts) + 1)
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

    features = [e.feature() for e in examples]
    return Dataset.from_dict({"input_ids": [f["input_ids"] for f in features],
                              "completion_start": [f["completion_start"] for f in features],
                              "target_starts": [f["target_starts"] for f in features],
                              "target_ends": [f["target_ends"] for f in features],
                              "length": [len(f["input_ids"]) for f in features]})


def steps_per_epoch(num_examples: int, batch_size: int, accumulation: int, world_size: int = 1) -> int:
    return max(1, math.ceil(num_examples / (batch_size * world_size)) // max(accumulation, 1))
