"""SLM-or-fallback router: loads ``router.json`` and decides per request. Pure Python (stdlib only).

Serving-team usage::

    from slmtune.router import Router
    router = Router.load("export/router.json")          # fails fast on a bad file (RouterFileError)
    signals = {"seq_logprob": -3.2, "name_margin": 0.91}  # every name in router.signals
    use_slm, p_correct = router.decide(signals, target_precision=0.95)
    answer = slm_answer if use_slm else call_fallback_llm(request)

At serving time the signals come from the server's own response (vLLM, SGLang: any OpenAI-compatible chat
completion requested with ``logprobs=true, top_logprobs=20`` and the slmtune grammar)::

    from slmtune.router import signals_from_openai
    signals = signals_from_openai(response, dialect="hermes", stop_tokens=["<end_of_turn>"])
    use_slm, p_correct = router.decide(signals)

(:mod:`slmtune.route.signals` defines every signal, the distribution it is computed on, and what the server must
be asked for.)

What the file holds (``slmtune/schemas/router.schema.json`` is the normative JSON Schema; this module checks
the same structure by hand so that it needs no third-party package):

- ``schema_version`` -- must equal :data:`ROUTER_SCHEMA_VERSION`.
- ``signals`` -- the confidence-signal names, in calibrator input order ``x[0], x[1], ...``.
- ``calibrator`` -- ``{"type": ..., "params": {...}}``, evaluated exactly as
  ``slmtune.route.calibration``'s ``predict_proba``:

  * ``logistic``: ``p = sigmoid(intercept + sum_i coef[i] * (x[i] - mean[i]) / scale[i])``
  * ``isotonic`` (one signal): linear interpolation of the breakpoints ``(x[j], y[j])`` at the signal value,
    ``y[0]`` below ``x[0]`` and ``y[-1]`` above ``x[-1]`` (``numpy.interp`` semantics)
  * ``temperature`` (one signal): ``p = sigmoid(a * x + b)`` (``a`` is the inverse temperature)

- ``operating_points`` -- ``{target_precision, threshold, coverage, precision}``; a request stays on the SLM
  when ``p_correct >= threshold``; a ``null`` threshold (target unreachable) means "always fall back".
- ``model``, ``metrics``, ``cascade``, ``fitted_on`` -- provenance and evaluation (not used to decide).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from typing import Any

from slmtune.data.jsonlimits import loads as json_loads
from slmtune.route.signals import SIGNAL_NAMES, SIGNAL_TOP_K, OpenAIResponseError, signals_from_openai

__all__ = ["ROUTER_SCHEMA_VERSION", "SIGNAL_NAMES", "SIGNAL_TOP_K", "OpenAIResponseError", "Router", "RouterFileError",
           "RouterInputError", "sigmoid", "signals_from_openai"]

ROUTER_SCHEMA_VERSION = 1

CALIBRATOR_TYPES = ("logistic", "isotonic", "temperature")
REQUIRED_KEYS = (
    "schema_version",
    "model",
    "signals",
    "calibrator",
    "operating_points",
    "metrics",
    "cascade",
    "fitted_on",
)
METRIC_KEYS = ("auroc", "ece", "brier", "aurc")
_TARGET_TOL = 1e-9


class RouterFileError(ValueError):
    """router.json is unreadable or does not follow the schema; the message names the file and the field."""


class RouterInputError(ValueError):
    """A request's signals (or a requested target precision) do not fit the loaded router."""


def sigmoid(z: float) -> float:
    """Numerically stable logistic function."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


MAX_FILE_BYTES = 64 * 2**20  # a router.json is kilobytes; a larger file is refused unread
MAX_NESTING = 64             # arrays/objects nested deeper than this are refused (json would recurse)


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer beyond the float range
        return False


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number" if _finite(v) else "a number out of the float range"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


class _Checker:
    """Hand-written structural validation with messages of the form '<file>: field 'a.b[2]' ...'."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, field: str, msg: str) -> RouterFileError:
        return RouterFileError(f"{self.source}: field '{field}' {msg}")

    def get(self, obj: dict, key: str, where: str) -> Any:
        if key not in obj:
            raise self.fail(where + key, "is missing")
        return obj[key]

    def obj(self, v: Any, field: str) -> dict:
        if not isinstance(v, dict):
            raise self.fail(field, f"must be an object, got {_type_name(v)}")
        return v

    def num(self, v: Any, field: str, nullable: bool = False) -> float | None:
        if v is None and nullable:
            return None
        if not _is_number(v):
            want = "a finite number or null" if nullable else "a finite number"
            raise self.fail(field, f"must be {want}, got {_type_name(v)}")
        return float(v)

    def num_list(self, v: Any, field: str, length: int | None = None) -> list[float]:
        if not isinstance(v, list) or not v:
            raise self.fail(field, f"must be a non-empty array of numbers, got {_type_name(v)}")
        out = [self.num(x, f"{field}[{i}]") for i, x in enumerate(v)]
        if length is not None and len(out) != length:
            raise self.fail(field, f"has {len(out)} entries, expected {length} (one per signal)")
        return out  # type: ignore[return-value]


# fitted_on.openai_signals: the keyword arguments of signals_from_openai that reproduce the fitted signals
_OPENAI_OPTIONS = {
    "dialect": (lambda v: isinstance(v, str), "a string"),
    "stop_tokens": (lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v), "an array of strings"),
    "max_text_tokens": (lambda v: v is None or _is_count(v), "a positive integer or null"),
    "top_k": (_is_count, "a positive integer"),
}


def _openai_options(c: _Checker, options: Any) -> dict | None:
    if options is None:  # a router.json written before slmtune recorded them
        return None
    where = "fitted_on.openai_signals"
    c.obj(options, where)
    for key, (ok, want) in _OPENAI_OPTIONS.items():
        if not ok(c.get(options, key, where + ".")):
            raise c.fail(f"{where}.{key}", f"must be {want}, got {_type_name(options[key])}")
    unknown = sorted(set(options) - set(_OPENAI_OPTIONS))
    if unknown:
        raise c.fail(where, f"has unknown keys {unknown}")
    return dict(options)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and _finite(v)


class Router:
    """Evaluates a router.json: ``predict`` gives p_correct, ``decide`` the SLM-vs-fallback choice."""

    def __init__(self, doc: Mapping[str, Any], source: str = "<router dict>"):
        self.source = source
        c = _Checker(source)
        if not isinstance(doc, dict):
            raise RouterFileError(f"{source}: top level must be a JSON object, got {_type_name(doc)}")
        version = c.get(doc, "schema_version", "")
        if not isinstance(version, int) or isinstance(version, bool):
            raise c.fail("schema_version", f"must be an integer, got {_type_name(version)}")
        if version != ROUTER_SCHEMA_VERSION:
            raise c.fail(
                "schema_version",
                f"is {version}, but this slmtune.router reads version {ROUTER_SCHEMA_VERSION}; "
                "re-run the calibrate stage with a matching slmtune, or upgrade slmtune",
            )
        for key in REQUIRED_KEYS:
            c.get(doc, key, "")

        model = c.obj(doc["model"], "model")
        for key in ("name", "source"):
            v = c.get(model, key, "model.")
            if not isinstance(v, str):
                raise c.fail(f"model.{key}", f"must be a string, got {_type_name(v)}")
        sha = c.get(model, "adapter_sha256", "model.")
        if sha is not None and not isinstance(sha, str):
            raise c.fail("model.adapter_sha256", f"must be a string or null, got {_type_name(sha)}")
        self.model: dict = model

        signals = doc["signals"]
        if not isinstance(signals, list) or not signals:
            raise c.fail("signals", f"must be a non-empty array of names, got {_type_name(signals)}")
        for i, s in enumerate(signals):
            if not isinstance(s, str) or not s:
                raise c.fail(f"signals[{i}]", f"must be a non-empty string, got {_type_name(s)}")
        if len(set(signals)) != len(signals):
            raise c.fail("signals", "contains duplicate names")
        self.signals: tuple[str, ...] = tuple(signals)

        cal = c.obj(doc["calibrator"], "calibrator")
        ctype = c.get(cal, "type", "calibrator.")
        if ctype not in CALIBRATOR_TYPES:
            raise c.fail("calibrator.type", f"must be one of {list(CALIBRATOR_TYPES)}, got {ctype!r}")
        params = c.obj(c.get(cal, "params", "calibrator."), "calibrator.params")
        self.calibrator_type: str = ctype
        self._init_calibrator(c, ctype, params)

        ops = doc["operating_points"]
        if not isinstance(ops, list):
            raise c.fail("operating_points", f"must be an array, got {_type_name(ops)}")
        self.operating_points: list[dict] = []
        for i, op in enumerate(ops):
            where = f"operating_points[{i}]"
            c.obj(op, where)
            target = c.num(c.get(op, "target_precision", where + "."), where + ".target_precision")
            if not 0.0 < target <= 1.0:
                raise c.fail(where + ".target_precision", f"must be in (0, 1], got {target}")
            threshold = c.num(c.get(op, "threshold", where + "."), where + ".threshold", nullable=True)
            coverage = c.num(c.get(op, "coverage", where + "."), where + ".coverage")
            precision = c.num(c.get(op, "precision", where + "."), where + ".precision", nullable=True)
            for other in self.operating_points:
                if abs(other["target_precision"] - target) <= _TARGET_TOL:
                    raise c.fail(where + ".target_precision", f"duplicates target {target}")
            self.operating_points.append(
                {
                    "target_precision": target,
                    "threshold": threshold,
                    "coverage": coverage,
                    "precision": precision,
                    "reason": op.get("reason"),
                }
            )

        metrics = c.obj(doc["metrics"], "metrics")
        for key in METRIC_KEYS:
            c.obj(c.get(metrics, key, "metrics."), f"metrics.{key}")
        self.metrics: dict = metrics
        if doc["cascade"] is not None:
            c.obj(doc["cascade"], "cascade")
        self.cascade: dict | None = doc["cascade"]
        fitted_on = c.obj(doc["fitted_on"], "fitted_on")
        for key in ("n", "n_positive", "cross_fit_folds", "seed"):
            v = c.get(fitted_on, key, "fitted_on.")
            if not isinstance(v, int) or isinstance(v, bool):
                raise c.fail(f"fitted_on.{key}", f"must be an integer, got {_type_name(v)}")
        suites = c.get(fitted_on, "suites", "fitted_on.")
        if not isinstance(suites, list) or not all(isinstance(s, str) for s in suites):
            raise c.fail("fitted_on.suites", "must be an array of strings")
        self.fitted_on: dict = fitted_on
        self._openai_options: dict | None = _openai_options(c, fitted_on.get("openai_signals"))

    def _init_calibrator(self, c: _Checker, ctype: str, params: dict) -> None:
        k = len(self.signals)
        p = "calibrator.params."
        if ctype == "logistic":
            self._coef = c.num_list(c.get(params, "coef", p), p + "coef", k)
            self._mean = c.num_list(c.get(params, "mean", p), p + "mean", k)
            self._scale = c.num_list(c.get(params, "scale", p), p + "scale", k)
            for i, s in enumerate(self._scale):
                if s == 0.0:
                    raise c.fail(f"{p}scale[{i}]", "must be non-zero")
            self._intercept = c.num(c.get(params, "intercept", p), p + "intercept")
            return
        if k != 1:
            raise c.fail("signals", f"must list exactly one signal for a {ctype} calibrator, got {k}")
        if ctype == "isotonic":
            xs = c.num_list(c.get(params, "x", p), p + "x")
            ys = c.num_list(c.get(params, "y", p), p + "y", len(xs))
            for i in range(1, len(xs)):
                if xs[i] < xs[i - 1]:
                    raise c.fail(f"{p}x[{i}]", "breakpoints must be non-decreasing")
            for i, y in enumerate(ys):
                if not 0.0 <= y <= 1.0:
                    raise c.fail(f"{p}y[{i}]", f"must be a probability in [0, 1], got {y}")
            self._xs, self._ys = xs, ys
        else:  # temperature
            self._a = c.num(c.get(params, "a", p), p + "a")
            self._b = c.num(c.get(params, "b", p), p + "b")

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, path: str | Any) -> Router:
        """Read and validate a router.json file (``RouterFileError`` on any problem, and no other exception)."""
        source = str(path)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except (OSError, TypeError, ValueError) as exc:
            raise RouterFileError(f"{source}: cannot read router file: {exc}") from exc
        if len(data) > MAX_FILE_BYTES:
            raise RouterFileError(f"{source}: larger than {MAX_FILE_BYTES} bytes; not a router file")
        try:
            doc = json_loads(data, where=source, max_depth=MAX_NESTING)
        except ValueError as exc:  # JSONDecodeError, or JSONLimitError: not UTF-8, too deep, NaN, huge numbers
            raise RouterFileError(f"{source}: not valid JSON: {exc}") from None
        return cls.from_dict(doc, source=source)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], source: str = "<router dict>") -> Router:
        """Validate an in-memory router document (``RouterFileError`` on any problem)."""
        try:
            return cls(doc, source=source)
        except RouterFileError:
            raise
        except (TypeError, ValueError, OverflowError, RecursionError, KeyError, AttributeError) as exc:
            # the structural checks should have named the field; this keeps the promise if one was missed
            raise RouterFileError(f"{source}: malformed router document ({type(exc).__name__}: {exc})") from None

    # ------------------------------------------------------------------ evaluation
    def _vector(self, signals: Mapping[str, Any]) -> list[float]:
        if not isinstance(signals, Mapping):
            raise RouterInputError(f"signals must be a mapping name -> number, got {type(signals).__name__}")
        out = []
        for name in self.signals:
            if name not in signals:
                raise RouterInputError(
                    f"missing signal {name!r}; this router expects {list(self.signals)}"
                )
            v = signals[name]
            if isinstance(v, bool):
                v = float(v)
            if not isinstance(v, (int, float)) or not _finite(v):
                raise RouterInputError(f"signal {name!r} must be a finite number, got {str(v)[:40]}")
            out.append(float(v))
        return out

    def signals_from_openai(self, response: Any) -> dict[str, float]:
        """This router's signals from an OpenAI-compatible chat completion (vLLM, SGLang), computed as the signals
        it was fitted on (``fitted_on.openai_signals``: the dialect, the end-of-turn token, the text-answer cut):
        ``router.decide(router.signals_from_openai(response))``. See :func:`signals_from_openai` for what the
        request must ask for; :class:`OpenAIResponseError` when the response lacks it."""
        if self._openai_options is None:
            raise RouterInputError(
                f"{self.source} has no 'fitted_on.openai_signals' (written by slmtune's calibrate stage since "
                "signals_from_openai exists); call slmtune.router.signals_from_openai(response, dialect=..., "
                "stop_tokens=[...]) with the model card's dialect and end-of-turn token")
        return signals_from_openai(response, **self._openai_options)

    def predict(self, signals: Mapping[str, float]) -> float:
        """Calibrated probability that the SLM's answer for this request is correct."""
        x = self._vector(signals)
        if self.calibrator_type == "logistic":
            z = self._intercept
            for xi, c, m, s in zip(x, self._coef, self._mean, self._scale):
                z += c * ((xi - m) / s)
            p = sigmoid(z)
        elif self.calibrator_type == "temperature":
            p = sigmoid(self._a * x[0] + self._b)
        else:
            p = _interp(x[0], self._xs, self._ys)
        if math.isnan(p):  # signals so far out that the calibrator's sum is inf - inf
            raise RouterInputError(f"signals {dict(zip(self.signals, x))} give no probability (out of range)")
        return p

    def threshold_for(self, target_precision: float = 0.95) -> float | None:
        """Threshold of the operating point for ``target_precision`` (None: unreachable, always fall back)."""
        if not _is_number(target_precision):
            raise RouterInputError(f"target_precision must be a number in (0, 1], got {target_precision!r}")
        for op in self.operating_points:
            if abs(op["target_precision"] - target_precision) <= _TARGET_TOL:
                return op["threshold"]
        available = [op["target_precision"] for op in self.operating_points]
        raise RouterInputError(
            f"no operating point for target precision {target_precision} in {self.source}; available: {available}"
        )

    def decide(self, signals: Mapping[str, float], target_precision: float = 0.95) -> tuple[bool, float]:
        """Return ``(use_slm, p_correct)``: keep the SLM's answer iff p_correct >= the target's threshold."""
        threshold = self.threshold_for(target_precision)
        p = self.predict(signals)
        if threshold is None:
            return False, p
        return p >= threshold, p

    def __repr__(self) -> str:
        return (
            f"Router(source={self.source!r}, calibrator={self.calibrator_type!r}, signals={list(self.signals)}, "
            f"targets={[op['target_precision'] for op in self.operating_points]})"
        )


def _interp(x: float, xs: list[float], ys: list[float]) -> float:
    """``numpy.interp(x, xs, ys)`` for non-decreasing ``xs`` (clamped at both ends)."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x)  # xs[i-1] <= x < xs[i]
    x0, x1 = xs[i - 1], xs[i]
    y0, y1 = ys[i - 1], ys[i]
    if x1 == x0:
        return y1
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
