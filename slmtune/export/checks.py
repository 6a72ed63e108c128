"""Self-verification of an export: fresh-process reload with logit comparison, and re-decoding eval answers."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slmtune.export.merge import default_device, dtype_name, torch_dtype

log = logging.getLogger(__name__)


# Tolerance on max |logit(merged) - logit(base + adapter)| (both computed in fp32) when the caller gives none: the
# only expected difference is the rounding of W + BA to the checkpoint dtype.
DEFAULT_ATOL = {"float32": 1e-3, "float16": 0.05, "bfloat16": 0.25}




class ExportVerificationError(RuntimeError):
    """The export failed its self-verification; ``result`` holds verification.json's content."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result or {}


# 5. self-verification

# Run in a fresh interpreter (python -I): plain transformers, never slmtune.
_RELOAD_SCRIPT = r"""
import json, sys, time
started = time.time()
import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

merged_dir, prompts_path, out_dir, device, dtype = sys.argv[1:6]
with open(prompts_path, encoding="utf-8") as handle:
    prompts = json.load(handle)
tokenizer = AutoTokenizer.from_pretrained(merged_dir)
model = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=getattr(torch, dtype), use_safetensors=True)
model = model.to(device).eval()
logits, input_ids = {}, []
with torch.inference_mode():
    for i, prompt in enumerate(prompts):
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        input_ids.append(ids)
        out = model(input_ids=torch.tensor([ids], device=device))
        logits[f"prompt_{i}"] = out.logits[0, -1].float().cpu().contiguous()
save_file(logits, out_dir + "/logits.safetensors")
result = {
    "input_ids": input_ids,
    "model_class": type(model).__name__,
    "transformers_version": transformers.__version__,
    "torch_version": torch.__version__,
    "has_chat_template": bool(getattr(tokenizer, "chat_template", None)),
    "slmtune_imported": any(m == "slmtune" or m.startswith("slmtune.") for m in sys.modules),
    "seconds": round(time.time() - started, 2),
}
with open(out_dir + "/result.json", "w", encoding="utf-8") as handle:
    json.dump(result, handle)
"""


def _reload_merged_in_fresh_process(merged_dir: Path, prompts: list[str], device: str, dtype: str,
                                    timeout: float) -> tuple[dict, dict]:
    from safetensors.torch import load_file

    with tempfile.TemporaryDirectory(prefix="slmtune-reload-") as tmp:
        prompts_path = Path(tmp) / "prompts.json"
        prompts_path.write_text(json.dumps(prompts), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        proc = subprocess.run([sys.executable, "-I", "-c", _RELOAD_SCRIPT, str(merged_dir.resolve()),
                               str(prompts_path), tmp, device, dtype],
                              cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not (Path(tmp) / "result.json").is_file():
            tail = (proc.stderr or proc.stdout or "").strip()[-2000:]
            raise RuntimeError(f"reloading {merged_dir} with plain transformers failed (exit {proc.returncode}): "
                               f"{tail}")
        result = json.loads((Path(tmp) / "result.json").read_text(encoding="utf-8"))
        logits = load_file(str(Path(tmp) / "logits.safetensors"))
    return result, logits


def verify_reload(merged_dir: Path | str, base_dir: Path | str, adapter_dir: Path | str, prompts: list[str], *,
                  atol: float, device: str | None = None, dtype: str = "float32", timeout: float = 1800,
                  tokenizer=None, trust_remote_code: bool = False) -> dict[str, Any]:
    """Reload ``merged/`` with plain transformers in a fresh process and compare its last-position logits with base +
    adapter (PEFT, unmerged) computed here, both in ``dtype`` (fp32 by default).

    Prompts are tokenised by the reloaded tokenizer with ``add_special_tokens=False`` (they already hold the BOS
    text); base + adapter get the same ids.  When ``tokenizer`` (the tokenizer that was saved) is given, its ids must
    equal the reloaded tokenizer's.  Returns ``{"max_abs_logit_diff", "atol", "passed", "prompts", ...}``;
    ``passed`` iff the max difference ≤ ``atol`` (and the tokenisations agree).
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    merged_dir, base_dir, adapter_dir = Path(merged_dir), Path(base_dir), Path(adapter_dir)
    if not prompts:
        raise ValueError("verify_reload needs at least one prompt")
    device = device or default_device()
    started = time.perf_counter()
    fresh, merged_logits = _reload_merged_in_fresh_process(merged_dir, list(prompts), device, dtype_name(dtype),
                                                           timeout)
    same_ids = None
    if tokenizer is not None:
        same_ids = all(tokenizer(p, add_special_tokens=False)["input_ids"] == ids
                       for p, ids in zip(prompts, fresh["input_ids"]))
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch_dtype(dtype), use_safetensors=True,
                                                 trust_remote_code=trust_remote_code)
    model = PeftModel.from_pretrained(model, str(adapter_dir)).to(device).eval()
    diffs, top1_agree = [], 0
    with torch.inference_mode():
        for i, ids in enumerate(fresh["input_ids"]):
            reference = model(input_ids=torch.tensor([ids], device=device)).logits[0, -1].float().cpu()
            merged = merged_logits[f"prompt_{i}"]
            if merged.shape != reference.shape:
                raise RuntimeError(f"logit shapes differ: merged {tuple(merged.shape)} vs base+adapter "
                                   f"{tuple(reference.shape)}")
            diffs.append(float((merged - reference).abs().max()))
            top1_agree += int(int(merged.argmax()) == int(reference.argmax()))
    del model
    max_diff = max(diffs)
    return {
        "max_abs_logit_diff": max_diff,
        "atol": atol,
        "passed": bool(max_diff <= atol) and not fresh["slmtune_imported"] and same_ids is not False,
        "prompts": len(diffs),
        "tokenization_matches_saved_tokenizer": same_ids,
        "per_prompt_max_abs_diff": diffs,
        "top1_agreement": top1_agree / len(diffs),
        "compute_dtype": dtype_name(dtype),
        "device": device,
        "fresh_process": {k: fresh[k] for k in ("model_class", "transformers_version", "torch_version",
                                                "has_chat_template", "slmtune_imported", "seconds")},
        "seconds": round(time.perf_counter() - started, 2),
    }


def verify_answers(merged_dir: Path | str, requests: Sequence, expected_texts: Sequence[str], *,
                   stop_strings: list[str], max_new_tokens: int = 192, batch_size: int = 1, dtype: str = "float32",
                   device: str | None = None, tokenizer=None, decoder_options: dict | None = None,
                   tie_margin: float = 0.0) -> dict[str, Any]:
    """Re-decode eval requests greedily on the reloaded ``merged/`` (with the same grammars) and compare with the
    eval's raw outputs.  The tokenizer is loaded from ``merged/`` unless given (``export_run`` passes the tokenizer it
    saved there, whose tokenisation :func:`verify_reload` checks against the reloaded one).

    An answer that first differs at a token the model chose with a top-2 margin of at most ``tie_margin`` (nats:
    a near-tie that merging's rounding may flip, as logits agree only to within the reload check's tolerance) is
    reported under ``near_ties`` and does not fail the check; any other difference does.

    ``requests``: :class:`slmtune.eval.decoding.DecodeRequest` or ``(prompt, grammar_or_None)`` pairs;
    ``decoder_options``: further :class:`~slmtune.eval.decoding.Decoder` settings of the eval (call_trigger,
    max_text_tokens, closing_reserve).  Returns
    ``{"n", "matches", "passed", "mismatches": [{"index", "expected", "got"}], "near_ties": [...], ...}``.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from slmtune.eval.decoding import Decoder, DecodeRequest

    if len(requests) != len(expected_texts):
        raise ValueError(f"{len(requests)} requests but {len(expected_texts)} expected texts")
    merged_dir = Path(merged_dir)
    device = device or default_device()
    started = time.perf_counter()
    decode_requests = [r if isinstance(r, DecodeRequest) else DecodeRequest(r[0], r[1]) for r in requests]
    if not decode_requests:
        return {"n": 0, "matches": 0, "passed": True, "mismatches": [], "skipped": "no requests"}
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    model = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch_dtype(dtype), use_safetensors=True)
    model = model.to(device).eval()
    decoder = Decoder(model, tokenizer, stop_strings=stop_strings, max_new_tokens=max_new_tokens,
                      **(decoder_options or {}))
    with torch.inference_mode():
        generations = decoder.generate(decode_requests, batch_size=batch_size)
    del model
    mismatches, near_ties = [], []
    for i, (generation, expected) in enumerate(zip(generations, expected_texts)):
        if generation.text == expected:
            continue
        margin = _margin_at_divergence(generation, expected)
        entry = {"index": i, "expected": expected, "got": generation.text, "margin": margin}
        (near_ties if margin is not None and margin <= tie_margin else mismatches).append(entry)
    n = len(decode_requests)
    return {
        "n": n,
        "matches": n - len(mismatches) - len(near_ties),
        "passed": not mismatches,
        "mismatches": mismatches,
        "near_ties": near_ties,
        "tie_margin": tie_margin,
        "constrained": sum(r.grammar is not None for r in decode_requests),
        "compute_dtype": dtype_name(dtype),
        "device": device,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _margin_at_divergence(generation, expected: str) -> float | None:
    """Top-2 margin of the model's choice at the first token where ``generation`` departs from ``expected`` (None
    when that token was forced by the grammar, or is the stop token that ended ``generation`` early)."""
    text = generation.text
    diverge = next((k for k, (a, b) in enumerate(zip(text, expected)) if a != b), min(len(text), len(expected)))
    for token in generation.tokens:
        if token.end > diverge:
            return None if token.forced else token.margin
    return None


def default_check_prompt(family, dialect) -> str:
    tool = {"name": "get_weather", "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    return family.render_prompt([{"role": "user", "content": "What is the weather in Oslo?"}], [tool], dialect)
