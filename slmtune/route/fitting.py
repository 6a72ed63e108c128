"""Cross-fitted router fitting: folds, out-of-fold probabilities, thresholds chosen on held-out folds."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slmtune.route.calibrators import make_calibrator
from slmtune.route.metrics import calibration_metrics, risk_coverage_curve
from slmtune.route.numeric import as_matrix, as_pair

DEFAULT_TARGETS = (0.90, 0.95, 0.99)


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
    X = as_matrix(X)
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
    p, y = as_pair(p, y)
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
        X = as_matrix(signals_table).astype(float)
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
