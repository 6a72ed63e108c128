"""router.json: schema, validation, building from a fit, atomic writing and reading."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from slmtune.route.fitting import RouterFit
from slmtune.route.numeric import jsonable
from slmtune.router import ROUTER_SCHEMA_VERSION, Router, RouterFileError


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
    return jsonable(doc)


def write_router_json(doc: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Validate and write router.json atomically (temp file in the same directory + os.replace)."""
    path = Path(path)
    doc = jsonable(doc)
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
