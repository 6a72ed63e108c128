"""Merging a LoRA adapter into its base model, writing the tokenizer with the dialect's chat template, copying the
adapter."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from slmtune.rundir import atomic_write_text

log = logging.getLogger(__name__)

# LoRA ranks vLLM's --max-lora-rank accepts.
_VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def dtype_name(dtype: Any) -> str:
    """``torch.bfloat16`` / ``"bf16"`` / ``"bfloat16"`` -> ``"bfloat16"``."""
    name = str(dtype).replace("torch.", "")
    return {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}.get(
        name, name)


def torch_dtype(dtype: Any):
    import torch

    name = dtype_name(dtype)
    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}")
    return value


def checkpoint_dtype(model_dir: Path | str) -> str:
    """The dtype a checkpoint declares (config ``dtype`` or ``torch_dtype``; ``float32`` when absent or ``auto``)."""
    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    for value in (config.get("dtype"), config.get("torch_dtype"), text.get("dtype"), text.get("torch_dtype")):
        if isinstance(value, str) and value not in ("auto", ""):
            return dtype_name(value)
    return "float32"


def default_device():
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_family(family):
    from slmtune.models.families import FAMILIES, Family

    if isinstance(family, Family):
        return family
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[family]


# 1. merged model, tokenizer, adapter


def merge_adapter(base_dir: Path | str, adapter_dir: Path | str, out_dir: Path | str, *, dtype: Any = None,
                  max_shard_size: str | int = "2GB", trust_remote_code: bool = False) -> dict[str, Any]:
    """Merge a PEFT LoRA adapter into the base and save safetensors to ``out_dir``.

    The base is loaded from its local directory in its own dtype (or ``dtype``) WITHOUT quantisation, so a QLoRA
    adapter is merged into de-quantised full-precision weights.  Returns ``{"dtype", "files", "sharded"}``.
    """
    import inspect

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base_dir, adapter_dir, out_dir = Path(base_dir), Path(adapter_dir), Path(out_dir)
    config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("quantization_config"):
        method = config["quantization_config"].get("quant_method", "?")
        raise ValueError(f"{base_dir}: the base checkpoint is quantised ({method}); "
                         "merging needs the full-precision base model (never merge into quantised weights)")
    check_adapter_dir(adapter_dir)
    merged_dtype = dtype_name(dtype) if dtype is not None else checkpoint_dtype(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch_dtype(merged_dtype), use_safetensors=True,
                                                 trust_remote_code=trust_remote_code)
    peft_model = PeftModel.from_pretrained(model, str(adapter_dir))
    merged = peft_model.merge_and_unload(safe_merge=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"max_shard_size": max_shard_size}
    if "safe_serialization" in inspect.signature(merged.save_pretrained).parameters:  # transformers < 5
        kwargs["safe_serialization"] = True
    merged.save_pretrained(out_dir, **kwargs)
    del merged, peft_model, model
    weights = sorted(p.name for p in out_dir.iterdir() if p.suffix in (".safetensors", ".bin", ".pt"))
    if any(not w.endswith(".safetensors") for w in weights):
        raise RuntimeError(f"{out_dir}: merged weights were not saved as safetensors: {weights}")
    return {"dtype": merged_dtype, "files": weights, "sharded": len(weights) > 1}


def write_tokenizer(base_dir: Path | str, out_dir: Path | str, family, dialect=None, *,
                    trust_remote_code: bool = False) -> dict[str, Any]:
    """Copy the base tokenizer with the family's chat template for ``dialect``, and write generation_config.json.

    ``chat_template.jinja`` holds the template (what ``vllm serve --chat-template`` takes); the generation config's
    ``eos_token_id`` lists the tokenizer's EOS and the family's end-of-turn token so that servers stop at the end of
    the assistant turn.  Returns ``{"end_of_turn", "end_of_turn_id", "eos_token_id", "chat_template_sha256"}``.
    """
    return write_and_load_tokenizer(base_dir, out_dir, family, dialect, trust_remote_code=trust_remote_code)[0]


def write_and_load_tokenizer(base_dir: Path | str, out_dir: Path | str, family, dialect=None, *,
                     trust_remote_code: bool = False) -> tuple[dict[str, Any], Any]:
    """:func:`write_tokenizer`, also returning the tokenizer object that was saved."""
    from transformers import AutoTokenizer, GenerationConfig

    base_dir, out_dir = Path(base_dir), Path(out_dir)
    family = resolve_family(family)
    dialect = family.dialect(dialect)
    tokenizer = AutoTokenizer.from_pretrained(base_dir, trust_remote_code=trust_remote_code)
    template = family.chat_template(dialect)
    eot_id = tokenizer.convert_tokens_to_ids(family.end_of_turn)
    if eot_id is None or eot_id == tokenizer.unk_token_id:
        raise ValueError(f"{base_dir}: end-of-turn {family.end_of_turn!r} of family {family.name} is not a single "
                         "token of this tokenizer")
    tokenizer.chat_template = template
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out_dir)
    atomic_write_text(out_dir / "chat_template.jinja", template)  # also for transformers versions that inline it

    if (base_dir / "generation_config.json").is_file():
        gen = GenerationConfig.from_pretrained(base_dir)
    else:
        config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
        gen = GenerationConfig(bos_token_id=config.get("bos_token_id"), eos_token_id=config.get("eos_token_id"),
                               pad_token_id=config.get("pad_token_id"))
    eos: list[int] = []
    for value in (gen.eos_token_id, tokenizer.eos_token_id, eot_id):
        for token_id in value if isinstance(value, (list, tuple)) else [value]:
            if token_id is not None and int(token_id) not in eos:
                eos.append(int(token_id))
    gen.eos_token_id = eos
    if gen.pad_token_id is None and tokenizer.pad_token_id is not None:
        gen.pad_token_id = tokenizer.pad_token_id
    gen.save_pretrained(out_dir)
    info = {"end_of_turn": family.end_of_turn, "end_of_turn_id": int(eot_id), "eos_token_id": eos,
            "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest()}
    return info, tokenizer


def check_adapter_dir(adapter_dir: Path) -> dict[str, Any]:
    if not adapter_dir.is_dir():
        raise FileNotFoundError(f"{adapter_dir}: adapter directory does not exist")
    pickled = sorted(p.name for p in adapter_dir.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl"))
    if pickled:
        raise ValueError(f"{adapter_dir}: pickled adapter weights {pickled} are refused; save the adapter with "
                         "safetensors (adapter_model.safetensors)")
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        if not (adapter_dir / name).is_file():
            raise FileNotFoundError(f"{adapter_dir}: no {name} (not a PEFT adapter directory)")
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise ValueError(f"{adapter_dir}: peft_type {config.get('peft_type')!r}; only LoRA adapters are exported")
    return config


def copy_adapter(adapter_dir: Path | str, out_dir: Path | str, *, base_model: str | None = None,
                 revision: str | None = None) -> dict[str, Any]:
    """Copy a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors; pickled ``.bin`` refused).

    ``base_model`` (a hub id) and its ``revision`` (commit) replace the config's ``base_model_name_or_path`` and
    ``revision``, which training wrote as the local snapshot directory it loaded, so that the adapter names a base
    that loads anywhere.  Returns ``{"r", "lora_alpha", "target_modules", "modules_to_save", "max_lora_rank"}``
    where ``max_lora_rank`` is the smallest vLLM ``--max-lora-rank`` value that fits ``r``.
    """
    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    config = check_adapter_dir(adapter_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy2(adapter_dir / name, out_dir / name)
    if base_model:
        atomic_write_text(out_dir / "adapter_config.json", json.dumps(
            {**config, "base_model_name_or_path": base_model, "revision": revision}, indent=2, sort_keys=True) + "\n")
    r = int(config.get("r") or 0)
    ranks = [int(v) for v in (config.get("rank_pattern") or {}).values()] + [r]
    top = max(ranks)
    target = config.get("target_modules")
    return {
        "r": r,
        "lora_alpha": config.get("lora_alpha"),
        "target_modules": sorted(target) if isinstance(target, (list, tuple, set)) else target,
        "modules_to_save": config.get("modules_to_save"),
        "max_lora_rank": next((v for v in _VLLM_LORA_RANKS if v >= top), top),
    }
