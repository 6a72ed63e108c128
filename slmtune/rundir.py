"""The run directory: the contract between stages (DESIGN §2).

``outputs/<recipe>/<run_name>/`` holds one sub-directory per stage plus ``run.json``. A stage writes into
``.<stage>.partial/`` and renames it onto ``<stage>/`` when it succeeds, so a stage directory that exists is complete.
``run.json`` records the resolved config, git commit, package versions and, per stage, its status, duration, input
hash, completion id and the size of every file it wrote; a stage's input hash covers its config, the completion ids
of the stages it reads and a fingerprint of the files outside the run it reads, so ``pipeline`` can skip a stage
whose inputs did not change and rerun everything downstream of one that did. A stage whose files are no longer all
there (or changed size) counts as not completed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

TRACKED_PACKAGES = ("slmtune", "torch", "transformers", "peft", "trl", "accelerate", "datasets", "xgrammar",
                    "bitsandbytes", "hydra-core", "wandb")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace`` (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def iter_jsonl(path: Path | str) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line; ``ValueError`` naming the file and line otherwise."""
    with Path(path).open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}:{number}: not UTF-8 text ({err.reason})") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: invalid JSON: {err.msg}") from None
            except RecursionError:
                raise ValueError(f"{path}:{number}: nested too deeply") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
            yield number, obj


def read_jsonl(path: Path | str) -> list[dict]:
    """Every object of a JSONL file (see :func:`iter_jsonl`)."""
    return [obj for _, obj in iter_jsonl(path)]


class BatchLog:
    """An append-only record of finished work batches (``<name>.batches.partial.jsonl``), so an interrupted job
    resumes without redoing them. One JSON line per batch, flushed and fsynced as it finishes; a torn last line
    (the process died while writing it) is ignored. It is never a finished artifact: the stage that keeps one
    removes it when it completes (see :meth:`RunDir.resume_dir`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def done(self) -> dict[int, dict[str, Any]]:
        """The recorded batches by index (an entry's ``keys`` say which work items it covered)."""
        out: dict[int, dict[str, Any]] = {}
        if not self.path.is_file():
            return out
        with self.path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn line: that batch is simply done again
                if isinstance(entry, dict) and isinstance(entry.get("batch"), int):
                    out[entry["batch"]] = entry
        return out

    def append(self, entry: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, ensure_ascii=True, default=str) + "\n"
        if self.path.is_file() and self.path.stat().st_size:
            with self.path.open("rb") as handle:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    line = "\n" + line  # end a torn last line first
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())


def stable_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


CONTENT_HASH_LIMIT = 64 * 2**20  # larger files (model weights) are fingerprinted by size and modification time


def files_fingerprint(paths: list[Path | str]) -> str:
    """A hash that changes when any file under ``paths`` (files or directories) is added, removed or changed.

    Files up to ``CONTENT_HASH_LIMIT`` are hashed by content, larger ones by size and modification time (reading
    gigabytes of weights on every ``pipeline`` would cost more than the stage it guards). A missing path hashes as
    missing.
    """
    digest = hashlib.sha256()
    for root in map(Path, paths):
        files = sorted(f for f in root.rglob("*") if f.is_file()) if root.is_dir() else [root]
        digest.update(f"{root}\0".encode())
        for file in files:
            if not file.is_file():
                digest.update(b"missing\0")
                continue
            stat = file.stat()
            digest.update(f"{file.relative_to(root) if file != root else ''}\0{stat.st_size}\0".encode())
            if stat.st_size <= CONTENT_HASH_LIMIT:
                digest.update(hashlib.sha256(file.read_bytes()).digest())
            else:
                digest.update(str(stat.st_mtime_ns).encode())
    return digest.hexdigest()[:16]


def _file_sizes(directory: Path) -> dict[str, int]:
    return {str(f.relative_to(directory)): f.stat().st_size for f in sorted(directory.rglob("*")) if f.is_file()}


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


class RunDir:
    """One run's directory and its ``run.json`` record."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @property
    def record_path(self) -> Path:
        return self.root / "run.json"

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def partial_dir(self, stage: str) -> Path:
        return self.root / f".{stage}.partial"

    def resume_dir(self, stage: str, input_hash: str) -> Path:
        """``.<stage>.resume/<input_hash>/``: the stage's per-batch records (see :class:`BatchLog`) for exactly these
        inputs; records kept for other inputs are removed. The stage removes the whole folder when it completes."""
        base = self.root / f".{stage}.resume"
        if base.is_dir():
            for other in base.iterdir():
                if other.name == input_hash:
                    continue
                if other.is_dir():
                    shutil.rmtree(other, ignore_errors=True)
                else:
                    other.unlink(missing_ok=True)
        path = base / input_hash
        path.mkdir(parents=True, exist_ok=True)
        return path

    def drop_resume(self, stage: str) -> None:
        """Remove the stage's per-batch records (its outputs are complete)."""
        shutil.rmtree(self.root / f".{stage}.resume", ignore_errors=True)

    def record(self) -> dict[str, Any]:
        if not self.record_path.is_file():
            return {"stages": {}}
        return json.loads(self.record_path.read_text(encoding="utf-8"))

    def stage_record(self, stage: str) -> dict[str, Any] | None:
        return self.record()["stages"].get(stage)

    def damaged_files(self, stage: str, rec: dict[str, Any] | None = None) -> list[str]:
        """Files the completed stage wrote that are now missing or of another size (all of them if unrecorded);
        ``rec`` is the stage's run.json record when the caller has already read it."""
        rec = rec or self.stage_record(stage) or {}
        recorded = rec.get("files")
        if recorded is None:
            return ["<no file list in run.json>"]
        directory = self.stage_dir(stage)
        return [name for name, size in recorded.items()
                if not (directory / name).is_file() or (directory / name).stat().st_size != size]

    def completion_id(self, stage: str) -> str:
        """The completion id of a finished stage; raises if the stage has not completed in this run or its files
        are no longer all there."""
        rec = self.stage_record(stage)
        if not rec or rec.get("status") != "completed" or not self.stage_dir(stage).is_dir():
            raise FileNotFoundError(f"{self.stage_dir(stage)}: stage '{stage}' has not completed in this run; "
                                    f"run `python -m slmtune {stage}` (or `pipeline`) first")
        damaged = self.damaged_files(stage, rec)
        if damaged:
            raise FileNotFoundError(f"{self.stage_dir(stage)}: files of stage '{stage}' are missing or changed "
                                    f"({', '.join(damaged[:5])}{' ...' if len(damaged) > 5 else ''}); run "
                                    f"`python -m slmtune {stage}` (or `pipeline`) again")
        return rec["completion_id"]

    def is_current(self, stage: str, input_hash: str) -> bool:
        """The stage completed with these inputs and every file it wrote is still there, unchanged in size."""
        rec = self.stage_record(stage)
        return bool(rec and rec.get("status") == "completed" and rec.get("input_hash") == input_hash
                    and self.stage_dir(stage).is_dir() and not self.damaged_files(stage, rec))

    def update(self, config: dict[str, Any] | None = None, stage: str | None = None,
               stage_info: dict[str, Any] | None = None) -> None:
        record = self.record()
        if config is not None:
            record.update(config=config, git_commit=git_commit(), versions=package_versions())
        if stage is not None:
            record["stages"][stage] = stage_info
        atomic_write_json(self.record_path, record)

    def record_model(self, stage: str, info: dict[str, Any]) -> None:
        """Record under ``models.<stage>`` of run.json which model the stage read (e.g. a hub snapshot's commit)."""
        record = self.record()
        record.setdefault("models", {})[stage] = info
        atomic_write_json(self.record_path, record)

    @contextmanager
    def stage_output(self, stage: str, input_hash: str, *, keep_partial: bool = False) -> Iterator[Path]:
        """Yield the stage's partial directory; on success it replaces ``<stage>/`` and run.json is updated.

        With ``keep_partial`` an existing partial directory is reused (training resumes from its checkpoints) and
        is kept after a failure; otherwise it starts empty and is removed on failure.
        """
        partial = self.partial_dir(stage)
        if partial.exists() and not keep_partial:
            shutil.rmtree(partial)
        partial.mkdir(parents=True, exist_ok=True)
        started = time.time()
        self.update(stage=stage, stage_info={"status": "running", "input_hash": input_hash, "started": started})
        try:
            yield partial
        except BaseException as err:
            if not keep_partial:
                shutil.rmtree(partial, ignore_errors=True)
            self.update(stage=stage, stage_info={"status": "failed", "input_hash": input_hash, "started": started,
                                                 "error": f"{type(err).__name__}: {err}"[:2000]})
            raise
        final = self.stage_dir(stage)
        if final.exists():
            shutil.rmtree(final)
        os.rename(partial, final)
        self.update(stage=stage, stage_info={
            "status": "completed", "input_hash": input_hash, "started": started,
            "duration_s": round(time.time() - started, 2), "completion_id": uuid.uuid4().hex,
            "files": _file_sizes(final)})
