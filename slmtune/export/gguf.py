"""GGUF files of the merged model (llama.cpp, Ollama, LM Studio), verified by reading them back with transformers.

:func:`write_gguf` is the inverse of transformers' GGUF loader (which :mod:`slmtune.models.sources` uses to read
the embedded Gemma 3 270M): tensor names from gguf-py's ``TensorNameMap`` for the family's architecture, the
family's layout quirks from its :class:`~slmtune.models.families.GgufLayout` (Gemma's norm offset, Llama's q/k
rotary permutation, ...), the architecture's hyper-parameters, and the tokenizer of ``merged/`` -- tokens, scores,
token types, merges, special-token ids and the chat template (which renders tools) -- in the metadata, as
``convert_hf_to_gguf.py`` writes them.  Tensors are streamed one at a time from the safetensors shards.

Types (:data:`GGUF_TYPES`): ``f32``; ``f16`` (2-D weights in fp16, norms in fp32, as llama.cpp's ``f16``);
``q8_0`` (2-D weights in blocks of 32 with one fp16 scale, gguf-py's numpy quantiser; a weight whose rows are not a
multiple of 32 falls back to fp16, as in llama.cpp).

:func:`verify_gguf` loads a file with plain transformers (``from_pretrained(dir, gguf_file=...)``), checks that its
tokenizer tokenises the prompts exactly as ``merged/``'s and carries the same chat template, that the config read
back equals ``merged/``'s on every architecture key, and compares logits at every position with ``merged/`` (both
fp32).  The bound is relative to the largest reference logit (:data:`GGUF_LOGIT_RTOL`): fp16 rounding of the
weights moves logits by ~1e-3 of that scale, q8_0 by a few 1e-2; a wrong conversion (a missing Gemma norm offset,
unpermuted Llama q/k) moves them by the order of the logits themselves.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

GGUF_TYPES = ("f32", "f16", "q8_0")

# Bound on max |logit(GGUF) - logit(merged)| / max |logit(merged)| over every position of the check prompts, both
# in fp32.  f32: the same weights (only the reading path differs).  f16: each weight rounded to 11 significant bits
# (relative error <= 2^-11 ~ 4.9e-4); measured ~1e-4 of the logit scale on Gemma 3 270M and the tiny model, bound
# 5e-3.  q8_0: blocks of 32 weights share one fp16 scale max|w|/127 (error <= 0.4 % of the block's largest
# weight); measured 0.03-0.09 on tiny random models (whose logits are small and flat: the worst case), bound 0.15.
# A missing Gemma norm offset or unpermuted Llama q/k gives ~1 (tests/export/test_gguf.py shows both failing).
GGUF_LOGIT_RTOL = {"f32": 1e-4, "f16": 5e-3, "q8_0": 0.15}
# Top-1 (argmax) agreement over all positions that each type must reach; a near-tie may flip under q8_0 noise.
GGUF_MIN_TOP1 = {"f32": 1.0, "f16": 0.97, "q8_0": 0.9}

_QK8_0 = 32
_FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7}  # llama.cpp's LLAMA_FTYPE_ALL_F32 / MOSTLY_F16 / MOSTLY_Q8_0
_BYTE_TOKEN = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
# Config keys the read-back config must match (those present in merged/config.json).
_ARCH_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "head_dim", "rms_norm_eps", "max_position_embeddings", "sliding_window",
              "layer_types", "query_pre_attn_scalar", "tie_word_embeddings", "rope_theta", "rope_parameters",
              "hidden_act", "hidden_activation", "attention_bias", "final_logit_softcapping",
              "attn_logit_softcapping", "use_sliding_window")


class GgufExportError(ValueError):
    """A GGUF export was asked for something it cannot write (type, family, architecture, tokenizer)."""


class GgufVerificationError(RuntimeError):
    """A written GGUF file does not reproduce ``merged/`` within tolerance; ``result`` holds the measurements."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result or {}


def gguf_file_name(qtype: str) -> str:
    """The file name of one GGUF type under ``export/gguf/``."""
    return f"model-{qtype}.gguf"


def check_gguf_request(types: Sequence[str], family, config: dict | None = None) -> list[str]:
    """Raise :class:`GgufExportError` unless every type is known, the family has a GGUF layout, and (when the
    base/merged ``config`` dict is given) GGUF can state that config.  Returns the types, deduplicated in order."""
    types = list(dict.fromkeys(types))
    unknown = [t for t in types if t not in GGUF_TYPES]
    if unknown:
        raise GgufExportError(f"export.gguf: unknown GGUF type(s) {unknown}; known: {list(GGUF_TYPES)}")
    if not types:
        return types
    if family.gguf is None:
        raise GgufExportError(f"export.gguf: family {family.name!r} (architecture {family.config_class}) has no GGUF "
                              "layout in slmtune's family registry; GGUF export supports the families "
                              f"{_supported_families()}")
    if config is not None:
        problems = family.gguf.config_problems(config)
        if problems:
            raise GgufExportError(f"export.gguf: this {family.gguf.arch} checkpoint cannot be stored as GGUF: "
                                  + "; ".join(problems))
    return types


def _supported_families() -> list[str]:
    from slmtune.models.families import FAMILIES

    return sorted(name for name, fam in FAMILIES.items() if fam.gguf is not None)


# -- tensors ---------------------------------------------------------------------------------------------------


def _permute_qk(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute``: rotary halves interleaved per head (inverse of transformers'
    ``LlamaTensorProcessor._reverse_permute_weights``)."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _ggml_type(qtype: str, shape: tuple[int, ...]):
    from gguf import GGMLQuantizationType as Q

    if len(shape) < 2 or qtype == "f32":
        return Q.F32
    if qtype == "q8_0" and shape[-1] % _QK8_0 == 0:
        return Q.Q8_0
    return Q.F16


def _encode(data: np.ndarray, ggml_type) -> np.ndarray:
    from gguf import GGMLQuantizationType as Q
    from gguf import quants

    if ggml_type == Q.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if ggml_type == Q.F16:
        return np.ascontiguousarray(data, dtype=np.float16)
    return quants.quantize(np.ascontiguousarray(data, dtype=np.float32), ggml_type)


def _nbytes(shape: tuple[int, ...], ggml_type) -> int:
    from gguf import GGML_QUANT_SIZES

    block, type_size = GGML_QUANT_SIZES[ggml_type]
    return int(np.prod(shape)) // block * type_size


class _Shards:
    """The tensors of a safetensors checkpoint (one file or an index of shards), read one at a time."""

    def __init__(self, merged_dir: Path) -> None:
        from safetensors import safe_open

        index = merged_dir / "model.safetensors.index.json"
        if index.is_file():
            files = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        else:
            files = sorted(p.name for p in merged_dir.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"{merged_dir}: no safetensors weights")
        self.handles = [safe_open(str(merged_dir / f), framework="pt") for f in files]
        self.where = {name: h for h in self.handles for name in h.keys()}

    def names(self) -> list[str]:
        return list(self.where)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.where[name].get_slice(name).get_shape())

    def get(self, name: str) -> np.ndarray:
        return self.where[name].get_tensor(name).float().numpy()


def _tensor_plan(shards: _Shards, family, config: dict, qtype: str) -> list[tuple[str, str, Any, tuple]]:
    """``(hf_name, gguf_name, ggml_type, shape)`` for every tensor to write, in checkpoint order."""
    import gguf

    layout = family.gguf
    arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == layout.arch)
    name_map = gguf.get_tensor_name_map(arch, int(config["num_hidden_layers"]))
    tied = config.get("tie_word_embeddings", True)
    plan = []
    for hf_name in shards.names():
        if hf_name == "lm_head.weight" and tied:
            continue
        base, _, suffix = hf_name.rpartition(".")
        target = name_map.get_name(base)
        if target is None:
            raise GgufExportError(f"tensor {hf_name!r} has no GGUF name for architecture {layout.arch!r}")
        shape = shards.shape(hf_name)
        plan.append((hf_name, f"{target}.{suffix}", _ggml_type(qtype, shape), shape))
    return plan


def _prepared(shards: _Shards, hf_name: str, family, config: dict) -> np.ndarray:
    layout = family.gguf
    data = shards.get(hf_name)
    if layout.norm_offset and hf_name.endswith("norm.weight"):
        data = data + np.float32(layout.norm_offset)
    if layout.permute_qk and hf_name.endswith(("q_proj.weight", "k_proj.weight")):
        heads = int(config["num_attention_heads"])
        if hf_name.endswith("k_proj.weight"):
            heads = int(config.get("num_key_value_heads") or heads)
        data = _permute_qk(data, heads)
    return data


# -- tokenizer --------------------------------------------------------------------------------------------------


def _tokenizer_metadata(merged_dir: Path, family, vocab_size: int) -> dict[str, Any]:
    """Tokenizer metadata for the GGUF of ``merged_dir`` (what ``convert_hf_to_gguf.py`` writes)."""
    from transformers import AutoTokenizer

    path = merged_dir / "tokenizer.json"
    if not path.is_file():
        raise GgufExportError(f"{merged_dir}: no tokenizer.json (GGUF export needs a fast tokenizer)")
    spec = json.loads(path.read_text(encoding="utf-8"))
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        raise GgufExportError(f"{path}: tokenizer model {model.get('type')!r}; GGUF export writes BPE vocabularies")
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    template = tokenizer.chat_template
    if not template:
        raise GgufExportError(f"{merged_dir}: the tokenizer has no chat template")
    vocab: dict[str, int] = dict(model["vocab"])
    added = {a["id"]: a for a in spec.get("added_tokens", [])}
    for token_id, entry in added.items():
        vocab.setdefault(entry["content"], token_id)
    by_id: dict[int, str] = {i: t for t, i in vocab.items()}
    n = max(vocab_size, max(by_id) + 1)
    sentencepiece = bool(model.get("byte_fallback"))
    tokens, types, scores = [], [], []
    normal_rank = 0
    for token_id in range(n):
        token = by_id.get(token_id)
        if token is None:  # embedding rows beyond the vocabulary (llama.cpp pads them the same way)
            tokens.append(f"[PAD{token_id}]")
            types.append(5)  # UNUSED
            scores.append(-1000.0)
            continue
        if token_id in added:
            kind = 3 if added[token_id]["special"] else 4  # CONTROL / USER_DEFINED
        elif sentencepiece and _BYTE_TOKEN.match(token):
            kind = 6  # BYTE
        elif sentencepiece and family.gguf.space_runs_as_spaces and len(token) > 1 and set(token) == {"\u2581"}:
            token, kind = " " * len(token), 4  # Gemma's vocabulary stores whitespace runs as user-defined spaces
        else:
            kind = 1  # NORMAL
        tokens.append(token)
        types.append(kind)
        if kind == 1:
            scores.append(-float(normal_rank))  # sentencepiece order: earlier pieces merge first
            normal_rank += 1
        else:
            scores.append(0.0 if kind == 6 else -1000.0)
    # A sentencepiece vocabulary is merged by score (llama.cpp) or by token order (transformers' Gemma reader): its
    # merges would only triple the metadata that every reader parses.  A byte-level one needs them.
    merges = [] if sentencepiece else [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]

    def token_id_of(token: str | None) -> int | None:
        return None if token is None else tokenizer.convert_tokens_to_ids(token)

    eot = token_id_of(family.end_of_turn)
    return {
        "model": "llama" if sentencepiece else "gpt2",
        "pre": "default" if sentencepiece else family.gguf.tokenizer_pre,
        "tokens": tokens, "types": types, "scores": scores if sentencepiece else None, "merges": merges,
        "bos": token_id_of(tokenizer.bos_token), "eos": token_id_of(tokenizer.eos_token),
        "unk": token_id_of(tokenizer.unk_token), "pad": token_id_of(tokenizer.pad_token), "eot": eot,
        # the family's chat template writes BOS itself: llama.cpp must not add a second one
        "add_bos": False if family.bos_text else bool(getattr(tokenizer, "add_bos_token", False)),
        "add_space_prefix": _prepends_space(spec) if sentencepiece else None,
        "chat_template": template,
    }


def _prepends_space(spec: dict) -> bool:
    """Whether the tokenizer.json prepends ``▁`` to the text (Llama-2-style sentencepiece; Gemma does not)."""
    text = json.dumps([spec.get("normalizer"), spec.get("pre_tokenizer")])
    return '"Prepend"' in text or '"prepend_scheme": "always"' in text or '"prepend_scheme": "first"' in text


# -- writer -----------------------------------------------------------------------------------------------------


def write_gguf(merged_dir: Path | str, out_path: Path | str, qtype: str, family, *,
               name: str | None = None) -> dict[str, Any]:
    """Write ``merged_dir`` (safetensors + config.json + tokenizer.json with a chat template) as one GGUF file.

    Raises :class:`GgufExportError` before writing anything when the type, the family or the config cannot be
    stored.  The file is written next to ``out_path`` and renamed onto it when complete.  Returns ``{"type",
    "path", "bytes", "tensors", "tensor_types", "seconds"}``."""
    import gguf

    started = time.perf_counter()
    merged_dir, out_path = Path(merged_dir), Path(out_path)
    config = json.loads((merged_dir / "config.json").read_text(encoding="utf-8"))
    check_gguf_request([qtype], family, config)
    layout = family.gguf
    shards = _Shards(merged_dir)
    plan = _tensor_plan(shards, family, config, qtype)
    tok = _tokenizer_metadata(merged_dir, family, int(config["vocab_size"]))

    writer = gguf.GGUFWriter(None, layout.arch)
    writer.add_type("model")
    writer.add_name(name or config.get("_name_or_path") or "slmtune export")
    writer.add_file_type(_FILE_TYPES[qtype])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    head_dim = int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or config["num_attention_heads"]))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    from slmtune.models.families import _rope_theta

    theta = _rope_theta(config, "full_attention")
    if theta is not None:
        writer.add_rope_freq_base(float(theta))
    if layout.head_dim_keys:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    if layout.rope_dimension_count:
        writer.add_rope_dimension_count(head_dim)
    if layout.sliding_window and config.get("sliding_window"):
        writer.add_sliding_window(int(config["sliding_window"]))
    writer.add_vocab_size(len(tok["tokens"]))

    writer.add_tokenizer_model(tok["model"])
    writer.add_tokenizer_pre(tok["pre"])
    writer.add_token_list(tok["tokens"])
    writer.add_token_types(tok["types"])
    if tok["scores"] is not None:
        writer.add_token_scores(tok["scores"])
    if tok["merges"]:
        writer.add_token_merges(tok["merges"])
    for key, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                     ("unk", writer.add_unk_token_id), ("pad", writer.add_pad_token_id),
                     ("eot", writer.add_eot_token_id)):
        if tok[key] is not None:
            add(int(tok[key]))
    writer.add_add_bos_token(tok["add_bos"])
    writer.add_add_eos_token(False)
    if tok["add_space_prefix"] is not None:
        writer.add_add_space_prefix(tok["add_space_prefix"])
    writer.add_chat_template(tok["chat_template"])

    for _, gguf_name, ggml_type, shape in plan:
        writer.add_tensor_info(gguf_name, shape, np.dtype(np.float32), _nbytes(shape, ggml_type),
                               raw_dtype=ggml_type)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(f".{out_path.name}.partial")
    try:
        writer.write_header_to_file(partial)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for hf_name, _, ggml_type, _ in plan:
            writer.write_tensor_data(_encode(_prepared(shards, hf_name, family, config), ggml_type))
        writer.close()
        partial.replace(out_path)
    except BaseException:
        writer.close()
        partial.unlink(missing_ok=True)
        raise
    counts: dict[str, int] = {}
    for _, _, ggml_type, _ in plan:
        counts[ggml_type.name] = counts.get(ggml_type.name, 0) + 1
    return {"type": qtype, "path": str(out_path), "bytes": out_path.stat().st_size, "tensors": len(plan),
            "tensor_types": counts, "seconds": round(time.perf_counter() - started, 2)}


# -- verification -----------------------------------------------------------------------------------------------


def _config_differences(merged: dict, loaded: dict) -> list[str]:
    out = []
    for key in _ARCH_KEYS:
        if key not in merged:
            continue
        a, b = merged[key], loaded.get(key)
        same = (abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(a)))
                if isinstance(a, float) and isinstance(b, (int, float)) else a == b)
        if not same:
            out.append(f"{key}: merged {a!r}, GGUF {b!r}")
    return out


def _positions(logits_ref, logits_new) -> Iterator[tuple[float, float, int, int]]:
    """Per prompt: (max |Δ|, max |ref|, top-1 agreements, positions)."""
    for ref, new in zip(logits_ref, logits_new):
        yield (float((ref - new).abs().max()), float(ref.abs().max()),
               int((ref.argmax(-1) == new.argmax(-1)).sum()), int(ref.shape[0]))


def verify_gguf(gguf_path: Path | str, merged_dir: Path | str, prompts: Sequence[str], family, *,
                qtype: str, rtol: float | None = None, merged_logits: list | None = None) -> dict[str, Any]:
    """Load ``gguf_path`` with plain transformers and compare it with ``merged_dir`` (see the module docstring).

    ``merged_logits``: the merged model's fp32 logits for ``prompts`` (``[positions, vocab]`` each), computed here
    when ``None`` (pass them to share one computation between several files).  Returns the measurements with
    ``passed``; never raises on a mismatch (the caller decides)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    gguf_path, merged_dir = Path(gguf_path), Path(merged_dir)
    rtol = GGUF_LOGIT_RTOL[qtype] if rtol is None else rtol
    directory, name = str(gguf_path.parent), gguf_path.name
    merged_tok = AutoTokenizer.from_pretrained(merged_dir)
    gguf_tok = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    ids = [merged_tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    gguf_ids = [gguf_tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    tokenization_matches = ids == gguf_ids
    template_matches = (gguf_tok.chat_template or "") == (merged_tok.chat_template or "")

    merged_config = json.loads((merged_dir / "config.json").read_text(encoding="utf-8"))
    config = AutoConfig.from_pretrained(directory, gguf_file=name)
    derived = family.gguf.derived_config(config.to_dict())
    for key, value in derived.items():
        setattr(config, key, value)
    config_diff = _config_differences(merged_config, config.to_dict())

    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, config=config, dtype=torch.float32).eval()
    if merged_logits is None:
        merged_logits = merged_model_logits(merged_dir, ids)
    with torch.inference_mode():
        logits = [model(input_ids=torch.tensor([i])).logits[0].float() for i in ids]
    del model
    stats = list(_positions(merged_logits, logits))
    max_diff = max(s[0] for s in stats)
    scale = max(s[1] for s in stats)
    agree, positions = sum(s[2] for s in stats), sum(s[3] for s in stats)
    rel = max_diff / scale if scale else float("inf")
    top1 = agree / positions if positions else 0.0
    passed = bool(tokenization_matches and template_matches and not config_diff and rel <= rtol
                  and top1 >= GGUF_MIN_TOP1[qtype])
    return {
        "type": qtype, "passed": passed, "prompts": len(prompts), "positions": positions,
        "max_abs_logit_diff": max_diff, "max_abs_logit": scale, "relative_diff": rel, "rtol": rtol,
        "top1_agreement": top1, "min_top1_agreement": GGUF_MIN_TOP1[qtype],
        "per_prompt_max_abs_diff": [s[0] for s in stats],
        "tokenization_matches": tokenization_matches, "chat_template_matches": template_matches,
        "config_differences": config_diff, "derived_config": derived,
        "seconds": round(time.perf_counter() - started, 2),
    }


def merged_model_logits(merged_dir: Path | str, ids: Sequence[Sequence[int]]) -> list:
    """fp32 logits at every position of each token list, from ``merged_dir`` loaded with plain transformers."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32, use_safetensors=True).eval()
    with torch.inference_mode():
        out = [model(input_ids=torch.tensor([list(i)])).logits[0].float() for i in ids]
    del model
    return out


def export_gguf(merged_dir: Path | str, out_dir: Path | str, types: Sequence[str], family, prompts: Sequence[str],
                *, name: str | None = None) -> list[dict[str, Any]]:
    """Write and verify one GGUF file per type under ``out_dir``; raise :class:`GgufVerificationError` (after
    trying every type) when one fails its check.  Returns one record per file (writer + verification fields)."""
    from transformers import AutoTokenizer

    merged_dir, out_dir = Path(merged_dir), Path(out_dir)
    config = json.loads((merged_dir / "config.json").read_text(encoding="utf-8"))
    types = check_gguf_request(types, family, config)
    if not types:
        return []
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    reference = merged_model_logits(merged_dir, ids)
    records = []
    for qtype in types:
        path = out_dir / gguf_file_name(qtype)
        log.info("export: writing %s", path)
        written = write_gguf(merged_dir, path, qtype, family, name=name)
        check = verify_gguf(path, merged_dir, prompts, family, qtype=qtype, merged_logits=reference)
        log.info("export: GGUF %s: %.1f MB, max |Δ logit| %.3g (%.2g of the logit scale, bound %g), top-1 %.3f",
                 qtype, written["bytes"] / 1e6, check["max_abs_logit_diff"], check["relative_diff"], check["rtol"],
                 check["top1_agreement"])
        records.append({**written, "path": f"{out_dir.name}/{path.name}", "verification": check})
    failed = [r for r in records if not r["verification"]["passed"]]
    if failed:
        raise GgufVerificationError("GGUF verification failed: " + "; ".join(_failure(r) for r in failed), records)
    return records


def _failure(record: dict) -> str:
    check = record["verification"]
    reasons = []
    if not check["tokenization_matches"]:
        reasons.append("its tokenizer tokenises the prompts differently from merged/'s")
    if not check["chat_template_matches"]:
        reasons.append("its chat template differs from merged/'s")
    if check["config_differences"]:
        reasons.append("config read back differs: " + ", ".join(check["config_differences"]))
    if check["relative_diff"] > check["rtol"]:
        reasons.append(f"logits differ by {check['max_abs_logit_diff']:.3g} = {check['relative_diff']:.3g} of the "
                       f"logit scale > {check['rtol']:g}")
    if check["top1_agreement"] < check["min_top1_agreement"]:
        reasons.append(f"top-1 agreement {check['top1_agreement']:.3f} < {check['min_top1_agreement']}")
    return f"{record['path']} ({record['type']}): " + "; ".join(reasons)
