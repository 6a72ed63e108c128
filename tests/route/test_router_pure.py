"""slmtune.router: pure-Python evaluation of router.json, its structural checks, and no heavy imports."""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from slmtune.router import (
    ROUTER_SCHEMA_VERSION,
    Router,
    RouterFileError,
    RouterInputError,
    sigmoid,
)

REPO = Path(__file__).resolve().parents[2]


def _doc(calibrator: dict | None = None, signals: list[str] | None = None) -> dict:
    """A hand-written, schema-valid router.json (logistic over two signals by default)."""
    return {
        "schema_version": 1,
        "model": {"name": "tiny", "source": "random:llama", "adapter_sha256": None},
        "signals": signals or ["seq_logprob", "name_margin"],
        "calibrator": calibrator
        or {
            "type": "logistic",
            "params": {"coef": [1.0, -2.0], "intercept": 0.5, "mean": [0.0, 1.0], "scale": [1.0, 2.0]},
        },
        "operating_points": [
            {"target_precision": 0.9, "threshold": 0.3, "coverage": 0.7, "precision": 0.91, "reason": None},
            {"target_precision": 0.95, "threshold": 0.6, "coverage": 0.4, "precision": 0.95},
            {
                "target_precision": 0.99,
                "threshold": None,
                "coverage": 0.0,
                "precision": None,
                "reason": "precision 0.99 is not reached",
            },
        ],
        "metrics": {
            k: {"value": 0.1, "ci_low": 0.05, "ci_high": 0.15} for k in ("auroc", "ece", "brier", "aurc")
        },
        "cascade": None,
        "fitted_on": {"suites": ["synthetic"], "n": 100, "n_positive": 60, "cross_fit_folds": 5, "seed": 0},
    }


ISOTONIC = {"type": "isotonic", "params": {"x": [0.0, 1.0, 2.0], "y": [0.1, 0.5, 0.9]}}
TEMPERATURE = {"type": "temperature", "params": {"a": 2.0, "b": -1.0}}


def _write(tmp_path: Path, doc, name: str = "router.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


# ----------------------------------------------------------------------------------------- evaluation
def test_logistic_predict_hand_computed(tmp_path):
    r = Router.load(_write(tmp_path, _doc()))
    # z = 0.5 + 1 * (1 - 0) / 1 - 2 * (3 - 1) / 2 = -0.5
    assert r.predict({"seq_logprob": 1.0, "name_margin": 3.0}) == pytest.approx(1 / (1 + math.exp(0.5)), abs=1e-15)
    assert r.signals == ("seq_logprob", "name_margin")
    assert r.calibrator_type == "logistic"


def test_isotonic_interpolates_and_clamps(tmp_path):
    r = Router.load(_write(tmp_path, _doc(ISOTONIC, ["name_margin"])))
    assert r.predict({"name_margin": 0.5}) == pytest.approx(0.3)
    assert r.predict({"name_margin": 1.0}) == pytest.approx(0.5)
    assert r.predict({"name_margin": 1.75}) == pytest.approx(0.8)
    assert r.predict({"name_margin": -10.0}) == 0.1
    assert r.predict({"name_margin": 10.0}) == 0.9


def test_temperature_predict(tmp_path):
    r = Router.load(_write(tmp_path, _doc(TEMPERATURE, ["seq_logprob"])))
    assert r.predict({"seq_logprob": 0.5}) == pytest.approx(0.5)
    assert r.predict({"seq_logprob": 1.0}) == pytest.approx(sigmoid(1.0))


def test_sigmoid_is_stable_for_extreme_inputs():
    assert sigmoid(-1000.0) == 0.0
    assert sigmoid(1000.0) == 1.0
    assert sigmoid(0.0) == 0.5


def test_decide_uses_operating_point_and_falls_back_on_null(tmp_path):
    r = Router.load(_write(tmp_path, _doc(TEMPERATURE, ["seq_logprob"])))
    use, p = r.decide({"seq_logprob": 0.5}, target_precision=0.95)  # p = 0.5 < 0.6
    assert (use, p) == (False, pytest.approx(0.5))
    use, p = r.decide({"seq_logprob": 0.5}, target_precision=0.9)  # p = 0.5 >= 0.3
    assert use is True
    use, p = r.decide({"seq_logprob": 100.0}, target_precision=0.99)  # null threshold: always fall back
    assert use is False and p == pytest.approx(1.0)
    assert r.threshold_for(0.95) == 0.6
    assert r.threshold_for(0.99) is None
    # a p exactly at the threshold stays on the SLM
    doc = _doc(TEMPERATURE, ["seq_logprob"])
    doc["operating_points"][1]["threshold"] = 0.5
    assert Router.from_dict(doc).decide({"seq_logprob": 0.5}, 0.95)[0] is True


def test_default_target_is_095(tmp_path):
    r = Router.load(_write(tmp_path, _doc(TEMPERATURE, ["seq_logprob"])))
    assert r.decide({"seq_logprob": 0.9}) == r.decide({"seq_logprob": 0.9}, target_precision=0.95)


def test_unknown_target_lists_available(tmp_path):
    r = Router.load(_write(tmp_path, _doc()))
    with pytest.raises(RouterInputError, match=r"0\.8.*available: \[0\.9, 0\.95, 0\.99\]"):
        r.threshold_for(0.8)


def test_missing_signal_is_named(tmp_path):
    r = Router.load(_write(tmp_path, _doc()))
    with pytest.raises(RouterInputError, match="missing signal 'name_margin'"):
        r.predict({"seq_logprob": 1.0})
    with pytest.raises(RouterInputError, match="'seq_logprob' must be a finite number"):
        r.predict({"seq_logprob": float("nan"), "name_margin": 1.0})
    with pytest.raises(RouterInputError, match="'seq_logprob' must be a finite number"):
        r.predict({"seq_logprob": "high", "name_margin": 1.0})
    # booleans (verifier outcomes) are 0/1; extra signals are ignored
    assert r.predict({"seq_logprob": True, "name_margin": 1.0, "other": 5}) == r.predict(
        {"seq_logprob": 1.0, "name_margin": 1.0}
    )


# ----------------------------------------------------------------------------------------- bad files
def test_wrong_version_is_explicit(tmp_path):
    doc = _doc()
    doc["schema_version"] = 2
    path = _write(tmp_path, doc)
    with pytest.raises(RouterFileError) as exc:
        Router.load(path)
    msg = str(exc.value)
    assert str(path) in msg and "'schema_version'" in msg and "is 2" in msg and "version 1" in msg
    assert ROUTER_SCHEMA_VERSION == 1


@pytest.mark.parametrize(
    "key", ["schema_version", "model", "signals", "calibrator", "operating_points", "metrics", "cascade", "fitted_on"]
)
def test_missing_top_level_field_is_named(tmp_path, key):
    doc = _doc()
    del doc[key]
    path = _write(tmp_path, doc)
    with pytest.raises(RouterFileError, match=re.escape(f"{path}: field '{key}' is missing")):
        Router.load(path)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["calibrator"]["params"].pop("intercept"), "calibrator.params.intercept"),
        (lambda d: d["operating_points"][1].pop("threshold"), "operating_points[1].threshold"),
        (lambda d: d["metrics"].pop("aurc"), "metrics.aurc"),
        (lambda d: d["model"].pop("adapter_sha256"), "model.adapter_sha256"),
        (lambda d: d["fitted_on"].pop("n"), "fitted_on.n"),
    ],
)
def test_missing_nested_field_is_named(tmp_path, mutate, field):
    doc = _doc()
    mutate(doc)
    with pytest.raises(RouterFileError, match=re.escape(f"field '{field}' is missing")):
        Router.load(_write(tmp_path, doc))


@pytest.mark.parametrize(
    ("mutate", "field", "why"),
    [
        (lambda d: d.__setitem__("schema_version", "1"), "schema_version", "must be an integer"),
        (lambda d: d.__setitem__("signals", "seq_logprob"), "signals", "non-empty array"),
        (lambda d: d["signals"].__setitem__(1, 3), r"signals\[1\]", "non-empty string"),
        (lambda d: d["calibrator"].__setitem__("type", "svm"), "calibrator.type", "must be one of"),
        (lambda d: d["calibrator"]["params"]["coef"].__setitem__(1, "x"), r"calibrator.params.coef\[1\]", "number"),
        (lambda d: d["calibrator"]["params"]["coef"].append(1.0), "calibrator.params.coef", "expected 2"),
        (lambda d: d["calibrator"]["params"]["scale"].__setitem__(0, 0.0), r"calibrator.params.scale\[0\]", "non-zero"),
        (lambda d: d["operating_points"][0].__setitem__("threshold", "high"), r"operating_points\[0\].threshold",
         "finite number or null"),
        (lambda d: d["operating_points"][0].__setitem__("target_precision", 1.5),
         r"operating_points\[0\].target_precision", r"\(0, 1\]"),
        (lambda d: d.__setitem__("model", []), "model", "must be an object"),
        (lambda d: d["fitted_on"].__setitem__("n", 1.5), "fitted_on.n", "must be an integer"),
        (lambda d: d.__setitem__("cascade", [1]), "cascade", "must be an object"),
    ],
)
def test_wrong_type_is_named(tmp_path, mutate, field, why):
    doc = _doc()
    mutate(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(RouterFileError, match=rf"{re.escape(str(path))}: field '{field}' .*{why}"):
        Router.load(path)


def test_one_signal_calibrators_need_one_signal(tmp_path):
    with pytest.raises(RouterFileError, match="field 'signals' must list exactly one signal for a isotonic"):
        Router.load(_write(tmp_path, _doc(ISOTONIC)))
    bad = copy.deepcopy(ISOTONIC)
    bad["params"]["x"] = [0.0, 2.0, 1.0]
    with pytest.raises(RouterFileError, match=r"calibrator.params.x\[2\]' breakpoints must be non-decreasing"):
        Router.load(_write(tmp_path, _doc(bad, ["a"])))
    bad = copy.deepcopy(ISOTONIC)
    bad["params"]["y"] = [0.1, 0.5]
    with pytest.raises(RouterFileError, match="calibrator.params.y' has 2 entries, expected 3"):
        Router.load(_write(tmp_path, _doc(bad, ["a"])))


def test_unreadable_files(tmp_path):
    with pytest.raises(RouterFileError, match="cannot read router file"):
        Router.load(tmp_path / "nope.json")
    with pytest.raises(RouterFileError, match="not valid JSON"):
        Router.load(_write(tmp_path, "{not json"))
    with pytest.raises(RouterFileError, match="top level must be a JSON object"):
        Router.load(_write(tmp_path, "[1, 2]"))


def test_unknown_extra_keys_are_ignored_by_the_reader(tmp_path):
    doc = _doc()
    doc["model"]["dialect"] = "hermes"
    doc["fitted_on"]["created_at"] = "2025-01-01T00:00:00Z"
    Router.load(_write(tmp_path, doc))


def test_hand_written_doc_matches_json_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO / "slmtune" / "schemas" / "router.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for doc in (_doc(), _doc(ISOTONIC, ["a"]), _doc(TEMPERATURE, ["a"])):
        assert not list(validator.iter_errors(doc))
    bad = _doc()
    bad["schema_version"] = 2
    assert list(validator.iter_errors(bad))


# ----------------------------------------------------------------------------------------- no heavy imports
def test_router_works_without_torch_numpy_sklearn(tmp_path):
    path = _write(tmp_path, _doc())
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['numpy'] = None; sys.modules['sklearn'] = None; "
        "sys.modules['scipy'] = None; sys.modules['jsonschema'] = None; "
        "from slmtune.router import Router; "
        f"r = Router.load({str(path)!r}); "
        "use, p = r.decide({'seq_logprob': 1.0, 'name_margin': 3.0}, target_precision=0.9); "
        "heavy = sorted(m for m in ('torch', 'numpy', 'sklearn', 'scipy', 'jsonschema') if sys.modules.get(m)); "
        "print(use, repr(p), heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    use, p, heavy = out.stdout.strip().split(" ", 2)
    assert use == "True"  # p = sigmoid(-0.5) = 0.377 >= 0.3
    assert float(p) == pytest.approx(1 / (1 + math.exp(0.5)), abs=1e-15)
    assert heavy == "[]"


# ----------------------------------------------------------------------------------------- hostile files and inputs


@pytest.mark.parametrize("text", [
    json.dumps(_doc()).replace('"intercept": 0.5', '"intercept": ' + "9" * 400),  # OverflowError before
    json.dumps(_doc()).replace('"intercept": 0.5', '"intercept": ' + "9" * 5000),  # over the int digit limit
    json.dumps(_doc()).replace('"intercept": 0.5', '"intercept": NaN'),
    json.dumps(_doc()).replace('"cascade": null', '"cascade": ' + "[" * 100_000 + "]" * 100_000),
    b'{"schema_version": 1, "model": "\xff"}',
])
def test_load_raises_only_router_file_errors(tmp_path, text):
    path = tmp_path / "router.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(RouterFileError):
        Router.load(path)


def test_decide_validates_its_arguments(tmp_path):
    router = Router.load(_write(tmp_path, _doc()))
    signals = {"seq_logprob": -1.0, "name_margin": 0.5}
    for target in (None, "0.95", float("nan"), True):
        with pytest.raises(RouterInputError, match="target_precision"):
            router.decide(signals, target_precision=target)
    with pytest.raises(RouterInputError, match="finite number"):
        router.decide({"seq_logprob": 10**400, "name_margin": 0.5})
    steep = Router.from_dict(_doc({"type": "logistic", "params": {"coef": [10.0, 10.0], "intercept": 0.0,
                                                                  "mean": [0.0, 0.0], "scale": [1.0, 1.0]}}))
    with pytest.raises(RouterInputError, match="no probability"):
        steep.decide({"seq_logprob": 1e308, "name_margin": -1e308})
