"""Export: what the serving team receives (DESIGN §7), and the checks that prove it is what we evaluated.

Layout written by :func:`export_run`::

    <out>/merged/          safetensors (sharded past ``max_shard_size``) in the base model's dtype, config.json,
                           tokenizer whose chat template renders the dialect with tools (also chat_template.jinja),
                           generation_config.json whose eos_token_id includes the end-of-turn token
    <out>/adapter/         PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors) for vLLM --enable-lora
    <out>/README.md        model card: base, data, eval table by category, router, dialect, vLLM/SGLang commands
    <out>/router.json      copied from calibrate (when given)
    <out>/verification.json  reload / logits / answers checks
    <out>/manifest.json    sha256 of every other file, base model identity, slmtune version, git commit, config

Self-verification (:func:`verify_reload`, :func:`verify_answers`): ``merged/`` is reloaded with plain transformers in a
fresh interpreter that never imports slmtune, its last-position logits are compared with base + adapter (PEFT,
unmerged) in fp32, and one decoding batch of eval requests is re-decoded greedily as one batch on the reloaded
merged model with the same grammars and compared with the eval's raw answers (the same batch, so only the merge
differs: an answer may flip only at a near-tie within twice the logits tolerance).  The export is built in a sibling
temporary directory and moved into place only when every check passes; an existing non-empty export is replaced
only with ``overwrite=True``.

QLoRA adapters are merged into the full-precision base (loaded without quantisation), never into 4-bit weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slmtune.rundir import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_ATOL",
    "ExportVerificationError",
    "checkpoint_dtype",
    "copy_adapter",
    "export_run",
    "merge_adapter",
    "render_model_card",
    "sglang_tool_parser",
    "verify_answers",
    "verify_manifest",
    "verify_reload",
    "write_manifest",
    "write_tokenizer",
]

MANIFEST = "manifest.json"
VERIFICATION = "verification.json"
MANIFEST_SCHEMA_VERSION = 1

# Tolerance on max |logit(merged) - logit(base + adapter)| (both computed in fp32) when the caller gives none: the
# only expected difference is the rounding of W + BA to the checkpoint dtype.
DEFAULT_ATOL = {"float32": 1e-3, "float16": 0.05, "bfloat16": 0.25}

# vLLM --tool-call-parser (dialect.vllm_tool_parser) -> SGLang --tool-call-parser.
# Names checked against SGLang's FunctionCallParser.ToolCallParserEnum (python/sglang/srt/function_call/
# function_call_parser.py): "qwen25" (newer SGLang: alias of "qwen", same Qwen25Detector), "llama3", "pythonic".
# That those detectors read our dialects' exact output is NOT verified end to end; SGLang has no Phi-4-mini parser.
SGLANG_TOOL_PARSERS: dict[str, str | None] = {
    "hermes": "qwen25",
    "llama3_json": "llama3",
    "pythonic": "pythonic",
    "phi4_mini_json": None,
}

_VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


class ExportVerificationError(RuntimeError):
    """The export failed its self-verification; ``result`` holds verification.json's content."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result or {}


# ---------------------------------------------------------------------------------------------------------------------
# small helpers


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _dtype_name(dtype: Any) -> str:
    """``torch.bfloat16`` / ``"bf16"`` / ``"bfloat16"`` -> ``"bfloat16"``."""
    name = str(dtype).replace("torch.", "")
    return {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}.get(
        name, name)


def _torch_dtype(dtype: Any):
    import torch

    name = _dtype_name(dtype)
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
            return _dtype_name(value)
    return "float32"


def _default_device():
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _family(family):
    from slmtune.families import FAMILIES, Family

    if isinstance(family, Family):
        return family
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[family]


def _files(root: Path) -> list[str]:
    """Every regular file under ``root`` (relative POSIX paths, sorted); symlinks count as their target."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_file():
                out.append(path.relative_to(root).as_posix())
    return sorted(out)


# ---------------------------------------------------------------------------------------------------------------------
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
    _check_adapter_dir(adapter_dir)
    dtype_name = _dtype_name(dtype) if dtype is not None else checkpoint_dtype(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=_torch_dtype(dtype_name), use_safetensors=True,
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
    return {"dtype": dtype_name, "files": weights, "sharded": len(weights) > 1}


def write_tokenizer(base_dir: Path | str, out_dir: Path | str, family, dialect=None, *,
                    trust_remote_code: bool = False) -> dict[str, Any]:
    """Copy the base tokenizer with the family's chat template for ``dialect``, and write generation_config.json.

    ``chat_template.jinja`` holds the template (what ``vllm serve --chat-template`` takes); the generation config's
    ``eos_token_id`` lists the tokenizer's EOS and the family's end-of-turn token so that servers stop at the end of
    the assistant turn.  Returns ``{"end_of_turn", "end_of_turn_id", "eos_token_id", "chat_template_sha256"}``.
    """
    return _write_tokenizer(base_dir, out_dir, family, dialect, trust_remote_code=trust_remote_code)[0]


def _write_tokenizer(base_dir: Path | str, out_dir: Path | str, family, dialect=None, *,
                     trust_remote_code: bool = False) -> tuple[dict[str, Any], Any]:
    """:func:`write_tokenizer`, also returning the tokenizer object that was saved."""
    from transformers import AutoTokenizer, GenerationConfig

    base_dir, out_dir = Path(base_dir), Path(out_dir)
    family = _family(family)
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


def _check_adapter_dir(adapter_dir: Path) -> dict[str, Any]:
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


def copy_adapter(adapter_dir: Path | str, out_dir: Path | str) -> dict[str, Any]:
    """Copy a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors; pickled ``.bin`` refused).

    Returns ``{"r", "lora_alpha", "target_modules", "modules_to_save", "max_lora_rank"}`` where ``max_lora_rank``
    is the smallest vLLM ``--max-lora-rank`` value that fits ``r``.
    """
    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    config = _check_adapter_dir(adapter_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy2(adapter_dir / name, out_dir / name)
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


# ---------------------------------------------------------------------------------------------------------------------
# 3. model card


def sglang_tool_parser(vllm_parser: str) -> str | None:
    """SGLang's ``--tool-call-parser`` name for a vLLM parser name (``None``: SGLang has none)."""
    return SGLANG_TOOL_PARSERS.get(vllm_parser)


def _fmt(value: Any, kind: str = "pct") -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "s":
        return f"{value:.3f} s"
    if kind == "usd":
        return f"${value:.6f}"
    return f"{value:.4g}"


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _eval_section(report: dict | None) -> list[str]:
    lines = ["## Evaluation", ""]
    suites = _get(report, "suites")
    if not isinstance(suites, dict) or not suites:
        return lines + ["No evaluation report was given (n/a).", ""]
    lines += [f"Greedy decoding, XGrammar-constrained with the dialect's grammar (the `constrained` variants), "
              f"answer shape `{_get(report, 'call_shape') or 'n/a'}` (`category`: the request's category decides "
              "whether text, one call or several are allowed; `free`: text or calls everywhere, as "
              f"`tool_choice=auto`); device {_get(report, 'device') or 'n/a'}, dtype {_get(report, 'dtype') or 'n/a'}. "
              "AST accuracy is BFCL's AST check; CPS = cost per successful task.", ""]
    headline = [("AST accuracy", "ast_accuracy", "pct"), ("unweighted mean over categories",
                                                           "unweighted_mean_accuracy", "pct"),
                ("schema validity", "schema_validity_rate", "pct"), ("executable call rate", "executable_call_rate",
                                                                      "pct"),
                ("latency p50", "latency_p50_s", "s"), ("latency p95", "latency_p95_s", "s"),
                ("output tokens/s", "output_tokens_per_s", "num"), ("CPS (USD)", "cps_usd", "usd")]
    for suite, body in suites.items():
        variants = _get(body, "variants") if isinstance(body, dict) else None
        variants = variants if isinstance(variants, dict) else {}
        lines += [f"### {suite} (n = {_get(body, 'n') if _get(body, 'n') is not None else 'n/a'})", ""]
        columns = ["base-constrained", "tuned-constrained"]
        base, tuned = variants.get(columns[0]), variants.get(columns[1])
        categories = sorted({*(_get(base, "per_category") or {}), *(_get(tuned, "per_category") or {})})
        lines += ["| category | base (constrained) | tuned (constrained) | Δ |", "|---|---|---|---|"]
        rows = [(c, _get(base, "per_category", c), _get(tuned, "per_category", c), "pct") for c in categories]
        rows += [(label, _get(base, key), _get(tuned, key), kind) for label, key, kind in headline]
        for label, b, t, kind in rows:
            delta = "n/a"
            if kind == "pct" and isinstance(b, (int, float)) and isinstance(t, (int, float)):
                delta = f"{100 * (t - b):+.1f} pp"
            name = f"**{label}**" if label in {h[0] for h in headline} else label
            lines.append(f"| {name} | {_fmt(b, kind)} | {_fmt(t, kind)} | {delta} |")
        others = [v for v in variants if v not in columns]
        if others:
            lines += ["", "Other variants:", "", "| variant | AST accuracy | schema validity | latency p50 | CPS |",
                      "|---|---|---|---|---|"]
            for name in others:
                v = variants[name]
                lines.append(f"| {name} | {_fmt(_get(v, 'ast_accuracy'))} | {_fmt(_get(v, 'schema_validity_rate'))} "
                             f"| {_fmt(_get(v, 'latency_p50_s'), 's')} | {_fmt(_get(v, 'cps_usd'), 'usd')} |")
        lines.append("")
    decisions = _get(report, "call_decision")
    if isinstance(decisions, dict) and decisions:
        lines += ["### Call decision", "", "Over the answers where the grammar allowed either text or calls: the share "
                  "of requests that need a call answered with one, and of irrelevance requests answered without.", "",
                  "| variant | called (n) | declined (n) | balanced |", "|---|---|---|---|"]
        for name, d in decisions.items():
            lines.append(f"| {name} | {_fmt(_get(d, 'call_rate'))} ({_get(d, 'call_requests')}) | "
                         f"{_fmt(_get(d, 'decline_rate'))} ({_get(d, 'no_call_requests')}) | "
                         f"{_fmt(_get(d, 'balanced_accuracy'))} |")
        lines.append("")
    return lines


def _data_section(stats: dict | None) -> list[str]:
    lines = ["## Training data", ""]
    if not isinstance(stats, dict) or not stats:
        return lines + ["No data statistics were given (n/a).", ""]
    lines += [f"- samples: {stats.get('num_samples', 'n/a')} (requested {stats.get('num_samples_requested', 'n/a')})",
              f"- tools: {stats.get('num_tools', 'n/a')} in {stats.get('num_domains', 'n/a')} domains "
              f"({stats.get('num_implemented_tools', 'n/a')} with implementations)",
              f"- contamination hits removed: {stats.get('contamination_hits', 'n/a')}"]
    per_category = stats.get("per_category")
    if isinstance(per_category, dict) and per_category:
        lines.append("- per category: " + ", ".join(f"{k} {v}" for k, v in per_category.items()))
    per_split = stats.get("per_split")
    if isinstance(per_split, dict) and per_split:
        lines.append("- per split: " + ", ".join(f"{k} {_get(v, 'num_samples') or 'n/a'}"
                                                 for k, v in per_split.items()))
    held_out = stats.get("held_out_tools")
    if isinstance(held_out, list):
        lines.append(f"- held-out tools (never in training): {len(held_out)}")
    return lines + [""]


def _router_section(router: dict | None) -> list[str]:
    lines = ["## Router (SLM or fallback)", ""]
    if not isinstance(router, dict) or not router:
        return lines + ["No router was calibrated for this export (no `router.json`).", ""]
    calibrator = _get(router, "calibrator", "type") or "n/a"
    signals = router.get("signals") or []
    lines += [f"`router.json` (schema version {router.get('schema_version', 'n/a')}): calibrator **{calibrator}** on "
              f"signals {', '.join(f'`{s}`' for s in signals) or 'n/a'}; fitted on "
              f"{_get(router, 'fitted_on', 'n') or 'n/a'} requests of {_get(router, 'fitted_on', 'suites') or 'n/a'}.",
              "Load it with `slmtune.router.Router.load(\"router.json\")` (stdlib only) and keep a request on the "
              "SLM when `p_correct >= threshold`.", ""]
    metrics = router.get("metrics") if isinstance(router.get("metrics"), dict) else {}
    if metrics:
        parts = []
        for key in ("auroc", "ece", "brier", "aurc"):
            m = metrics.get(key)
            low, high = _get(m, "ci_low"), _get(m, "ci_high")
            ci = f" [{_fmt(low, 'num')}, {_fmt(high, 'num')}]" if low is not None or high is not None else ""
            parts.append(f"{key.upper()} {_fmt(_get(m, 'value'), 'num')}{ci}")
        lines += ["Calibration (95% bootstrap intervals): " + "; ".join(parts) + ".", ""]
    points = router.get("operating_points") or []
    lines += ["| target precision | threshold | coverage (on SLM) | precision |", "|---|---|---|---|"]
    for p in points if isinstance(points, list) else []:
        threshold = _get(p, "threshold")
        lines.append(f"| {_fmt(_get(p, 'target_precision'))} | "
                     f"{_fmt(threshold, 'num') if threshold is not None else 'unreachable (always fall back)'} | "
                     f"{_fmt(_get(p, 'coverage'))} | {_fmt(_get(p, 'precision'))} |")
    return lines + [""]


def _servable_base(identity: Any, revision: str | None) -> str:
    """What ``vllm serve`` takes for the base model: a hub id (with ``--revision``), a local path, or a placeholder
    for bases that exist only as slmtune conversions (GGUF, embedded, random)."""
    if not isinstance(identity, str) or not identity:
        return "<base-model-dir>"
    if identity.startswith("local:"):
        return identity[len("local:"):]
    name, _, rev = identity.partition("@")
    if ":" in name:  # gguf:<sha>, random:<family>:<key>: the de-quantised / generated checkpoint directory
        return "<base-model-dir>"
    rev = revision or rev
    return f"{name} --revision {rev}" if rev and rev != "main" else name


def render_model_card(info: dict[str, Any]) -> str:
    """The export's README.md.

    ``info`` keys (all optional; missing values print as "n/a"): ``model_name``, ``base_model`` (source identity),
    ``base_revision``, ``family``, ``dialect``, ``vllm_tool_parser``, ``end_of_turn``, ``merged_dtype``,
    ``data_stats`` (data/stats.json), ``eval_report`` (eval/report.json), ``router`` (router.json content),
    ``adapter`` (:func:`copy_adapter`'s result), ``verification`` (verification.json content), ``slmtune_version``,
    ``git_commit``.
    """
    name = info.get("model_name") or "slmtune model"
    dialect = info.get("dialect") or "n/a"
    parser = info.get("vllm_tool_parser") or "n/a"
    sglang = sglang_tool_parser(parser) if parser != "n/a" else None
    adapter = info.get("adapter") if isinstance(info.get("adapter"), dict) else {}
    max_rank = adapter.get("max_lora_rank") or 16
    base = info.get("base_model") or "n/a"
    base_arg = _servable_base(base, info.get("base_revision"))
    so_json = '\'{"backend": "xgrammar"}\''
    lines = [
        f"# {name}", "",
        f"A LoRA fine-tune of `{base}` for function calling, made with slmtune {info.get('slmtune_version') or 'n/a'} "
        f"(git {info.get('git_commit') or 'n/a'}).", "",
        "| | |", "|---|---|",
        f"| base model | `{base}`{' revision ' + str(info['base_revision']) if info.get('base_revision') else ''} |",
        f"| family | {info.get('family') or 'n/a'} |",
        f"| tool-call dialect | `{dialect}` |",
        f"| vLLM tool parser | `{parser}` |",
        f"| SGLang tool parser | {f'`{sglang}`' if sglang else 'none (no SGLang parser reads this dialect)'} |",
        f"| end-of-turn token | `{info.get('end_of_turn') or 'n/a'}` (in generation_config.json eos_token_id) |",
        f"| merged weights dtype | {info.get('merged_dtype') or 'n/a'} |",
        f"| LoRA | r = {adapter.get('r', 'n/a')}, alpha = {adapter.get('lora_alpha', 'n/a')}, targets "
        f"{', '.join(adapter.get('target_modules') or []) or 'n/a'} |", "",
        "## Contents", "",
        "- `merged/`: merged model (safetensors), tokenizer with the exported chat template (`chat_template.jinja`), "
        "generation_config.json.",
        "- `adapter/`: the PEFT LoRA adapter, for serving on top of the base model.",
        "- `router.json`: calibrated SLM-or-fallback router (when calibrated).",
        "- `verification.json`: the export's self-checks; `manifest.json`: sha256 of every file "
        "(re-check with `python -m slmtune export export.verify=<this directory>`).", "",
        "## Prompt format (dialect)", "",
        f"The chat template renders the `{dialect}` dialect: tools are presented in the prompt exactly as in "
        f"training, and the model answers either with tool calls in the `{dialect}` format or with plain text. A "
        f"chat-completions server with `--tool-call-parser {parser}` and this template reproduces the prompts "
        "evaluated below (pass tools as OpenAI `tools`; tool-call `arguments` are rendered from objects).", "",
        "## Serving", "",
        "vLLM, merged model (flags of vLLM ≥ 0.10.2, where `--structured-outputs-config` replaced "
        "`--guided-decoding-*` in vllm-project/vllm#22772):", "",
        "```bash",
        f"vllm serve ./merged --enable-auto-tool-choice --tool-call-parser {parser} \\",
        f"  --chat-template ./merged/chat_template.jinja --structured-outputs-config {so_json}",
        "```", "",
        "Older vLLM (< 0.10.2): replace `--structured-outputs-config '{\"backend\": \"xgrammar\"}'` with "
        "`--guided-decoding-backend xgrammar`.", "",
        "vLLM, base model + LoRA adapter (the adapter does not carry the chat template, so pass it explicitly):", "",
        "```bash",
        f"vllm serve {base_arg} --enable-lora --lora-modules slmtune=./adapter --max-lora-rank {max_rank} \\",
        f"  --enable-auto-tool-choice --tool-call-parser {parser} \\",
        f"  --chat-template ./merged/chat_template.jinja --structured-outputs-config {so_json}",
        "```", "",
        "and request `\"model\": \"slmtune\"`."
        + (" `<base-model-dir>` is the full-precision base checkpoint slmtune resolved (a converted GGUF or generated "
           "model, not a hub id); `merged/` needs no base." if base_arg == "<base-model-dir>" else ""), "",
    ]
    if adapter.get("modules_to_save"):
        lines += [f"Note: the adapter also trains `modules_to_save` = {adapter['modules_to_save']}; vLLM's LoRA "
                  "support may not load those — serve `merged/` instead.", ""]
    if sglang:
        lines += ["SGLang (parser name from SGLang's `FunctionCallParser` registry; newer SGLang prefers `qwen` over "
                  "the deprecated alias `qwen25`; that SGLang's detector reads this dialect's exact output is "
                  "unverified):" if sglang == "qwen25" else
                  "SGLang (parser name from SGLang's `FunctionCallParser` registry; that its detector reads this "
                  "dialect's exact output is unverified):", "",
                  "```bash",
                  f"python -m sglang.launch_server --model-path ./merged --tool-call-parser {sglang} \\",
                  "  --chat-template ./merged/chat_template.jinja --grammar-backend xgrammar",
                  "```", ""]
    else:
        lines += [f"SGLang: no SGLang tool parser reads the `{dialect}` dialect (unverified for the newest SGLang); "
                  "serve with vLLM, or parse the raw text with `slmtune.dialects.get_dialect"
                  f"(\"{dialect}\").parse(text)`:", "",
                  "```bash",
                  "python -m sglang.launch_server --model-path ./merged --chat-template ./merged/chat_template.jinja "
                  "--grammar-backend xgrammar",
                  "```", ""]
    lines += [
        "Decode greedily (`temperature: 0`), as evaluated. The evaluation constrained every answer with the dialect's "
        "grammar (`slmtune.dialects.get_dialect(...).grammar(tools, allow_text=True)`, XGrammar EBNF); to reproduce "
        "the constrained numbers, send that grammar per request (vLLM: `extra_body={\"structured_outputs\": "
        "{\"grammar\": ebnf}}`; vLLM < 0.12: `guided_grammar`). Without it the answers are unconstrained.", "",
    ]
    lines += _eval_section(info.get("eval_report"))
    lines += _data_section(info.get("data_stats"))
    lines += _router_section(info.get("router"))
    verification = info.get("verification") if isinstance(info.get("verification"), dict) else {}
    if verification:
        logits = verification.get("logits") or {}
        answers = verification.get("answers") or {}
        lines += ["## Export verification", "",
                  f"- merged model reloaded with plain transformers in a fresh process (no slmtune import): "
                  f"max |Δ logit| vs base + adapter = {_fmt(logits.get('max_abs_logit_diff'), 'num')} over "
                  f"{logits.get('prompts', 'n/a')} prompts (tolerance {logits.get('atol', 'n/a')}, fp32 compute): "
                  f"{'passed' if logits.get('passed') else 'FAILED'}",
                  "- one eval batch re-decoded on the reloaded merged model: "
                  + (f"{answers.get('matches', 'n/a')}/{answers.get('n', 'n/a')} identical answers"
                     + (f", {len(answers['near_ties'])} departing only at a near-tie (top-2 margin ≤ "
                        f"{answers.get('tie_margin', 'n/a')} nats)" if answers.get("near_ties") else "")
                     if not answers.get("skipped") else f"skipped ({answers.get('skipped')})"), ""]
    lines += [
        "## Intended use and limits", "",
        "- Intended: choosing and filling function calls from the tools given in the request, in the dialect above, "
        "served with the matching tool parser; pair with `router.json` to send low-confidence requests to a larger "
        "fallback model.",
        "- The model only knows the tools in its prompt; it was tuned on synthetic, verified conversations, so "
        "accuracy on tools and domains unlike the training data can be lower than the table shows.",
        "- Small models make argument errors that parse fine (wrong values); validate arguments before executing "
        "side-effecting calls.",
        "- Prompts rendered with another chat template, another tool parser or sampling at high temperature are "
        "outside what was evaluated.",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------------
# 4. manifest


def write_manifest(export_dir: Path | str, *, base_model: Any, slmtune_version: str | None, git_commit: str | None,
                   config: dict | None) -> dict[str, Any]:
    """Write ``manifest.json``: sha256 of every file under ``export_dir`` (except the manifest) plus provenance."""
    export_dir = Path(export_dir)
    files = {rel: sha256_file(export_dir / rel) for rel in _files(export_dir) if rel != MANIFEST}
    manifest = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "files": files,
        "base_model": base_model,
        "slmtune_version": slmtune_version,
        "git_commit": git_commit,
        "config": config,
        "created_unix": round(time.time(), 3),
    }
    atomic_write_json(export_dir / MANIFEST, manifest)
    return manifest


def verify_manifest(export_dir: Path | str) -> list[str]:
    """Problems found re-checking an export against its manifest (empty list: intact).

    Each problem names the file: ``"<path>: sha256 mismatch"``, ``"<path>: missing"``, ``"<path>: unexpected file
    (not in manifest)"``; a missing or unreadable manifest is reported as ``"manifest.json: ..."``.
    """
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        return [f"{export_dir}: not a directory"]
    path = export_dir / MANIFEST
    if not path.is_file():
        return [f"{MANIFEST}: missing (not an slmtune export, or the export did not finish)"]
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return [f"{MANIFEST}: unreadable ({err})"]
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        return [f"{MANIFEST}: invalid (no 'files' mapping of path -> sha256)"]
    problems = []
    present = set(_files(export_dir)) - {MANIFEST}
    for rel, expected in sorted(files.items()):
        if rel not in present:
            problems.append(f"{rel}: missing")
        elif sha256_file(export_dir / rel) != expected:
            problems.append(f"{rel}: sha256 mismatch")
    problems += [f"{rel}: unexpected file (not in manifest)" for rel in sorted(present - set(files))]
    return problems


# ---------------------------------------------------------------------------------------------------------------------
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
    device = device or _default_device()
    started = time.perf_counter()
    fresh, merged_logits = _reload_merged_in_fresh_process(merged_dir, list(prompts), device, _dtype_name(dtype),
                                                           timeout)
    same_ids = None
    if tokenizer is not None:
        same_ids = all(tokenizer(p, add_special_tokens=False)["input_ids"] == ids
                       for p, ids in zip(prompts, fresh["input_ids"]))
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=_torch_dtype(dtype), use_safetensors=True,
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
        "compute_dtype": _dtype_name(dtype),
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

    ``requests``: :class:`slmtune.decoding.DecodeRequest` or ``(prompt, grammar_or_None)`` pairs;
    ``decoder_options``: further :class:`~slmtune.decoding.Decoder` settings of the eval (call_trigger,
    max_text_tokens, closing_reserve).  Returns
    ``{"n", "matches", "passed", "mismatches": [{"index", "expected", "got"}], "near_ties": [...], ...}``.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from slmtune.decoding import Decoder, DecodeRequest

    if len(requests) != len(expected_texts):
        raise ValueError(f"{len(requests)} requests but {len(expected_texts)} expected texts")
    merged_dir = Path(merged_dir)
    device = device or _default_device()
    started = time.perf_counter()
    decode_requests = [r if isinstance(r, DecodeRequest) else DecodeRequest(r[0], r[1]) for r in requests]
    if not decode_requests:
        return {"n": 0, "matches": 0, "passed": True, "mismatches": [], "skipped": "no requests"}
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    model = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=_torch_dtype(dtype), use_safetensors=True)
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
        "compute_dtype": _dtype_name(dtype),
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


def _default_prompt(family, dialect) -> str:
    tool = {"name": "get_weather", "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    return family.render_prompt([{"role": "user", "content": "What is the weather in Oslo?"}], [tool], dialect)


# ---------------------------------------------------------------------------------------------------------------------
# orchestration


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir}: an export already exists there; refusing to overwrite it "
                              "(pass overwrite=True / export.overwrite=true to replace it)")


def export_run(*, base_dir: Path | str, base_identity: str, adapter_dir: Path | str, out_dir: Path | str, family,
               dialect=None, config: dict | None = None, router_json: Path | str | None = None,
               data_stats: dict | None = None, eval_report: dict | None = None,
               smoke: Sequence[tuple[str, str | None, str]] = (), model_name: str | None = None,
               atol: float | None = None, max_shard_size: str | int = "2GB", dtype: Any = None,
               base_revision: str | None = None, verify_prompts: int = 4,
               max_new_tokens: int = 192, answers_dtype: Any = "float32",
               decoder_options: dict | None = None,
               device: str | None = None, overwrite: bool = False,
               slmtune_version: str | None = None, git_commit: str | None = None,
               trust_remote_code: bool = False) -> dict[str, Any]:
    """Build, verify and publish an export in ``out_dir`` (layout in the module docstring).

    ``smoke``: one batch of eval requests (see :func:`slmtune.decoding.decode_batches`) in decoding order as
    ``(prompt, grammar_or_None, expected_raw_text)``, re-decoded together as one batch; the first ``verify_prompts``
    prompts also feed the logits check (a built-in prompt when there are none).  ``atol``: logits tolerance
    (``None``: :data:`DEFAULT_ATOL` for the merged dtype).  The answers are re-decoded with ``max_new_tokens``,
    ``answers_dtype`` and ``decoder_options`` (pass the eval's settings: greedy answers can flip between dtypes or
    batches).  The export is assembled in a sibling temporary directory; when a check fails it is kept as
    ``.<name>.failed`` for inspection and :class:`ExportVerificationError` is raised; otherwise it replaces
    ``out_dir`` (which must be absent or empty unless ``overwrite``).
    Returns ``{"out_dir", "verification", "manifest"}``.
    """
    import slmtune
    from slmtune.router import Router
    from slmtune.rundir import git_commit as current_git_commit

    family = _family(family)
    dialect = family.dialect(dialect)
    base_dir, adapter_dir, out_dir = Path(base_dir), Path(adapter_dir), Path(out_dir)
    if not (base_dir / "config.json").is_file():
        raise FileNotFoundError(f"{base_dir}: base model directory without config.json")
    _check_adapter_dir(adapter_dir)
    router = None
    if router_json is not None:
        router_json = Path(router_json)
        Router.load(router_json)  # validates (RouterFileError names the file and the field)
        router = json.loads(router_json.read_text(encoding="utf-8"))
    _prepare_out_dir(out_dir, overwrite)
    smoke = list(smoke)
    slmtune_version = slmtune_version or slmtune.__version__
    git_commit = git_commit if git_commit is not None else current_git_commit()

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.build-", dir=out_dir.parent))
    try:
        started = time.perf_counter()
        log.info("export: merging %s into %s", adapter_dir, base_dir)
        merge = merge_adapter(base_dir, adapter_dir, build / "merged", dtype=dtype, max_shard_size=max_shard_size,
                              trust_remote_code=trust_remote_code)
        tok, tokenizer = _write_tokenizer(base_dir, build / "merged", family, dialect,
                                          trust_remote_code=trust_remote_code)
        adapter = copy_adapter(adapter_dir, build / "adapter")
        if router_json is not None:
            shutil.copy2(router_json, build / "router.json")

        tolerance = atol if atol is not None else DEFAULT_ATOL.get(merge["dtype"], 1e-3)
        prompts = [p for p, _, _ in smoke[:verify_prompts]] or [_default_prompt(family, dialect)]
        log.info("export: reloading merged/ in a fresh process and comparing logits on %d prompts", len(prompts))
        logits = verify_reload(build / "merged", base_dir, adapter_dir, prompts, atol=tolerance, device=device,
                               tokenizer=tokenizer, trust_remote_code=trust_remote_code)
        if smoke:
            log.info("export: re-decoding %d eval requests on the merged model", len(smoke))
            answers = verify_answers(build / "merged", [(p, g) for p, g, _ in smoke], [e for _, _, e in smoke],
                                     stop_strings=[family.end_of_turn], max_new_tokens=max_new_tokens,
                                     batch_size=len(smoke), dtype=_dtype_name(answers_dtype), device=device,
                                     tokenizer=tokenizer, decoder_options=decoder_options,
                                     tie_margin=2 * tolerance)
        else:
            answers = {"n": 0, "matches": 0, "passed": True, "mismatches": [],
                       "skipped": "no eval smoke requests were given"}
        passed = bool(logits["passed"] and answers["passed"])
        verification = {
            "passed": passed,
            "logits": logits,
            "answers": answers,
            "merge": merge,
            "tokenizer": tok,
            "dialect": dialect.name,
            "vllm_tool_parser": dialect.vllm_tool_parser,
            "seconds": round(time.perf_counter() - started, 2),
        }
        atomic_write_json(build / VERIFICATION, verification)
        card = render_model_card({
            "model_name": model_name, "base_model": base_identity, "base_revision": base_revision,
            "family": family.name, "dialect": dialect.name, "vllm_tool_parser": dialect.vllm_tool_parser,
            "end_of_turn": family.end_of_turn, "merged_dtype": merge["dtype"], "data_stats": data_stats,
            "eval_report": eval_report, "router": router, "adapter": adapter, "verification": verification,
            "slmtune_version": slmtune_version, "git_commit": git_commit})
        atomic_write_text(build / "README.md", card)
        if not passed:
            failed = out_dir.parent / f".{out_dir.name}.failed"
            if failed.exists():
                shutil.rmtree(failed)
            os.rename(build, failed)
            reasons = []
            if logits["fresh_process"]["slmtune_imported"]:
                reasons.append("the fresh reload process imported slmtune")
            if logits.get("tokenization_matches_saved_tokenizer") is False:
                reasons.append("the reloaded tokenizer tokenises the prompts differently from the saved one")
            if logits["max_abs_logit_diff"] > tolerance:
                reasons.append(f"logits differ by {logits['max_abs_logit_diff']:.3g} > atol {tolerance:g}")
            if not answers["passed"]:
                reasons.append(f"{len(answers['mismatches'])}/{answers['n']} re-decoded answers differ "
                               f"(first: request {answers['mismatches'][0]['index']})")
            raise ExportVerificationError(f"export verification failed: {'; '.join(reasons)}; the failed export is "
                                          f"kept in {failed} (see its {VERIFICATION})", verification)
        base_model = {"identity": base_identity, "revision": base_revision, "family": family.name,
                      "dtype": merge["dtype"]}
        manifest = write_manifest(build, base_model=base_model, slmtune_version=slmtune_version,
                                  git_commit=git_commit, config=config)
        _prepare_out_dir(out_dir, overwrite)  # nothing appeared meanwhile
        if out_dir.is_dir():
            if any(out_dir.iterdir()):
                shutil.rmtree(out_dir)
            else:
                out_dir.rmdir()
        os.rename(build, out_dir)
    except BaseException:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
        raise
    log.info("export: %s verified (max |Δ logit| %.3g, answers %d/%d) -> %s", "passed",
             logits["max_abs_logit_diff"], answers["matches"], answers["n"], out_dir)
    return {"out_dir": str(out_dir), "verification": verification, "manifest": manifest}
