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


# The answer check decodes in fp32: merging moves a logit there by the max |Δ| the logits check measures (5.9e-5 on
# Gemma 3 270M), so a flip is confined to genuine near-ties.  In bf16 the same merge moved top-2 margins by up to
# 7 ulps of the top logit (median 1; 1,200 positions, r=16 LoRA; an ulp is 0.0625 nats at |logit| 8-16), and a
# merge with a 25 % too large LoRA scale by up to 10: a bf16 comparison cannot tell rounding from a merge bug.
ANSWERS_DTYPE = "float32"


def answers_tie_margin(max_abs_logit_diff: float, atol: float) -> float:
    """The near-tie bound of :func:`verify_answers`, derived from the logits check (both in fp32): merging moves each
    logit by at most ``max_abs_logit_diff`` (measured on the same two models), so a greedy choice between two tokens
    flips only where their logit gap moves by at most twice that.  Capped at ``2 * atol``: a merge bad enough to fail
    the logits check cannot widen the answers check's tolerance."""
    return 2.0 * min(float(max_abs_logit_diff), float(atol))


def verify_answers(merged_dir: Path | str, base_dir: Path | str, adapter_dir: Path | str, requests: Sequence, *,
                   stop_strings: list[str], tie_margin: float, max_new_tokens: int = 192, batch_size: int = 1,
                   device: str | None = None, tokenizer=None, decoder_options: dict | None = None,
                   eval_texts: Sequence[str] | None = None, eval_dtype: Any = None, eval_device: str | None = None,
                   trust_remote_code: bool = False) -> dict[str, Any]:
    """Decode the same eval requests greedily, as one decoding batch with the eval's grammars and decoder settings,
    on base + adapter (PEFT, unmerged: what the eval ran) and on the reloaded ``merged/``, both here, in fp32
    (:data:`ANSWERS_DTYPE`) on ``device``: like is compared with like, and only the merge differs.

    The two answers of a request must be identical, except where they first differ at a near-tie: the token where
    they part was the model's free choice on both sides (not text the grammar forced) and the two top-2 margins
    there sum to at most ``tie_margin`` nats (the sum bounds from below how far the two competing tokens' logit gap
    moved between the models; pass :func:`answers_tie_margin`).  Such answers are listed under ``near_ties``; any
    other difference is a mismatch and fails the check, so a wrong merge (e.g. a wrong LoRA scale) fails it.

    ``eval_texts``: the eval's own raw answers of these requests, decoded in ``eval_dtype`` on ``eval_device``.
    They are compared with base + adapter's answers here and reported under ``eval_answers``; they can fail the
    check only when the eval decoded in fp32 on this device (then the two decodings are the same computation and
    a difference outside a near-tie, judged by the reference's margin, means the export did not start from what
    was evaluated).  Decoded in bf16 or fp16, greedy answers legitimately differ from fp32 ones at near-ties of
    that dtype's resolution, so there they are only reported.

    ``requests``: :class:`slmtune.eval.decoding.DecodeRequest` or ``(prompt, grammar_or_None)`` pairs; the
    tokenizer is loaded from ``merged/`` unless given (``export_run`` passes the one it saved there, whose
    tokenisation :func:`verify_reload` checks); ``decoder_options``: further
    :class:`~slmtune.eval.decoding.Decoder` settings (call_trigger, max_text_tokens, closing_reserve).
    Returns ``{"n", "matches", "passed", "mismatches", "near_ties", "tie_margin", "method", "eval_answers", ...}``.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from slmtune.eval.decoding import Decoder, DecodeRequest

    if eval_texts is not None and len(requests) != len(eval_texts):
        raise ValueError(f"{len(requests)} requests but {len(eval_texts)} eval answers")
    merged_dir, base_dir, adapter_dir = Path(merged_dir), Path(base_dir), Path(adapter_dir)
    device = device or default_device()
    started = time.perf_counter()
    decode_requests = [r if isinstance(r, DecodeRequest) else DecodeRequest(r[0], r[1]) for r in requests]
    if not decode_requests:
        return {"n": 0, "matches": 0, "passed": True, "mismatches": [], "skipped": "no requests"}
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    dtype = torch_dtype(ANSWERS_DTYPE)

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype, use_safetensors=True,
                                                trust_remote_code=trust_remote_code)
    model = PeftModel.from_pretrained(base, str(adapter_dir)).to(device).eval()
    decoder = Decoder(model, tokenizer, stop_strings=stop_strings, max_new_tokens=max_new_tokens,
                      **(decoder_options or {}))
    with torch.inference_mode():
        reference = decoder.generate(decode_requests, batch_size=batch_size)
    decoder.model = None  # base + adapter is freed before the merged model loads: one fp32 model at a time
    del base, model
    model = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=dtype, use_safetensors=True).to(device).eval()
    decoder = decoder.with_model(model)  # the same grammars, compiled once
    with torch.inference_mode():
        merged = decoder.generate(decode_requests, batch_size=batch_size)
    del model, decoder

    mismatches, near_ties = [], []
    for i, (ref, got) in enumerate(zip(reference, merged)):
        if got.text == ref.text:
            continue
        margins = [_margin_at_divergence(ref, got.text), _margin_at_divergence(got, ref.text)]
        entry = {"index": i, "reference": ref.text, "merged": got.text, "margins": margins}
        tie = None not in margins and sum(margins) <= tie_margin
        (near_ties if tie else mismatches).append(entry)

    eval_answers = None
    if eval_texts is not None:
        eval_dtype = dtype_name(eval_dtype) if eval_dtype is not None else None
        checked = eval_dtype == ANSWERS_DTYPE and eval_device is not None and str(eval_device) == str(device)
        differing = []
        for i, (ref, expected) in enumerate(zip(reference, eval_texts)):
            if ref.text != expected:
                margin = _margin_at_divergence(ref, expected)
                differing.append({"index": i, "eval": expected, "reference": ref.text, "margin": margin,
                                  "near_tie": margin is not None and margin <= tie_margin})
        eval_answers = {
            "dtype": eval_dtype, "device": None if eval_device is None else str(eval_device), "checked": checked,
            "passed": not checked or all(d["near_tie"] for d in differing),
            "reproduced": len(eval_texts) - len(differing), "n": len(eval_texts), "differing": differing,
            "why": "the eval decoded in this check's dtype on this device: base + adapter must reproduce its answers"
                   if checked else f"the eval decoded in {eval_dtype} on {eval_device}, this check in "
                   f"{ANSWERS_DTYPE} on {device}: greedy answers may differ at that dtype's near-ties (reported, "
                   "not checked)"}
    n = len(decode_requests)
    return {
        "n": n,
        "matches": n - len(mismatches) - len(near_ties),
        "passed": not mismatches and (eval_answers is None or eval_answers["passed"]),
        "mismatches": mismatches,
        "near_ties": near_ties,
        "tie_margin": tie_margin,
        "method": f"one eval batch decoded greedily as one batch on base + adapter (unmerged) and on the reloaded "
                  f"merged model, both in {ANSWERS_DTYPE} on {device}; answers may differ only where they part at a "
                  f"near-tie (top-2 margins of the two sides summing to <= tie_margin nats)",
        "eval_answers": eval_answers,
        "constrained": sum(r.grammar is not None for r in decode_requests),
        "compute_dtype": ANSWERS_DTYPE,
        "device": device,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _margin_at_divergence(generation, other: str) -> float | None:
    """Top-2 margin of the model's choice at the first token where ``generation`` departs from the text ``other``:
    the token spanning the first differing character, or, when ``generation`` ended where ``other`` goes on, the
    choice of its stop token.  None when that token was forced by the grammar (no choice of the model's)."""
    text = generation.text
    diverge = next((k for k, (a, b) in enumerate(zip(text, other)) if a != b), min(len(text), len(other)))
    for token in generation.tokens:
        if token.end > diverge:
            return None if token.forced else token.margin
    return generation.stop_margin if diverge == len(text) else None


def default_check_prompt(family, dialect) -> str:
    tool = {"name": "get_weather", "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    return family.render_prompt([{"role": "user", "content": "What is the weather in Oslo?"}], [tool], dialect)
