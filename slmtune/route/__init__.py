"""Calibration of the SLM's per-request confidence, operating points, cascade simulation and router.json.

Pipeline (what the ``calibrate`` stage calls)::

    fit = fit_router(rows, correct, ["seq_logprob", "arg_min_logprob", "name_margin"], calibrator="logistic")
    sim = simulate_cascade(fit.oof_p, correct, slm_cost, fallback_acc_by_category, fallback_cost,
                           categories=categories)
    doc = build_router_document(fit, model={...}, cascade=sim, fallback={"name": "gpt-4o", ...})
    write_router_json(doc, run_dir / "calibrate" / "router.json")

Signals are numbers recorded per request during eval (log-probabilities, entropy / margin at the function-name
choice, call count, verifier outcomes as 0/1, agreement among k samples ...); which ones are used is the
caller's choice and is recorded in router.json (``signals``, in calibrator input order). The built-in ones are
defined once, in pure Python, by :mod:`slmtune.route.signals`, for the eval's decoder and for an OpenAI-compatible
server's response alike (:func:`slmtune.router.signals_from_openai`).

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
