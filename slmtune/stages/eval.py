"""Stage 3 — eval: grammar-constrained decoding against BFCL, the held-out synthetic split and user suites.

BFCL's multi-turn categories (``bfcl:multi_turn_base`` …) run as conversations through the agent loop over BFCL's
simulators (:mod:`slmtune.eval.multi_turn_run`), one row per entry, scored by BFCL's state and response checks.

Usage: python -m slmtune eval +recipe=gemma270m eval.adapter=<dir|null> eval.suites=[bfcl:simple_python,path/to/suite]
Writes <run>/eval/{predictions-<suite>.jsonl, report.json, report.md, smoke.jsonl, plots/*.png}. Works without a
prior run directory when eval.adapter is null or a directory and no suite is "synthetic" or "synthetic:<category>"
(the held-out split's samples of one category, e.g. synthetic:multi_turn).
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

from slmtune.config import SlmtuneConfig
from slmtune.data.registry import load_catalog
from slmtune.data.synthesis import CATEGORIES
from slmtune.eval.decoding import Decoder, DecodeRequest, decode_batches, resolve_dtype
from slmtune.eval.evaluation import EnergyMeter, call_decision, evaluate, prepare_requests, summarize
from slmtune.eval.multi_turn import MULTI_TURN_CATEGORIES, MultiTurnEntry, load_bfcl_multi_turn
from slmtune.eval.suites import EvalRequest, load_bfcl, load_synthetic_split, load_user_suite
from slmtune.models.loading import attach_adapter, default_device, load_base_model, load_tokenizer, resolve_model_source
from slmtune.progress import Progress
from slmtune.rundir import RunDir, atomic_write_json, atomic_write_text, write_jsonl
from slmtune.stages.common import (
    dialect_of,
    family_of,
    input_hash,
    local_model_paths,
    log,
    prepare_run,
    resolved_model,
    tracked,
)

SECTIONS = ["model", "eval"]


def suite_file_name(suite: str) -> str:
    """The ``<suite>`` of ``predictions-<suite>.jsonl``: ``synthetic``, ``bfcl_<category>`` for ``bfcl:<category>``,
    and for a user suite path its cleaned spelling with ``user_`` in front when it could be taken for one of those
    (a path named ``bfcl_simple_python`` must not overwrite the BFCL suite's file)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", suite.replace("bfcl:", "bfcl_")).strip("_")
    if not is_builtin(suite) and (name.startswith("synthetic") or name.startswith("bfcl_")):
        name = f"user_{name}"
    return name


def is_synthetic(suite: str) -> bool:
    """``synthetic`` (this run's held-out split) or ``synthetic:<category>`` (its samples of one category)."""
    return suite == "synthetic" or suite.startswith("synthetic:")


def is_builtin(suite: str) -> bool:
    """A synthetic or BFCL suite (anything else names a user suite's path)."""
    return is_synthetic(suite) or suite.startswith("bfcl:")


def suite_file_names(suites: list[str]) -> dict[str, str]:
    """:func:`suite_file_name` of every suite; ``ValueError`` when two suites would write the same file."""
    names: dict[str, str] = {}
    for suite in suites:
        name = suite_file_name(suite)
        clash = next((other for other, taken in names.items() if taken == name), None)
        if clash is not None:
            raise ValueError(f"eval.suites: {clash!r} and {suite!r} would both write predictions-{name}.jsonl; "
                             "rename one of them")
        names[suite] = name
    return names


def upstream_stages(cfg: SlmtuneConfig) -> list[str]:
    """The stages this one reads: data for the synthetic suite, train for eval.adapter=auto."""
    stages = ["data"] if any(is_synthetic(s) for s in cfg.eval.suites) else []
    return stages + (["train"] if cfg.eval.adapter == "auto" else [])


def is_multi_turn(suite: str) -> bool:
    return suite.startswith("bfcl:") and suite.split(":", 1)[1] in MULTI_TURN_CATEGORIES


def load_suite(suite: str, run: RunDir, limit: int | None) -> list[EvalRequest] | list[MultiTurnEntry]:
    if suite == "synthetic":
        return load_synthetic_split(run.stage_dir("data") / "test.jsonl", limit=limit)
    if is_multi_turn(suite):
        return load_bfcl_multi_turn(suite.split(":", 1)[1], limit=limit)
    if is_synthetic(suite):
        category = suite.split(":", 1)[1]
        if category not in CATEGORIES:
            raise ValueError(f"eval.suites: {suite!r}: no synthetic category {category!r}; known: {list(CATEGORIES)}")
        return load_synthetic_split(run.stage_dir("data") / "test.jsonl", limit=limit, suite=suite,
                                    categories=(category,))
    if suite.startswith("bfcl:"):
        return load_bfcl(suite.split(":", 1)[1], limit=limit)
    return load_user_suite(user_suite_path(suite), limit=limit)


def user_suite_path(suite: str) -> Path:
    path = Path(suite).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"eval.suites: {suite!r} is neither 'synthetic', 'bfcl:<category>' nor an existing "
                                f"path")
    return path


def check_inputs(cfg: SlmtuneConfig) -> None:
    """Fail fast, before any upstream stage runs, on inputs named explicitly: user suites, an adapter directory."""
    for suite in cfg.eval.suites:
        if not is_builtin(suite):
            user_suite_path(suite)
    if cfg.eval.adapter != "auto":
        adapter_dir(cfg, RunDir(cfg.run_dir))


def adapter_dir(cfg: SlmtuneConfig, run: RunDir) -> Path | None:
    if cfg.eval.adapter is None:
        return None
    path = run.stage_dir("train") / "adapter" if cfg.eval.adapter == "auto" else Path(cfg.eval.adapter)
    if not path.is_dir():
        raise FileNotFoundError(f"eval.adapter: {path} is not a directory")
    return path


def stage_hash(cfg: SlmtuneConfig, run: RunDir) -> str:
    user_suites = [Path(s).expanduser() for s in cfg.eval.suites if not is_builtin(s)]
    own_adapter = [Path(cfg.eval.adapter)] if cfg.eval.adapter not in (None, "auto") else []
    return input_hash(run, cfg, SECTIONS, upstream_stages(cfg),
                      files=local_model_paths(cfg) + user_suites + own_adapter)


def run(cfg: SlmtuneConfig) -> dict[str, Any]:
    run_dir = prepare_run(cfg)
    current = stage_hash(cfg, run_dir)
    suite_file_names(list(cfg.eval.suites))  # fail fast, as for the suites
    suites = {suite: load_suite(suite, run_dir, cfg.eval.limit) for suite in cfg.eval.suites}
    adapter = adapter_dir(cfg, run_dir)
    resolved_model(cfg, run_dir, "eval")
    # finished decoding batches are kept here (per input hash) until the stage completes: a killed or failed eval
    # resumes without decoding them again
    resume = run_dir.resume_dir("eval", current)
    with run_dir.stage_output("eval", current) as out, tracked(cfg, run_dir, "eval") as tracker:
        report = _evaluate(cfg, suites, adapter, out, tracker, resume)
    run_dir.drop_resume("eval")
    log.info("eval:\n%s", summary_table(report))
    return report


def count_decoded(bar: Progress, rows: list[dict[str, Any]]) -> None:
    """Progress of eval: requests done (decoded, resumed or failed) and their output tokens (shown as tok/s)."""
    bar.update(len(rows), tok=sum(row.get("output_tokens", 0) for row in rows))


def _evaluate(cfg: SlmtuneConfig, suites: dict[str, list], adapter: Path | None, out: Path,
              tracker, resume: Path) -> dict[str, Any]:
    family, dialect = family_of(cfg), dialect_of(cfg)
    source = resolve_model_source(cfg.model)
    tokenizer = load_tokenizer(source, cfg.model.trust_remote_code)
    device = default_device()
    dtype = resolve_dtype(cfg.eval.precision, device)
    model = load_base_model(source, dtype=dtype, trust_remote_code=cfg.model.trust_remote_code, device=device)
    if adapter is not None:
        model = attach_adapter(model, adapter)
    model.eval()
    decoder = Decoder(model, tokenizer, stop_strings=[family.end_of_turn], max_new_tokens=cfg.eval.max_new_tokens,
                      call_trigger=dialect.call_trigger, max_text_tokens=cfg.eval.max_text_tokens,
                      closing_reserve=cfg.eval.closing_reserve, jump_forward=cfg.eval.jump_forward)
    registry = load_catalog(cfg.data.catalog_dir) if cfg.data.catalog_dir else load_catalog()

    variants = []
    for weights in (["base"] if adapter is None or cfg.eval.compare_base else []) + (["tuned"] if adapter else []):
        for constrained in [c for c, on in ((True, cfg.eval.constrained), (False, cfg.eval.unconstrained)) if on]:
            variants.append((weights, constrained))
    report: dict[str, Any] = {"model": {"name": cfg.model.name, "source": source.identity,
                                        "adapter": str(adapter) if adapter else None},
                              "dialect": dialect.name, "vllm_tool_parser": dialect.vllm_tool_parser,
                              "device": str(device), "dtype": str(dtype), "batch_size": cfg.eval.batch_size,
                              "max_new_tokens": cfg.eval.max_new_tokens, "call_shape": cfg.eval.call_shape,
                              "max_text_tokens": cfg.eval.max_text_tokens,
                              "closing_reserve": cfg.eval.closing_reserve, "jump_forward": cfg.eval.jump_forward,
                              "suites": {}}
    smoke: list[dict] = []
    every_row: list[dict] = []
    file_names = suite_file_names(list(suites))
    for suite, requests in suites.items():
        if is_multi_turn(suite):
            rows_all, report["suites"][suite] = _evaluate_multi_turn(
                cfg, suite, requests, [w for w, c in variants if c], model, adapter, tokenizer, decoder, device,
                tracker, resume, file_names[suite])
            write_jsonl(out / f"predictions-{file_names[suite]}.jsonl", rows_all)
            every_row.extend(rows_all)
            continue
        rows_all: list[dict] = []
        suite_report: dict[str, Any] = {"n": len(requests), "variants": {}}
        # prepared once per grammar setting: base and tuned decode the same prompts and grammars
        prepared = {flag: prepare_requests(requests, family, dialect, constrained=flag,
                                           shape_policy=cfg.eval.call_shape)
                    for flag in {flag for _, flag in variants}}
        for weights, constrained in variants:
            name = f"{weights}-{'constrained' if constrained else 'unconstrained'}"
            meter = EnergyMeter(str(device))
            bar = Progress(f"eval: {suite} {name}", total=len(prepared[constrained]), unit="requests")
            with meter, bar, (model.disable_adapter() if weights == "base" and adapter else nullcontext()):
                rows, wall = evaluate(prepared[constrained], decoder, dialect, batch_size=cfg.eval.batch_size,
                                      registry=registry, tokenizer=tokenizer,
                                      batch_log=resume / f"{file_names[suite]}--{name}.batches.partial.jsonl",
                                      on_batch=partial(count_decoded, bar))
            for row in rows:
                row["variant"] = name
            rows_all.extend(rows)
            metrics = summarize(rows, wall, usd_per_hour=cfg.eval.cost.usd_per_hour,
                                usd_per_1m_input=cfg.eval.cost.usd_per_1m_input_tokens,
                                usd_per_1m_output=cfg.eval.cost.usd_per_1m_output_tokens,
                                energy_j=meter.joules, energy_reason=meter.reason, device=str(device))
            suite_report["variants"][name] = metrics
            tracker.log({f"{suite}/{name}/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))})
            log.info("eval: %s %s ast=%.3f schema_valid=%.3f truncated=%d closed_early=%d text_cut=%d (%.1fs)",
                     suite, name, metrics["ast_accuracy"] or 0, metrics["schema_validity_rate"] or 0,
                     metrics["truncated"], metrics["closed_early"], metrics["text_cut"], wall)
            if any(metrics["failed"].values()):
                log.warning("eval: %s %s: requests without a scored answer (counted invalid): %s", suite, name,
                            ", ".join(f"{n} {reason}" for reason, n in metrics["failed"].items() if n))
            if weights == ("tuned" if adapter else "base") and constrained and not smoke:
                smoke = _smoke_rows(prepared[constrained], rows, cfg.eval.batch_size)
        write_jsonl(out / f"predictions-{file_names[suite]}.jsonl", rows_all)
        tracker.table(f"predictions/{file_names[suite]}",
                      [{k: r.get(k) for k in ("id", "variant", "category", "valid", "schema_valid", "raw", "error")}
                       for r in rows_all])
        report["suites"][suite] = suite_report
        every_row.extend(rows_all)
    report["call_decision"] = {name: call_decision([r for r in every_row if r["variant"] == name])
                               for name in dict.fromkeys(r["variant"] for r in every_row)}
    for name, decision in report["call_decision"].items():
        tracker.log({f"call_decision/{name}/{k}": v for k, v in decision.items() if v is not None})
    write_jsonl(out / "smoke.jsonl", smoke)
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", report_markdown(report))
    for path in write_plots(report, every_row, out / "plots"):
        tracker.image(f"plots/{path.stem}", path)
    return report


def _evaluate_multi_turn(cfg: SlmtuneConfig, suite: str, entries: list[MultiTurnEntry], weights: list[str], model,
                         adapter: Path | None, tokenizer, decoder: Decoder, device, tracker, resume: Path,
                         file_name: str) -> tuple[list[dict], dict[str, Any]]:
    """One BFCL multi-turn suite, each weights variant driving the conversations through the agent loop with the
    eval's decoder (grammar-constrained per step, free call shape: text or calls, as tool_choice=auto); finished
    entries are kept in ``resume`` as the single-turn batches are. Returns the rows and the suite's report."""
    from slmtune.agent.loop import LocalModelPolicy, Price
    from slmtune.eval.multi_turn_run import evaluate_multi_turn, summarize_multi_turn

    if not weights:
        log.warning("eval: %s runs constrained only (eval.constrained=false): skipped", suite)
    price = Price(cfg.eval.cost.usd_per_1m_input_tokens, cfg.eval.cost.usd_per_1m_output_tokens,
                  cfg.eval.cost.usd_per_hour)
    rows_all: list[dict] = []
    suite_report: dict[str, Any] = {"n": len(entries), "multi_turn": True, "variants": {}}
    for weight in weights:
        name = f"{weight}-constrained"
        # a fresh prefix cache per variant: each step prefills only what the conversation added since the last
        policy_decoder = decoder.with_model(model, prefix_cache=cfg.eval.prefix_cache)
        policy = LocalModelPolicy(model, tokenizer, family_of(cfg), dialect_of(cfg), name=name, price=price,
                                  decoder=policy_decoder)
        bar = Progress(f"eval: {suite} {name}", total=len(entries), unit="entries")
        with bar, (model.disable_adapter() if weight == "base" and adapter else nullcontext()):
            rows, wall = evaluate_multi_turn(entries, policy,
                                             batch_log=resume / f"{file_name}--{name}.batches.partial.jsonl",
                                             on_entry=partial(count_decoded, bar))
        for row in rows:
            row["variant"] = name
        rows_all.extend(rows)
        metrics = summarize_multi_turn(rows, wall, usd_per_hour=cfg.eval.cost.usd_per_hour,
                                       usd_per_1m_input=cfg.eval.cost.usd_per_1m_input_tokens,
                                       usd_per_1m_output=cfg.eval.cost.usd_per_1m_output_tokens, device=str(device))
        metrics["prefix_cache"] = policy_decoder.prefix_cache_stats.to_dict() if cfg.eval.prefix_cache else None
        suite_report["variants"][name] = metrics
        tracker.log({f"{suite}/{name}/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))})
        log.info("eval: %s %s accuracy=%.3f turn_accuracy=%.3f failures=%s (%.1fs)%s", suite, name,
                 metrics["accuracy"] or 0, metrics["turn_accuracy"] or 0, metrics["failure_reasons"], wall,
                 _prefix_cache_note(metrics["prefix_cache"]))
        if any(metrics["failed"].values()):
            log.warning("eval: %s %s: entries that could not be run (counted invalid): %s", suite, name,
                        ", ".join(f"{n} {reason}" for reason, n in metrics["failed"].items() if n))
    tracker.table(f"predictions/{suite}", [{k: r.get(k) for k in ("id", "variant", "category", "valid", "error_type",
                                                                  "error")} for r in rows_all])
    return rows_all, suite_report


def _prefix_cache_note(stats: dict[str, Any] | None) -> str:
    """The log's words on a multi-turn variant's prefix cache (empty when it was off)."""
    if stats is None:
        return ""
    lookups = stats["hits"] + stats["misses"]
    return (f"; prefix cache: {stats['hits']}/{lookups} steps hit, {stats['reused_tokens']} prompt tokens reused, "
            f"{stats['prefilled_tokens']} prefilled")


def _smoke_rows(prepared, rows, batch_size: int) -> list[dict]:
    """The decoding batch holding the suite's first decoded request: each request's exact prompt, grammar and raw
    answer, in decoding order, for export's answer re-check (which decodes them as one batch, as here)."""
    decoded = [(p, row) for p, row in zip(prepared, rows) if row.get("failure") not in ("prepare", "compile")]
    if not decoded:
        return []
    batches = decode_batches([DecodeRequest(p.prompt, p.grammar) for p, _ in decoded], batch_size)
    first = next(batch for batch in batches if 0 in batch)
    return [{"id": decoded[i][0].request.id, "prompt": decoded[i][0].prompt, "grammar": decoded[i][0].grammar,
             "raw": decoded[i][1]["raw"]} for i in sorted(first)]


def _fmt(value: Any, percent: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if percent else f"{value:.3g}"


def summary_table(report: dict[str, Any]) -> str:
    """Per suite: AST accuracy (a multi-turn suite: BFCL's entry accuracy) and schema validity of every variant (the
    table `pipeline` prints)."""
    variants = sorted({v for s in report["suites"].values() for v in s["variants"]})
    header = "| suite | n | " + " | ".join(f"{v} AST | {v} schema-valid" for v in variants) + " |"
    lines = [header, "|" + "---|" * (2 + 2 * len(variants))]
    for suite, data in report["suites"].items():
        cells = []
        for variant in variants:
            metrics = data["variants"].get(variant, {})
            cells += [_fmt(metrics.get("ast_accuracy", metrics.get("accuracy"))),
                      _fmt(metrics.get("schema_validity_rate"))]
        lines.append(f"| {suite} | {data['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_markdown(report: dict[str, Any]) -> str:
    parts = [f"# Evaluation of {report['model']['name']}", "",
             f"Source `{report['model']['source']}`, adapter `{report['model']['adapter']}`, dialect "
             f"`{report['dialect']}` (vLLM `--tool-call-parser {report['vllm_tool_parser']}`), device "
             f"{report['device']} ({report['dtype']}), batch {report['batch_size']}, max_new_tokens "
             f"{report['max_new_tokens']}.", "",
             f"Constrained answers: grammar shape `{report['call_shape']}` (see `eval.call_shape`); *closed early* = "
             f"ended after a call because another would not fit, or steered to close within "
             f"{report['closing_reserve']} tokens of max_new_tokens; *text cut* = no-call "
             f"answer cut after {report['max_text_tokens']} tokens (its prose is not scored); *truncated* = ran out "
             "of tokens unfinished.", "", "## Summary", "", summary_table(report), ""]
    for suite, data in report["suites"].items():
        if data.get("multi_turn"):
            parts += multi_turn_markdown(suite, data)
            continue
        parts += [f"## {suite}", "", "| variant | AST | per category | schema valid | executable | truncated | "
                  "closed early | text cut | p50 s | p95 s | out tok/s | CPS USD | J/request |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for variant, m in data["variants"].items():
            per_cat = ", ".join(f"{c} {_fmt(a)}" for c, a in m["per_category"].items())
            energy = _fmt(m["energy_j_per_request"], False) if m["energy_j_per_request"] is not None else \
                "n/a (unmeasured)"
            parts.append(f"| {variant} | {_fmt(m['ast_accuracy'])} | {per_cat} | {_fmt(m['schema_validity_rate'])} "
                         f"| {_fmt(m['executable_call_rate'])} | {m['truncated']} | {m['closed_early']} | "
                         f"{m['text_cut']} | {_fmt(m['latency_p50_s'], False)}"
                         f" | {_fmt(m['latency_p95_s'], False)} | {_fmt(m['output_tokens_per_s'], False)} | "
                         f"{_fmt(m['cps_usd'], False)} | {energy} |")
        failed = {v: ", ".join(f"{n} {r}" for r, n in m.get("failed", {}).items() if n)
                  for v, m in data["variants"].items()}
        parts += [""] + [f"Requests without a scored answer ({v}, counted invalid): {f}"
                         for v, f in failed.items() if f]
        conversations = {v: m["multi_turn"] for v, m in data["variants"].items() if m.get("multi_turn")}
        if conversations:
            parts += ["", "Multi-turn conversations (each assistant turn scored with the gold history before it; a "
                      "conversation succeeds when all its turns are right):", "",
                      "| variant | conversations | all turns right | turns | turns right |", "|---|---|---|---|---|"]
            parts += [f"| {v} | {c['conversations']} | {c['succeeded']} ({_fmt(c['success_rate'])}) | {c['turns']} | "
                      f"{_fmt(c['turn_accuracy'])} |" for v, c in conversations.items()]
        reasons = {m["energy_unavailable_reason"] for m in data["variants"].values() if m["energy_unavailable_reason"]}
        parts += [""] + [f"Energy: {r}" for r in sorted(reasons)] + [""]
    parts += ["## Call decision", "",
              "Over every suite, the answers that could be plain text or calls (unconstrained, or under a grammar "
              "that allows text: under `eval.call_shape=category` only (ir)relevance requests, the grammar forces the "
              "other calls; `eval.call_shape=free` leaves every request to the model). *Called* = share of the "
              "requests that need a call answered with one (right or wrong); *declined* = share of the "
              "irrelevance requests answered without one; *balanced* = their mean.", "",
              "| variant | call requests | called | no-call requests | declined | balanced |",
              "|---|---|---|---|---|---|"]
    for variant, d in report["call_decision"].items():
        parts.append(f"| {variant} | {d['call_requests']} | {_fmt(d['call_rate'])} | {d['no_call_requests']} | "
                     f"{_fmt(d['decline_rate'])} | {_fmt(d['balanced_accuracy'])} |")
    return "\n".join(parts) + "\n"


def multi_turn_markdown(suite: str, data: dict[str, Any]) -> list[str]:
    """The report section of a BFCL multi-turn suite."""
    parts = [f"## {suite}", "",
             "Conversations through the agent loop over BFCL's simulators; *accuracy* = entries passing BFCL's state "
             "and response checks after every turn, *turn accuracy* = turns (with ground-truth calls) passing them, "
             "each turn checked even after an earlier one failed.", "",
             "| variant | n | accuracy | turn accuracy | failure reasons | steps / entry | calls / entry | refused "
             "calls | tokens in / out per entry | p50 s / entry | CPS USD |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for variant, m in data["variants"].items():
        reasons = ", ".join(f"{k.removeprefix('multi_turn:')} {n}" for k, n in m["failure_reasons"].items()) or "-"
        parts.append(f"| {variant} | {m['n']} | {_fmt(m['accuracy'])} | {_fmt(m['turn_accuracy'])} "
                     f"({m['turns_checked']} turns) | {reasons} | {_fmt(m['steps_per_entry'], False)} | "
                     f"{_fmt(m['calls_per_entry'], False)} | {m['refused_calls']} | "
                     f"{_fmt(m['tokens_in_per_entry'], False)} / {_fmt(m['output_tokens_per_entry'], False)} | "
                     f"{_fmt(m['entry_wall_p50_s'], False)} | {_fmt(m['cps_usd'], False)} |")
    failed = {v: ", ".join(f"{n} {r}" for r, n in m["failed"].items() if n) for v, m in data["variants"].items()}
    cached = [f"Prefix cache ({v}): {_prefix_cache_note(m['prefix_cache']).removeprefix('; prefix cache: ')}."
              for v, m in data["variants"].items() if m.get("prefix_cache")]
    return parts + [""] + [f"Entries that could not be run ({v}, counted invalid): {f}" for v, f in failed.items()
                           if f] + cached + [""]


def write_plots(report: dict[str, Any], rows: list[dict], directory: Path) -> list[Path]:
    """Accuracy by category and latency histogram (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    accuracy: dict[str, dict[str, list[bool]]] = {}
    for row in rows:
        accuracy.setdefault(row["variant"], {}).setdefault(row["category"], []).append(bool(row["valid"]))
    categories = sorted({c for per in accuracy.values() for c in per})
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(categories)), 4))
    width = 0.8 / max(len(accuracy), 1)
    for i, (variant, per) in enumerate(sorted(accuracy.items())):
        values = [sum(per.get(c, [])) / len(per[c]) if per.get(c) else 0 for c in categories]
        ax.bar([x + i * width for x in range(len(categories))], values, width, label=variant)
    ax.set_xticks([x + width * (len(accuracy) - 1) / 2 for x in range(len(categories))], categories, rotation=30)
    ax.set_ylabel("AST accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths = [directory / "accuracy_by_category.png"]
    fig.savefig(paths[0], dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for variant in sorted(accuracy):
        ax.hist([r["latency_s"] for r in rows if r["variant"] == variant and r.get("latency_s")], bins=20,
                alpha=0.5, label=variant)
    ax.set_xlabel("latency per request (s, batched)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(directory / "latency_hist.png")
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)
    return paths
