"""export_run: build an export in a sibling temporary directory and move it into place once every check passes."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slmtune.export.card import render_model_card
from slmtune.export.checks import (
    DEFAULT_ATOL,
    ExportVerificationError,
    answers_tie_margin,
    default_check_prompt,
    verify_answers,
    verify_reload,
)
from slmtune.export.gguf import GgufVerificationError, check_gguf_request, export_gguf
from slmtune.export.manifest import VERIFICATION, write_manifest
from slmtune.export.merge import (
    check_adapter_dir,
    copy_adapter,
    merge_adapter,
    resolve_family,
    write_and_load_tokenizer,
)
from slmtune.progress import Progress
from slmtune.rundir import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


# orchestration


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir}: an export already exists there; refusing to overwrite it "
                              "(pass overwrite=True / export.overwrite=true to replace it)")


def export_run(*, base_dir: Path | str, base_identity: str, adapter_dir: Path | str, out_dir: Path | str, family,
               dialect=None, config: dict | None = None, router_json: Path | str | None = None,
               data_stats: dict | None = None, eval_report: dict | None = None,
               smoke: Sequence[tuple[str, str | None, str]] = (), model_name: str | None = None,
               atol: float | None = None, max_shard_size: str | int = "2GB", dtype: Any = None,
               base_revision: str | None = None, base_hub_id: str | None = None, verify_prompts: int = 4,
               max_new_tokens: int = 192, eval_dtype: Any = None, eval_device: str | None = None,
               decoder_options: dict | None = None,
               device: str | None = None, overwrite: bool = False,
               slmtune_version: str | None = None, git_commit: str | None = None,
               trust_remote_code: bool = False, gguf: Sequence[str] = ()) -> dict[str, Any]:
    """Build, verify and publish an export in ``out_dir`` (layout in the module docstring).

    ``smoke``: one batch of eval requests (see :func:`slmtune.eval.decoding.decode_batches`) in decoding order as
    ``(prompt, grammar_or_None, eval_raw_answer)``; the first ``verify_prompts`` prompts feed the logits check (a
    built-in prompt when there are none).  ``atol``: logits tolerance (``None``: :data:`DEFAULT_ATOL` for the merged
    dtype).  The batch is then decoded as one batch on base + adapter and on the merged model, both in fp32, with
    ``max_new_tokens`` and ``decoder_options`` (pass the eval's settings: greedy answers can flip between batches),
    and the answers must agree up to near-ties bounded by :func:`answers_tie_margin` of the logits check's measured
    difference (see :func:`verify_answers`); the eval's own answers, decoded in ``eval_dtype`` on ``eval_device``,
    are reported beside them and checked only when those are fp32 and this device.  The export is assembled in a
    sibling temporary directory; when a check fails it is kept as ``.<name>.failed`` for inspection and
    :class:`ExportVerificationError` is raised; otherwise it replaces ``out_dir`` (which must be absent or empty
    unless ``overwrite``).  ``base_hub_id``: the hub id of a base resolved from the hub (``base_revision`` its
    commit), which the exported adapter names as its base.
    ``gguf``: GGUF types (:data:`slmtune.export.gguf.GGUF_TYPES`) written under ``gguf/`` once the other checks
    pass, each read back with transformers' GGUF loader and compared with ``merged/`` on the same prompts
    (:func:`slmtune.export.gguf.export_gguf`); a family or config GGUF cannot store fails before any work.
    Returns ``{"out_dir", "verification", "manifest"}``.
    """
    import slmtune
    from slmtune.router import Router
    from slmtune.rundir import git_commit as current_git_commit

    family = resolve_family(family)
    dialect = family.dialect(dialect)
    base_dir, adapter_dir, out_dir = Path(base_dir), Path(adapter_dir), Path(out_dir)
    if not (base_dir / "config.json").is_file():
        raise FileNotFoundError(f"{base_dir}: base model directory without config.json")
    check_adapter_dir(adapter_dir)
    gguf = check_gguf_request(gguf, family, json.loads((base_dir / "config.json").read_text(encoding="utf-8")))
    router = None
    if router_json is not None:
        router_json = Path(router_json)
        Router.load(router_json)  # validates (RouterFileError names the file and the field)
        router = json.loads(router_json.read_text(encoding="utf-8"))
    _prepare_out_dir(out_dir, overwrite)
    smoke = list(smoke)
    slmtune_version = slmtune_version or slmtune.__version__
    git_commit = git_commit if git_commit is not None else current_git_commit()

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.build-", dir=out_dir.parent))
    progress = Progress("export: build and checks", total=5 if gguf else 4, unit="steps")
    try:
        started = time.perf_counter()
        log.info("export: merging %s into %s", adapter_dir, base_dir)
        merge = merge_adapter(base_dir, adapter_dir, build / "merged", dtype=dtype, max_shard_size=max_shard_size,
                              trust_remote_code=trust_remote_code)
        tok, tokenizer = write_and_load_tokenizer(base_dir, build / "merged", family, dialect,
                                          trust_remote_code=trust_remote_code)
        adapter = copy_adapter(adapter_dir, build / "adapter", base_model=base_hub_id, revision=base_revision)
        if router_json is not None:
            shutil.copy2(router_json, build / "router.json")
        progress.update(1, note="merged")

        tolerance = atol if atol is not None else DEFAULT_ATOL.get(merge["dtype"], 1e-3)
        prompts = [p for p, _, _ in smoke[:verify_prompts]] or [default_check_prompt(family, dialect)]
        log.info("export: reloading merged/ in a fresh process and comparing logits on %d prompts", len(prompts))
        logits = verify_reload(build / "merged", base_dir, adapter_dir, prompts, atol=tolerance, device=device,
                               tokenizer=tokenizer, trust_remote_code=trust_remote_code)
        progress.update(1, note="reload + logits checked")
        if smoke:
            log.info("export: decoding %d eval requests on base + adapter and on the merged model", len(smoke))
            answers = verify_answers(build / "merged", base_dir, adapter_dir, [(p, g) for p, g, _ in smoke],
                                     stop_strings=[family.end_of_turn], max_new_tokens=max_new_tokens,
                                     batch_size=len(smoke), device=device, tokenizer=tokenizer,
                                     decoder_options=decoder_options,
                                     tie_margin=answers_tie_margin(logits["max_abs_logit_diff"], tolerance),
                                     eval_texts=[e for _, _, e in smoke], eval_dtype=eval_dtype,
                                     eval_device=eval_device, trust_remote_code=trust_remote_code)
        else:
            answers = {"n": 0, "matches": 0, "passed": True, "mismatches": [],
                       "skipped": "no eval smoke requests were given"}
        progress.update(1, note="answers checked")
        passed = bool(logits["passed"] and answers["passed"])
        gguf_records: list[dict[str, Any]] = []
        gguf_error = None
        if gguf and passed:
            try:
                gguf_records = export_gguf(build / "merged", build / "gguf", gguf, family, prompts, name=model_name)
            except GgufVerificationError as err:
                gguf_records, gguf_error, passed = err.result, str(err), False
            progress.update(1, note="GGUF written and checked")
        verification = {
            "passed": passed,
            "logits": logits,
            "answers": answers,
            **({"gguf": gguf_records} if gguf else {}),
            "merge": merge,
            "tokenizer": tok,
            "dialect": dialect.name,
            "vllm_tool_parser": dialect.vllm_tool_parser,
            "seconds": round(time.perf_counter() - started, 2),
        }
        atomic_write_json(build / VERIFICATION, verification)
        card = render_model_card({
            "model_name": model_name, "base_model": base_identity, "base_revision": base_revision,
            "family": family.name, "dialect": dialect.name, "vllm_tool_parser": dialect.vllm_tool_parser,
            "end_of_turn": family.end_of_turn, "merged_dtype": merge["dtype"], "data_stats": data_stats,
            "eval_report": eval_report, "router": router, "adapter": adapter, "verification": verification,
            "slmtune_version": slmtune_version, "git_commit": git_commit})
        atomic_write_text(build / "README.md", card)
        if not passed:
            failed = out_dir.parent / f".{out_dir.name}.failed"
            if failed.exists():
                shutil.rmtree(failed)
            os.rename(build, failed)
            reasons = []
            if logits["fresh_process"]["slmtune_imported"]:
                reasons.append("the fresh reload process imported slmtune")
            if logits.get("tokenization_matches_saved_tokenizer") is False:
                reasons.append("the reloaded tokenizer tokenises the prompts differently from the saved one")
            if logits["max_abs_logit_diff"] > tolerance:
                reasons.append(f"logits differ by {logits['max_abs_logit_diff']:.3g} > atol {tolerance:g}")
            if answers["mismatches"]:
                reasons.append(f"{len(answers['mismatches'])}/{answers['n']} answers of the merged model differ from "
                               f"base + adapter's (first: request {answers['mismatches'][0]['index']})")
            if not (answers.get("eval_answers") or {}).get("passed", True):
                differing = [d for d in answers["eval_answers"]["differing"] if not d["near_tie"]]
                reasons.append(f"base + adapter did not reproduce {len(differing)}/{answers['n']} of the eval's "
                               f"answers (first: request {differing[0]['index']})")
            if gguf_error:
                reasons.append(gguf_error)
            raise ExportVerificationError(f"export verification failed: {'; '.join(reasons)}; the failed export is "
                                          f"kept in {failed} (see its {VERIFICATION})", verification)
        base_model = {"identity": base_identity, "revision": base_revision, "hub_id": base_hub_id,
                      "family": family.name, "dtype": merge["dtype"]}
        manifest = write_manifest(build, base_model=base_model, slmtune_version=slmtune_version,
                                  git_commit=git_commit, config=config)
        _prepare_out_dir(out_dir, overwrite)  # nothing appeared meanwhile
        if out_dir.is_dir():
            if any(out_dir.iterdir()):
                shutil.rmtree(out_dir)
            else:
                out_dir.rmdir()
        os.rename(build, out_dir)
        progress.update(1, note="manifest written")
    except BaseException:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
        raise
    finally:
        progress.close()
    log.info("export: %s verified (max |Δ logit| %.3g, answers %d/%d) -> %s", "passed",
             logits["max_abs_logit_diff"], answers["matches"], answers["n"], out_dir)
    return {"out_dir": str(out_dir), "verification": verification, "manifest": manifest}
