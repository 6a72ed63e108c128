"""Weights & Biases tracking: offline by default (files under the run directory), one W&B group per run.

``tracking.mode=online`` syncs live (needs ``WANDB_API_KEY``); ``disabled`` turns tracking off. Config values whose
key looks like a secret are never sent.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_SECRET_WORD_ENDINGS = ("token", "secret", "secrets", "password", "passwd", "apikey", "credential", "credentials",
                        "auth", "authorization")
_KEY_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def is_secret_key(key: str) -> bool:
    """Whether a config key names a secret: one of its words ends like one (``hf_token``, ``HFTOKEN``, ``apiKey``,
    ``API_KEY``, ``db.password``); ``max_new_tokens`` and ``tokenizer_source`` are settings, not secrets, and a key
    ending in ``env`` (``fallback_api_key_env``) holds the *name* of the environment variable that holds one."""
    words = [w.lower() for w in _KEY_WORD.findall(key)]
    if words and words[-1] == "env":
        return False
    return (any(w.endswith(_SECRET_WORD_ENDINGS) for w in words)
            or any(a == "api" and b == "key" for a, b in zip(words, words[1:])))


def redact_secrets(obj: Any) -> Any:
    """Copy of ``obj`` with every value under a secret-looking key replaced by ``"<redacted>"``."""
    if isinstance(obj, dict):
        return {k: "<redacted>" if is_secret_key(str(k)) else redact_secrets(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact_secrets(v) for v in obj]
    return obj


class Tracker:
    """A W&B run for one stage, or a no-op when tracking is disabled."""

    def __init__(self, run: Any | None) -> None:
        self._run = run

    @property
    def enabled(self) -> bool:
        return self._run is not None

    @property
    def directory(self) -> str | None:
        return getattr(self._run, "dir", None)

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        if self._run is not None:
            self._run.log(metrics, step=step)

    def summary(self, metrics: dict[str, Any]) -> None:
        if self._run is not None:
            self._run.summary.update(metrics)

    def table(self, name: str, rows: list[dict[str, Any]]) -> None:
        if self._run is None or not rows:
            return
        import wandb

        columns = list(rows[0])
        self._run.log({name: wandb.Table(columns=columns, data=[[_cell(r.get(c)) for c in columns] for r in rows])})

    def image(self, name: str, path: Path) -> None:
        if self._run is not None:
            import wandb

            self._run.log({name: wandb.Image(str(path))})

    def finish(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None


def _cell(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def start_tracking(mode: str, project: str, entity: str | None, run_dir: Path, group: str, stage: str,
                   config: dict[str, Any]) -> Tracker:
    """Start a W&B run for ``stage`` of the run at ``run_dir`` (files go to ``run_dir/wandb``)."""
    if mode == "disabled":
        return Tracker(None)
    import wandb

    (run_dir / "wandb").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_SILENT", "true")
    run = wandb.init(mode=mode, project=project, entity=entity, dir=str(run_dir), group=group, job_type=stage,
                     name=f"{group}-{stage}", config=redact_secrets(config), reinit="finish_previous")
    return Tracker(run)
