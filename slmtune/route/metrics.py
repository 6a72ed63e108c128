"""Calibration metrics: ECE, Brier score, AUROC, risk-coverage and AURC, bootstrap intervals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from slmtune.route.numeric import as_pair


def expected_calibration_error(p: Any, y: Any, n_bins: int = 15) -> float:
    """ECE with ``n_bins`` equal-width bins on [0, 1]: sum_b (n_b / n) * |mean(y_b) - mean(p_b)|.

    A prediction falls in bin ``floor(p * n_bins)``; p = 1 goes to the last bin.
    """
    p, y = as_pair(p, y)
    n = len(p)
    if n == 0:
        return float("nan")
    b = np.clip((np.clip(p, 0.0, 1.0) * n_bins).astype(int), 0, n_bins - 1)
    sum_p = np.bincount(b, weights=p, minlength=n_bins)
    sum_y = np.bincount(b, weights=y, minlength=n_bins)
    return float(np.abs(sum_y - sum_p).sum() / n)


def brier_score(p: Any, y: Any) -> float:
    """Mean squared difference between probability and 0/1 outcome."""
    p, y = as_pair(p, y)
    return float(np.mean((p - y) ** 2)) if len(p) else float("nan")


def _average_ranks(a: np.ndarray) -> np.ndarray:
    order = np.argsort(a, kind="mergesort")
    s = a[order]
    n = len(a)
    # boundaries of tie groups in sorted order
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], n]
    avg = (starts + ends + 1) / 2.0  # 1-based average rank of each group
    ranks = np.empty(n)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def auroc(p: Any, y: Any) -> float:
    """Area under the ROC curve of confidence vs correctness (Mann-Whitney, ties count 1/2); nan with one class."""
    p, y = as_pair(p, y)
    pos = y > 0.5
    n1 = int(pos.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = _average_ranks(p)
    return float((r[pos].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def risk_coverage_curve(p: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Selective risk vs coverage when accepting requests with ``p >= threshold``.

    Returns ``(coverage, risk, thresholds)``, one point per distinct probability, in order of increasing
    coverage; risk = error rate among the accepted.
    """
    p, y = as_pair(p, y)
    order = np.argsort(-p, kind="mergesort")
    ps, ys = p[order], y[order]
    n = len(p)
    if n == 0:
        return np.array([]), np.array([]), np.array([])
    ends = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True])  # last index of each tie group
    k = ends + 1
    cum_err = np.cumsum(1.0 - ys)[ends]
    return k / n, cum_err / k, ps[ends]


def aurc(p: Any, y: Any) -> float:
    """Area under the risk-coverage curve: mean over k = 1..n of the risk of the k most confident requests.

    Ties are resolved in expectation (errors inside a tie group accrue linearly), so the value does not depend
    on the order of equal probabilities.
    """
    p, y = as_pair(p, y)
    n = len(p)
    if n == 0:
        return float("nan")
    order = np.argsort(-p, kind="mergesort")
    ps, err = p[order], 1.0 - y[order]
    ends = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True])
    starts = np.r_[0, ends[:-1] + 1]
    cum = np.r_[0.0, np.cumsum(err)]
    e_start = cum[starts]
    e_end = cum[ends + 1]
    sizes = ends - starts + 1
    idx_group = np.repeat(np.arange(len(starts)), sizes)
    k = np.arange(1, n + 1)
    within = k - starts[idx_group]
    cum_err = e_start[idx_group] + within * (e_end - e_start)[idx_group] / sizes[idx_group]
    return float(np.mean(cum_err / k))


def bootstrap_interval(
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    p: Any,
    y: Any,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap ``(low, high)`` (95 % by default) of ``metric_fn(p, y)`` over resampled requests.

    Resamples where the metric is undefined (nan, e.g. AUROC with one class) are dropped; (nan, nan) if all are.
    """
    p, y = as_pair(p, y)
    n = len(p)
    if n == 0 or n_boot <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    vals = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        vals[i] = metric_fn(p[idx], y[idx])
    vals = vals[np.isfinite(vals)]
    if len(vals) == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(vals, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


METRIC_FUNCTIONS: dict[str, Callable[[Any, Any], float]] = {
    "auroc": auroc,
    "ece": expected_calibration_error,
    "brier": brier_score,
    "aurc": aurc,
}


class _ResampleMetrics:
    """The four metrics of a bootstrap resample in O(n), without re-sorting.

    A resample is represented by its multiplicity ``w[i]`` of each original request; requests are sorted once
    (descending p) and grouped by equal p, and every metric is a weighted sum over those groups. Gives exactly
    the values of auroc / aurc / expected_calibration_error / brier_score on the resampled arrays.
    """

    def __init__(self, p: np.ndarray, y: np.ndarray, n_bins: int = 15):
        self.order = np.argsort(-p, kind="mergesort")
        self.p, self.y = p[self.order], y[self.order]
        self.starts = np.flatnonzero(np.r_[True, self.p[1:] != self.p[:-1]])
        self.bins = np.clip((np.clip(self.p, 0.0, 1.0) * n_bins).astype(int), 0, n_bins - 1)
        self.n_bins = n_bins
        self.sq = (self.p - self.y) ** 2
        self.harmonic = np.r_[0.0, np.cumsum(1.0 / np.arange(1, len(p) + 1))]

    def __call__(self, w_sorted: np.ndarray) -> dict[str, float]:
        w = w_sorted
        n = float(w.sum())
        wy = w * self.y
        brier = float(np.dot(w, self.sq) / n)
        ece = float(
            np.abs(
                np.bincount(self.bins, weights=wy, minlength=self.n_bins)
                - np.bincount(self.bins, weights=w * self.p, minlength=self.n_bins)
            ).sum()
            / n
        )
        m = np.add.reduceat(w, self.starts)  # weight per tie group, groups in descending p
        pos = np.add.reduceat(wy, self.starts)
        neg = m - pos
        n_pos, n_neg = float(pos.sum()), float(neg.sum())
        if n_pos > 0 and n_neg > 0:
            neg_below = n_neg - np.cumsum(neg)
            auc = float((np.dot(pos, neg_below) + 0.5 * np.dot(pos, neg)) / (n_pos * n_neg))
        else:
            auc = float("nan")
        keep = m > 0
        m, err = m[keep], neg[keep]
        k_before = np.r_[0.0, np.cumsum(m)[:-1]]
        e_before = np.r_[0.0, np.cumsum(err)[:-1]]
        ki = np.rint(k_before).astype(int)
        dh = self.harmonic[ki + np.rint(m).astype(int)] - self.harmonic[ki]
        aurc_v = float(np.sum(e_before * dh + (err / m) * (m - k_before * dh)) / n)
        return {"auroc": auc, "ece": ece, "brier": brier, "aurc": aurc_v}


def calibration_metrics(
    p: Any, y: Any, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict[str, dict[str, float]]:
    """``{auroc, ece, brier, aurc}`` each ``{value, ci_low, ci_high}`` (percentile bootstrap, 95 % by default).

    The intervals are those of ``bootstrap_interval(fn, p, y, n_boot, seed)`` for each metric (same resamples),
    computed in one pass. Note that ECE is biased upwards on small resamples, so its interval may lie above the
    point value.
    """
    p, y = as_pair(p, y)
    out = {name: {"value": float(fn(p, y)), "ci_low": float("nan"), "ci_high": float("nan")}
           for name, fn in METRIC_FUNCTIONS.items()}
    n = len(p)
    if n == 0 or n_boot <= 0:
        return out
    core = _ResampleMetrics(p, y)
    rng = np.random.default_rng(seed)
    vals = {name: np.empty(n_boot) for name in out}
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        w = np.bincount(idx, minlength=n).astype(float)[core.order]
        for name, v in core(w).items():
            vals[name][i] = v
    for name, v in vals.items():
        v = v[np.isfinite(v)]
        if len(v):
            lo, hi = np.quantile(v, [alpha / 2.0, 1.0 - alpha / 2.0])
            out[name]["ci_low"], out[name]["ci_high"] = float(lo), float(hi)
    return out
