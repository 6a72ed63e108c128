"""The model card: base model, data, eval table by category, router, dialect, and the vLLM / SGLang commands."""

from __future__ import annotations

import logging
from typing import Any

from slmtune.models.dialects import DIALECTS

log = logging.getLogger(__name__)


# 3. model card


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
        if _get(base, "multi_turn") or _get(tuned, "multi_turn"):   # every assistant turn of a conversation right
            rows.append(("multi-turn conversations, all turns right", _get(base, "multi_turn", "success_rate"),
                         _get(tuned, "multi_turn", "success_rate"), "pct"))
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


def _without_revision(identity: Any, revision: str | None) -> Any:
    """``org/name@<commit>`` -> ``org/name`` when the commit is printed beside it."""
    if isinstance(identity, str) and revision and identity.endswith(f"@{revision}"):
        return identity[: -len(revision) - 1]
    return identity


def _gguf_contents(verification: Any) -> list[str]:
    """Contents lines for the GGUF files of an export (none when it has none)."""
    records = verification.get("gguf") if isinstance(verification, dict) else None
    if not records:
        return []
    lines = ["- `gguf/`: the merged model as GGUF for llama.cpp / Ollama / LM Studio, chat template (with tools) and "
             "tokenizer in its metadata; each read back with transformers' GGUF loader and compared with `merged/` "
             "(fp32 logits at every position of the check prompts):"]
    for r in records:
        check = r.get("verification") or {}
        lines.append(f"  - `{r.get('path')}` ({r.get('type')}, {r.get('bytes', 0) / 1e6:.1f} MB): max |Δ logit| "
                     f"{_fmt(check.get('max_abs_logit_diff'), 'num')} = {_fmt(check.get('relative_diff'), 'num')} "
                     f"of the largest logit (bound {check.get('rtol')}), top-1 agreement "
                     f"{_fmt(check.get('top1_agreement'))} over {check.get('positions')} positions: "
                     f"{'passed' if check.get('passed') else 'FAILED'}")
    first = records[0].get("path")
    lines.append(f"  Run with llama.cpp's chat template (tools rendered as in training): `llama-server -m ./{first} "
                 "--jinja` (the template writes BOS itself; the file says not to add another).")
    return lines


SO_JSON = '\'{"backend": "xgrammar"}\''


def _serving_section(dialect: str, parser: str, sglang: str | None, base_arg: str, max_rank: int, adapter: dict,
                     *, max_tokens: Any = None) -> list[str]:
    """The serving commands (run from the export directory) and the request shape that reproduces the evaluation.

    vLLM's commands and the tool_choice behaviour were checked against a live vLLM 0.32 (CPU) server by
    ``scripts/check_serving.py``, which runs exactly the ```bash blocks below that start with ``vllm serve``."""
    max_tokens = max_tokens if isinstance(max_tokens, int) else 128
    lines = [
        "## Serving", "",
        "Run these commands from this directory. vLLM, merged model (flags of vLLM ≥ 0.10.2, where "
        "`--structured-outputs-config` replaced `--guided-decoding-*` in vllm-project/vllm#22772; checked live with "
        "vLLM 0.32 by `scripts/check_serving.py`):", "",
        "```bash",
        f"vllm serve ./merged --enable-auto-tool-choice --tool-call-parser {parser} \\",
        f"  --chat-template ./merged/chat_template.jinja --structured-outputs-config {SO_JSON}",
        "```", "",
        "Older vLLM (< 0.10.2): replace `--structured-outputs-config '{\"backend\": \"xgrammar\"}'` with "
        "`--guided-decoding-backend xgrammar`. The merged model is served under the name `./merged` "
        "(`--served-model-name` changes it).", "",
        "vLLM, base model + LoRA adapter. The adapter carries neither the chat template nor the end-of-turn stop: "
        "`--chat-template` gives the first, `--generation-config ./merged` the second (the base checkpoint's "
        "generation_config.json does not list the end-of-turn token, and without it generation runs on past it to "
        "`max_tokens` and no call is parsed):", "",
        "```bash",
        f"vllm serve {base_arg} --enable-lora --lora-modules slmtune=./adapter --max-lora-rank {max_rank} \\",
        f"  --enable-auto-tool-choice --tool-call-parser {parser} --generation-config ./merged \\",
        f"  --chat-template ./merged/chat_template.jinja --structured-outputs-config {SO_JSON}",
        "```", "",
        "and request `\"model\": \"slmtune\"`."
        + (" `<base-model-dir>` is the full-precision base checkpoint slmtune resolved (a converted GGUF or generated "
           "model, not a hub id); `merged/` needs no base." if base_arg == "<base-model-dir>" else ""), "",
    ]
    if adapter.get("modules_to_save"):
        lines += [f"Note: the adapter also trains `modules_to_save` = {adapter['modules_to_save']}; vLLM's LoRA "
                  "support may not load those — serve `merged/` instead.", ""]
    lines += [
        "### Requests", "",
        "The evaluation decoded greedily with the dialect's grammar "
        f"(`slmtune.models.dialects.get_dialect(\"{dialect}\").grammar(tools, allow_text=True)`, XGrammar EBNF: "
        "text or calls of the offered tools, as `tool_choice=\"auto\"`). This request reproduces it (OpenAI "
        "client; plain HTTP JSON takes the same fields, with `structured_outputs` at the top level):", "",
        "```python",
        "from openai import OpenAI",
        "from slmtune.models.dialects import get_dialect",
        "",
        "client = OpenAI(base_url=\"http://127.0.0.1:8000/v1\", api_key=\"unused\")",
        "tools = [{\"type\": \"function\", \"function\": {",
        "    \"name\": \"get_weather\", \"description\": \"Current weather\",",
        "    \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}},",
        "                   \"required\": [\"city\"]}}}]",
        f"grammar = get_dialect(\"{dialect}\").grammar(tools, allow_text=True)",
        "response = client.chat.completions.create(",
        "    model=\"./merged\",  # \"slmtune\" on the LoRA server",
        "    messages=[{\"role\": \"user\", \"content\": \"Weather in Oslo?\"}],",
        f"    tools=tools, tool_choice=\"auto\", temperature=0, max_tokens={max_tokens},",
        "    # vLLM < 0.12: extra_body={\"guided_grammar\": grammar}",
        "    extra_body={\"structured_outputs\": {\"grammar\": grammar}},",
        ")",
        "calls = response.choices[0].message.tool_calls  # None for a plain-text answer (content)",
        "```", "",
        "`tool_choice`: only `\"auto\"` with the grammar in `structured_outputs` reproduces the evaluated behaviour "
        "(streaming included). With `\"required\"` or a named tool, vLLM (0.32) ignores `structured_outputs` (for "
        "`required` it logs \"structured outputs are ignored because tool_choice forces tool call\") and constrains "
        "only the call wrapper, so the arguments are not held to this grammar (measured: they carried keys the "
        "tool's schema does not have); without a grammar the answers are unconstrained. Multi-turn: send the "
        "assistant's `tool_calls` back (JSON-string `arguments`, as "
        "the API returns them) and the tool results as `role: \"tool\"` messages; the template renders them as in "
        "training.", "",
    ]
    if sglang:
        lines += ["SGLang (not run here; flags checked against SGLang's `server_args.py`: `--tool-call-parser` takes "
                  "`auto` or a key of `FunctionCallParser.ToolCallParserEnum`, `--grammar-backend` one of xgrammar, "
                  "outlines, llguidance, none; that its parser reads this dialect's exact output is unverified):", "",
                  "```bash",
                  f"python -m sglang.launch_server --model-path ./merged --tool-call-parser {sglang} \\",
                  "  --chat-template ./merged/chat_template.jinja --grammar-backend xgrammar",
                  "```", "",
                  "SGLang takes the grammar per request as `extra_body={\"ebnf\": grammar}` (unverified here).", ""]
    else:
        lines += [f"SGLang: no SGLang tool parser reads the `{dialect}` dialect; serve with vLLM, or parse the raw "
                  f"text with `slmtune.models.dialects.get_dialect(\"{dialect}\").parse(text)`:", "",
                  "```bash",
                  "python -m sglang.launch_server --model-path ./merged --chat-template ./merged/chat_template.jinja "
                  "--grammar-backend xgrammar",
                  "```", ""]
    lines += [
        "TensorRT-LLM (on paper, not run): `merged/` is a plain Hugging Face checkpoint (safetensors, config.json, "
        "tokenizer with the chat template), which TensorRT-LLM's PyTorch backend loads directly where it supports "
        "the architecture (see its support matrix) — `trtllm-serve ./merged --backend pytorch --max_seq_len 4096`; "
        "the older engine path converts it first (`examples/models/core/<architecture>/convert_checkpoint.py "
        "--model_dir ./merged --output_dir ./trt_ckpt`, then `trtllm-build --checkpoint_dir ./trt_ckpt "
        "--output_dir ./trt_engine`). Constrain answers with its XGrammar guided decoding (`guided_decoding_backend: "
        "xgrammar` in the `--extra_llm_api_options` file) and parse the text with "
        f"`get_dialect(\"{dialect}\").parse(text)` where no TensorRT-LLM tool parser reads this dialect.", "",
    ]
    return lines


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
    known = DIALECTS.get(dialect)
    sglang = known.sglang_tool_parser if known is not None else None
    adapter = info.get("adapter") if isinstance(info.get("adapter"), dict) else {}
    max_rank = adapter.get("max_lora_rank") or 16
    base = info.get("base_model") or "n/a"
    base_arg = _servable_base(base, info.get("base_revision"))
    lines = [
        f"# {name}", "",
        f"A LoRA fine-tune of `{base}` for function calling, made with slmtune {info.get('slmtune_version') or 'n/a'} "
        f"(git {info.get('git_commit') or 'n/a'}).", "",
        "| | |", "|---|---|",
        f"| base model | `{_without_revision(base, info.get('base_revision'))}`"
        f"{' revision `' + str(info['base_revision']) + '`' if info.get('base_revision') else ''} |",
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
        *_gguf_contents(info.get("verification")),
        "- `verification.json`: the export's self-checks; `manifest.json`: sha256 of every file "
        "(re-check with `python -m slmtune export export.verify=<this directory>`).", "",
        "## Prompt format (dialect)", "",
        f"The chat template renders the `{dialect}` dialect: tools are presented in the prompt exactly as in "
        f"training, and the model answers either with tool calls in the `{dialect}` format or with plain text. A "
        f"chat-completions server with `--tool-call-parser {parser}` and this template reproduces the prompts "
        "evaluated below (pass tools as OpenAI `tools`; tool-call `arguments` are rendered from objects).", "",
    ]
    lines += _serving_section(dialect, parser, sglang, base_arg, max_rank, adapter,
                              max_tokens=_get(info.get("eval_report"), "max_new_tokens"))
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
                  "- one eval batch decoded as one batch on base + adapter (unmerged) and on the reloaded merged "
                  f"model, both in {answers.get('compute_dtype', 'n/a')} on {answers.get('device', 'n/a')}: "
                  + (f"{answers.get('matches', 'n/a')}/{answers.get('n', 'n/a')} identical answers, "
                     f"{len(answers.get('near_ties') or [])} parting only at a near-tie (top-2 margins of the two "
                     f"sides summing to ≤ {_fmt(answers.get('tie_margin'), 'num')} nats: twice the measured max "
                     f"|Δ logit|, at most twice the tolerance), {len(answers.get('mismatches') or [])} otherwise: "
                     f"{'passed' if answers.get('passed') else 'FAILED'}"
                     if not answers.get("skipped") else f"skipped ({answers.get('skipped')})")]
        eval_answers = answers.get("eval_answers")
        if isinstance(eval_answers, dict):
            lines.append(f"- the eval's own answers of that batch ({eval_answers.get('dtype')} on "
                         f"{eval_answers.get('device')}) reproduced by base + adapter here: "
                         f"{eval_answers.get('reproduced')}/{eval_answers.get('n')} ("
                         + ("checked: same dtype and device" if eval_answers.get("checked") else
                            "reported, not checked: greedy answers may differ between dtypes at near-ties") + ")")
        lines.append("")
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
