"""Small numeric helpers shared by the calibration modules (array coercion, sigmoid, plain-JSON copies)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def stable_sigmoid(z: np.ndarray) -> np.ndarray:
    """Stable sigmoid with the same branch structure as slmtune.router.sigmoid."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def as_pair(p: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if p.shape != y.shape:
        raise ValueError(f"p and y differ in length: {p.shape[0]} vs {y.shape[0]}")
    return p, y


def as_matrix(X: Any) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"signals must be a 1-D or 2-D array, got shape {X.shape}")
    return X


def one_column(X: Any, who: str) -> np.ndarray:
    X = as_matrix(X)
    if X.shape[1] != 1:
        raise ValueError(f"{who} takes exactly one signal, got {X.shape[1]} columns")
    return X[:, 0]


def smoothed_rate(y: np.ndarray) -> float:
    return float((y.sum() + 0.5) / (len(y) + 1.0))


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def jsonable(obj: Any) -> Any:
    """Plain-JSON copy: numpy scalars/arrays to Python, NaN/inf to None, tuples to lists."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj
