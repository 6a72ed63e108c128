"""manifest.json: sha256 of every file of an export, and its verification."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from slmtune.rundir import atomic_write_json

log = logging.getLogger(__name__)


MANIFEST = "manifest.json"
VERIFICATION = "verification.json"
MANIFEST_SCHEMA_VERSION = 1


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _files(root: Path) -> list[str]:
    """Every regular file under ``root`` (relative POSIX paths, sorted); symlinks count as their target."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_file():
                out.append(path.relative_to(root).as_posix())
    return sorted(out)


# 4. manifest


def write_manifest(export_dir: Path | str, *, base_model: Any, slmtune_version: str | None, git_commit: str | None,
                   config: dict | None) -> dict[str, Any]:
    """Write ``manifest.json``: sha256 of every file under ``export_dir`` (except the manifest) plus provenance."""
    export_dir = Path(export_dir)
    files = {rel: sha256_file(export_dir / rel) for rel in _files(export_dir) if rel != MANIFEST}
    manifest = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "files": files,
        "base_model": base_model,
        "slmtune_version": slmtune_version,
        "git_commit": git_commit,
        "config": config,
        "created_unix": round(time.time(), 3),
    }
    atomic_write_json(export_dir / MANIFEST, manifest)
    return manifest


def verify_manifest(export_dir: Path | str) -> list[str]:
    """Problems found re-checking an export against its manifest (empty list: intact).

    Each problem names the file: ``"<path>: sha256 mismatch"``, ``"<path>: missing"``, ``"<path>: unexpected file
    (not in manifest)"``; a missing or unreadable manifest is reported as ``"manifest.json: ..."``.
    """
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        return [f"{export_dir}: not a directory"]
    path = export_dir / MANIFEST
    if not path.is_file():
        return [f"{MANIFEST}: missing (not an slmtune export, or the export did not finish)"]
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return [f"{MANIFEST}: unreadable ({err})"]
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        return [f"{MANIFEST}: invalid (no 'files' mapping of path -> sha256)"]
    problems = []
    present = set(_files(export_dir)) - {MANIFEST}
    for rel, expected in sorted(files.items()):
        if rel not in present:
            problems.append(f"{rel}: missing")
        elif sha256_file(export_dir / rel) != expected:
            problems.append(f"{rel}: sha256 mismatch")
    problems += [f"{rel}: unexpected file (not in manifest)" for rel in sorted(present - set(files))]
    return problems
