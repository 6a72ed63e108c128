"""Calibrators of P(correct): logistic, isotonic, temperature. Each evaluates exactly the formulas of
:mod:`slmtune.router`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from slmtune.route.numeric import as_matrix, logit, one_column, smoothed_rate, stable_sigmoid


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

        X = as_matrix(X)
        y = np.asarray(y, dtype=float).ravel()
        mean = X.mean(axis=0)
        scale = _standardising_scale(X, mean)
        if len(np.unique(y)) < 2:
            coef, intercept = np.zeros(X.shape[1]), logit(smoothed_rate(y))
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
        X = as_matrix(X)
        pr = self.params
        if X.shape[1] != len(pr["coef"]):
            raise ValueError(f"expected {len(pr['coef'])} signals, got {X.shape[1]}")
        z = np.full(X.shape[0], pr["intercept"])
        for j, (c, m, s) in enumerate(zip(pr["coef"], pr["mean"], pr["scale"])):
            z = z + c * ((X[:, j] - m) / s)  # same operation order as slmtune.router
        return stable_sigmoid(z)

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

        x = one_column(X, "IsotonicCalibrator")
        y = np.asarray(y, dtype=float).ravel()
        if len(np.unique(y)) < 2:
            r = smoothed_rate(y)
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
        x = one_column(X, "IsotonicCalibrator")
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
        x = one_column(X, "TemperatureCalibrator")
        y = np.asarray(y, dtype=float).ravel()
        n = len(y)
        if len(np.unique(y)) < 2:
            self.params = {"a": 0.0, "b": logit(smoothed_rate(y))}
            return self
        lam = self.l2 * n
        mean = float(x.mean())
        scale = float(_standardising_scale(x[:, None], np.array([mean]))[0])
        u = (x - mean) / scale

        def loss(w: np.ndarray) -> float:
            z = w[0] * u + w[1]
            # NLL = sum log(1 + exp(z)) - y z, computed stably
            return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * lam * w[0] ** 2)

        w = np.array([0.0, logit(float(y.mean()))])  # the intercept-only optimum: a well-conditioned start
        f = loss(w)
        for _ in range(self.max_iter):
            p = stable_sigmoid(w[0] * u + w[1])
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
        x = one_column(X, "TemperatureCalibrator")
        return stable_sigmoid(self.params["a"] * x + self.params["b"])

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
