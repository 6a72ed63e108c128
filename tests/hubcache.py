"""An offline Hugging Face hub cache of tiny random models, under the GPU recipes' own hub ids.

:func:`build_offline_hub` writes, for every entry of :data:`HUB_MODELS`, the layout huggingface_hub itself writes
(``<cache>/models--<org>--<name>/{blobs/<hash>, snapshots/<commit>/<file> -> ../../blobs/<hash>, refs/main}``), so
``snapshot_download(..., local_files_only=True)`` and ``HF_HUB_OFFLINE=1`` find it.  Each model is a 2-layer model
of its family's real architecture (``Family.tiny_config``) with a small byte-level BPE tokenizer that carries the
family's chat-markup tokens as single tokens, so the family's chat template, the dialect's grammar and the
end-of-turn stop all work.  Each snapshot also holds a ``pytorch_model.bin`` that is not a pickle at all: a stage
that loaded it would fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from slmtune.models.families import FAMILIES

# hub id -> family (gemma3 has no hub recipe: the instruction-tuned Gemma 3 270M stands in for it)
HUB_MODELS = {
    "Qwen/Qwen2.5-7B-Instruct": "qwen2",
    "meta-llama/Llama-3.2-1B-Instruct": "llama",
    "meta-llama/Llama-3.2-3B-Instruct": "llama",
    "microsoft/Phi-4-mini-instruct": "phi3",
    "google/gemma-2-9b-it": "gemma2",
    "google/gemma-3-270m-it": "gemma3",
}

# Per chat markup: special tokens (the first ones get the smallest ids), the non-special added tokens of the real
# tokenizer, and its bos / eos / pad / unk tokens (None: the real one has none).
_TOKENS = {
    "chatml": dict(special=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                  added=["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"],
                  bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk=None),
    "llama3": dict(special=["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                           "<|eot_id|>", "<|eom_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>"],
                  added=[], bos="<|begin_of_text|>", eos="<|eot_id|>", pad=None, unk=None),
    "phi3": dict(special=["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|tool|>",
                          "<|/tool|>", "<|tool_call|>", "<|/tool_call|>", "<|tool_response|>"],
                 added=[], bos="<|endoftext|>", eos="<|endoftext|>", pad="<|endoftext|>", unk=None),
    "gemma": dict(special=["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"],
                  added=[], bos="<bos>", eos="<eos>", pad="<pad>", unk="<unk>"),
}


def _corpus() -> list[str]:
    """Text the tokenizers' merges are learnt from: the built-in tool catalog (JSON and prose)."""
    root = Path(__file__).resolve().parent.parent / "data" / "tools"
    return [path.read_text(encoding="utf-8") for path in sorted(root.glob("*.json"))]


def build_tokenizer(family_name: str, vocab_size: int = 1024):
    """A byte-level BPE tokenizer (any text encodes) with ``family_name``'s markup tokens as single tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    spec = _TOKENS[FAMILIES[family_name].markup]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=spec["special"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(_corpus(), trainer)
    if spec["added"]:
        backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in spec["added"]])
    named = {f"{kind}_token": spec[kind] for kind in ("bos", "eos", "pad", "unk") if spec[kind]}
    return PreTrainedTokenizerFast(tokenizer_object=backend, **named)


def build_checkpoint(family_name: str, out: Path, seed: int = 0) -> None:
    """Save a tiny random model of ``family_name`` with its tokenizer into ``out`` (safetensors)."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    tokenizer = build_tokenizer(family_name)
    config = FAMILIES[family_name].tiny_config(vocab_size=len(tokenizer))
    for attr in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(config, attr, getattr(tokenizer, attr))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    end_of_turn = tokenizer.convert_tokens_to_ids(FAMILIES[family_name].end_of_turn)
    eos = sorted({tokenizer.eos_token_id, end_of_turn})
    GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                     pad_token_id=tokenizer.pad_token_id).save_pretrained(out)
    (out / "pytorch_model.bin").write_bytes(b"not a pickle: a stage that loads *.bin files fails here\n")


def add_snapshot(cache: Path, repo_id: str, files_dir: Path, ref: str = "main") -> str:
    """Put the files of ``files_dir`` into ``cache`` as a snapshot of ``repo_id`` the way huggingface_hub stores
    downloads (content-addressed blobs, a snapshot of relative symlinks, ``refs/<ref>``); returns its commit."""
    from huggingface_hub.file_download import repo_folder_name

    storage = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    files = sorted(p for p in files_dir.iterdir() if p.is_file())
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    commit = hashlib.sha1(json.dumps([repo_id, digests], sort_keys=True).encode()).hexdigest()
    (storage / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = storage / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in files:
        blob = storage / "blobs" / digests[path.name]
        if not blob.exists():
            blob.write_bytes(path.read_bytes())
        link = snapshot / path.name
        if not link.is_symlink():
            os.symlink(os.path.relpath(blob, snapshot), link)
    (storage / "refs").mkdir(exist_ok=True)
    (storage / "refs" / ref).write_text(commit)
    return commit


def build_offline_hub(cache: Path, models: dict[str, str] | None = None) -> dict[str, str]:
    """Fill the hub cache directory ``cache`` (what ``HF_HUB_CACHE`` names) with :data:`HUB_MODELS` (or
    ``models``: hub id -> family); returns hub id -> commit of ``refs/main``."""
    commits = {}
    for repo_id, family_name in (models or HUB_MODELS).items():
        with tempfile.TemporaryDirectory() as tmp:
            build_checkpoint(family_name, Path(tmp))
            commits[repo_id] = add_snapshot(cache, repo_id, Path(tmp))
    return commits
