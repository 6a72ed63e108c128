"""Function-calling evaluation: prompts and grammars per request, decoding, parsing, scoring, signals, metrics.

Metric definitions follow DESIGN §5: BFCL AST accuracy per category and its unweighted mean, schema validity rate,
executable call rate (``None`` for suites without implementations), latency p50/p95, output tokens/s, Cost per
Successful Task, and energy per request (``None`` with the reason when no meter exists); besides those, the
call / no-call decision over the answers where the grammar left it to the model (:func:`call_decision`).
"""

from __future__ import annotations

import glob
import math
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmtune.data.registry import ToolRegistry, ToolSchemaError, make_tool
from slmtune.eval.decoding import Decoder, DecodeRequest, Generation, decode_batches
from slmtune.eval.scoring import ast_check, schema_check, to_bfcl_calls
from slmtune.eval.suites import EvalRequest
from slmtune.models.families import Family
from slmtune.route.signals import TokenView, token_signals
from slmtune.rundir import BatchLog


@dataclass
class PreparedRequest:
    request: EvalRequest
    tools: list[dict]          # normalised function dicts
    prompt: str
    grammar: str | None
    text_allowed: bool = True  # the answer may be plain text (no grammar, or one that allows it): the model decides
    error: str | None = None   # why the request could not be prepared (counted as wrong, never dropped)


# Why a request has no scored answer (a predictions row's ``failure``; ``None`` for a request that was scored):
# its prompt or grammar could not be built, XGrammar could not compile its grammar, decoding it raised, or scoring
# its answer raised. Such a row is counted invalid and summarize() counts them by reason.
FAILURES = ("prepare", "compile", "decode", "score")

CALL_SHAPES = ("category", "free")


def call_shape(category: str, policy: str = "category") -> tuple[bool, int | None]:
    """(allow_text, max_calls) of the grammar for a request of ``category`` (max_calls None = the grammar's cap).

    ``category`` policy (the default): the category says what kind of answer is asked for, as BFCL's categories
    do.  Irrelevance and relevance requests test the call-or-not decision, so they (and unknown categories) allow a
    plain-text answer or calls; parallel categories ask for one or more calls; simple and multiple for exactly one.
    ``free`` policy: every request allows text or any number of calls (a deployment that knows nothing of the
    request)."""
    if policy not in CALL_SHAPES:
        raise ValueError(f"call shape policy {policy!r} is not one of {list(CALL_SHAPES)}")
    if policy == "free" or category.endswith("relevance"):
        return True, None
    if "parallel" in category:
        return False, None
    if "simple" in category or "multiple" in category:
        return False, 1
    return True, None


def prepare_requests(requests: list[EvalRequest], family: Family, dialect, *, constrained: bool,
                     shape_policy: str = "category") -> list[PreparedRequest]:
    """Render each request's prompt and (when constrained) build its grammar through the dialect, shaped by
    ``call_shape``."""
    prepared = []
    for request in requests:
        try:
            tools = [make_tool(t, source=f"{request.id}.tools[{i}]").function_dict()
                     for i, t in enumerate(request.tools)]
            prompt = family.render_prompt(request.messages, tools, dialect)
            grammar, allow_text = None, True
            if constrained and tools:
                allow_text, max_calls = call_shape(request.category, shape_policy)
                grammar = dialect.grammar(tools, allow_text=allow_text, max_calls=max_calls)
            prepared.append(PreparedRequest(request, tools, prompt, grammar, text_allowed=allow_text))
        except (ToolSchemaError, ValueError) as err:
            prepared.append(PreparedRequest(request, [], "", None, error=f"prepare: {err}"))
        except Exception as err:  # noqa: BLE001 - one request's inputs must not stop the others
            prepared.append(PreparedRequest(request, [], "", None, error=f"prepare: {type(err).__name__}: {err}"))
    return prepared


def confidence_signals(generation: Generation, spans: list, num_calls: int) -> dict[str, float]:
    """Per-request confidence signals from the decoder's token records (:func:`slmtune.route.signals.token_signals`,
    the definition :func:`slmtune.router.signals_from_openai` applies to a server's response)."""
    tokens = [TokenView(t.start, t.end, t.logprob, t.top_logprobs, t.forced) for t in generation.tokens]
    return token_signals(tokens, spans, num_calls, generation.truncated)


def score_generation(prepared: PreparedRequest, generation: Generation | None, dialect,
                     registry: ToolRegistry | None) -> dict[str, Any]:
    """One predictions-file row: raw text, decoded calls, AST verdict, schema validity, execution, signals."""
    request = prepared.request
    row: dict[str, Any] = {"id": request.id, "category": request.category, "suite": request.suite,
                           **conversation_fields(request)}
    if prepared.error or generation is None:
        return failed_row(prepared, "prepare", prepared.error or "prepare: not decoded")
    parsed = dialect.parse(generation.text)
    calls = parsed.calls
    if parsed.error:
        schema_valid = False
        # BFCL's relevance runner scores an output it cannot decode as "no call" (right on irrelevance)
        verdict_valid = request.scoring_category.endswith("irrelevance")
        verdict_error = f"parse: {parsed.error}" + (" (scored as no call)" if verdict_valid else "")
    else:
        schema_error = schema_check(calls, prepared.tools)
        schema_valid = schema_error is None
        if request.possible_answer is None and not request.scoring_category.endswith(("irrelevance", "relevance")):
            verdict_valid, verdict_error = False, "no possible answer for this request"
        else:
            try:
                verdict = ast_check(calls, request.tools, request.possible_answer, request.scoring_category)
                verdict_valid, verdict_error = verdict.valid, verdict.error
            except ValueError as err:
                verdict_valid, verdict_error = False, f"scoring: {err}"
    spans = dialect.spans(generation.text) if calls and not parsed.error else []
    return row | {
        "raw": generation.text, "calls": to_bfcl_calls(calls), "valid": verdict_valid, "error": verdict_error,
        "schema_valid": schema_valid, "executes": _executes(calls, registry), "truncated": generation.truncated,
        "text_cut": generation.text_cut, "closed_early": generation.closed_early, "text_allowed": prepared.text_allowed,
        "latency_s": round(generation.latency_s, 4), "batch_size": generation.batch_size,
        "output_tokens": generation.output_tokens, "forced_tokens": generation.forced_tokens,
        "input_tokens": None, "signals": confidence_signals(generation, spans, len(calls)), "failure": None,
    }


def conversation_fields(request: EvalRequest) -> dict[str, Any]:
    """A multi-turn request's row fields: its ``conversation``, ``turn`` and whether the right answer is a call
    (``expects_call``); none for other requests."""
    if request.conversation is None:
        return {}
    return {"conversation": request.conversation, "turn": request.turn, "expects_call": request.expects_call}


def conversation_success(rows: list[dict]) -> dict[str, Any] | None:
    """Whole-conversation success over the rows of multi-turn turns: a conversation succeeds when every one of its
    assistant turns (each scored with the gold history before it) is right. None when no row is such a turn."""
    turns: dict[str, list[bool]] = defaultdict(list)
    for row in rows:
        if row.get("conversation") is not None:
            turns[row["conversation"]].append(bool(row["valid"]))
    if not turns:
        return None
    succeeded = sum(all(v) for v in turns.values())
    n_turns = sum(len(v) for v in turns.values())
    return {"conversations": len(turns), "succeeded": succeeded, "success_rate": succeeded / len(turns),
            "turns": n_turns, "turn_accuracy": sum(sum(v) for v in turns.values()) / n_turns}


def failed_row(prepared: PreparedRequest, failure: str, error: str, generation: Generation | None = None
               ) -> dict[str, Any]:
    """The predictions row of a request that has no scored answer (``failure`` one of ``FAILURES``): invalid, with
    the reason in ``error``; the raw answer is kept when there is one."""
    request = prepared.request
    return {"id": request.id, "category": request.category, "suite": request.suite, **conversation_fields(request),
            "raw": generation.text if generation else "", "calls": [], "valid": False, "error": error,
            "schema_valid": False, "executes": None, "truncated": bool(generation and generation.truncated),
            "text_cut": False, "closed_early": False, "text_allowed": None,
            "latency_s": round(generation.latency_s, 4) if generation else 0.0,
            "output_tokens": generation.output_tokens if generation else 0,
            "forced_tokens": generation.forced_tokens if generation else 0, "signals": None, "failure": failure}


def _executes(calls: list[dict], registry: ToolRegistry | None) -> bool | None:
    """True/False when every call's tool has an implementation; None when some cannot be executed here."""
    if registry is None or not calls:
        return None
    for call in calls:
        if call["name"] not in registry or registry.get(call["name"]).implementation is None:
            return None
    try:
        for call in calls:
            registry.execute(call)
    except Exception:  # noqa: BLE001 - any failure of the tool is a non-executable call
        return False
    return True


def _score_safely(prepared: PreparedRequest, generation: Generation, dialect,
                  registry: ToolRegistry | None) -> dict[str, Any]:
    try:
        return score_generation(prepared, generation, dialect, registry)
    except Exception as err:  # noqa: BLE001 - one answer the scorer cannot handle must not stop the others
        return failed_row(prepared, "score", f"score: {type(err).__name__}: {err}", generation)


def _decode_batch(decoder: Decoder, requests: list[DecodeRequest]) -> list[Generation | str]:
    """Decode one batch; if the batch raises, each request alone (a generation, or why it failed)."""
    try:
        return list(decoder.generate(requests, batch_size=len(requests)))
    except Exception:  # noqa: BLE001 - find the request(s) that cannot be decoded, keep the others
        out: list[Generation | str] = []
        for request in requests:
            try:
                out.append(decoder.generate([request], batch_size=1)[0])
            except Exception as err:  # noqa: BLE001
                out.append(f"decode: {type(err).__name__}: {err}")
        return out


def evaluate(prepared: list[PreparedRequest], decoder: Decoder, dialect, *, batch_size: int,
             registry: ToolRegistry | None = None, tokenizer=None,
             batch_log: Path | None = None,
             on_batch: Callable[[list[dict]], None] | None = None) -> tuple[list[dict], float]:
    """Decode and score requests from :func:`prepare_requests`; returns (prediction rows, wall seconds).

    Every request gets a row: one that cannot be prepared, compiled, decoded or scored gets a ``failure`` row (see
    :data:`FAILURES`) and the others are unaffected. With ``batch_log`` (a :class:`~slmtune.rundir.BatchLog` path)
    each decoded batch's rows are recorded as it finishes, and batches already recorded there (same request ids) are
    not decoded again; the wall seconds include theirs. ``on_batch`` receives the rows of each finished batch (the
    failed requests' rows first, in one call), for progress.
    """
    failures: dict[int, dict[str, Any]] = {}
    runnable = []
    for p in prepared:
        if p.error is not None:
            failures[id(p)] = failed_row(p, "prepare", p.error)
            continue
        if p.grammar is not None and hasattr(decoder, "compiled"):
            try:
                decoder.compiled(p.grammar)  # cached: decoding reuses it
            except Exception as err:  # noqa: BLE001 - XGrammar refuses this grammar: this request only
                failures[id(p)] = failed_row(p, "compile", f"compile: {type(err).__name__}: {err}")
                continue
        runnable.append(p)
    if on_batch is not None and failures:
        on_batch(list(failures.values()))
    requests = [DecodeRequest(p.prompt, p.grammar) for p in runnable]
    log = BatchLog(batch_log) if batch_log is not None else None
    done = log.done() if log is not None else {}
    rows_by_id: dict[int, dict[str, Any]] = {}
    wall = 0.0
    for number, batch in enumerate(decode_batches(requests, batch_size)):
        keys = [runnable[i].request.id for i in batch]
        entry = done.get(number)
        if entry is not None and entry.get("keys") == keys and len(entry.get("rows", ())) == len(batch):
            rows = entry["rows"]
            wall += float(entry.get("wall_s", 0.0))
        else:
            started = time.perf_counter()
            generations = _decode_batch(decoder, [requests[i] for i in batch])
            seconds = time.perf_counter() - started
            wall += seconds
            rows = [failed_row(runnable[i], "decode", g) if isinstance(g, str)
                    else _score_safely(runnable[i], g, dialect, registry) for i, g in zip(batch, generations)]
            if log is not None:
                log.append({"batch": number, "keys": keys, "wall_s": seconds, "rows": rows})
        for i, row in zip(batch, rows):
            rows_by_id[id(runnable[i])] = row
        if on_batch is not None:
            on_batch(rows)
    rows = [failures.get(id(p)) or rows_by_id[id(p)] for p in prepared]
    if tokenizer is not None:
        for p, row in zip(prepared, rows):
            row["input_tokens"] = len(tokenizer(p.prompt, add_special_tokens=False)["input_ids"]) if p.prompt else 0
    return rows, wall


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarize(rows: list[dict], wall_s: float, *, usd_per_hour: float, usd_per_1m_input: float | None = None,
              usd_per_1m_output: float | None = None, energy_j: float | None = None,
              energy_reason: str | None = None, device: str = "cpu") -> dict[str, Any]:
    """Metrics of one (suite, variant) from its prediction rows."""
    n = len(rows)
    per_category: dict[str, list[bool]] = defaultdict(list)
    for row in rows:
        per_category[row["category"]].append(bool(row["valid"]))
    correct = sum(bool(r["valid"]) for r in rows)
    executable = [r["executes"] for r in rows if r["executes"] is not None]
    latencies = [r["latency_s"] for r in rows if r.get("latency_s")]
    output_tokens = sum(r.get("output_tokens", 0) for r in rows)
    if usd_per_1m_input is not None and usd_per_1m_output is not None:
        cost = (sum(r.get("input_tokens") or 0 for r in rows) * usd_per_1m_input
                + output_tokens * usd_per_1m_output) / 1e6
        cost_basis = "tokens"
    else:
        cost = wall_s / 3600 * usd_per_hour
        cost_basis = f"device time at {usd_per_hour} USD/h"
    category_accuracy = {c: sum(v) / len(v) for c, v in sorted(per_category.items())}
    return {
        "n": n,
        "ast_accuracy": correct / n if n else None,
        "per_category": category_accuracy,
        "unweighted_mean_accuracy": statistics.fmean(category_accuracy.values()) if category_accuracy else None,
        "schema_validity_rate": sum(bool(r["schema_valid"]) for r in rows) / n if n else None,
        "executable_call_rate": sum(executable) / len(executable) if executable else None,
        "truncated": sum(bool(r.get("truncated")) for r in rows),
        "text_cut": sum(bool(r.get("text_cut")) for r in rows),
        "closed_early": sum(bool(r.get("closed_early")) for r in rows),
        "failed": {reason: sum(r.get("failure") == reason for r in rows) for reason in FAILURES},
        "latency_p50_s": percentile(latencies, 0.5),
        "latency_p95_s": percentile(latencies, 0.95),
        "output_tokens_per_s": output_tokens / wall_s if wall_s > 0 else None,
        "wall_s": round(wall_s, 3),
        "device": device,
        "cost_usd": cost,
        "cost_basis": cost_basis,
        "cps_usd": cost / correct if correct else None,
        "energy_j_per_request": energy_j / n if energy_j is not None and n else None,
        "energy_unavailable_reason": energy_reason,
        "multi_turn": conversation_success(rows),
    }


def call_decision(rows: list[dict]) -> dict[str, Any]:
    """How well the model chose between calling a tool and answering in text, over the answers where that was its
    choice (``text_allowed``: unconstrained, or a grammar that allows text; the category-shaped grammar forces the
    calls of simple, multiple and parallel requests, so only (ir)relevance requests count under it).

    Requests whose category ends in ``irrelevance`` need no call, every other at least one; a multi-turn turn says
    which in its row (``expects_call``: a text turn needs no call). ``call_rate`` is the
    share of call-needing requests answered with a call (right or wrong), ``decline_rate`` the share of no-call
    requests answered without one, ``balanced_accuracy`` their mean (None unless both kinds were decided)."""
    decided = [r for r in rows if r.get("text_allowed")]
    needs_call = [r for r in decided if r.get("expects_call", not r["category"].endswith("irrelevance"))]
    needs_no_call = [r for r in decided if not r.get("expects_call", not r["category"].endswith("irrelevance"))]
    call_rate = sum(bool(r["calls"]) for r in needs_call) / len(needs_call) if needs_call else None
    decline_rate = sum(not r["calls"] for r in needs_no_call) / len(needs_no_call) if needs_no_call else None
    return {"call_requests": len(needs_call), "call_rate": call_rate,
            "no_call_requests": len(needs_no_call), "decline_rate": decline_rate,
            "balanced_accuracy": (call_rate + decline_rate) / 2
            if call_rate is not None and decline_rate is not None else None}


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95 % with the default ``z``); None when ``n`` is 0."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: {successes} successes out of {n}")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def call_confusion(rows: list[dict]) -> dict[str, int]:
    """The call / no-call confusion of prediction rows: of the requests that need a call (every category but
    ``*irrelevance``), those answered with the right call(s) (``called_right``), with a wrong one (``called_wrong``)
    and without any (``declined``, text or an unparsable answer); of those that need none, ``no_call_declined``
    (right: the row is ``valid``, which an unparsable answer is on irrelevance, as in BFCL) and ``no_call_called``.
    Rows without a scored answer (``failure``) count as wrong: a call request ``declined``, a no-call request
    ``no_call_called``."""
    out = dict.fromkeys(("called_right", "called_wrong", "declined", "no_call_declined", "no_call_called"), 0)
    for row in rows:
        called = bool(row.get("calls"))
        if row["category"].endswith("irrelevance"):
            out["no_call_declined" if row["valid"] else "no_call_called"] += 1
        elif called:
            out["called_right" if row["valid"] else "called_wrong"] += 1
        else:
            out["declined"] += 1
    return out


class EnergyMeter:
    """Measured energy: NVML's counter on NVIDIA GPUs, RAPL on CPUs whose kernel exposes it; else unavailable."""

    def __init__(self, device: str) -> None:
        self.reason: str | None = None
        self._read = None
        if device.startswith("cuda"):
            try:
                import pynvml

                pynvml.nvmlInit()
                handle = pynvml.nvmlDeviceGetHandleByIndex(int(device.split(":")[1]) if ":" in device else 0)
                self._read = lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0  # mJ -> J
            except Exception as err:  # noqa: BLE001 - any NVML failure means no meter
                self.reason = f"NVML unavailable: {err}"
        else:
            paths = sorted(glob.glob("/sys/class/powercap/intel-rapl:*/energy_uj"))
            paths = [p for p in paths if os.access(p, os.R_OK)]
            if paths:
                self._read = lambda: sum(int(open(p).read()) for p in paths) / 1e6  # noqa: SIM115
            else:
                self.reason = "no readable RAPL counter (/sys/class/powercap) on this CPU; energy is not estimated"

    def __enter__(self) -> EnergyMeter:
        self.joules: float | None = None
        self._start = self._read() if self._read else None
        return self

    def __exit__(self, *exc) -> None:
        if self._read is not None and self._start is not None:
            self.joules = self._read() - self._start
