"""Export: what the serving team receives (DESIGN §7), and the checks that prove it is what we evaluated.

Layout written by :func:`slmtune.export.assemble.export_run`::

    <out>/merged/          safetensors (sharded past ``max_shard_size``) in the base model's dtype, config.json,
                           tokenizer whose chat template renders the dialect with tools (also chat_template.jinja),
                           generation_config.json whose eos_token_id includes the end-of-turn token
    <out>/adapter/         PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors) for vLLM --enable-lora
    <out>/README.md        model card: base, data, eval table by category, router, dialect, vLLM/SGLang commands
    <out>/router.json      copied from calibrate (when given)
    <out>/verification.json  reload / logits / answers checks
    <out>/manifest.json    sha256 of every other file, base model identity, slmtune version, git commit, config

Self-verification (:func:`verify_reload`, :func:`verify_answers`): ``merged/`` is reloaded with plain transformers in a
fresh interpreter that never imports slmtune, its last-position logits are compared with base + adapter (PEFT,
unmerged) in fp32, and one decoding batch of eval requests is re-decoded greedily as one batch on the reloaded
merged model with the same grammars and compared with the eval's raw answers (the same batch, so only the merge
differs: an answer may flip only at a near-tie within twice the logits tolerance).  The export is built in a sibling
temporary directory and moved into place only when every check passes; an existing non-empty export is replaced
only with ``overwrite=True``.

QLoRA adapters are merged into the full-precision base (loaded without quantisation), never into 4-bit weights.
"""
