"""Device placement of loaded models: ``cuda:LOCAL_RANK`` per process, and what FSDP / ZeRO-3 loading changes.

CUDA is faked (``torch.cuda.is_available`` / ``device_count`` monkeypatched, ``from_pretrained`` replaced by a
recorder), so these run on any CPU; ``tests/test_gpu.py`` loads real models on a GPU.
"""

from __future__ import annotations

import pytest
import torch

from slmtune.models import loading
from slmtune.models.sources import ResolvedSource


@pytest.fixture
def four_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


def test_each_rank_gets_the_gpu_of_its_local_rank(four_gpus, monkeypatch):
    assert loading.default_device() == torch.device("cuda", 0)  # a single process: GPU 0
    for rank in range(4):
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        assert loading.default_device() == torch.device("cuda", rank)


def test_a_local_rank_without_its_gpu_is_refused_by_name(four_gpus, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "4")
    with pytest.raises(RuntimeError, match="LOCAL_RANK=4 .* sees 4 GPU"):
        loading.default_device()
    monkeypatch.setenv("LOCAL_RANK", "one")
    with pytest.raises(ValueError, match="LOCAL_RANK='one'"):
        loading.default_device()


def test_without_cuda_every_rank_uses_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert loading.default_device() == torch.device("cpu")


class Recorded:
    """What ``from_pretrained`` was asked for, and where the model was moved."""

    def __init__(self, path, **kwargs):
        self.path, self.kwargs, self.moved_to = path, kwargs, []

    def to(self, device):
        self.moved_to.append(device)
        return self


@pytest.fixture
def recorder(monkeypatch):
    from transformers import AutoModelForCausalLM

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", Recorded)
    return ResolvedSource(path="/models/base", identity="test")


def test_an_unquantised_model_goes_to_this_rank_s_gpu(four_gpus, recorder, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "3")
    model = loading.load_base_model(recorder, dtype=torch.bfloat16)
    assert model.moved_to == [torch.device("cuda", 3)] and "device_map" not in model.kwargs


def test_a_4bit_model_is_loaded_onto_this_rank_s_gpu(four_gpus, recorder, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "2")
    model = loading.load_base_model(recorder, dtype=torch.bfloat16, quantize_4bit=True)
    assert model.kwargs["device_map"] == {"": 2} and model.moved_to == []
    quantization = model.kwargs["quantization_config"]
    assert quantization.bnb_4bit_quant_type == "nf4" and quantization.bnb_4bit_use_double_quant
    assert quantization.bnb_4bit_quant_storage == torch.uint8  # the bitsandbytes default, unsharded


def test_sharded_loading_leaves_placement_to_the_trainer_and_stores_4bit_weights_in_the_compute_dtype(
        four_gpus, recorder, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    plain = loading.load_base_model(recorder, dtype=torch.bfloat16, sharded=True)
    assert plain.moved_to == [] and "device_map" not in plain.kwargs  # ZeRO-3 / FSDP place the shards
    qlora = loading.load_base_model(recorder, dtype=torch.bfloat16, quantize_4bit=True, sharded=True)
    assert qlora.moved_to == [] and "device_map" not in qlora.kwargs
    assert qlora.kwargs["quantization_config"].bnb_4bit_quant_storage == torch.bfloat16
    assert qlora.kwargs["dtype"] == torch.bfloat16  # FSDP flattens one dtype: storage and the other weights agree


def test_sharded_training_is_fsdp_from_the_launcher_or_zero3_from_the_trainer_arguments(monkeypatch):
    import transformers.integrations

    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    assert not loading.sharded_training()
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what `accelerate launch` sets for an FSDP config
    assert loading.sharded_training()
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "false")
    monkeypatch.setattr(transformers.integrations, "is_deepspeed_zero3_enabled", lambda: True)
    assert loading.sharded_training()
