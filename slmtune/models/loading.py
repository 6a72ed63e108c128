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
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def load_base_model(source: ResolvedSource, *, dtype: torch.dtype, quantize_4bit: bool = False,
                    trust_remote_code: bool = False, device: torch.device | None = None):
    """Load the base causal LM; ``quantize_4bit`` uses bitsandbytes nf4 with double quantisation (QLoRA)."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    device = device or default_device()
    kwargs = {"dtype": dtype, "revision": source.revision, "trust_remote_code": trust_remote_code,
              "use_safetensors": True}
    if quantize_4bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype)
        # one full copy per process: under DDP each rank loads onto its own GPU
        local_rank = int(os.environ.get("LOCAL_RANK", device.index or 0))
        kwargs["device_map"] = {"": "cpu" if device.type == "cpu" else local_rank}
    model = AutoModelForCausalLM.from_pretrained(source.path, **kwargs)
    if not quantize_4bit:
        model.to(device)
    return model


def attach_adapter(model, adapter_dir: Path | str, *, trainable: bool = False):
    """Wrap ``model`` with a saved PEFT adapter (safetensors)."""
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_model.safetensors").is_file():
        raise FileNotFoundError(f"{adapter_dir}: no adapter_model.safetensors (not a PEFT adapter directory)")
    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)
