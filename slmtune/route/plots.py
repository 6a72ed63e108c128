"""Reliability, risk-coverage and cost-vs-threshold plots (matplotlib's Agg backend, no display)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from slmtune.route.metrics import aurc, expected_calibration_error, risk_coverage_curve
from slmtune.route.numeric import as_pair


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
    p, y = as_pair(p, y)
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
    p, y = as_pair(p, y)
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
