"""Stage 4 — calibrate: router data for an SLM-default, LLM-fallback stack.

Usage: python -m slmtune calibrate +recipe=gemma270m [calibrate.predictions=[path/predictions-x.jsonl,...]]
Fits a cross-fitted calibrator of P(correct | confidence signals) on the eval predictions of the tuned model
(constrained), chooses thresholds for the precision targets on held-out folds, simulates the cascade against the
configured fallback, and writes <run>/calibrate/{router.json, signals.jsonl, plots/*.png}.

To refit on a server's traffic, ``calibrate.predictions`` takes recorded responses instead: one JSON object a line,
``{"id": ..., "category": ..., "valid": true|false, "response": <the OpenAI-compatible chat completion>}``, the
response requested with ``logprobs=true, top_logprobs=20`` and the slmtune grammar. Their signals are computed with
:func:`slmtune.router.signals_from_openai` (the run's dialect and end-of-turn token, every token of the answer), and
router.json records under ``fitted_on.openai_signals`` the arguments that reproduce them at serving time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from slmtune.config import SlmtuneConfig
from slmtune.route.cascade import simulate_cascade
from slmtune.route.fitting import fit_router, min_requests
from slmtune.route.plots import plot_cps_vs_threshold, plot_reliability, plot_risk_coverage
from slmtune.route.router_file import build_router_document, write_router_json
from slmtune.route.signals import SIGNAL_TOP_K, OpenAIResponseError, signals_from_openai
from slmtune.rundir import RunDir, iter_jsonl, write_jsonl
from slmtune.stages.common import dialect_of, family_of, input_hash, log, log_summary, prepare_run, tracked

SECTIONS = ["calibrate", "model"]  # model: the dialect and end-of-turn token recorded responses are read with
PREFERRED_VARIANTS = ("tuned-constrained", "base-constrained")


def prediction_files(cfg: SlmtuneConfig, run: RunDir) -> list[Path]:
    if cfg.calibrate.predictions:
        paths = [Path(p) for p in cfg.calibrate.predictions]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"calibrate.predictions: no such file(s) {missing}")
        return paths
    paths = sorted((run.stage_dir("eval")).glob("predictions-*.jsonl"))
    if not paths:
        raise FileNotFoundError(f"{run.stage_dir('eval')}: no predictions-*.jsonl; run the eval stage first")
    return paths


def openai_signal_options(cfg: SlmtuneConfig, *, from_responses: bool) -> dict[str, Any]:
    """The keyword arguments of :func:`slmtune.router.signals_from_openai` that give a server's response the
    signals this router is fitted on: the run's dialect and end-of-turn token; for signals from the eval's decoder,
    its cut of plain-text answers after ``eval.max_text_tokens`` (a server's recorded answers are taken whole)."""
    return {"dialect": dialect_of(cfg).name, "stop_tokens": [family_of(cfg).end_of_turn],
            "max_text_tokens": None if from_responses else cfg.eval.max_text_tokens, "top_k": SIGNAL_TOP_K}


def select_rows(paths: list[Path], minimum: int, openai_options: dict[str, Any] | None = None
                ) -> tuple[list[dict], str]:
    """Rows of the preferred variant present in the files (tuned over base), with their signals; at least
    ``minimum`` of them, else a ``ValueError`` naming the files. A row recorded from a server (``response``, no
    ``signals``) gets its signals from the response with ``openai_options`` (see :func:`openai_signal_options`);
    files may not mix such rows with the eval's."""
    rows = []
    sources = set()
    for path in paths:
        for line, row in iter_jsonl(path):
            if row.get("response") is not None and row.get("signals") is None:
                if openai_options is None:
                    raise ValueError(f"{path}:{line}: a recorded response, but no dialect to read it with")
                try:
                    row = dict(row, signals=signals_from_openai(row["response"], **openai_options),
                               _signals_from="openai")
                except OpenAIResponseError as err:
                    raise ValueError(f"{path}:{line}: response: {err}") from None
                sources.add("openai")
            elif row.get("signals"):
                sources.add("decoder")
            if row.get("signals") and not isinstance(row.get("valid"), bool):
                raise ValueError(f"{path}:{line}: valid: expected true or false (the request's AST verdict), "
                                 f"got {row.get('valid')!r}")
            rows.append(dict(row, _file=str(path)))
    if len(sources) > 1:
        raise ValueError(f"calibrate: {[str(p) for p in paths]} mix recorded server responses with the eval's "
                         "predictions; fit on one kind (their signals differ where the tokenisations do)")
    variants = {row.get("variant", "base-constrained") for row in rows}
    variant = next((v for v in PREFERRED_VARIANTS if v in variants), None) or sorted(variants or [""])[0]
    chosen = [r for r in rows if r.get("variant", "base-constrained") == variant and r.get("signals")]
    if len(chosen) < minimum:
        raise ValueError(f"calibrate: only {len(chosen)} prediction rows with signals for variant {variant!r} in "
                         f"{[str(p) for p in paths]}; cross-fitting with calibrate.folds needs at least {minimum}")
    return chosen, variant


def check_inputs(cfg: SlmtuneConfig) -> None:
    """Fail fast, before any upstream stage runs, on files named explicitly: predictions, the fallback's."""
    if cfg.calibrate.predictions:
        prediction_files(cfg, RunDir(cfg.run_dir))
    fallback = cfg.calibrate.fallback.predictions
    if fallback and not Path(fallback).is_file():
        raise FileNotFoundError(f"calibrate.fallback.predictions: no such file {fallback}")


def upstream_stages(cfg: SlmtuneConfig) -> list[str]:
    """The stages this one reads: eval's predictions, unless calibrate.predictions names them."""
    return [] if cfg.calibrate.predictions else ["eval"]


def stage_hash(cfg: SlmtuneConfig, run: RunDir) -> str:
    fallback = [Path(cfg.calibrate.fallback.predictions)] if cfg.calibrate.fallback.predictions else []
    return input_hash(run, cfg, SECTIONS, upstream_stages(cfg), files=prediction_files(cfg, run) + fallback)


def run(cfg: SlmtuneConfig) -> dict[str, Any]:
    run_dir = prepare_run(cfg)
    paths = prediction_files(cfg, run_dir)
    rows, variant = select_rows(paths, min_requests(cfg.calibrate.folds),
                                openai_signal_options(cfg, from_responses=True))
    with run_dir.stage_output("calibrate", stage_hash(cfg, run_dir)) as out, \
            tracked(cfg, run_dir, "calibrate") as tracker:
        doc = _calibrate(cfg, rows, variant, paths, out)
        log_summary(tracker, {k: v["value"] for k, v in doc["metrics"].items()})
        for png in sorted((out / "plots").glob("*.png")):
            tracker.image(f"plots/{png.stem}", png)
    log.info("calibrate: AUROC %.3f, ECE %.3f; operating points %s", doc["metrics"]["auroc"]["value"],
             doc["metrics"]["ece"]["value"], [(p["target_precision"], p["threshold"], p["coverage"])
                                              for p in doc["operating_points"]])
    return doc


def _calibrate(cfg: SlmtuneConfig, rows: list[dict], variant: str, paths: list[Path], out: Path) -> dict[str, Any]:
    c = cfg.calibrate
    signals = [r["signals"] for r in rows]
    correct = np.array([1.0 if r["valid"] else 0.0 for r in rows])
    suites = sorted({r.get("suite", "?") for r in rows})
    fit = fit_router(signals, correct, list(c.signals), c.calibrator, tuple(c.targets), n_folds=c.folds,
                     seed=c.seed, n_boot=c.bootstrap, suites=suites)
    # Device-time share of each request (a batch's wall time is shared by its rows), priced per hour.
    slm_cost = np.array([r.get("latency_s", 0.0) / max(r.get("batch_size", 1), 1) for r in rows]) \
        * cfg.eval.cost.usd_per_hour / 3600
    fallback_correct, fallback_source = _fallback_correctness(c.fallback, rows)
    cascade = simulate_cascade(fit.oof_p, correct, slm_cost, fallback_correct, c.fallback.usd_per_request)
    fallback = {"name": c.fallback.name, "usd_per_request": c.fallback.usd_per_request,
                "accuracy_source": fallback_source}
    adapter = Path(cfg.run_dir) / "train" / "adapter" / "adapter_model.safetensors"
    model = {"name": cfg.model.name, "source": cfg.model.source, "variant": variant,
             "adapter_sha256": hashlib.sha256(adapter.read_bytes()).hexdigest() if variant.startswith("tuned")
             and adapter.is_file() else None}
    doc = build_router_document(fit, model=model, cascade=cascade, fallback=fallback)
    from_responses = any(r.get("_signals_from") == "openai" for r in rows)
    doc["fitted_on"]["signals_from"] = "openai" if from_responses else "decoder"
    doc["fitted_on"]["openai_signals"] = openai_signal_options(cfg, from_responses=from_responses)
    write_router_json(doc, out / "router.json")
    write_jsonl(out / "signals.jsonl", [{"id": r["id"], "suite": r.get("suite"), "category": r["category"],
                                         "correct": bool(r["valid"]), "p_correct_oof": float(p),
                                         "signals": r["signals"]} for r, p in zip(rows, fit.oof_p)])
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    plot_reliability(fit.oof_p, correct, plots / "reliability.png")
    plot_risk_coverage(fit.oof_p, correct, plots / "risk_coverage.png")
    plot_cps_vs_threshold(cascade, plots / "cps_vs_threshold.png")
    return doc


def _fallback_correctness(fallback, rows: list[dict]) -> tuple[Any, str]:
    """Per-request fallback correctness from its recorded predictions, else its configured accuracy."""
    if fallback.predictions:
        recorded = {}
        for line, r in iter_jsonl(fallback.predictions):
            if "id" not in r or not isinstance(r.get("valid"), bool):
                raise ValueError(f"calibrate.fallback.predictions: {fallback.predictions}:{line}: needs 'id' and "
                                 f"'valid' (true or false)")
            recorded[(r.get("suite"), r["id"])] = r["valid"]
        missing = [r["id"] for r in rows if (r.get("suite"), r["id"]) not in recorded]
        if missing:
            raise ValueError(f"calibrate.fallback.predictions: {fallback.predictions} lacks requests {missing[:5]}")
        return np.array([float(recorded[(r.get("suite"), r["id"])]) for r in rows]), fallback.predictions
    return float(fallback.accuracy), f"configured accuracy {fallback.accuracy}"
