"""Calibration of the SLM's per-request confidence, operating points, cascade simulation and router.json.

Pipeline (what the ``calibrate`` stage calls)::

    fit = fit_router(rows, correct, ["seq_logprob", "arg_min_logprob", "name_margin"], calibrator="logistic")
    sim = simulate_cascade(fit.oof_p, correct, slm_cost, fallback_acc_by_category, fallback_cost,
                           categories=categories)
    doc = build_router_document(fit, model={...}, cascade=sim, fallback={"name": "gpt-4o", ...})
    write_router_json(doc, run_dir / "calibrate" / "router.json")

Signals are numbers recorded per request during eval (log-probabilities, entropy / margin at the function-name
choice, call count, verifier outcomes as 0/1, agreement among k samples ...); which ones are used is the
caller's choice and is recorded in router.json (``signals``, in calibrator input order).

Calibrators share one interface: ``fit(X, y)``, ``predict_proba(X) -> p`` (1-D), ``to_dict()``; the inverse is
:func:`calibrator_from_dict`. ``to_dict()`` returns ``{"type": ..., "params": {...}}`` and ``predict_proba``
evaluates exactly those parameters, with the same formulas as the pure-Python :mod:`slmtune.router`:

- ``logistic``: ``{"coef": [k], "intercept": c, "mean": [k], "scale": [k]}``,
  ``p = sigmoid(c + sum_i coef[i] * (x[i] - mean[i]) / scale[i])`` (standardised inputs; a constant signal has
  scale 1).
- ``isotonic`` (one signal): ``{"x": [m], "y": [m]}`` breakpoints, ``p = numpy.interp(x, xs, ys)`` (clamped).
- ``temperature`` (one signal): ``{"a": a, "b": b}``, ``p = sigmoid(a * x + b)``; ``a = 1 / temperature``.

Cross-fitting: metrics are computed on out-of-fold probabilities. Operating points: the threshold written to
router.json is the lowest threshold whose precision on the out-of-fold predictions of all data meets the target
(the final calibrator is refit on all data). Its coverage / precision are an honest held-out estimate of that
procedure by nested cross-fitting: for each outer fold, the threshold is chosen on inner out-of-fold predictions
of the other folds only and applied to the outer fold's predictions (from a calibrator fitted on the other folds);
accepted counts are pooled over the outer folds. No label is ever used both to choose a threshold and to report it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from slmtune.router import ROUTER_SCHEMA_VERSION, Router, RouterFileError

__all__ = [
    "CALIBRATORS",
    "ROUTER_SCHEMA_VERSION",
    "IsotonicCalibrator",
    "LogisticCalibrator",
    "RouterFit",
    "TemperatureCalibrator",
    "aurc",
    "auroc",
    "bootstrap_interval",
    "brier_score",
    "build_router_document",
    "calibration_metrics",
    "calibrator_from_dict",
    "choose_threshold",
    "cross_fit",
    "expected_calibration_error",
    "fallback_share_for_gap",
    "fit_router",
    "fold_ids",
    "load_router_schema",
    "make_calibrator",
    "min_requests",
    "plot_cps_vs_threshold",
    "plot_reliability",
    "plot_risk_coverage",
    "read_router_json",
    "risk_coverage_curve",
    "signal_matrix",
    "simulate_cascade",
    "validate_router_document",
    "write_router_json",
]

DEFAULT_TARGETS = (0.90, 0.95, 0.99)


# ====================================================================================== helpers
def _py_sigmoid(z: np.ndarray) -> np.ndarray:
    """Stable sigmoid with the same branch structure as slmtune.router.sigmoid."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _as_pair(p: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if p.shape != y.shape:
        raise ValueError(f"p and y differ in length: {p.shape[0]} vs {y.shape[0]}")
    return p, y


def _as_matrix(X: Any) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"signals must be a 1-D or 2-D array, got shape {X.shape}")
    return X


def _one_column(X: Any, who: str) -> np.ndarray:
    X = _as_matrix(X)
    if X.shape[1] != 1:
        raise ValueError(f"{who} takes exactly one signal, got {X.shape[1]} columns")
    return X[:, 0]


def _smoothed_rate(y: np.ndarray) -> float:
    return float((y.sum() + 0.5) / (len(y) + 1.0))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _jsonable(obj: Any) -> Any:
    """Plain-JSON copy: numpy scalars/arrays to Python, NaN/inf to None, tuples to lists."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


# ====================================================================================== metrics
def expected_calibration_error(p: Any, y: Any, n_bins: int = 15) -> float:
    """ECE with ``n_bins`` equal-width bins on [0, 1]: sum_b (n_b / n) * |mean(y_b) - mean(p_b)|.

    A prediction falls in bin ``floor(p * n_bins)``; p = 1 goes to the last bin.
    """
    p, y = _as_pair(p, y)
    n = len(p)
    if n == 0:
        return float("nan")
    b = np.clip((np.clip(p, 0.0, 1.0) * n_bins).astype(int), 0, n_bins - 1)
    sum_p = np.bincount(b, weights=p, minlength=n_bins)
    sum_y = np.bincount(b, weights=y, minlength=n_bins)
    return float(np.abs(sum_y - sum_p).sum() / n)


def brier_score(p: Any, y: Any) -> float:
    """Mean squared difference between probability and 0/1 outcome."""
    p, y = _as_pair(p, y)
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
    p, y = _as_pair(p, y)
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
    p, y = _as_pair(p, y)
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
    p, y = _as_pair(p, y)
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
    p, y = _as_pair(p, y)
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
    p, y = _as_pair(p, y)
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


# ====================================================================================== calibrators
def _standardising_scale(X: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Per-column standard deviation, 1 for a column that is constant up to rounding.

    ``np.std`` of seven copies of 0.1 is 1.4e-17, not 0: dividing by it would turn rounding noise into a signal.
    """
    scale = X.std(axis=0)
    constant = scale <= 1e-12 * np.maximum(1.0, np.abs(mean))
    return np.where(constant, 1.0, scale)


class LogisticCalibrator:
    """Platt / logistic regression over standardised signals, L2-regularised (scikit-learn)."""

    type = "logistic"

    def __init__(self, C: float = 1.0, max_iter: int = 1000):
        self.C = C
        self.max_iter = max_iter
        self.params: dict | None = None

    def fit(self, X: Any, y: Any) -> LogisticCalibrator:
        from sklearn.linear_model import LogisticRegression

        X = _as_matrix(X)
        y = np.asarray(y, dtype=float).ravel()
        mean = X.mean(axis=0)
        scale = _standardising_scale(X, mean)
        if len(np.unique(y)) < 2:
            coef, intercept = np.zeros(X.shape[1]), _logit(_smoothed_rate(y))
        else:
            lr = LogisticRegression(C=self.C, solver="newton-cholesky", max_iter=self.max_iter)
            lr.fit((X - mean) / scale, y.astype(int))
            coef, intercept = lr.coef_[0], float(lr.intercept_[0])
        self.params = {
            "coef": [float(v) for v in coef],
            "intercept": float(intercept),
            "mean": [float(v) for v in mean],
            "scale": [float(v) for v in scale],
        }
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.params is None:
            raise RuntimeError("LogisticCalibrator is not fitted")
        X = _as_matrix(X)
        pr = self.params
        if X.shape[1] != len(pr["coef"]):
            raise ValueError(f"expected {len(pr['coef'])} signals, got {X.shape[1]}")
        z = np.full(X.shape[0], pr["intercept"])
        for j, (c, m, s) in enumerate(zip(pr["coef"], pr["mean"], pr["scale"])):
            z = z + c * ((X[:, j] - m) / s)  # same operation order as slmtune.router
        return _py_sigmoid(z)

    def to_dict(self) -> dict:
        if self.params is None:
            raise RuntimeError("LogisticCalibrator is not fitted")
        return {"type": self.type, "params": dict(self.params)}


class IsotonicCalibrator:
    """Isotonic regression on one signal (direction chosen automatically), stored as interpolation breakpoints."""

    type = "isotonic"

    def __init__(self, increasing: bool | str = "auto"):
        self.increasing = increasing
        self.params: dict | None = None

    def fit(self, X: Any, y: Any) -> IsotonicCalibrator:
        from sklearn.isotonic import IsotonicRegression

        x = _one_column(X, "IsotonicCalibrator")
        y = np.asarray(y, dtype=float).ravel()
        if len(np.unique(y)) < 2:
            r = _smoothed_rate(y)
            self.params = {"x": [float(x.min())], "y": [r]}
            return self
        ir = IsotonicRegression(increasing=self.increasing, y_min=0.0, y_max=1.0, out_of_bounds="clip")
        with warnings.catch_warnings():  # 'auto' direction on a weak signal: the fit is still the isotonic optimum
            warnings.filterwarnings("ignore", message="Confidence interval of the Spearman", category=UserWarning)
            ir.fit(x, y)
        self.params = {
            "x": [float(v) for v in ir.X_thresholds_],
            "y": [float(min(1.0, max(0.0, v))) for v in ir.y_thresholds_],
        }
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.params is None:
            raise RuntimeError("IsotonicCalibrator is not fitted")
        x = _one_column(X, "IsotonicCalibrator")
        return np.interp(x, np.asarray(self.params["x"]), np.asarray(self.params["y"]))

    def to_dict(self) -> dict:
        if self.params is None:
            raise RuntimeError("IsotonicCalibrator is not fitted")
        return {"type": self.type, "params": {"x": list(self.params["x"]), "y": list(self.params["y"])}}


class TemperatureCalibrator:
    """Temperature scaling with bias on one logit-like signal: ``p = sigmoid(a * x + b)``, ``a = 1/T``.

    (a, b) minimise the binary negative log-likelihood by damped Newton on the standardised signal, started from
    the intercept-only model (so signals far from 0, such as sequence log-probabilities, fit as well as logits);
    a tiny L2 term on the standardised slope keeps the fit finite when the data are separable.
    """

    type = "temperature"

    def __init__(self, l2: float = 1e-6, max_iter: int = 100):
        self.l2 = l2
        self.max_iter = max_iter
        self.params: dict | None = None

    def fit(self, X: Any, y: Any) -> TemperatureCalibrator:
        x = _one_column(X, "TemperatureCalibrator")
        y = np.asarray(y, dtype=float).ravel()
        n = len(y)
        if len(np.unique(y)) < 2:
            self.params = {"a": 0.0, "b": _logit(_smoothed_rate(y))}
            return self
        lam = self.l2 * n
        mean = float(x.mean())
        scale = float(_standardising_scale(x[:, None], np.array([mean]))[0])
        u = (x - mean) / scale

        def loss(w: np.ndarray) -> float:
            z = w[0] * u + w[1]
            # NLL = sum log(1 + exp(z)) - y z, computed stably
            return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * lam * w[0] ** 2)

        w = np.array([0.0, _logit(float(y.mean()))])  # the intercept-only optimum: a well-conditioned start
        f = loss(w)
        for _ in range(self.max_iter):
            p = _py_sigmoid(w[0] * u + w[1])
            r = p - y
            g = np.array([np.dot(r, u) + lam * w[0], r.sum()])
            s = p * (1.0 - p)
            H = np.array([[np.dot(s, u * u) + lam, np.dot(s, u)], [np.dot(s, u), s.sum()]])
            H += 1e-12 * np.eye(2)
            step = np.linalg.solve(H, g)
            t = 1.0
            while t > 1e-10:
                w_new = w - t * step
                f_new = loss(w_new)
                if f_new <= f:
                    break
                t *= 0.5
            else:
                break  # no step lowers the loss: the optimum to machine precision
            converged = abs(f - f_new) <= 1e-12 * max(1.0, abs(f))
            w, f = w_new, f_new
            if converged:
                break
        slope = w[0] / scale
        self.params = {"a": float(slope), "b": float(w[1] - slope * mean)}
        return self

    @property
    def temperature(self) -> float:
        if self.params is None:
            raise RuntimeError("TemperatureCalibrator is not fitted")
        a = self.params["a"]
        return math.inf if a == 0 else 1.0 / a

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.params is None:
            raise RuntimeError("TemperatureCalibrator is not fitted")
        x = _one_column(X, "TemperatureCalibrator")
        return _py_sigmoid(self.params["a"] * x + self.params["b"])

    def to_dict(self) -> dict:
        if self.params is None:
            raise RuntimeError("TemperatureCalibrator is not fitted")
        return {"type": self.type, "params": dict(self.params)}


CALIBRATORS: dict[str, type] = {
    "logistic": LogisticCalibrator,
    "isotonic": IsotonicCalibrator,
    "temperature": TemperatureCalibrator,
}


def make_calibrator(name: str, **options: Any):
    """A fresh, unfitted calibrator by type name ('logistic', 'isotonic', 'temperature')."""
    try:
        cls = CALIBRATORS[name]
    except KeyError:
        raise ValueError(f"unknown calibrator {name!r}; choose one of {sorted(CALIBRATORS)}") from None
    return cls(**options)


def calibrator_from_dict(d: Mapping[str, Any]):
    """Rebuild a fitted calibrator from its ``to_dict()`` form (the ``calibrator`` entry of router.json)."""
    if not isinstance(d, Mapping) or "type" not in d or "params" not in d:
        raise ValueError("calibrator dict needs 'type' and 'params'")
    cal = make_calibrator(d["type"])
    params = dict(d["params"])
    required = {"logistic": ("coef", "intercept", "mean", "scale"), "isotonic": ("x", "y"), "temperature": ("a", "b")}
    missing = [k for k in required[d["type"]] if k not in params]
    if missing:
        raise ValueError(f"{d['type']} calibrator params missing {missing}")
    cal.params = params
    return cal


# ====================================================================================== cross-fitting
def fold_ids(y: Any, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fold index per request: stratified by outcome when each class has >= n_folds members, else plain K-fold."""
    from sklearn.model_selection import KFold, StratifiedKFold

    y = np.asarray(y).ravel()
    n = len(y)
    if n_folds < 2:
        raise ValueError("n_folds must be >= 2")
    if n < n_folds:
        raise ValueError(f"need at least n_folds={n_folds} requests to cross-fit, got {n}")
    counts = np.unique(y, return_counts=True)[1]
    if len(counts) == 2 and counts.min() >= n_folds:
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(np.zeros(n), y)
    else:
        splitter = KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(np.zeros(n))
    folds = np.empty(n, dtype=int)
    for k, (_, test) in enumerate(splitter):
        folds[test] = k
    return folds


def cross_fit(
    calibrator_factory: Callable[[], Any],
    X: Any,
    y: Any,
    n_folds: int = 5,
    seed: int = 0,
    folds: Any = None,
) -> np.ndarray:
    """Out-of-fold probabilities: each request is scored by a calibrator fitted on the other folds only."""
    X = _as_matrix(X)
    y = np.asarray(y, dtype=float).ravel()
    if len(X) != len(y):
        raise ValueError(f"signals and labels differ in length: {len(X)} vs {len(y)}")
    folds = fold_ids(y, n_folds, seed) if folds is None else np.asarray(folds)
    oof = np.full(len(y), np.nan)
    for k in np.unique(folds):
        test = folds == k
        cal = calibrator_factory().fit(X[~test], y[~test])
        oof[test] = cal.predict_proba(X[test])
    return oof


def choose_threshold(p: Any, y: Any, target_precision: float) -> float | None:
    """Lowest threshold t (a value of p) whose precision mean(y[p >= t]) meets the target; None if none does."""
    p, y = _as_pair(p, y)
    _, risk, thr = risk_coverage_curve(p, y)
    ok = (1.0 - risk) >= target_precision - 1e-12
    if not ok.any():
        return None
    return float(thr[np.flatnonzero(ok)[-1]])


def _factory(calibrator: str | Callable[[], Any], options: Mapping[str, Any] | None) -> Callable[[], Any]:
    if isinstance(calibrator, str):
        make_calibrator(calibrator, **(options or {}))  # fail early on a bad name / option
        return lambda: make_calibrator(calibrator, **(options or {}))
    if callable(calibrator):
        return calibrator
    raise TypeError("calibrator must be a type name or a zero-argument factory")


def signal_matrix(signals_table: Any, signal_names: Sequence[str]) -> np.ndarray:
    """(n, k) float matrix of the named signals, from rows (mappings), a mapping name -> column, or an array.

    Booleans become 0/1. Missing, null or non-finite values raise ``ValueError`` naming the signal and row.
    """
    names = list(signal_names)
    if not names:
        raise ValueError("signal_names is empty")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate signal names: {names}")
    if isinstance(signals_table, np.ndarray):
        X = _as_matrix(signals_table).astype(float)
        if X.shape[1] != len(names):
            raise ValueError(f"signals array has {X.shape[1]} columns but {len(names)} signal names")
    elif isinstance(signals_table, Mapping):
        cols = []
        for name in names:
            if name not in signals_table:
                raise ValueError(f"signal {name!r} missing from signals table (has {sorted(signals_table)})")
            cols.append([_signal_value(v, name, i) for i, v in enumerate(signals_table[name])])
        X = np.array(cols, dtype=float).T
    else:
        rows = list(signals_table)
        X = np.empty((len(rows), len(names)))
        for i, row in enumerate(rows):
            for j, name in enumerate(names):
                if name not in row:
                    raise ValueError(f"signal {name!r} missing in row {i}")
                X[i, j] = _signal_value(row[name], name, i)
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"signal {names[j]!r} is not finite in row {i}: {X[i, j]}")
    return X


def _signal_value(v: Any, name: str, i: int) -> float:
    if v is None:
        raise ValueError(f"signal {name!r} is null in row {i}; drop it from signal_names or impute it upstream")
    return float(v)


@dataclass
class RouterFit:
    """Everything fit_router learned; ``build_router_document`` turns it into router.json."""

    signal_names: list[str]
    calibrator: Any  # final calibrator, refit on all data
    oof_p: np.ndarray  # cross-fitted out-of-fold probabilities (what the metrics are computed on)
    y: np.ndarray
    folds: np.ndarray
    operating_points: list[dict]
    metrics: dict
    fitted_on: dict
    fold_thresholds: dict = field(default_factory=dict)  # target -> threshold chosen for each outer fold


def min_requests(n_folds: int) -> int:
    """Fewest requests ``fit_router`` can cross-fit with ``n_folds``: the nested threshold selection needs
    ``n_folds`` requests in the training part of the largest-held-out outer fold."""
    n = n_folds
    while n - math.ceil(n / n_folds) < n_folds:
        n += 1
    return n


def fit_router(
    signals_table: Any,
    correct: Any,
    signal_names: Sequence[str],
    calibrator: str | Callable[[], Any] = "logistic",
    targets: Sequence[float] = DEFAULT_TARGETS,
    *,
    n_folds: int = 5,
    seed: int = 0,
    n_boot: int = 1000,
    suites: Sequence[str] = (),
    calibrator_options: Mapping[str, Any] | None = None,
) -> RouterFit:
    """Cross-fit a calibrator, compute metrics and operating points, refit on all data.

    ``calibrator`` is a type name or a zero-argument factory returning an object with fit/predict_proba/to_dict.
    See the module docstring for how thresholds are selected and reported without leakage.
    """
    names = list(signal_names)
    X = signal_matrix(signals_table, names)
    y = np.asarray(correct, dtype=float).ravel()
    if len(y) != len(X):
        raise ValueError(f"{len(X)} signal rows but {len(y)} correctness labels")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("correct must be 0/1 (or booleans)")
    factory = _factory(calibrator, calibrator_options)
    needed = min_requests(n_folds)
    if len(y) < needed:
        raise ValueError(f"fit_router: {len(y)} requests; cross-fitting with n_folds={n_folds} needs at least "
                         f"{needed} (every outer fold's training part is cross-fitted again with {n_folds} folds)")

    folds = fold_ids(y, n_folds, seed)
    oof = cross_fit(factory, X, y, folds=folds)

    # Nested estimate of the selection procedure: per outer fold, choose on inner OOF of the other folds only.
    accepted = {t: 0 for t in targets}
    accepted_correct = {t: 0.0 for t in targets}
    fold_thresholds: dict = {t: [] for t in targets}
    for k in range(n_folds):
        held = folds == k
        tr = ~held
        inner_folds = fold_ids(y[tr], n_folds, seed + 1000 + k)
        inner_oof = cross_fit(factory, X[tr], y[tr], folds=inner_folds)
        for t in targets:
            thr = choose_threshold(inner_oof, y[tr], t)
            fold_thresholds[t].append(thr)
            if thr is None:
                continue
            acc = oof[held] >= thr  # oof[held] comes from a calibrator fitted on the other folds
            accepted[t] += int(acc.sum())
            accepted_correct[t] += float(y[held][acc].sum())

    n = len(y)
    operating_points = []
    for t in targets:
        thr = choose_threshold(oof, y, t)
        n_unreached = sum(v is None for v in fold_thresholds[t])
        reason = None
        if thr is None:
            _, risk, _ = risk_coverage_curve(oof, y)
            best = float((1.0 - risk).max()) if len(risk) else float("nan")
            reason = (
                f"precision {t} is not reached at any threshold on the out-of-fold predictions "
                f"(best precision {best:.4f}); always fall back"
            )
            coverage, precision = 0.0, None
        else:
            coverage = accepted[t] / n
            precision = accepted_correct[t] / accepted[t] if accepted[t] else None
            if n_unreached:
                reason = f"target unreachable in {n_unreached}/{n_folds} held-out folds (counted as no coverage)"
        operating_points.append(
            {"target_precision": float(t), "threshold": thr, "coverage": float(coverage),
             "precision": precision, "reason": reason}
        )

    final = factory().fit(X, y)
    metrics = calibration_metrics(oof, y, n_boot=n_boot, seed=seed)
    cal_type = final.to_dict()["type"]
    fitted_on = {
        "suites": list(suites),
        "n": int(n),
        "n_positive": int(y.sum()),
        "cross_fit_folds": int(n_folds),
        "seed": int(seed),
        "calibrator": cal_type,
        "calibrator_options": dict(calibrator_options or {}),
        "n_boot": int(n_boot),
        "threshold_selection": "lowest threshold with out-of-fold precision >= target; coverage/precision "
        "from nested cross-fitting (held-out folds)",
    }
    return RouterFit(names, final, oof, y, folds, operating_points, metrics, fitted_on, fold_thresholds)


# ====================================================================================== cascade
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


# ====================================================================================== router.json
def load_router_schema() -> dict:
    """The JSON Schema of router.json shipped as package data (slmtune/schemas/router.schema.json)."""
    text = resources.files("slmtune.schemas").joinpath("router.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def _field_path(parts: Any) -> str:
    s = ""
    for x in parts:
        s += f"[{x}]" if isinstance(x, int) else ("." if s else "") + str(x)
    return s or "<top level>"


def validate_router_document(doc: Mapping[str, Any], source: str = "<router dict>") -> None:
    """Validate against the JSON Schema and the pure-Python router; ``RouterFileError`` listing every problem."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_router_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  field '{_field_path(e.absolute_path)}': {e.message}" for e in errors]
        raise RouterFileError(f"{source}: router document does not match router.schema.json:\n" + "\n".join(lines))
    Router.from_dict(doc, source=source)  # the serving-side checks (e.g. one coefficient per signal)


def build_router_document(
    fit: RouterFit,
    *,
    model: Mapping[str, Any],
    cascade: Mapping[str, Any] | None = None,
    fallback: Mapping[str, Any] | None = None,
) -> dict:
    """Assemble the router.json dict (schema_version 1) from a RouterFit and a cascade simulation.

    ``model``: ``{"name", "source", "adapter_sha256" (or None), ...}``. ``cascade``: simulate_cascade's result
    (or None when no fallback is configured); ``fallback``: its description, at least ``{"name": ...}`` plus e.g.
    price and where its accuracy came from.
    """
    model = dict(model)
    model.setdefault("adapter_sha256", None)
    cascade_doc = None
    if cascade is not None:
        if fallback is None or "name" not in fallback:
            raise ValueError("a cascade needs its fallback description, at least {'name': ...}")
        keys = ("rows", "slm_only", "fallback_only", "fallback_share_for_50pct_gap", "fallback_share_for_80pct_gap")
        cascade_doc = {"fallback": dict(fallback), **{k: cascade[k] for k in keys}}
    doc = {
        "schema_version": ROUTER_SCHEMA_VERSION,
        "model": model,
        "signals": list(fit.signal_names),
        "calibrator": fit.calibrator.to_dict(),
        "operating_points": fit.operating_points,
        "metrics": fit.metrics,
        "cascade": cascade_doc,
        "fitted_on": fit.fitted_on,
    }
    return _jsonable(doc)


def write_router_json(doc: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Validate and write router.json atomically (temp file in the same directory + os.replace)."""
    path = Path(path)
    doc = _jsonable(doc)
    validate_router_document(doc, source=str(path))
    text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_router_json(path: str | os.PathLike) -> dict:
    """Read router.json and validate it against the JSON Schema (``RouterFileError`` naming file and field)."""
    source = str(path)
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RouterFileError(f"{source}: cannot read router file: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise RouterFileError(f"{source}: not valid JSON: {exc}") from exc
    if isinstance(doc, dict) and "schema_version" in doc and doc["schema_version"] != ROUTER_SCHEMA_VERSION:
        Router.from_dict(doc, source=source)  # raises the explicit version message
    validate_router_document(doc, source=source)
    return doc


# ====================================================================================== plots
def _figure(figsize=(5.5, 4.5), nrows=1, height_ratios=None):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    if nrows == 1:
        return fig, fig.add_subplot(1, 1, 1)
    axes = fig.subplots(nrows, 1, sharex=True, gridspec_kw={"height_ratios": height_ratios})
    return fig, axes


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)
    return path


def plot_reliability(p: Any, y: Any, path: str | os.PathLike, n_bins: int = 15) -> Path:
    """Reliability diagram (accuracy vs mean confidence per bin) with the per-bin counts underneath (PNG)."""
    p, y = _as_pair(p, y)
    b = np.clip((np.clip(p, 0, 1) * n_bins).astype(int), 0, n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(b, weights=p, minlength=n_bins) / count
        acc = np.bincount(b, weights=y, minlength=n_bins) / count
    centers = (np.arange(n_bins) + 0.5) / n_bins
    fig, (ax, axc) = _figure((5.5, 6.0), nrows=2, height_ratios=[3, 1])
    nz = count > 0
    ax.bar(centers[nz], acc[nz], width=1.0 / n_bins, edgecolor="black", alpha=0.7, label="accuracy")
    ax.plot(conf[nz], acc[nz], "o", color="tab:red", ms=3, label="(mean confidence, accuracy)")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction correct")
    ax.set_title(f"Reliability (ECE={expected_calibration_error(p, y, n_bins):.3f}, n={len(p)})")
    ax.legend(loc="upper left", fontsize=8)
    axc.bar(centers, count, width=1.0 / n_bins, edgecolor="black", color="tab:gray")
    axc.set_xlim(0, 1)
    axc.set_xlabel("predicted P(correct)")
    axc.set_ylabel("count")
    return _save(fig, path)


def plot_risk_coverage(p: Any, y: Any, path: str | os.PathLike) -> Path:
    """Risk-coverage curve (error rate among accepted vs share accepted) with the AURC in the title (PNG)."""
    p, y = _as_pair(p, y)
    cov, risk, _ = risk_coverage_curve(p, y)
    fig, ax = _figure()
    ax.plot(np.r_[0.0, cov], np.r_[risk[0] if len(risk) else 0.0, risk], drawstyle="steps-post", label="router")
    if len(y):
        ax.axhline(1.0 - y.mean(), ls="--", color="gray", label="accept all")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("coverage (share kept on the SLM)")
    ax.set_ylabel("risk (error rate among kept)")
    ax.set_title(f"Risk-coverage (AURC={aurc(p, y):.3f})")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_cps_vs_threshold(rows: Any, path: str | os.PathLike) -> Path:
    """CPS (and accuracy, right axis) vs routing threshold; accepts simulate_cascade's rows or its whole result."""
    end_points = {}
    if isinstance(rows, Mapping):
        end_points = {k: rows.get(k) for k in ("slm_only", "fallback_only") if rows.get(k)}
        rows = rows["rows"]
    t = np.array([r["threshold"] for r in rows], dtype=float)
    cps = np.array([np.nan if r["cps"] is None else r["cps"] for r in rows], dtype=float)
    acc = np.array([r["accuracy"] for r in rows], dtype=float)
    fig, ax = _figure((6.0, 4.5))
    ax.plot(t, cps, color="tab:blue", label="cascade CPS")
    styles = {"slm_only": ("tab:green", "SLM only"), "fallback_only": ("tab:red", "fallback only")}
    for key, ep in end_points.items():
        if ep.get("cps") is not None:
            ax.axhline(ep["cps"], ls="--", color=styles[key][0], label=f"{styles[key][1]} CPS")
    ax.set_xlabel("threshold (requests with P(correct) below it go to the fallback)")
    ax.set_ylabel("cost per successful task")
    ax2 = ax.twinx()
    ax2.plot(t, acc, color="tab:orange", alpha=0.8, label="cascade accuracy")
    ax2.set_ylabel("accuracy")
    ax2.set_ylim(0, 1)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="best")
    ax.set_title("Cascade: CPS and accuracy vs threshold")
    return _save(fig, path)
