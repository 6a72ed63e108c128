"""Cascade simulation: SLM-default, fallback-on-low-confidence cost and accuracy over the threshold sweep."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _per_request(v: Any, n: int, what: str) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    if a.ndim == 0:
        return np.full(n, float(a))
    a = a.ravel()
    if len(a) != n:
        raise ValueError(f"{what} has {len(a)} entries, expected {n}")
    return a


def _end_point(share: float, correct: np.ndarray, cost_total: float) -> dict:
    n_correct = float(correct.sum())
    return {
        "fallback_share": float(share),
        "accuracy": float(correct.mean()),
        "cost_total": float(cost_total),
        "cps": float(cost_total / n_correct) if n_correct > 0 else None,
    }


def simulate_cascade(
    p_correct: Any,
    slm_correct: Any,
    slm_cost: Any,
    fallback_correct: Any,
    fallback_cost: Any,
    thresholds: Any = None,
    *,
    categories: Sequence[str] | None = None,
) -> dict:
    """Sweep the routing threshold of an SLM-first cascade.

    - ``p_correct``: the router's probability per request (use out-of-fold probabilities).
    - ``slm_correct``: 0/1 per request. ``slm_cost`` / ``fallback_cost``: per request (array) or a scalar each.
    - ``fallback_correct``: 0/1 (or expected correctness) per request from the fallback's recorded predictions on
      the same suite, or a mapping ``{category: accuracy}`` together with ``categories`` (one per request).
    - ``thresholds``: default ``0, 0.01, ..., 1``.

    A request stays on the SLM when ``p_correct >= threshold``; otherwise it is also sent to the fallback, whose
    answer is used. Returns ``{"rows": [{threshold, fallback_share, accuracy, cost_total, cps}], "slm_only",
    "fallback_only", "fallback_share_for_50pct_gap", "fallback_share_for_80pct_gap"}``; ``cps`` = total cost
    of all attempts / number of correct tasks (expected count with per-category accuracy; None when zero).
    ``fallback_only`` is the fallback alone (no SLM cost).
    """
    p = np.asarray(p_correct, dtype=float).ravel()
    n = len(p)
    if n == 0:
        raise ValueError("simulate_cascade needs at least one request")
    slm_ok = _per_request(slm_correct, n, "slm_correct")
    c_slm = _per_request(slm_cost, n, "slm_cost")
    c_fb = _per_request(fallback_cost, n, "fallback_cost")
    if isinstance(fallback_correct, Mapping):
        if categories is None:
            raise ValueError("fallback_correct given per category: pass categories (one per request)")
        cats = list(categories)
        if len(cats) != n:
            raise ValueError(f"categories has {len(cats)} entries, expected {n}")
        missing = sorted({c for c in cats if c not in fallback_correct})
        if missing:
            raise ValueError(f"no fallback accuracy for categories {missing}")
        fb_ok = np.array([float(fallback_correct[c]) for c in cats])
    else:
        fb_ok = _per_request(fallback_correct, n, "fallback_correct")
    if thresholds is None:
        thresholds = np.round(np.linspace(0.0, 1.0, 101), 10)
    rows = []
    base_cost = float(c_slm.sum())
    for t in np.asarray(thresholds, dtype=float).ravel():
        route = p < t
        ok = np.where(route, fb_ok, slm_ok)
        row = _end_point(route.mean(), ok, base_cost + float(c_fb[route].sum()))
        rows.append({"threshold": float(t), **row})
    slm_only = _end_point(0.0, slm_ok, base_cost)
    fallback_only = _end_point(1.0, fb_ok, float(c_fb.sum()))
    kw = {"slm_accuracy": slm_only["accuracy"], "fallback_accuracy": fallback_only["accuracy"]}
    return {
        "rows": rows,
        "slm_only": slm_only,
        "fallback_only": fallback_only,
        "fallback_share_for_50pct_gap": fallback_share_for_gap(rows, 0.5, **kw),
        "fallback_share_for_80pct_gap": fallback_share_for_gap(rows, 0.8, **kw),
    }


def fallback_share_for_gap(
    rows: Sequence[Mapping[str, Any]],
    fraction: float,
    *,
    slm_accuracy: float | None = None,
    fallback_accuracy: float | None = None,
) -> float | None:
    """RouteLLM-style: smallest fallback share whose accuracy closes ``fraction`` of the SLM -> fallback gap.

    End-point accuracies default to the rows with the smallest / largest fallback share. Returns 0.0 when the
    fallback is not more accurate than the SLM, None when no row closes the gap.
    """
    if not rows:
        return None
    if slm_accuracy is None:
        slm_accuracy = min(rows, key=lambda r: r["fallback_share"])["accuracy"]
    if fallback_accuracy is None:
        fallback_accuracy = max(rows, key=lambda r: r["fallback_share"])["accuracy"]
    gap = fallback_accuracy - slm_accuracy
    if gap <= 0:
        return 0.0
    need = slm_accuracy + fraction * gap - 1e-12
    shares = [r["fallback_share"] for r in rows if r["accuracy"] >= need]
    return float(min(shares)) if shares else None
