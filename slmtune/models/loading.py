"""Loading tokenizers, base models (optionally 4-bit), and adapters from resolved sources. Safetensors only."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from slmtune.models.sources import ResolvedSource, resolve_source

log = logging.getLogger(__name__)


def resolve_model_source(model_cfg) -> ResolvedSource:
    """``model.source`` resolved to a local checkpoint directory (a hub id to its HF-cache snapshot)."""
    return resolve_source(model_cfg.source, tokenizer_source=model_cfg.tokenizer_source,
                          revision=model_cfg.revision, seed=model_cfg.seed,
                          trust_remote_code=model_cfg.trust_remote_code)


def load_tokenizer(source: ResolvedSource, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.path, revision=source.revision,
                                              trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def default_device() -> torch.device:
    """This process's device: ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU.

    A distributed launcher (``accelerate launch``, ``torchrun``) gives each process of a machine its own
    ``LOCAL_RANK``; without one (a single process) it is GPU 0."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    value = os.environ.get("LOCAL_RANK", "0")
    try:
        index = int(value)
    except ValueError:
        raise ValueError(f"environment variable LOCAL_RANK={value!r} is not a GPU index") from None
    count = torch.cuda.device_count()
    if not 0 <= index < count:
        raise RuntimeError(f"LOCAL_RANK={index} names GPU {index}, but this process sees {count} GPU(s) "
                           f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')!r}): launch "
                           "at most one process per visible GPU")
    return torch.device("cuda", index)


def sharded_training() -> bool:
    """True when this process trains under FSDP or DeepSpeed ZeRO-3, which shard the model themselves.

    FSDP is announced by ``accelerate launch`` (``ACCELERATE_USE_FSDP``); ZeRO-3 is set up when the trainer's
    arguments are created, so ask only after creating them (and load the model after that, so that ZeRO-3's
    partitioned init and FSDP's cpu-ram-efficient loading apply)."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").strip().lower() in ("1", "true", "yes", "on")
    return fsdp or is_deepspeed_zero3_enabled()


def load_base_model(source: ResolvedSource, *, dtype: torch.dtype, quantize_4bit: bool = False,
                    trust_remote_code: bool = False, device: torch.device | None = None, sharded: bool = False):
    """Load the base causal LM onto ``device`` (default: :func:`default_device`); ``quantize_4bit`` uses
    bitsandbytes nf4 with double quantisation (QLoRA).

    ``sharded`` (see :func:`sharded_training`): the trainer places and shards the model, so it is not moved here;
    4-bit weights are then stored in ``dtype`` (``bnb_4bit_quant_storage``), since FSDP and ZeRO-3 shard only
    floating-point tensors of one dtype (FSDP-QLoRA), and get no ``device_map``."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    device = device or default_device()
    kwargs = {"dtype": dtype, "revision": source.revision, "trust_remote_code": trust_remote_code,
              "use_safetensors": True}
    if quantize_4bit:
        quantization = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
                        "bnb_4bit_compute_dtype": dtype}
        if sharded:
            quantization["bnb_4bit_quant_storage"] = dtype
        else:  # one full copy per process, on this process's device
            kwargs["device_map"] = {"": "cpu" if device.type == "cpu" else device.index or 0}
        kwargs["quantization_config"] = BitsAndBytesConfig(**quantization)
    model = AutoModelForCausalLM.from_pretrained(source.path, **kwargs)
    if not quantize_4bit and not sharded:
        model.to(device)
    return model


def attach_adapter(model, adapter_dir: Path | str, *, trainable: bool = False):
    """Wrap ``model`` with a saved PEFT adapter (safetensors)."""
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_model.safetensors").is_file():
        raise FileNotFoundError(f"{adapter_dir}: no adapter_model.safetensors (not a PEFT adapter directory)")
    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)
