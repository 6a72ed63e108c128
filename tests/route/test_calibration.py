"""slmtune.route: metrics, calibrators, cross-fitting without leakage, cascade, router.json round trip."""

from __future__ import annotations

import json
import math
import os
from typing import ClassVar

import numpy as np
import pytest

from slmtune.route import calibrators, cascade, fitting, metrics, plots, router_file
from slmtune.router import ROUTER_SCHEMA_VERSION, Router, RouterFileError


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def _synthetic(n, seed=0, slope=1.5, bias=-0.5):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, n)
    y = (rng.random(n) < _sig(slope * x + bias)).astype(int)
    return x, y


# ============================================================================================ metrics
def test_ece_hand_computed():
    # bins: 0.2 -> bin 3 (acc 0.5, conf 0.2), 0.8 -> bin 12 (acc 1, conf 0.8): 0.5 * 0.3 + 0.5 * 0.2
    assert metrics.expected_calibration_error([0.2, 0.2, 0.8, 0.8], [0, 1, 1, 1]) == pytest.approx(0.25)
    assert metrics.expected_calibration_error([1.0, 0.0], [1, 0]) == 0.0  # p = 1 goes to the last bin


def test_ece_perfectly_calibrated_is_near_zero():
    rng = np.random.default_rng(0)
    p = rng.random(50_000)
    y = rng.random(50_000) < p
    assert metrics.expected_calibration_error(p, y) < 0.01
    half_right = np.r_[np.ones(500), np.zeros(500)]
    assert metrics.expected_calibration_error(np.full(1000, 0.9), half_right) == pytest.approx(0.4)


def test_brier_hand_computed():
    assert metrics.brier_score([1.0, 0.0, 0.5], [1, 1, 0]) == pytest.approx((0 + 1 + 0.25) / 3)


def test_auroc_known_values():
    assert metrics.auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert metrics.auroc([0.5, 0.5], [0, 1]) == pytest.approx(0.5)  # ties count 1/2
    assert metrics.auroc([0.1, 0.9], [0, 1]) == 1.0
    assert math.isnan(metrics.auroc([0.1, 0.9], [1, 1]))  # single class
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    p = np.round(rng.random(500), 2)
    y = rng.random(500) < p
    assert metrics.auroc(p, y) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_risk_coverage_and_aurc_hand_computed():
    cov, risk, thr = metrics.risk_coverage_curve([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])
    np.testing.assert_allclose(cov, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(risk, [0.0, 0.5, 1 / 3, 0.5])
    np.testing.assert_allclose(thr, [0.9, 0.8, 0.7, 0.6])
    assert metrics.aurc([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx((0 + 0.5 + 1 / 3 + 0.5) / 4)
    # ties: one point per distinct p; AURC takes errors inside a tie group in expectation
    cov, risk, _ = metrics.risk_coverage_curve([0.9, 0.9, 0.1], [1, 0, 1])
    np.testing.assert_allclose(cov, [2 / 3, 1.0])
    np.testing.assert_allclose(risk, [0.5, 1 / 3])
    assert metrics.aurc([0.9, 0.9, 0.1], [1, 0, 1]) == pytest.approx((0.5 / 1 + 1 / 2 + 1 / 3) / 3)
    assert metrics.aurc([0.9, 0.8], [1, 1]) == 0.0


def test_bootstrap_interval():
    rng = np.random.default_rng(0)
    p = rng.random(2000)
    y = rng.random(2000) < p
    lo, hi = metrics.bootstrap_interval(metrics.brier_score, p, y, n_boot=300, seed=1)
    assert lo < metrics.brier_score(p, y) < hi
    assert (lo, hi) == metrics.bootstrap_interval(metrics.brier_score, p, y, n_boot=300, seed=1)  # deterministic
    lo, hi = metrics.bootstrap_interval(metrics.auroc, [0.2, 0.3], [1, 1], n_boot=50)
    assert math.isnan(lo) and math.isnan(hi)


def test_calibration_metrics_fast_bootstrap_equals_generic_one():
    """calibration_metrics resamples by multiplicities; it must equal bootstrap_interval on explicit resamples."""
    rng = np.random.default_rng(1)
    p = np.round(rng.random(400), 1)  # many ties
    y = (rng.random(400) < p).astype(float)
    m = metrics.calibration_metrics(p, y, n_boot=200, seed=7)
    for name, fn in metrics.METRIC_FUNCTIONS.items():
        assert m[name]["value"] == pytest.approx(fn(p, y))
        lo, hi = metrics.bootstrap_interval(fn, p, y, n_boot=200, seed=7)
        assert m[name]["ci_low"] == pytest.approx(lo, abs=1e-12)
        assert m[name]["ci_high"] == pytest.approx(hi, abs=1e-12)


# ============================================================================================ calibrators
def test_logistic_recovers_known_relationship():
    x, y = _synthetic(20_000)
    cal = calibrators.LogisticCalibrator(C=100.0).fit(x[:, None], y)
    grid = np.linspace(-3, 3, 61)
    assert np.max(np.abs(cal.predict_proba(grid[:, None]) - _sig(1.5 * grid - 0.5))) < 0.03


def test_logistic_uses_several_signals():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(20_000, 3)) * [1.0, 5.0, 1.0] + [0.0, -10.0, 0.0]
    z = 1.0 * X[:, 0] - 0.2 * (X[:, 1] + 10.0) + 0.0 * X[:, 2]
    y = rng.random(20_000) < _sig(z)
    cal = calibrators.LogisticCalibrator().fit(X, y)
    coef = np.array(cal.params["coef"]) / np.array(cal.params["scale"])  # back to raw units
    np.testing.assert_allclose(coef, [1.0, -0.2, 0.0], atol=0.06)


def test_isotonic_recovers_monotone_relationship_either_direction():
    x, y = _synthetic(20_000)
    grid = np.linspace(-2.5, 2.5, 51)
    truth = _sig(1.5 * grid - 0.5)
    cal = calibrators.IsotonicCalibrator().fit(x, y)
    assert np.mean(np.abs(cal.predict_proba(grid) - truth)) < 0.03
    assert np.all(np.diff(cal.params["x"]) > 0)
    dec = calibrators.IsotonicCalibrator().fit(-x, y)  # entropy-like signal: higher = worse
    assert np.mean(np.abs(dec.predict_proba(-grid) - truth)) < 0.03


def test_temperature_recovers_scale_and_bias():
    x, y = _synthetic(20_000, slope=0.5, bias=0.3)  # an over-confident logit: T = 2
    cal = calibrators.TemperatureCalibrator().fit(x, y)
    assert cal.params["a"] == pytest.approx(0.5, abs=0.05)
    assert cal.params["b"] == pytest.approx(0.3, abs=0.05)
    assert cal.temperature == pytest.approx(2.0, rel=0.1)
    # the fit is the NLL minimum: agrees with an unregularised logistic regression on the raw signal
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e6, max_iter=1000).fit(x[:, None], y)
    assert cal.params["a"] == pytest.approx(lr.coef_[0, 0], abs=1e-3)
    assert cal.params["b"] == pytest.approx(lr.intercept_[0], abs=1e-3)


def test_temperature_fits_signals_far_from_zero():
    # sequence log-probabilities of long answers: every sigmoid(x) rounds to 0, so a Newton start at a=1, b=0 is stuck
    from sklearn.linear_model import LogisticRegression

    x, y = _synthetic(2000, slope=0.8, bias=0.0, seed=5)
    for shift in (-90.0, 60.0):
        cal = calibrators.TemperatureCalibrator(l2=0.0).fit(x + shift, y)
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(x[:, None], y)  # same data, centred
        assert cal.params["a"] == pytest.approx(lr.coef_[0, 0], abs=1e-3)
        assert cal.params["b"] == pytest.approx(lr.intercept_[0] - lr.coef_[0, 0] * shift, abs=0.05)


def test_logistic_ignores_a_signal_constant_up_to_rounding():
    rng = np.random.default_rng(6)
    informative = rng.normal(size=40)
    y = rng.random(40) < _sig(1.5 * informative)
    X = np.c_[informative, np.full(40, 0.1)]  # np.std gives 1.4e-17 here, not 0
    cal = calibrators.LogisticCalibrator().fit(X, y)
    assert cal.params["scale"][1] == 1.0
    p = cal.predict_proba(np.array([[0.0, 0.1], [0.0, 0.6], [0.0, 5.0]]))
    assert np.allclose(p, p[0], atol=1e-9)


@pytest.mark.parametrize("name", ["logistic", "isotonic", "temperature"])
def test_single_class_training_data_gives_a_constant(name):
    cal = calibrators.make_calibrator(name).fit(np.arange(10.0), np.ones(10))
    p = cal.predict_proba(np.array([-5.0, 0.0, 50.0]))
    assert np.allclose(p, p[0]) and 0.9 < p[0] < 1.0


@pytest.mark.parametrize("name", ["logistic", "isotonic", "temperature"])
def test_calibrator_dict_round_trip(name):
    x, y = _synthetic(2000, seed=4)
    cal = calibrators.make_calibrator(name).fit(x, y)
    d = cal.to_dict()
    assert d["type"] == name
    json.dumps(d, allow_nan=False)
    again = calibrators.calibrator_from_dict(json.loads(json.dumps(d)))
    grid = np.linspace(-5, 5, 101)
    np.testing.assert_array_equal(again.predict_proba(grid), cal.predict_proba(grid))


def test_one_signal_calibrators_reject_several():
    with pytest.raises(ValueError, match="exactly one signal"):
        calibrators.IsotonicCalibrator().fit(np.zeros((10, 2)), np.r_[np.zeros(5), np.ones(5)])
    with pytest.raises(ValueError, match="unknown calibrator 'svm'"):
        calibrators.make_calibrator("svm")


def test_signal_matrix_forms_and_errors():
    rows = [{"a": 1.0, "b": True}, {"a": 2.0, "b": False}]
    expected = np.array([[1.0, 1.0], [2.0, 0.0]])
    np.testing.assert_array_equal(fitting.signal_matrix(rows, ["a", "b"]), expected)
    np.testing.assert_array_equal(fitting.signal_matrix({"a": [1, 2], "b": [1, 0]}, ["a", "b"]), expected)
    np.testing.assert_array_equal(fitting.signal_matrix(expected, ["a", "b"]), expected)
    with pytest.raises(ValueError, match="signal 'b' is null in row 1"):
        fitting.signal_matrix([{"a": 1, "b": 1}, {"a": 1, "b": None}], ["a", "b"])
    with pytest.raises(ValueError, match="signal 'c' missing in row 0"):
        fitting.signal_matrix(rows, ["a", "c"])
    with pytest.raises(ValueError, match="signal 'a' is not finite in row 1"):
        fitting.signal_matrix({"a": [1.0, float("nan")]}, ["a"])


# ============================================================================================ cross-fitting
class _Spy:
    """Signal = row id. Records what it was fitted on and refuses to score a row it was fitted on."""

    log: ClassVar[list] = []

    def fit(self, X, y):
        self.seen = set(np.asarray(X)[:, 0].astype(int).tolist())
        self.rate = float(np.mean(y))
        return self

    def predict_proba(self, X):
        ids = set(np.asarray(X)[:, 0].astype(int).tolist())
        assert not ids & self.seen, "scored a row the calibrator was fitted on"
        _Spy.log.append((frozenset(self.seen), frozenset(ids)))
        return np.full(len(ids), self.rate)

    def to_dict(self):
        return {"type": "spy", "params": {}}


def test_cross_fit_never_scores_training_rows():
    _Spy.log = []
    n = 103
    y = np.r_[np.ones(60), np.zeros(43)]
    oof = fitting.cross_fit(_Spy, np.arange(n, dtype=float)[:, None], y, n_folds=5, seed=3)
    assert not np.isnan(oof).any()
    scored = sorted(i for _, ids in _Spy.log for i in ids)
    assert scored == list(range(n))  # every row scored exactly once, always out of fold
    # the same holds for every fit inside fit_router (outer, nested and final)
    _Spy.log = []
    fitting.fit_router({"id": np.arange(n, dtype=float)}, y, ["id"], calibrator=_Spy, n_boot=10)
    assert len(_Spy.log) == 5 + 5 * 5


def test_fit_router_needs_enough_requests_for_the_nested_folds():
    assert [fitting.min_requests(k) for k in (2, 3, 5)] == [4, 5, 7]  # n - ceil(n / k) >= k
    y = np.r_[np.ones(4), np.zeros(3)]
    fit = fitting.fit_router({"s": np.arange(7.0)}, y, ["s"], n_boot=10)  # 5 folds, 7 requests: the least that works
    assert not np.isnan(fit.oof_p).any()
    with pytest.raises(ValueError, match=r"6 requests; cross-fitting with n_folds=5 needs at least 7"):
        fitting.fit_router({"s": np.arange(6.0)}, y[:6], ["s"], n_boot=10)


class _Memoriser:
    """Remembers each training row's label (signal = row id); unseen rows get 0.5. In-sample it is perfect."""

    def fit(self, X, y):
        self.table = dict(zip(np.asarray(X)[:, 0].tolist(), np.asarray(y, dtype=float).tolist()))
        return self

    def predict_proba(self, X):
        return np.array([self.table.get(v, 0.5) for v in np.asarray(X)[:, 0].tolist()])

    def to_dict(self):
        return {"type": "memoriser", "params": {}}


def test_operating_points_do_not_leak_selection_data():
    """Pure-noise labels + a memorising calibrator: any in-sample selection or reporting would show precision 1."""
    rng = np.random.default_rng(0)
    n = 1000
    y = (rng.random(n) < 0.5).astype(int)
    X = {"id": rng.permutation(n).astype(float)}
    leaky = _Memoriser().fit(X["id"][:, None], y).predict_proba(X["id"][:, None])
    assert fitting.choose_threshold(leaky, y, 0.9) == 1.0  # what leakage would report: precision 1 at coverage ~0.5
    fit = fitting.fit_router(X, y, ["id"], calibrator=_Memoriser, n_boot=20)
    assert np.all(fit.oof_p == 0.5)
    assert fit.metrics["auroc"]["value"] == pytest.approx(0.5)
    for op in fit.operating_points:
        assert op["threshold"] is None and op["coverage"] == 0.0 and op["precision"] is None
        assert "not reached" in op["reason"]
    # an overfitting isotonic on a noise signal: held-out precision stays near the base rate, never the target
    fit = fitting.fit_router({"noise": rng.random(n)}, y, ["noise"], calibrator="isotonic", n_boot=20)
    for op in fit.operating_points:
        assert op["coverage"] < 0.05 or op["precision"] < 0.75


def test_held_out_precision_close_to_target_on_large_data():
    rng = np.random.default_rng(5)
    n = 20_000
    X = rng.normal(size=(n, 2))
    z = 2.0 * X[:, 0] - X[:, 1] + 0.8
    y = (rng.random(n) < _sig(z)).astype(int)
    fit = fitting.fit_router({"a": X[:, 0], "b": X[:, 1]}, y, ["a", "b"], n_boot=50, suites=["synthetic"])
    # fresh data from the same distribution, scored by the final calibrator at the router.json threshold
    Xf = rng.normal(size=(200_000, 2))
    yf = rng.random(200_000) < _sig(2.0 * Xf[:, 0] - Xf[:, 1] + 0.8)
    pf = fit.calibrator.predict_proba(Xf)
    for op, tol in zip(fit.operating_points, (0.015, 0.015, 0.02)):
        t = op["target_precision"]
        assert op["threshold"] is not None and op["reason"] is None
        assert op["precision"] == pytest.approx(t, abs=tol)
        acc = pf >= op["threshold"]
        assert yf[acc].mean() == pytest.approx(t, abs=tol)
        assert op["coverage"] == pytest.approx(acc.mean(), abs=0.03)
    covs = [op["coverage"] for op in fit.operating_points]
    assert covs[0] > covs[1] > covs[2] > 0
    assert fit.fitted_on["n"] == n and fit.fitted_on["n_positive"] == int(y.sum())
    assert fit.metrics["ece"]["value"] < 0.02 and fit.metrics["auroc"]["value"] > 0.8


def test_choose_threshold_is_lowest_meeting_target():
    p = [0.9, 0.8, 0.7, 0.6, 0.5]
    y = [1, 1, 0, 1, 0]
    # precision at >= 0.9: 1, >= 0.8: 1, >= 0.7: 2/3, >= 0.6: 3/4, >= 0.5: 3/5
    assert fitting.choose_threshold(p, y, 0.75) == 0.6
    assert fitting.choose_threshold(p, y, 0.99) == 0.8
    assert fitting.choose_threshold(p, y, 0.5) == 0.5
    assert fitting.choose_threshold([0.4, 0.3], [0, 0], 0.9) is None


# ============================================================================================ cascade
def test_cascade_hand_computed_and_end_points():
    p = np.array([0.9, 0.8, 0.3, 0.1])
    slm = np.array([1, 1, 0, 0])
    fb = np.array([1, 1, 1, 0])
    sim = cascade.simulate_cascade(p, slm, 1.0, fb, 10.0, thresholds=[0.0, 0.5, 0.95])
    r0, r5, r95 = sim["rows"]
    assert r0 == {"threshold": 0.0, "fallback_share": 0.0, "accuracy": 0.5, "cost_total": 4.0, "cps": 2.0}
    assert r5 == {"threshold": 0.5, "fallback_share": 0.5, "accuracy": 0.75, "cost_total": 24.0, "cps": 8.0}
    assert r95 == {"threshold": 0.95, "fallback_share": 1.0, "accuracy": 0.75, "cost_total": 44.0,
                   "cps": pytest.approx(44 / 3)}
    assert sim["slm_only"] == {k: r0[k] for k in ("fallback_share", "accuracy", "cost_total", "cps")}
    assert sim["fallback_only"] == {"fallback_share": 1.0, "accuracy": 0.75, "cost_total": 40.0,
                                    "cps": pytest.approx(40 / 3)}
    assert sim["fallback_share_for_50pct_gap"] == 0.5
    assert sim["fallback_share_for_80pct_gap"] == 0.5


def test_cascade_sweep_end_points_equal_slm_only_and_fallback_only():
    rng = np.random.default_rng(0)
    n = 500
    p = rng.random(n)
    slm = (rng.random(n) < p).astype(int)
    cats = rng.choice(["simple", "parallel"], n)
    acc = {"simple": 0.95, "parallel": 0.85}
    sim = cascade.simulate_cascade(p, slm, rng.random(n) * 0.01, acc, 0.05, categories=cats)
    first, last = sim["rows"][0], sim["rows"][-1]
    assert first["threshold"] == 0.0 and last["threshold"] == 1.0 and len(sim["rows"]) == 101
    for k in ("fallback_share", "accuracy", "cost_total", "cps"):
        assert first[k] == pytest.approx(sim["slm_only"][k])
    assert last["fallback_share"] == 1.0  # p < 1 everywhere: all routed
    assert last["accuracy"] == pytest.approx(sim["fallback_only"]["accuracy"])
    expected_fb = np.mean([acc[c] for c in cats])
    assert sim["fallback_only"]["accuracy"] == pytest.approx(expected_fb)
    # the cascade pays the SLM on every request; fallback-only does not
    assert last["cost_total"] == pytest.approx(sim["fallback_only"]["cost_total"] + sim["slm_only"]["cost_total"])
    shares = [r["fallback_share"] for r in sim["rows"]]
    assert shares == sorted(shares)
    s50, s80 = sim["fallback_share_for_50pct_gap"], sim["fallback_share_for_80pct_gap"]
    assert 0 < s50 <= s80 <= 1


def test_cascade_errors_and_degenerate_cases():
    sim = cascade.simulate_cascade([0.5, 0.6], [0, 0], 1.0, [0, 0], 2.0, thresholds=[0.0])
    assert sim["rows"][0]["cps"] is None and sim["slm_only"]["cps"] is None
    assert sim["fallback_share_for_50pct_gap"] == 0.0  # fallback not better: nothing needs routing
    with pytest.raises(ValueError, match="pass categories"):
        cascade.simulate_cascade([0.5], [1], 1.0, {"simple": 0.9}, 1.0)
    with pytest.raises(ValueError, match=r"no fallback accuracy for categories \['multiple'\]"):
        cascade.simulate_cascade([0.5], [1], 1.0, {"simple": 0.9}, 1.0, categories=["multiple"])
    with pytest.raises(ValueError, match="slm_correct has 1 entries, expected 2"):
        cascade.simulate_cascade([0.5, 0.4], [1], 1.0, 0.9, 1.0)


def test_fallback_share_for_gap():
    rows = [
        {"fallback_share": 0.0, "accuracy": 0.60},
        {"fallback_share": 0.2, "accuracy": 0.75},
        {"fallback_share": 0.5, "accuracy": 0.85},
        {"fallback_share": 1.0, "accuracy": 0.90},
    ]
    assert cascade.fallback_share_for_gap(rows, 0.5) == 0.2  # needs 0.75
    assert cascade.fallback_share_for_gap(rows, 0.8) == 0.5  # needs 0.84
    assert cascade.fallback_share_for_gap(rows, 0.5, fallback_accuracy=2.0) is None  # unreachable


# ============================================================================================ router.json
def _fallback():
    return {"name": "big-llm", "usd_per_request": 0.01, "accuracy_source": "per_category"}


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(11)
    n = 3000
    rows = []
    for _ in range(n):
        seq = rng.normal(-2.0, 1.5)
        rows.append(
            {
                "seq_logprob": seq,
                "min_value_logprob": seq * 1.5 + rng.normal(0, 0.5),
                "name_margin": rng.random(),
                "schema_valid": bool(rng.random() < 0.9),
            }
        )
    z = np.array([1.2 * (r["seq_logprob"] + 2.0) + 1.5 * r["name_margin"] + 2.0 * r["schema_valid"] - 1.5
                  for r in rows])
    y = (rng.random(n) < _sig(z)).astype(int)
    cats = rng.choice(["simple", "multiple", "irrelevance"], n)
    return rows, y, cats


@pytest.mark.parametrize(
    ("calibrator", "signals"),
    [
        ("logistic", ["seq_logprob", "min_value_logprob", "name_margin", "schema_valid"]),
        ("isotonic", ["seq_logprob"]),
        ("temperature", ["seq_logprob"]),
    ],
)
def test_router_json_round_trip(tmp_path, fitted, calibrator, signals):
    rows, y, cats = fitted
    fit = fitting.fit_router(rows, y, signals, calibrator=calibrator, n_boot=100, suites=["synthetic", "bfcl:simple"])
    sim = cascade.simulate_cascade(fit.oof_p, y, 0.0004, {"simple": 0.97, "multiple": 0.93, "irrelevance": 0.9}, 0.01,
                             categories=cats)
    doc = router_file.build_router_document(
        fit, model={"name": "tiny", "source": "random:llama", "adapter_sha256": "ab" * 32}, cascade=sim,
        fallback=_fallback(),
    )
    path = router_file.write_router_json(doc, tmp_path / "calibrate" / "router.json")
    assert [p.name for p in path.parent.iterdir()] == ["router.json"]  # no temp file left behind
    on_disk = json.loads(path.read_text())
    assert on_disk == router_file.read_router_json(path)
    assert on_disk["schema_version"] == 1 and on_disk["signals"] == signals
    assert on_disk["calibrator"]["type"] == calibrator
    assert on_disk["fitted_on"]["suites"] == ["synthetic", "bfcl:simple"] and on_disk["fitted_on"]["n"] == 3000

    router = Router.load(path)
    X = fitting.signal_matrix(rows, signals)
    rng = np.random.default_rng(0)
    probe = np.r_[X[:200], X[:200] * rng.normal(1.0, 0.5, (200, len(signals))), X.min(0)[None] - 5, X.max(0)[None] + 5]
    expected = fit.calibrator.predict_proba(probe)
    got = np.array([router.predict(dict(zip(signals, row.tolist()))) for row in probe])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    # calibrator_from_dict on the file gives the same function too
    again = calibrators.calibrator_from_dict(on_disk["calibrator"])
    np.testing.assert_allclose(again.predict_proba(probe), expected, rtol=0, atol=1e-12)
    for op in on_disk["operating_points"]:
        for row, p in zip(probe[:50], expected[:50]):
            use, _ = router.decide(dict(zip(signals, row.tolist())), op["target_precision"])
            assert use == (op["threshold"] is not None and p >= op["threshold"])


def test_example_document_shape(tmp_path, fitted):
    rows, y, _ = fitted
    signals = ["seq_logprob", "name_margin", "schema_valid"]
    fit = fitting.fit_router(rows, y, signals, n_boot=100, suites=["synthetic"])
    sim = cascade.simulate_cascade(fit.oof_p, y, 0.0004, 0.93, 0.01, thresholds=[0.0, 0.25, 0.5, 0.75, 1.0])
    doc = router_file.build_router_document(fit, model={"name": "tiny", "source": "random:llama"}, cascade=sim,
                                  fallback=_fallback())
    path = router_file.write_router_json(doc, tmp_path / "router.json")
    if os.environ.get("SLMTUNE_SHOW_ROUTER_JSON"):
        print(path.read_text())
    doc = json.loads(path.read_text())
    assert sorted(doc) == sorted(
        ["schema_version", "model", "signals", "calibrator", "operating_points", "metrics", "cascade", "fitted_on"]
    )
    assert doc["model"]["adapter_sha256"] is None
    assert sorted(doc["cascade"]) == sorted(
        ["fallback", "rows", "slm_only", "fallback_only", "fallback_share_for_50pct_gap",
         "fallback_share_for_80pct_gap"]
    )
    for m in doc["metrics"].values():
        assert m["ci_low"] <= m["ci_high"]
    # no fallback configured: cascade is null and still valid
    doc = router_file.build_router_document(fit, model={"name": "tiny", "source": "x"})
    router_file.write_router_json(doc, tmp_path / "r2.json")
    assert Router.load(tmp_path / "r2.json").cascade is None


def _valid_doc(fitted):
    rows, y, _ = fitted
    fit = fitting.fit_router(rows[:400], y[:400], ["seq_logprob"], calibrator="temperature", n_boot=10)
    return router_file.build_router_document(fit, model={"name": "tiny", "source": "x"})


def test_write_rejects_invalid_documents_and_leaves_no_file(tmp_path, fitted):
    doc = _valid_doc(fitted)
    bad = json.loads(json.dumps(doc))
    del bad["fitted_on"]
    with pytest.raises(RouterFileError, match="'fitted_on' is a required property"):
        router_file.write_router_json(bad, tmp_path / "router.json")
    bad = json.loads(json.dumps(doc))
    bad["operating_points"][0]["coverage"] = "all"
    with pytest.raises(RouterFileError, match=r"field 'operating_points\[0\].coverage': 'all' is not of type"):
        router_file.write_router_json(bad, tmp_path / "router.json")
    bad = json.loads(json.dumps(doc))
    bad["signals"] = ["seq_logprob", "name_margin"]  # schema-valid, but a temperature calibrator takes one signal
    with pytest.raises(RouterFileError, match="exactly one signal"):
        router_file.write_router_json(bad, tmp_path / "router.json")
    assert list(tmp_path.iterdir()) == []


def test_read_rejects_wrong_version_and_missing_field(tmp_path, fitted):
    doc = _valid_doc(fitted)
    path = tmp_path / "router.json"
    path.write_text(json.dumps({**doc, "schema_version": 2}))
    with pytest.raises(RouterFileError, match=r"field 'schema_version' is 2, but this slmtune.router reads version 1"):
        router_file.read_router_json(path)
    path.write_text(json.dumps({k: v for k, v in doc.items() if k != "metrics"}))
    with pytest.raises(RouterFileError, match="'metrics' is a required property"):
        router_file.read_router_json(path)
    with pytest.raises(RouterFileError, match="field 'metrics' is missing"):
        Router.load(path)


def test_schema_ships_as_package_data():
    schema = router_file.load_router_schema()
    assert schema["properties"]["schema_version"]["const"] == ROUTER_SCHEMA_VERSION


# ============================================================================================ plots
def test_plots_are_png(tmp_path, fitted):
    rows, y, _ = fitted
    fit = fitting.fit_router(rows, y, ["seq_logprob", "name_margin"], n_boot=10)
    sim = cascade.simulate_cascade(fit.oof_p, y, 0.001, 0.9, 0.01)
    paths = [
        plots.plot_reliability(fit.oof_p, y, tmp_path / "plots" / "reliability.png"),
        plots.plot_risk_coverage(fit.oof_p, y, tmp_path / "plots" / "risk_coverage.png"),
        plots.plot_cps_vs_threshold(sim, tmp_path / "plots" / "cps.png"),
        plots.plot_cps_vs_threshold(sim["rows"], tmp_path / "plots" / "cps_rows.png"),
    ]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
