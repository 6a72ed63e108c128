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
unmerged) in fp32, and one decoding batch of eval requests is decoded greedily as one batch, with the eval's
grammars and decoder settings, on base + adapter and on the reloaded merged model, both in fp32: only the merge
differs, so the answers must be identical except where they part at a near-tie whose top-2 margins sum to at most
twice the logits check's measured difference.  The eval's own answers (decoded in the eval's precision, often bf16)
are compared with base + adapter's and reported; they fail the export only when the eval also decoded in fp32 on the
same device.  The export is built in a sibling temporary directory and moved into place only when every check
passes; an existing non-empty export is replaced only with ``overwrite=True``.

QLoRA adapters are merged into the full-precision base (loaded without quantisation), never into 4-bit weights.
"""
