"""Training on several devices, checked on the CPU: the trainer's arguments exist before the model is loaded, and the
adapter is saved from the state the accelerator gathers (each rank takes part, the main process writes).

The 2-process DDP run itself is ``test_two_process_ddp_on_cpu_with_accelerate_launch`` in ``test_training.py``.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from slmtune.config import compose
from slmtune.models.families import FAMILIES
from slmtune.train.trainer import lora_config, save_adapter


class Stop(Exception):
    """Raised by the fake loader once the order of events is known."""


@pytest.mark.parametrize("sharded", [False, True], ids=["ddp", "fsdp-or-zero3"])
def test_the_trainer_arguments_are_created_before_the_model_is_loaded(tmp_path, monkeypatch, sharded):
    """ZeRO-3's partitioned init and FSDP's cpu-ram-efficient loading apply only to a model loaded after the
    trainer's arguments (they set up the distributed state that ``from_pretrained`` consults); whether the run is
    sharded is asked after them too, and passed to the loader."""
    import trl

    from slmtune.stages import data as data_stage
    from slmtune.stages import train as train_stage

    overrides = ["+recipe=tiny", f"run.output_dir={tmp_path}", "tracking.mode=disabled", "train.max_steps=1"]
    data_stage.run(compose(overrides))
    events = []
    real_config = trl.SFTConfig

    def config(*args, **kwargs):
        events.append("arguments")
        return real_config(*args, **kwargs)

    def is_sharded():
        events.append("sharded?")
        return sharded

    def load(*args, sharded, **kwargs):
        events.append(f"model sharded={sharded}")
        raise Stop

    monkeypatch.setattr(trl, "SFTConfig", config)
    monkeypatch.setattr(train_stage, "sharded_training", is_sharded)
    monkeypatch.setattr(train_stage, "load_base_model", load)
    with pytest.raises(Stop):
        train_stage.run(compose(overrides))
    assert events == ["arguments", "sharded?", f"model sharded={sharded}"]


def tiny_base(seed: int):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(FAMILIES["gemma3"].tiny_config(320), dtype=torch.float32)


def tiny_peft_model(seed: int):
    from peft import get_peft_model

    return get_peft_model(tiny_base(seed), lora_config(FAMILIES["gemma3"], 4, 8, 0.0, None))


class FakeAccelerator:
    """An accelerator of a sharded run: the gathered state differs from what this rank holds locally."""

    def __init__(self, main: bool, gathered: dict[str, torch.Tensor]) -> None:
        self.is_main_process, self.gathered, self.gathers = main, gathered, 0

    def get_state_dict(self, model):
        self.gathers += 1
        return self.gathered

    def unwrap_model(self, model):
        return model


def gathered_state(model) -> dict[str, torch.Tensor]:
    """The model's full state with every LoRA B matrix filled (what ranks holding shards gather)."""
    return {name: torch.full_like(value, 0.25) if "lora_B" in name else value
            for name, value in model.state_dict().items()}


def test_every_rank_joins_the_gather_and_only_the_main_process_writes(tmp_path):
    from safetensors.torch import load_file

    model = tiny_peft_model(0)
    full = gathered_state(model)
    other = FakeAccelerator(main=False, gathered=full)
    assert save_adapter(SimpleNamespace(accelerator=other, model=model, model_wrapped=model), tmp_path / "a") is False
    assert other.gathers == 1 and not (tmp_path / "a").exists()

    main = FakeAccelerator(main=True, gathered=full)
    assert save_adapter(SimpleNamespace(accelerator=main, model=model, model_wrapped=model), tmp_path / "a") is True
    assert main.gathers == 1
    saved = load_file(tmp_path / "a" / "adapter_model.safetensors")
    lora_b = [name for name in saved if "lora_B" in name]
    assert lora_b and all(bool((saved[name] == 0.25).all()) for name in lora_b)  # the gathered state, not the local
    assert all(bool((p == 0).all()) for n, p in model.named_parameters() if "lora_B" in n)  # (local: PEFT's zeros)

    from slmtune.models.loading import attach_adapter

    reloaded = attach_adapter(tiny_base(0), tmp_path / "a")
    params = dict(reloaded.named_parameters())
    assert all(bool((params[n] == 0.25).all()) for n in params if "lora_B" in n)
