"""Hub model sources: hub ids resolve to snapshots of the HF cache (offline here: no hub on this machine).

The caches are built by ``tests/hubcache.py`` in huggingface_hub's own layout; huggingface_hub's ``snapshot_download``
finds them, so these tests run the real resolution code, not a mock of it (except where a test needs to see what
would be fetched from a hub).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hubcache import HUB_MODELS, add_snapshot, build_checkpoint

from slmtune.config import compose
from slmtune.eval.decoding import Decoder, DecodeRequest
from slmtune.eval.scoring import schema_check
from slmtune.export.merge import write_and_load_tokenizer
from slmtune.models.families import FAMILIES, family_for_model_type
from slmtune.models.loading import load_base_model, load_tokenizer, resolve_model_source
from slmtune.models.sources import (
    HUB_ALLOW_PATTERNS,
    HubModelUnavailableError,
    hub_cache_dir,
    is_hub_source,
    resolve_source,
)
from slmtune.rundir import RunDir
from slmtune.stages.common import input_hash, resolved_model

TOOL = {"name": "lookup_word", "description": "Look a word up in the dictionary.",
        "parameters": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]}}
MESSAGES = [{"role": "user", "content": "What does 'serendipity' mean?"}]


def test_huggingface_hub_finds_the_offline_cache(offline_hub):
    from huggingface_hub import scan_cache_dir, snapshot_download

    cache, commits = offline_hub
    assert {repo.repo_id for repo in scan_cache_dir(cache).repos} == set(HUB_MODELS)
    for repo_id, commit in commits.items():
        path = Path(snapshot_download(repo_id, cache_dir=cache, local_files_only=True))
        assert path.name == commit and (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    # a fresh process that only sets the environment (HF_HUB_OFFLINE=1 is read when huggingface_hub is imported)
    env = {k: v for k, v in os.environ.items() if k != "HF_HOME"} | {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    code = "from huggingface_hub import snapshot_download; print(snapshot_download('google/gemma-2-9b-it'))"
    printed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert Path(printed.stdout.strip()).name == commits["google/gemma-2-9b-it"]


def test_a_hub_id_resolves_to_its_snapshot_with_the_commit(hub_offline_env):
    cache, commits = hub_offline_env
    commit = commits["Qwen/Qwen2.5-7B-Instruct"]
    source = resolve_source("Qwen/Qwen2.5-7B-Instruct")
    assert source.is_hub and source.hub_id == "Qwen/Qwen2.5-7B-Instruct" and source.revision == commit
    assert source.identity == f"Qwen/Qwen2.5-7B-Instruct@{commit}"
    assert Path(source.path) == cache / "models--Qwen--Qwen2.5-7B-Instruct" / "snapshots" / commit
    # a recipe's model section resolves the same way
    assert resolve_model_source(compose(["+recipe=qwen7b"]).model) == source


def test_hf_home_names_the_cache_when_hf_hub_cache_is_unset(offline_hub, tmp_path, monkeypatch):
    cache, commits = offline_hub
    (tmp_path / "hub").symlink_to(cache)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_cache_dir() == tmp_path / "hub"
    assert resolve_source("google/gemma-2-9b-it").revision == commits["google/gemma-2-9b-it"]


@pytest.mark.parametrize("revision", [None, "v2"])
def test_offline_miss_raises_one_clear_error(tmp_path, monkeypatch, revision):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubModelUnavailableError) as caught:
        resolve_source("microsoft/Phi-4-mini-instruct", revision=revision)
    message = str(caught.value)
    rev = revision or "main"
    assert "'microsoft/Phi-4-mini-instruct'" in message and f"revision {rev!r}" in message
    assert f"hf download microsoft/Phi-4-mini-instruct --revision {rev} --exclude '*.bin'" in message
    assert f"huggingface-cli download microsoft/Phi-4-mini-instruct --revision {rev}" in message
    assert "HF_HUB_OFFLINE" in message and str(tmp_path) in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # one error, not a chain


def test_a_recipe_without_its_model_fails_before_any_stage(tmp_path, monkeypatch):
    from slmtune.stages import pipeline

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = compose(["+recipe=llama3b", f"run.output_dir={tmp_path}"])
    with pytest.raises(HubModelUnavailableError, match="meta-llama/Llama-3.2-3B-Instruct --revision main"):
        input_hash(RunDir(tmp_path), cfg, ["model"], [])
    with pytest.raises(HubModelUnavailableError):
        pipeline.run(cfg)
    assert not RunDir(cfg.run_dir).stage_dir("data").exists()


def test_unreachable_hub_falls_back_to_the_cache_and_names_a_missing_model(hub_offline_env, monkeypatch):
    """Online mode with the hub out of reach (a closed local port): huggingface_hub's online path runs with our
    allow-patterns, then uses the cached snapshot; an uncached model gets the clear error."""
    from huggingface_hub import constants

    cache, commits = hub_offline_env
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert resolve_source("meta-llama/Llama-3.2-1B-Instruct").revision == commits["meta-llama/Llama-3.2-1B-Instruct"]
    with pytest.raises(HubModelUnavailableError, match="the hub cannot be reached") as caught:
        resolve_source("nobody/not-cached")
    assert "huggingface-cli download nobody/not-cached --revision main" in str(caught.value)


def test_revision_pins_a_tag_or_a_commit(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    old, new = tmp_path / "old", tmp_path / "new"
    build_checkpoint("llama", old, seed=0)
    build_checkpoint("llama", new, seed=1)
    repo = "slmtune-test/pinned"
    first = add_snapshot(tmp_path / "cache", repo, old, ref="v1")
    second = add_snapshot(tmp_path / "cache", repo, new)  # main
    assert first != second
    assert resolve_source(repo).revision == second
    assert resolve_source(repo, revision="v1").revision == first
    assert resolve_source(repo, revision=first).path.endswith(f"/snapshots/{first}")
    with pytest.raises(HubModelUnavailableError, match="revision '" + "0" * 40):
        resolve_source(repo, revision="0" * 40)

    # a moved branch is a new input of every stage that reads the model
    cfg = compose([f"model.source={repo}", "model.family=llama", f"run.output_dir={tmp_path}"])
    before = input_hash(RunDir(tmp_path), cfg, ["model"], [])
    (tmp_path / "cache" / "models--slmtune-test--pinned" / "refs" / "main").write_text(first)
    assert input_hash(RunDir(tmp_path), cfg, ["model"], []) != before


def test_pickled_weights_are_never_fetched_and_remote_code_only_when_trusted(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub.utils import filter_repo_objects

    seen = []
    snapshot = tmp_path / "snapshots" / ("a" * 40)
    build_checkpoint("qwen2", snapshot)

    def fake_snapshot_download(repo_id, **kwargs):
        seen.append(kwargs)
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    repo_files = ["config.json", "generation_config.json", "model-00001-of-00002.safetensors",
                  "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
                  "special_tokens_map.json", "vocab.json", "merges.txt", "pytorch_model.bin",
                  "pytorch_model-00001-of-00002.bin", "pytorch_model.bin.index.json", "training_args.bin",
                  "optimizer.pt", "consolidated.pth", "original/consolidated.00.pth", "model.ckpt", "weights.pkl",
                  "modeling_custom.py", "flax_model.msgpack", "tf_model.h5", "model.onnx"]
    resolved = resolve_source("org/model", revision="v1")
    assert resolved.revision == "a" * 40
    assert seen[0]["revision"] == "v1" and seen[0]["local_files_only"] is False
    fetched = set(filter_repo_objects(repo_files, allow_patterns=seen[0]["allow_patterns"]))
    assert fetched == {"config.json", "generation_config.json", "model-00001-of-00002.safetensors",
                       "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
                       "special_tokens_map.json", "vocab.json", "merges.txt"}
    resolve_source("org/model", trust_remote_code=True)
    fetched = set(filter_repo_objects(repo_files, allow_patterns=seen[1]["allow_patterns"]))
    assert fetched - set(filter_repo_objects(repo_files, allow_patterns=list(HUB_ALLOW_PATTERNS))) == {
        "modeling_custom.py"}


def test_a_snapshot_with_only_pickled_weights_is_refused(tmp_path, monkeypatch):
    import huggingface_hub

    files = tmp_path / "files"
    files.mkdir()
    (files / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (files / "pytorch_model.bin").write_bytes(b"pickle")
    commit = add_snapshot(tmp_path / "cache", "org/bin-only", files)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # offline, the cache may just be incomplete: say how to download it
    with pytest.raises(HubModelUnavailableError, match=f"only part of it \\(snapshot {commit} lacks \\*.safetensors"):
        resolve_source("org/bin-only")
    # online, the download is complete: the repository has no safetensors weights
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    snapshot = tmp_path / "cache" / "models--org--bin-only" / "snapshots" / commit
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kwargs: str(snapshot))
    with pytest.raises(FileNotFoundError, match=f"'org/bin-only' \\(commit {commit}\\) lacks \\*.safetensors"):
        resolve_source("org/bin-only")


def test_a_snapshot_missing_a_listed_shard_is_incomplete(hub_offline_env, tmp_path, monkeypatch):
    files = tmp_path / "files"
    files.mkdir()
    (files / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (files / "model-00001-of-00002.safetensors").write_bytes(b"x")
    (files / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    add_snapshot(tmp_path / "cache", "org/sharded", files)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(HubModelUnavailableError, match="lacks model-00002-of-00002.safetensors"):
        resolve_source("org/sharded")


def test_what_counts_as_a_hub_id(tmp_path):
    assert is_hub_source("Qwen/Qwen2.5-7B-Instruct") and is_hub_source("gpt2")
    for other in ("embedded:gemma3-270m", "random:llama", "./model", "/abs/model", "~/model", "x.gguf", None, ""):
        assert not is_hub_source(other), other
    assert not is_hub_source(str(tmp_path))


@pytest.mark.parametrize("repo_id", sorted(HUB_MODELS))
def test_every_family_works_from_its_hub_snapshot(hub_offline_env, repo_id, tmp_path):
    """Family detection, the exported chat template, the end-of-turn stop and a constrained call, per family; the
    snapshot's pytorch_model.bin (not a pickle) is never read."""
    source = resolve_source(repo_id)
    assert (Path(source.path) / "pytorch_model.bin").is_file()
    tokenizer = load_tokenizer(source)
    model = load_base_model(source, dtype=torch.float32, device=torch.device("cpu")).eval()
    family = family_for_model_type(model.config.model_type)
    assert family is FAMILIES[HUB_MODELS[repo_id]]
    dialect = family.dialect()
    _, exported = write_and_load_tokenizer(source.path, tmp_path, family, dialect)
    prompt = family.render_prompt(MESSAGES, [TOOL], dialect)
    assert exported.apply_chat_template(MESSAGES, tools=[{"type": "function", "function": TOOL}], tokenize=False,
                                        add_generation_prompt=True) == prompt
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == prompt
    decoder = Decoder(model, tokenizer, stop_strings=[family.end_of_turn], max_new_tokens=96, closing_reserve=32,
                      call_trigger=dialect.call_trigger)
    answer = decoder.generate([DecodeRequest(prompt, dialect.grammar([TOOL], allow_text=False, max_calls=1))])[0]
    parsed = dialect.parse(answer.text)
    assert not answer.truncated and parsed.error is None and len(parsed.calls) == 1, answer.text
    assert schema_check(parsed.calls, [TOOL]) is None
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_the_recipe_family_must_fit_the_checkpoint(hub_offline_env, tmp_path):
    _, commits = hub_offline_env
    run = RunDir(tmp_path)
    cfg = compose(["+recipe=qwen7b", f"run.output_dir={tmp_path}"])
    assert resolved_model(cfg, run, "train").revision == commits["Qwen/Qwen2.5-7B-Instruct"]
    assert run.record()["models"]["train"]["hub_id"] == "Qwen/Qwen2.5-7B-Instruct"
    wrong = compose(["+recipe=qwen7b", "model.family=llama", f"run.output_dir={tmp_path}"])
    with pytest.raises(ValueError, match="model.family: 'llama' does not fit Qwen/Qwen2.5-7B-Instruct@.*model_type "
                                         "'qwen2'.*its family is qwen2"):
        resolved_model(wrong, run, "eval")
    assert "eval" not in run.record()["models"]
