"""Running BFCL multi-turn entries through the agent loop, and their metrics.

Per entry: fresh simulators (:class:`BfclToolExecutor`), then for each user turn the turn's messages are appended and
:func:`slmtune.agent.loop.run_turn` lets the policy call, read the results and call again until it answers in text
or has taken ``MAX_STEPS_PER_TURN + 1`` steps that all called; the latter is BFCL's force-quit, which ends the
conversation and fails the entry. A miss_func turn first offers its functions and says so in BFCL's words. The
recorded calls are then checked by :func:`slmtune.eval.multi_turn.check_trajectory` (BFCL's checker, re-executing
them on fresh simulators).
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slmtune.agent.loop import Policy, ToolCallError, run_turn
from slmtune.eval.evaluation import FAILURES, percentile
from slmtune.eval.multi_turn import (
    ADDITIONAL_FUNCTIONS_PROMPT,
    ERROR_TYPES,
    MAX_STEPS_PER_TURN,
    Call,
    MultiTurnEntry,
    SimulatorCallError,
    Simulators,
    check_trajectory,
)
from slmtune.rundir import BatchLog

__all__ = ["BfclToolExecutor", "evaluate_multi_turn", "run_entry", "summarize_multi_turn"]

log = logging.getLogger(__name__)


class BfclToolExecutor:
    """The agent loop's executor for one entry: offers the entry's function docs and runs a call only on its
    simulators, strictly (:meth:`Simulators.call`); a refusal or a simulator's error is a :class:`ToolCallError` whose
    text is BFCL's. :meth:`offer` adds a miss_func turn's functions."""

    def __init__(self, entry: MultiTurnEntry) -> None:
        self.simulators = Simulators(entry)
        self._docs = list(entry.tools)

    def offer(self, docs: list[dict]) -> None:
        self._docs.extend(docs)

    def tools(self) -> list[dict]:
        return [{"name": d["name"], "description": d.get("description", ""),
                 "parameters": d.get("parameters", {"type": "dict", "properties": {}})} for d in self._docs]

    def execute(self, name: str, arguments: dict) -> str:
        if not isinstance(arguments, dict):
            raise ToolCallError("invalid_call", f"Error during execution: {name}() arguments must be an object")
        try:
            return self.simulators.call(Call(name, (), dict(arguments)), {d["name"] for d in self._docs})
        except SimulatorCallError as err:
            raise ToolCallError(err.kind, str(err)) from None


def run_entry(entry: MultiTurnEntry, policy: Policy, *, max_steps: int = MAX_STEPS_PER_TURN + 1) -> dict[str, Any]:
    """One entry's conversation with ``policy`` and BFCL's verdict on it: a predictions row."""
    executor = BfclToolExecutor(entry)
    messages: list[dict] = []
    trajectory: list[list[list[dict]]] = []
    turns: list[dict[str, Any]] = []
    started = time.perf_counter()
    for t, user in enumerate(entry.turns):
        if t in entry.added_tools:
            executor.offer(entry.added_tools[t])
            user = [{"role": "user", "content": ADDITIONAL_FUNCTIONS_PROMPT}]
        messages.extend(dict(m) for m in user)
        trace = run_turn(messages, executor, policy, max_steps=max_steps)
        trajectory.append(trace.calls())
        results = [r for record in trace.steps for r in record.results]
        turns.append({"steps": len(trace.steps), "stopped": trace.stopped, "answer": trace.answer,
                      "calls": trace.calls(), "refused": sum(not r.ok for r in results),
                      "tokens_in": trace.tokens_in, "tokens_out": trace.tokens_out,
                      "latency_s": round(trace.latency_s, 4)})
        log.info("%s turn %d/%d: %d step(s), %d call(s) (%d refused), %s, %.1f s", entry.id, t + 1, len(entry.turns),
                 len(trace.steps), sum(len(s) for s in trace.calls()), turns[-1]["refused"], trace.stopped,
                 trace.latency_s)
        if trace.stopped != "answer":  # BFCL's force-quit: the conversation ends here
            break
    wall = time.perf_counter() - started
    verdict = check_trajectory(entry, trajectory)
    return {"id": entry.id, "category": entry.category, "suite": entry.suite, "valid": verdict.valid,
            "error": verdict.error, "error_type": verdict.error_type, "failed_turn": verdict.turn,
            "turn_valid": verdict.turns, "num_turns": len(entry.turns),
            "steps": sum(t["steps"] for t in turns), "calls": sum(len(s) for t in turns for s in t["calls"]),
            "refused_calls": sum(t["refused"] for t in turns),
            "tokens_in": sum(t["tokens_in"] for t in turns), "output_tokens": sum(t["tokens_out"] for t in turns),
            "latency_s": round(sum(t["latency_s"] for t in turns), 4), "wall_s": round(wall, 4),
            "turns": turns, "failure": None}


def failed_entry_row(entry: MultiTurnEntry, failure: str, error: str) -> dict[str, Any]:
    """The row of an entry whose conversation could not be run (``failure`` one of ``FAILURES``): invalid."""
    return {"id": entry.id, "category": entry.category, "suite": entry.suite, "valid": False, "error": error,
            "error_type": None, "failed_turn": None, "turn_valid": [False if gt else None for gt in entry.ground_truth],
            "num_turns": len(entry.turns), "steps": 0, "calls": 0, "refused_calls": 0, "tokens_in": 0,
            "output_tokens": 0, "latency_s": 0.0, "wall_s": 0.0, "turns": [], "failure": failure}


def evaluate_multi_turn(entries: list[MultiTurnEntry], policy: Policy, *, batch_log: Path | None = None,
                        on_entry: Callable[[list[dict]], None] | None = None) -> tuple[list[dict], float]:
    """Every entry's row (:func:`run_entry`) and the wall seconds. An entry whose conversation raises gets a
    ``decode`` failure row and the others go on. With ``batch_log`` each finished entry is recorded and entries
    already recorded there are not run again (their wall seconds count)."""
    log = BatchLog(batch_log) if batch_log is not None else None
    done = log.done() if log is not None else {}
    rows, wall = [], 0.0
    for number, entry in enumerate(entries):
        recorded = done.get(number)
        if recorded is not None and recorded.get("keys") == [entry.id] and len(recorded.get("rows", ())) == 1:
            row = recorded["rows"][0]
            wall += float(recorded.get("wall_s", 0.0))
        else:
            started = time.perf_counter()
            try:
                row = run_entry(entry, policy)
            except Exception as err:  # noqa: BLE001 - one entry that cannot be run must not stop the others
                row = failed_entry_row(entry, "decode", f"decode: {type(err).__name__}: {err}")
            seconds = time.perf_counter() - started
            wall += seconds
            if log is not None:
                log.append({"batch": number, "keys": [entry.id], "wall_s": seconds, "rows": [row]})
        rows.append(row)
        if on_entry is not None:
            on_entry([row])
    return rows, wall


def summarize_multi_turn(rows: list[dict], wall_s: float, *, usd_per_hour: float,
                         usd_per_1m_input: float | None = None, usd_per_1m_output: float | None = None,
                         device: str = "cpu") -> dict[str, Any]:
    """Metrics of one (multi-turn suite, variant): entry accuracy (BFCL's), per-turn accuracy over the turns with
    ground-truth calls, BFCL's failure reasons, steps and calls per entry, refused calls, tokens, latency, CPS."""
    n = len(rows)
    correct = sum(bool(r["valid"]) for r in rows)
    checked = [v for r in rows for v in r["turn_valid"] if v is not None]
    reasons = Counter(r["error_type"] for r in rows if not r["valid"] and r["error_type"])
    tokens_in = sum(r.get("tokens_in") or 0 for r in rows)
    tokens_out = sum(r.get("output_tokens") or 0 for r in rows)
    if usd_per_1m_input is not None and usd_per_1m_output is not None:
        cost, basis = (tokens_in * usd_per_1m_input + tokens_out * usd_per_1m_output) / 1e6, "tokens"
    else:
        cost, basis = wall_s / 3600 * usd_per_hour, f"device time at {usd_per_hour} USD/h"
    per_category: dict[str, list[bool]] = {}
    for row in rows:
        per_category.setdefault(row["category"], []).append(bool(row["valid"]))
    latencies = [r["wall_s"] for r in rows if r.get("wall_s")]
    return {
        "n": n,
        "accuracy": correct / n if n else None,
        "per_category": {c: sum(v) / len(v) for c, v in sorted(per_category.items())},
        "turn_accuracy": sum(checked) / len(checked) if checked else None,
        "turns_checked": len(checked),
        "failure_reasons": {t: reasons[t] for t in ERROR_TYPES if reasons[t]},
        "failed": {reason: sum(r.get("failure") == reason for r in rows) for reason in FAILURES},
        "steps_per_entry": statistics.fmean(r["steps"] for r in rows) if rows else None,
        "calls_per_entry": statistics.fmean(r["calls"] for r in rows) if rows else None,
        "refused_calls": sum(r["refused_calls"] for r in rows),
        "tokens_in_per_entry": tokens_in / n if n else None,
        "output_tokens_per_entry": tokens_out / n if n else None,
        "entry_wall_p50_s": percentile(latencies, 0.5),
        "entry_wall_p95_s": percentile(latencies, 0.95),
        "wall_s": round(wall_s, 3),
        "device": device,
        "cost_usd": cost,
        "cost_basis": basis,
        "cps_usd": cost / correct if correct else None,
    }
