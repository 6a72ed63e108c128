"""Training: exact loss masks per dialect, the start-up mask check, completion-window loss, a LoRA step for every
family's architecture, QLoRA on CPU, resume after SIGKILL, 2-process DDP and the accelerate configs.

The DDP test (``accelerate launch``) and the slow resume-after-SIGKILL test (``pytest -m slow``) run the train stage in
subprocesses on the ``tiny`` recipe (a 2-layer random Gemma 3 with the embedded Gemma tokenizer).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from slmtune.config import PACKAGE_ROOT, compose
from slmtune.models.families import FAMILIES
from slmtune.train.trainer import (
    IGNORE_INDEX,
    NO_CALL_ANSWER,
    LabelMaskError,
    LeftPadCollator,
    check_label_masks,
    completion_window_loss,
    lora_config,
    render_example,
    tokenize_examples,
)
from tests.train.common import MARKUP_TOKENS, TIME_TOOL

ACCELERATE_DIR = PACKAGE_ROOT / "recipes" / "accelerate"
# The recipe whose LoRA settings each family's architecture is trained with below.
FAMILY_RECIPES = {"qwen2": "qwen7b", "llama": "llama1b", "phi3": "phi4mini", "gemma2": "gemma9b",
                  "gemma3": "gemma270m"}
CALLS = [{"name": "get_time", "arguments": {"city": "Oslo", "days": 2}}]
HERMES = '<tool_call>\n{"name": "get_time", "arguments": {"city": "Oslo", "days": 2}}\n</tool_call>'
# (family, dialect, golden completion): exactly the text whose tokens carry the loss.
GOLDEN_COMPLETIONS = [
    ("qwen2", "hermes", HERMES + "<|im_end|>"),
    ("gemma3", "hermes", HERMES + "<end_of_turn>"),
    ("gemma2", "hermes", HERMES + "<end_of_turn>"),
    ("llama", "llama3_json", '{"name": "get_time", "parameters": {"city": "Oslo", "days": 2}}<|eot_id|>'),
    ("phi3", "phi4_mini_json",
     'functools[{"name": "get_time", "arguments": {"city": "Oslo", "days": 2}}]<|end|>'),
    ("llama", "pythonic", '[get_time(city="Oslo", days=2)]<|eot_id|>'),
    ("gemma3", "pythonic", '[get_time(city="Oslo", days=2)]<end_of_turn>'),
]


def sample(user: str, calls=CALLS) -> dict:
    return {"messages": [{"role": "user", "content": user}], "tools": [TIME_TOOL], "tool_calls": calls}


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from slmtune.models.sources import resolve_source

    tok = AutoTokenizer.from_pretrained(resolve_source("embedded:gemma3-270m").path)
    tok.add_special_tokens({"additional_special_tokens": MARKUP_TOKENS})
    return tok


def collate(examples, tokenizer):
    return LeftPadCollator(tokenizer.pad_token_id)(
        [{"input_ids": e.input_ids, "completion_start": e.completion_start} for e in examples])


# -- (a) exact masked span per dialect ------------------------------------------------------------------------------


@pytest.mark.parametrize(("family_name", "dialect", "golden"), GOLDEN_COMPLETIONS,
                         ids=[f"{f}-{d}" for f, d, _ in GOLDEN_COMPLETIONS])
def test_unmasked_labels_are_exactly_the_assistant_tool_call(tokenizer, family_name, dialect, golden):
    family = FAMILIES[family_name]
    samples = [sample("What time is it in Oslo?"),
               sample("I am flying to Norway tomorrow and need to call my aunt: what time is it in Oslo now?")]
    examples, dropped = tokenize_examples(samples, tokenizer, family, dialect, max_length=4096)
    assert dropped == 0 and len(examples) == 2
    batch = collate(examples, tokenizer)
    width = batch["input_ids"].shape[1]
    assert len(examples[0].input_ids) < width  # the first row really is left-padded
    check_label_masks(batch, examples, tokenizer)  # the start-up check accepts it
    for row, (raw, example) in enumerate(zip(samples, examples)):
        prompt, completion = render_example(raw, family, dialect)
        assert completion == golden
        labels, ids = batch["labels"][row], batch["input_ids"][row]
        offset = width - len(example.input_ids)
        start = offset + example.completion_start
        # Trained tokens: exactly the completion, aligned with the input ids, nothing else.
        assert tokenizer.decode(labels[labels != IGNORE_INDEX].tolist()) == golden
        assert torch.equal(labels[start:], ids[start:])
        # Padding and every prompt token (system text, tool schemas, user turn, assistant opener) are -100.
        assert (labels[:start] == IGNORE_INDEX).all()
        assert tokenizer.decode(ids[offset:start].tolist()) == prompt
        assert TIME_TOOL["description"] in prompt
        assert (batch["attention_mask"][row, :offset] == 0).all() and (batch["attention_mask"][row, offset:] == 1).all()
        assert batch["position_ids"][row, offset] == 0 and batch["position_ids"][row, -1] == len(example.input_ids) - 1
    assert int(batch["logits_window"]) == max(len(e.input_ids) - e.completion_start for e in examples) + 1


def test_a_no_call_sample_trains_on_its_answer(tokenizer):
    family = FAMILIES["gemma3"]
    raw = {**sample("Book me a flight", calls=[]), "answer": "I cannot book flights with these tools."}
    examples, _ = tokenize_examples([raw], tokenizer, family, "hermes", max_length=4096)
    batch = collate(examples, tokenizer)
    check_label_masks(batch, examples, tokenizer)
    labels = batch["labels"][0]
    assert tokenizer.decode(labels[labels != IGNORE_INDEX].tolist()) == \
        "I cannot book flights with these tools.<end_of_turn>"


@pytest.mark.parametrize(("family_name", "dialect", "golden"), GOLDEN_COMPLETIONS,
                         ids=[f"{f}-{d}" for f, d, _ in GOLDEN_COMPLETIONS])
def test_the_decision_weight_lands_on_the_token_that_tells_a_call_from_a_no_call_answer(tokenizer, family_name,
                                                                                         dialect, golden):
    family = FAMILIES[family_name]
    samples = [sample("What time is it in Oslo?"), sample("Book me a flight", calls=[])]
    examples, _ = tokenize_examples(samples, tokenizer, family, dialect, max_length=4096)
    call_first, no_call_first = (e.input_ids[e.completion_start] for e in examples)
    assert call_first != no_call_first
    assert tokenizer.decode([no_call_first]) == NO_CALL_ANSWER.split()[0]
    batch = LeftPadCollator(tokenizer.pad_token_id, decision_weight=10.0)(
        [{"input_ids": e.input_ids, "completion_start": e.completion_start} for e in examples])
    for row, example in enumerate(examples):
        weights, labels = batch["loss_weights"][row], batch["labels"][row]
        start = batch["input_ids"].shape[1] - len(example.input_ids) + example.completion_start
        assert weights[start] == 10.0 and labels[start] == example.input_ids[example.completion_start]
        assert (weights[start + 1:] == 1.0).all() and (weights[:start] == 0.0).all()


def test_plain_sft_batches_carry_no_loss_weights(tokenizer):
    examples, _ = tokenize_examples([sample("Time in Oslo?")], tokenizer, FAMILIES["gemma3"], "hermes", 4096)
    assert "loss_weights" not in collate(examples, tokenizer)
    with pytest.raises(ValueError, match="decision_weight"):
        LeftPadCollator(tokenizer.pad_token_id, decision_weight=0.0)


def test_mask_check_rejects_an_empty_mask(tokenizer):
    examples, _ = tokenize_examples([sample("Time in Oslo?")], tokenizer, FAMILIES["qwen2"], "hermes", 4096)
    batch = collate(examples, tokenizer)
    batch["labels"][:] = IGNORE_INDEX
    with pytest.raises(LabelMaskError, match="empty"):
        check_label_masks(batch, examples, tokenizer)


@pytest.mark.parametrize("leaked", [1, 40])
def test_mask_check_rejects_a_mask_leaking_into_the_prompt(tokenizer, leaked):
    examples, _ = tokenize_examples([sample("Time in Oslo?"), sample("And what time is it in Oslo right now?")],
                                    tokenizer, FAMILIES["llama"], "llama3_json", 4096)
    batch = collate(examples, tokenizer)
    row = 1
    start = batch["input_ids"].shape[1] - len(examples[row].input_ids) + examples[row].completion_start
    # unmask the last `leaked` prompt tokens (assistant header, then tool-schema text)
    batch["labels"][row, start - leaked:start] = batch["input_ids"][row, start - leaked:start]
    with pytest.raises(LabelMaskError, match=r"example 1: .*leaked"):
        check_label_masks(batch, examples, tokenizer)


def test_mask_check_rejects_a_cut_target(tokenizer):
    examples, _ = tokenize_examples([sample("Time in Oslo?")], tokenizer, FAMILIES["phi3"], "phi4_mini_json", 4096)
    batch = collate(examples, tokenizer)
    batch["labels"][0, -1] = IGNORE_INDEX  # the end-of-turn token would not be learned
    with pytest.raises(LabelMaskError):
        check_label_masks(batch, examples, tokenizer)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny-recipe run directory whose data stage has completed (in-process, a few seconds)."""
    from slmtune.stages import data as data_stage

    out = tmp_path_factory.mktemp("tiny-run")
    data_stage.run(compose(["+recipe=tiny", f"run.output_dir={out}", "tracking.mode=disabled"]))
    return out


def test_train_stage_stops_at_start_up_before_loading_the_model_when_the_mask_leaks(tiny_run, monkeypatch):
    from slmtune.rundir import RunDir
    from slmtune.stages import train as train_stage

    class LeakyCollator(LeftPadCollator):
        def __call__(self, features):
            batch = super().__call__(features)
            start = batch["input_ids"].shape[1] - len(features[0]["input_ids"]) + features[0]["completion_start"]
            batch["labels"][0, start - 3:start] = batch["input_ids"][0, start - 3:start]
            return batch

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the label-mask check")

    monkeypatch.setattr(train_stage, "LeftPadCollator", LeakyCollator)
    monkeypatch.setattr(train_stage, "load_base_model", no_model)
    cfg = compose(["+recipe=tiny", f"run.output_dir={tiny_run}", "tracking.mode=disabled", "train.max_steps=1"])
    with pytest.raises(LabelMaskError, match="leaked"):
        train_stage.run(cfg)
    record = RunDir(cfg.run_dir).stage_record("train")
    assert record["status"] == "failed" and "LabelMaskError" in record["error"]
    assert not RunDir(cfg.run_dir).stage_dir("train").exists()


# -- (b) completion-window loss == full-logits loss ------------------------------------------------------------------


def tiny_model(family_name: str, vocab_size: int = 320, seed: int = 0):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(FAMILIES[family_name].tiny_config(vocab_size), dtype=torch.float32)


def random_batch(vocab_size: int = 320, shapes=((37, 29), (12, 5), (25, 21), (30, 28)), seed: int = 1):
    """Left-padded batch of rows (length, completion start) of different lengths; completions are short."""
    generator = torch.Generator().manual_seed(seed)
    features = [{"input_ids": torch.randint(3, vocab_size, (n,), generator=generator).tolist(), "completion_start": s}
                for n, s in shapes]
    return LeftPadCollator(pad_id=0)(features)


@pytest.mark.parametrize("family_name", sorted(FAMILIES))
def test_completion_window_loss_equals_full_logits_loss(family_name):
    model = tiny_model(family_name)
    batch = random_batch()
    assert int(batch["logits_window"]) < batch["input_ids"].shape[1] // 2  # the window really is smaller
    window_loss, window_count = completion_window_loss(model, batch)
    model.zero_grad()
    full_loss, full_count = completion_window_loss(model, batch, full_logits=True)
    assert window_count == full_count == sum(n - s for n, s in ((37, 29), (12, 5), (25, 21), (30, 28)))
    assert torch.isfinite(window_loss)
    assert abs(window_loss.item() - full_loss.item()) < 1e-5
    # and the same gradients
    window_loss.backward()
    window_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    full_loss.backward()
    for name, param in model.named_parameters():
        if name in window_grads:
            torch.testing.assert_close(window_grads[name], param.grad, atol=1e-5, rtol=1e-4)


def test_full_logits_loss_matches_a_reference_cross_entropy():
    """The window loss is also the plain causal-LM loss of the model's own labels path (shifted, -100 ignored)."""
    model = tiny_model("qwen2")
    batch = random_batch()
    with torch.no_grad():
        loss, _ = completion_window_loss(model, batch)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       position_ids=batch["position_ids"]).logits
        reference = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                      batch["labels"][:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
    assert abs(loss.item() - reference.item()) < 1e-5


def test_the_decision_weighted_loss_is_the_weighted_mean_of_the_token_losses():
    model = tiny_model("gemma3")
    shapes = ((37, 29), (12, 5), (25, 21), (30, 28))
    features = [{"input_ids": torch.randint(3, 320, (n,), generator=torch.Generator().manual_seed(i)).tolist(),
                 "completion_start": s} for i, (n, s) in enumerate(shapes)]
    plain = LeftPadCollator(pad_id=0)(features)
    weighted = LeftPadCollator(pad_id=0, decision_weight=5.0)(features)
    with torch.no_grad():
        plain_loss, count = completion_window_loss(model, plain)
        loss, weighted_count = completion_window_loss(model, weighted)
        logits = model(input_ids=plain["input_ids"], attention_mask=plain["attention_mask"],
                       position_ids=plain["position_ids"]).logits
        token_losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), plain["labels"][:, 1:],
                                                         ignore_index=IGNORE_INDEX, reduction="none")
    width = plain["input_ids"].shape[1]
    first = torch.tensor([width - n + s - 1 for n, s in shapes])  # the position predicting each first target
    rows = torch.arange(len(shapes))
    decision_sum = token_losses[rows, first].sum()
    reference = (token_losses.sum() + 4 * decision_sum) / (count + 4 * len(shapes))
    assert weighted_count == count
    assert abs(loss.item() - reference.item()) < 1e-5
    assert abs(plain_loss.item() - token_losses.sum().item() / count) < 1e-5
    assert abs(loss.item() - plain_loss.item()) > 1e-4  # the weight changes the objective


# -- (c) one LoRA step per family ----------------------------------------------------------------------------------


@pytest.mark.parametrize("family_name", sorted(FAMILIES))
def test_one_lora_step_with_the_recipe_lora_config_on_each_architecture(family_name):
    from peft import get_peft_model

    family = FAMILIES[family_name]
    cfg = compose([f"+recipe={FAMILY_RECIPES[family_name]}"])
    assert cfg.model.family == family_name
    lora = cfg.train.lora
    model = tiny_model(family_name)
    assert type(model).__name__.lower() == f"{family_name}forcausallm"  # the family's real architecture
    layers = model.config.num_hidden_layers  # the tiny model has fewer layers than the recipe's top_layers
    top_layers = min(lora.top_layers, layers) if lora.top_layers else None
    model = get_peft_model(model, lora_config(family, lora.r, lora.alpha, lora.dropout, lora.target_modules,
                                              top_layers=top_layers, num_layers=layers))
    adapted = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")}
    assert adapted == set(lora.target_modules or family.lora_target_modules)
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)

    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.0)
    loss, _ = completion_window_loss(model, random_batch())
    loss.backward()
    optimizer.step()

    params = dict(model.named_parameters())
    changed_b = [n for n in trainable if "lora_B" in n and not torch.equal(params[n], trainable[n])]
    assert len(changed_b) == len([n for n in trainable if "lora_B" in n])  # every adapter moved
    assert all(torch.equal(params[n], frozen[n]) for n in frozen)  # the base model did not


# -- (d) QLoRA on CPU ----------------------------------------------------------------------------------------------


def test_qlora_nf4_double_quant_forward_backward_on_cpu(tmp_path):
    pytest.importorskip("bitsandbytes")
    from bitsandbytes.nn import Linear4bit
    from peft import get_peft_model, prepare_model_for_kbit_training

    from slmtune.models.loading import load_base_model
    from slmtune.models.sources import ResolvedSource

    family = FAMILIES["qwen2"]
    cfg = compose(["+recipe=qwen7b"])  # the QLoRA recipe
    assert cfg.train.method == "qlora"
    tiny_model("qwen2").save_pretrained(tmp_path, safe_serialization=True)
    model = load_base_model(ResolvedSource(path=str(tmp_path), identity="test"), dtype=torch.float32,
                            quantize_4bit=True, device=torch.device("cpu"))
    quantized = [m for m in model.modules() if isinstance(m, Linear4bit)]
    assert len(quantized) == 2 * 7
    state = quantized[0].weight.quant_state
    assert state.quant_type == "nf4" and state.nested  # nested = double quantisation of the absmax constants
    assert quantized[0].weight.dtype == torch.uint8 and quantized[0].weight.device.type == "cpu"
    packed = quantized[0].weight.data.clone()

    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.train.gradient_checkpointing,
                                            gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = cfg.train.lora
    model = get_peft_model(model, lora_config(family, lora.r, lora.alpha, lora.dropout, lora.target_modules))
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.0)
    loss, count = completion_window_loss(model, random_batch())
    assert torch.isfinite(loss) and count > 0
    loss.backward()
    optimizer.step()
    params = dict(model.named_parameters())
    assert all(not torch.equal(params[n], trainable[n]) for n in trainable if "lora_B" in n)
    assert torch.equal(quantized[0].weight.data, packed)  # the 4-bit base weights are frozen


# -- (e) resume after SIGKILL --------------------------------------------------------------------------------------


def slmtune_env() -> dict[str, str]:
    # CPU even on a GPU machine (these tests are about the CPU path), no W&B, unbuffered logs.
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


def run_data_stage(output_dir: Path) -> None:
    subprocess.run([sys.executable, "-m", "slmtune", "data", "+recipe=tiny", f"run.output_dir={output_dir}",
                    "tracking.mode=disabled"], check=True, env=slmtune_env(), capture_output=True, timeout=600)


def complete_checkpoints(checkpoints: Path) -> list[Path]:
    return sorted((p for p in checkpoints.glob("checkpoint-*") if (p / "trainer_state.json").is_file()),
                  key=lambda p: int(p.name.split("-")[1]))


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", ["start", "checkpoint"])
def test_a_run_killed_with_sigkill_resumes_from_its_last_checkpoint_and_finishes_all_steps(tmp_path, kill_at):
    """Three kill points: ``start`` (the stage has begun, no checkpoint yet: resume from scratch), ``checkpoint``
    (after a complete checkpoint) and, within it, a kill during the next save (a checkpoint directory without
    trainer_state.json, which resume must skip). Each resumes to all 8 steps and a loadable adapter."""
    from safetensors.torch import load_file

    run_data_stage(tmp_path)
    run_dir = tmp_path / "tiny" / "main"
    checkpoints = run_dir / ".train.partial" / "checkpoints"
    command = [sys.executable, "-m", "slmtune", "train", "+recipe=tiny", f"run.output_dir={tmp_path}",
               "train.max_steps=8", "train.save_steps=2", "train.eval_steps=2", "tracking.mode=disabled"]

    def ready() -> bool:
        if kill_at == "start":
            return (run_dir / ".train.partial").is_dir()
        return bool(complete_checkpoints(checkpoints))

    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(command, env=slmtune_env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600
        try:
            while not ready():
                assert first.poll() is None, "the first run ended before the kill point:\n" + \
                    (tmp_path / "first.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "kill point not reached within 10 minutes"
                time.sleep(0.05)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
    assert first.returncode == -signal.SIGKILL
    assert not (run_dir / "train").exists()  # nothing was published
    last = None
    if kill_at == "checkpoint":
        last = complete_checkpoints(checkpoints)[-1]
        last_step = int(last.name.split("-")[1])
        assert 2 <= last_step < 8
        # What a kill during the next save leaves: a checkpoint directory without trainer_state.json. Resume must
        # skip it.
        torn = checkpoints / f"checkpoint-{last_step + 2}"
        if not torn.exists():
            torn.mkdir()
            shutil.copy(last / "adapter_model.safetensors", torn / "adapter_model.safetensors")
        else:
            (torn / "trainer_state.json").unlink(missing_ok=True)
    else:
        assert not complete_checkpoints(checkpoints)

    second = subprocess.run(command, env=slmtune_env(), capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    summary = json.loads((run_dir / "train" / "summary.json").read_text())
    assert summary["global_step"] == 8
    if last is None:
        assert summary["resumed_from"] is None
    else:
        assert summary["resumed_from"] and Path(summary["resumed_from"]).name == last.name
    history = [json.loads(line) for line in (run_dir / "train" / "metrics.jsonl").read_text().splitlines()]
    # every optimizer step logged exactly once across the two runs (logging_steps=1 in the tiny recipe)
    assert [h["step"] for h in history if "loss" in h] == list(range(1, 9))
    weights = load_file(run_dir / "train" / "adapter" / "adapter_model.safetensors")
    assert weights and all(t.isfinite().all() for t in weights.values())
    assert json.loads((run_dir / "run.json").read_text())["stages"]["train"]["status"] == "completed"


# -- (f) 2-process DDP ---------------------------------------------------------------------------------------------


def test_two_process_ddp_on_cpu_with_accelerate_launch(tmp_path):
    """2 ranks over gloo on CPU (~40-70 s on 2 cores, so in the default run).

    ``accelerate launch --cpu --num_processes 2`` starts ONE process in accelerate 1.15 (its CPU launcher is
    multi-process only through MPI), so the run goes through the torchrun launcher (``--multi_gpu``) with CUDA
    hidden; the Trainer then runs DDP over gloo on CPU."""
    run_data_stage(tmp_path)
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
               "-m", "slmtune", "train", "+recipe=tiny", f"run.output_dir={tmp_path}", "tracking.mode=disabled",
               "train.max_steps=2", "train.save_steps=2", "train.eval_steps=2"]
    result = subprocess.run(command, env=slmtune_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    train_dir = tmp_path / "tiny" / "main" / "train"
    summary = json.loads((train_dir / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_step"] == 2
    # one adapter, written once (by the main process, from the state every rank took part in gathering), loadable
    assert (result.stdout + result.stderr).count("train: adapter saved to") == 1
    adapter = train_dir / "adapter"
    assert sorted(p.name for p in adapter.iterdir()) == ["README.md", "adapter_config.json",
                                                         "adapter_model.safetensors"]
    from slmtune.models.loading import attach_adapter, load_base_model, resolve_model_source

    cfg = compose(["+recipe=tiny"])
    model = attach_adapter(load_base_model(resolve_model_source(cfg.model), dtype=torch.float32,
                                           device=torch.device("cpu")), adapter)
    lora_b = [p for name, p in model.named_parameters() if "lora_B" in name]
    assert lora_b and any(bool(p.abs().sum() > 0) for p in lora_b)  # trained (PEFT initialises B to zero)
    checkpoint = train_dir / "checkpoints" / "checkpoint-2"
    assert (checkpoint / "rng_state_0.pth").is_file() and (checkpoint / "rng_state_1.pth").is_file()
    history = [json.loads(line) for line in (train_dir / "metrics.jsonl").read_text().splitlines()]
    # 240 training examples, batch 2 per rank on 2 ranks: 60 steps per epoch
    assert abs(next(h["epoch"] for h in history if h.get("step") == 2) - 2 / 60) < 1e-6


# -- accelerate configs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "distributed_type"),
                         [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("deepspeed_zero3", "DEEPSPEED")])
def test_accelerate_configs_load_and_open_with_their_launch_command(name, distributed_type):
    from accelerate.commands.config.config_args import ClusterConfig

    path = ACCELERATE_DIR / f"{name}.yaml"
    first_line = path.read_text().splitlines()[0]
    assert first_line == f"# accelerate launch --config_file recipes/accelerate/{name}.yaml -m slmtune train " \
                         "+recipe=qwen7b"
    config = ClusterConfig.from_yaml_file(str(path))
    assert config.distributed_type.value == distributed_type
    if name == "fsdp":
        assert config.fsdp_config["fsdp_use_orig_params"] is True
        assert config.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    if name == "deepspeed_zero3":
        assert config.deepspeed_config["zero_stage"] == 3 and config.deepspeed_config["zero3_init_flag"] is True
        assert config.mixed_precision == "bf16"


def test_top_layers_adapts_only_the_last_layers():
    from peft import get_peft_model

    family = FAMILIES["gemma3"]
    model = tiny_model("gemma3")
    layers = model.config.num_hidden_layers
    model = get_peft_model(model, lora_config(family, 4, 8, 0.0, None, top_layers=1, num_layers=layers))
    adapted_layers = {int(name.split(".layers.")[1].split(".")[0]) for name, module in model.named_modules()
                      if hasattr(module, "lora_A")}
    assert adapted_layers == {layers - 1}
    model.train()
    loss, _ = completion_window_loss(model, random_batch())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="top_layers"):
        lora_config(family, 4, 8, 0.0, None, top_layers=layers + 1, num_layers=layers)


def test_training_precision_maps_each_setting_and_refuses_fp16_on_cpu(monkeypatch):
    """fp16 on CPU would silently train in fp32 (accelerate applies no fp16 autocast there) while the summary said
    float16: refused, naming train.precision.  bf16 and fp32 are honoured as asked; auto follows the CPU."""
    import slmtune.eval.decoding as decoding
    from slmtune.stages.train import training_dtype

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert training_dtype("bf16", cpu) == torch.bfloat16 and training_dtype("fp32", cpu) == torch.float32
    assert training_dtype("fp16", cuda) == torch.float16 and training_dtype("bf16", cuda) == torch.bfloat16
    with pytest.raises(ValueError, match="train.precision=fp16 needs a GPU"):
        training_dtype("fp16", cpu)
    for native, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(decoding, "cpu_supports_bf16", lambda native=native: native)
        assert training_dtype("auto", cpu) == dtype
