"""slmtune.export: merged model + adapter + card + manifest, verified by a fresh-process reload.

One tiny random Gemma 3 base (2 layers, the real Gemma tokenizer) with a LoRA adapter whose B matrices are random
(so merging changes the logits) is exported once per module; the tests inspect that export.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from slmtune.eval.decoding import Decoder, DecodeRequest
from slmtune.export.assemble import export_run
from slmtune.export.card import render_model_card
from slmtune.export.checks import ExportVerificationError
from slmtune.export.manifest import sha256_file, verify_manifest
from slmtune.export.merge import copy_adapter
from slmtune.models.families import FAMILIES
from slmtune.models.sources import resolve_source

FAMILY = FAMILIES["gemma3"]
DIALECT = FAMILY.dialect()  # hermes
MAX_NEW_TOKENS = 96
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "maxLength": 8},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city", "unit"],
            },
        },
    }
]
CONVERSATIONS = [
    [{"role": "user", "content": "What is the weather in Oslo?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How warm is it in Rome, in F?"}],
]
ROUTER = {
    "schema_version": 1,
    "model": {"name": "tiny", "source": "random:gemma3", "adapter_sha256": None},
    "signals": ["seq_logprob"],
    "calibrator": {"type": "temperature", "params": {"a": 2.0, "b": -1.0}},
    "operating_points": [
        {"target_precision": 0.9, "threshold": 0.3, "coverage": 0.7, "precision": 0.91},
        {"target_precision": 0.99, "threshold": None, "coverage": 0.0, "precision": None},
    ],
    "metrics": {k: {"value": 0.1, "ci_low": 0.05, "ci_high": 0.15} for k in ("auroc", "ece", "brier", "aurc")},
    "cascade": None,
    "fitted_on": {"suites": ["synthetic"], "n": 100, "n_positive": 60, "cross_fit_folds": 5, "seed": 0},
}
EVAL_REPORT = {
    "device": "cpu",
    "call_shape": "free",
    "call_decision": {"tuned-constrained": {"call_requests": 8, "call_rate": 0.75, "no_call_requests": 2,
                                            "decline_rate": 0.5, "balanced_accuracy": 0.625}},
    "dtype": "torch.float32",
    "suites": {
        "synthetic": {
            "n": 10,
            "variants": {
                "base-constrained": {"ast_accuracy": 0.4, "per_category": {"simple": 0.5, "multiple": 0.3},
                                     "schema_validity_rate": 1.0, "latency_p50_s": 0.12, "cps_usd": None},
                "tuned-constrained": {"ast_accuracy": 0.8, "per_category": {"simple": 0.9, "irrelevance": 0.7},
                                      "schema_validity_rate": 1.0, "latency_p50_s": 0.13, "cps_usd": 0.0001},
            },
        }
    },
}


def _grammar() -> str:
    return DIALECT.grammar(TOOLS, allow_text=False, max_calls=1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = Path(resolve_source("embedded:gemma3-270m").path)
    root = tmp_path_factory.mktemp("export")
    base = root / "base"
    base.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy2(source / name, base / name)
    source_config = json.loads((source / "config.json").read_text())
    config = FAMILY.tiny_config(vocab_size=source_config["vocab_size"])
    for attr in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(config, attr, source_config[attr])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(base)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=list(FAMILY.lora_target_modules), init_lora_weights=False,
                      task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lora).eval()
    peft_model.save_pretrained(root / "adapter")

    # What the eval stage would have produced: constrained greedy answers of base + adapter (unmerged).
    tokenizer = AutoTokenizer.from_pretrained(base)
    prompts = [FAMILY.render_prompt(m, TOOLS, DIALECT) for m in CONVERSATIONS]
    decoder = Decoder(peft_model, tokenizer, stop_strings=[FAMILY.end_of_turn], max_new_tokens=MAX_NEW_TOKENS)
    generations = decoder.generate([DecodeRequest(p, _grammar()) for p in prompts], batch_size=len(prompts))
    smoke = [(p, _grammar(), g.text) for p, g in zip(prompts, generations)]
    ids = torch.tensor([tokenizer(prompts[0], add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        tuned_logits = peft_model(input_ids=ids).logits[0, -1]
        with peft_model.disable_adapter():
            base_logits = peft_model(input_ids=ids).logits[0, -1]
    lora_effect = float((tuned_logits - base_logits).abs().max())
    del peft_model, model, decoder

    router_path = root / "router.json"
    router_path.write_text(json.dumps(ROUTER))
    out = root / "out"
    out.mkdir()
    (out / "old.txt").write_text("a previous export")
    kwargs = dict(base_dir=base, base_identity="random:gemma3:test", adapter_dir=root / "adapter", out_dir=out,
                  family=FAMILY, dialect=DIALECT, config={"export": {"logits_atol": 1e-3}}, router_json=router_path,
                  data_stats={"num_samples": 12, "per_category": {"simple": 12}}, eval_report=EVAL_REPORT,
                  smoke=smoke, model_name="tiny-test", atol=1e-3, max_shard_size="40MB",
                  max_new_tokens=MAX_NEW_TOKENS, device="cpu", git_commit="0" * 40, eval_dtype="torch.float32",
                  eval_device="cpu", gguf=["q8_0"])
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        export_run(**kwargs)
    assert (out / "old.txt").is_file()
    result = export_run(**kwargs, overwrite=True)
    return SimpleNamespace(root=root, base=base, out=out, result=result, smoke=smoke, lora_effect=lora_effect)


def test_export_layout_and_self_verification(exported):
    out = exported.out
    assert exported.lora_effect > 1e-2, "the test adapter must change the logits"
    assert not (out / "old.txt").exists()
    for rel in ("merged/config.json", "merged/generation_config.json", "merged/chat_template.jinja",
                "merged/tokenizer.json", "adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                "README.md", "router.json", "verification.json", "manifest.json"):
        assert (out / rel).is_file(), rel
    shards = sorted(p.name for p in (out / "merged").glob("*.safetensors"))
    assert len(shards) > 1 and (out / "merged" / "model.safetensors.index.json").is_file()  # sharded at 40MB
    assert not list(out.rglob("*.bin"))

    verification = json.loads((out / "verification.json").read_text())
    print("verification.json:", json.dumps(verification, indent=2))
    assert verification == exported.result["verification"]
    assert verification["passed"]
    logits = verification["logits"]
    assert logits["passed"] and logits["max_abs_logit_diff"] <= logits["atol"] == 1e-3
    assert logits["prompts"] == 2 and not logits["fresh_process"]["slmtune_imported"]
    assert logits["tokenization_matches_saved_tokenizer"] is True
    answers = verification["answers"]
    assert answers == {**answers, "n": 2, "matches": 2, "passed": True, "compute_dtype": "float32"}
    assert answers["tie_margin"] == 2 * logits["max_abs_logit_diff"] > 0  # derived from the measured difference
    # the fixture's "eval" decoded base + adapter in fp32 on this CPU: its answers are checked, and reproduced
    assert answers["eval_answers"] == {**answers["eval_answers"], "dtype": "float32", "checked": True,
                                       "passed": True, "reproduced": 2, "n": 2, "differing": []}

    generation = json.loads((out / "merged" / "generation_config.json").read_text())
    assert verification["tokenizer"]["end_of_turn_id"] in generation["eos_token_id"]

    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest) >= {"files", "base_model", "slmtune_version", "git_commit", "config"}
    assert manifest["base_model"]["identity"] == "random:gemma3:test"
    assert "manifest.json" not in manifest["files"] and "README.md" in manifest["files"]
    assert verify_manifest(out) == []

    card = (out / "README.md").read_text()
    assert "vllm serve ./merged --enable-auto-tool-choice --tool-call-parser hermes" in card
    assert "sglang.launch_server --model-path ./merged --tool-call-parser hermes" in card  # the dialect's SGLang name
    assert "--enable-lora --lora-modules slmtune=./adapter" in card
    assert "--generation-config ./merged" in card  # the LoRA server stops at end-of-turn only with it
    assert "--structured-outputs-config '{\"backend\": \"xgrammar\"}'" in card
    assert "--grammar-backend xgrammar" in card
    assert "| irrelevance | n/a | 70.0% | n/a |" in card and "| simple | 50.0% | 90.0% | +40.0 pp |" in card
    assert "answer shape `free`" in card and "| tuned-constrained | 75.0% (8) | 50.0% (2) | 62.5% |" in card
    assert "on the reloaded merged model, both in float32 on cpu: 2/2 identical answers, 0 parting" in card
    assert "(float32 on cpu) reproduced by base + adapter here: 2/2 (checked: same dtype and device)" in card


def test_gguf_written_verified_hashed_and_carded(exported):
    """export_run(gguf=["q8_0"]): the merged model as GGUF under gguf/, read back with transformers' GGUF loader on
    the same prompts as the logits check, hashed in the manifest, named in the card."""
    from gguf import GGUFReader

    out = exported.out
    path = out / "gguf" / "model-q8_0.gguf"
    assert path.is_file() and not list((out / "gguf").glob(".*"))
    (record,) = exported.result["verification"]["gguf"]
    assert record["path"] == "gguf/model-q8_0.gguf" and record["bytes"] == path.stat().st_size
    check = record["verification"]
    assert check["passed"] and check["prompts"] == 2 and check["tokenization_matches"]
    assert check["chat_template_matches"] and check["config_differences"] == []
    assert check["relative_diff"] <= check["rtol"] and check["top1_agreement"] >= check["min_top1_agreement"]
    fields = GGUFReader(path).fields
    assert fields["tokenizer.chat_template"].contents() == (out / "merged" / "chat_template.jinja").read_text()
    assert fields["tokenizer.ggml.model"].contents() == "llama"  # the Gemma sentencepiece vocabulary
    assert len(fields["tokenizer.ggml.tokens"].data) == 262144
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"]["gguf/model-q8_0.gguf"] == sha256_file(path)
    card = (out / "README.md").read_text()
    assert "`gguf/model-q8_0.gguf` (q8_0" in card and "llama-server -m ./gguf/model-q8_0.gguf --jinja" in card


def test_a_family_without_gguf_layout_fails_before_any_work(exported, tmp_path):
    from slmtune.export.gguf import GgufExportError

    with pytest.raises(GgufExportError, match="family 'phi3'"):
        export_run(base_dir=exported.base, base_identity="x", adapter_dir=exported.root / "adapter",
                   out_dir=tmp_path / "out", family=FAMILIES["phi3"], gguf=["f16"])
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.build-*"))


def test_plain_transformers_template_decode_and_parse(exported):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = exported.out / "merged"
    tokenizer = AutoTokenizer.from_pretrained(merged)
    model = AutoModelForCausalLM.from_pretrained(merged).eval()
    assert tokenizer.chat_template == (merged / "chat_template.jinja").read_text() == FAMILY.chat_template(DIALECT)
    for messages in CONVERSATIONS:
        rendered = tokenizer.apply_chat_template(messages, tools=TOOLS, add_generation_prompt=True, tokenize=False)
        assert rendered == FAMILY.render_prompt(messages, TOOLS, DIALECT)

    rendered = tokenizer.apply_chat_template(CONVERSATIONS[0], tools=TOOLS, add_generation_prompt=True,
                                             tokenize=False)
    decoder = Decoder(model, tokenizer, stop_strings=[FAMILY.end_of_turn], max_new_tokens=MAX_NEW_TOKENS)
    generation = decoder.generate([DecodeRequest(rendered, _grammar())])[0]
    assert not generation.truncated
    assert generation.text == exported.smoke[0][2]  # what base + adapter answered
    parsed = DIALECT.parse(generation.text)
    assert parsed.ok and len(parsed.calls) == 1, generation.text
    call = parsed.calls[0]
    assert call["name"] == "get_weather"
    assert set(call["arguments"]) == {"city", "unit"} and call["arguments"]["unit"] in ("celsius", "fahrenheit")


def test_tampering_is_named(exported, tmp_path):
    copy = tmp_path / "export"
    shutil.copytree(exported.out, copy)
    assert verify_manifest(copy) == []
    config = copy / "merged" / "config.json"
    config.write_text(config.read_text().replace("\n", "\n ", 1))
    (copy / "adapter" / "adapter_config.json").unlink()
    (copy / "notes.txt").write_text("added later")
    assert sorted(verify_manifest(copy)) == [
        "adapter/adapter_config.json: missing",
        "merged/config.json: sha256 mismatch",
        "notes.txt: unexpected file (not in manifest)",
    ]
    (copy / "manifest.json").write_text("{not json")
    assert verify_manifest(copy)[0].startswith("manifest.json: unreadable")
    (copy / "manifest.json").unlink()
    assert verify_manifest(copy)[0].startswith("manifest.json: missing")


def test_copy_adapter_refuses_pickles(exported, tmp_path):
    adapter = tmp_path / "adapter"
    shutil.copytree(exported.root / "adapter", adapter)
    info = copy_adapter(adapter, tmp_path / "copy")
    assert info["r"] == 4 and info["max_lora_rank"] == 8
    (adapter / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(ValueError, match="pickled"):
        copy_adapter(adapter, tmp_path / "copy2")


def test_model_card_tolerates_missing_inputs():
    card = render_model_card({"vllm_tool_parser": "phi4_mini_json", "dialect": "phi4_mini_json",
                              "eval_report": {"suites": {"s": {"variants": {"tuned-constrained": {}}}}}})
    assert "n/a" in card and "--tool-call-parser phi4_mini_json" in card
    assert "no SGLang tool parser" in card
    assert render_model_card({}).startswith("# slmtune model")


def test_verification_failure_raises_and_keeps_nothing(exported, tmp_path, monkeypatch):
    import slmtune.export.assemble as assemble

    def fake_tokenizer(base_dir, out_dir, family, dialect=None, **_):
        (Path(out_dir) / "tokenizer.json").write_text("{}")
        return {"end_of_turn_id": 106}, None

    monkeypatch.setattr(assemble, "write_and_load_tokenizer", fake_tokenizer)
    monkeypatch.setattr(assemble, "verify_reload", lambda *a, **k: {
        "max_abs_logit_diff": 0.0, "atol": 1e-3, "passed": True, "prompts": 1,
        "fresh_process": {"slmtune_imported": False}})
    monkeypatch.setattr(assemble, "verify_answers", lambda *a, **k: {
        "n": 1, "matches": 0, "passed": False, "mismatches": [{"index": 0, "reference": "x", "merged": "y"}]})
    out = tmp_path / "bad"
    prompt, grammar, _ = exported.smoke[0]
    with pytest.raises(ExportVerificationError, match="answers of the merged model differ") as info:
        export_run(base_dir=exported.base, base_identity="random:gemma3:test", adapter_dir=exported.root / "adapter",
                   out_dir=out, family=FAMILY, smoke=[(prompt, grammar, "x")], device="cpu", git_commit="")
    assert not out.exists()
    assert (tmp_path / ".bad.failed" / "verification.json").is_file()
    assert not (tmp_path / ".bad.failed" / "manifest.json").exists()
    assert info.value.result["logits"]["passed"] and not info.value.result["answers"]["passed"]


def test_re_decoded_answer_departing_at_a_near_tie_is_reported_not_failed():
    from slmtune.eval.decoding import Generation, TokenRecord
    from slmtune.export.checks import _margin_at_divergence

    def generation(pieces: list[tuple[str, bool, float | None]]) -> Generation:
        tokens, offset = [], 0
        for piece, forced, margin in pieces:
            tokens.append(TokenRecord(offset, offset + len(piece), forced, None, None, margin=margin))
            offset += len(piece)
        return Generation("".join(p for p, _, _ in pieces), len(pieces), 0, False, 0.0, 1, tokens)

    got = generation([("<a>", True, None), ("x", False, 3.0), ("1", False, 0.0004), ("2", False, 5.0)])
    assert _margin_at_divergence(got, "<a>x92") == 0.0004     # departs at the near-tie "1"
    assert _margin_at_divergence(got, "<a>y12") == 3.0        # departs at a confident choice
    assert _margin_at_divergence(got, "<b>x12") is None       # inside forced text
    assert _margin_at_divergence(got, "<a>x12 and more") is None  # stopped early, stop choice not recorded
    got.stop_margin = 0.25
    assert _margin_at_divergence(got, "<a>x12 and more") == 0.25  # stopped early: the stop token's choice
    assert _margin_at_divergence(got, "<a>x1") == 5.0         # went on: the token past the expected end


def _answers_check(exported, merged_dir, **kwargs):
    from transformers import AutoTokenizer

    from slmtune.export.checks import verify_answers

    result = verify_answers(merged_dir, exported.base, exported.root / "adapter",
                            [(p, g) for p, g, _ in exported.smoke], stop_strings=[FAMILY.end_of_turn],
                            max_new_tokens=MAX_NEW_TOKENS, batch_size=len(exported.smoke), device="cpu",
                            tokenizer=AutoTokenizer.from_pretrained(exported.out / "merged"), **kwargs)
    return result


def test_answers_check_fails_a_merge_with_a_wrong_lora_scale(exported, tmp_path):
    """A merge bug (the LoRA delta added at twice its scale) changes answers beyond any near-tie: the answers check
    fails on its own, with the tolerance the logits check would have allowed at most (2 x atol)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from slmtune.export.checks import answers_tie_margin

    base = AutoModelForCausalLM.from_pretrained(exported.base)
    model = PeftModel.from_pretrained(base, str(exported.root / "adapter"))
    for module in model.modules():
        if isinstance(getattr(module, "scaling", None), dict):
            module.scaling = {name: 2 * value for name, value in module.scaling.items()}
    model.merge_and_unload().save_pretrained(tmp_path / "merged")
    result = _answers_check(exported, tmp_path / "merged", tie_margin=answers_tie_margin(1.0, 1e-3))
    assert result["tie_margin"] == 2e-3
    assert not result["passed"] and result["mismatches"] and not result["near_ties"]
    assert all(min(m for m in e["margins"] if m is not None) > 2e-3 for e in result["mismatches"])


def test_eval_answers_in_another_dtype_are_reported_and_checked_only_in_the_same_dtype(exported):
    """The gemma270m failure on a bf16 CPU: the eval's bf16 answers differ from fp32 ones at bf16-resolution
    near-ties.  Base + adapter and merged agree (the merge is right); the differing eval answer is reported, and
    fails the check only when the eval claims to have decoded in fp32 on this device."""
    eval_texts = [exported.smoke[0][2], exported.smoke[1][2] + " (as decoded in bf16)"]
    bf16 = _answers_check(exported, exported.out / "merged", tie_margin=1e-4, eval_texts=eval_texts,
                          eval_dtype="torch.bfloat16", eval_device="cpu")
    assert bf16["passed"] and bf16["matches"] == 2
    assert bf16["eval_answers"] == {**bf16["eval_answers"], "checked": False, "passed": True, "reproduced": 1}
    assert [d["index"] for d in bf16["eval_answers"]["differing"]] == [1]
    fp32 = _answers_check(exported, exported.out / "merged", tie_margin=1e-4, eval_texts=eval_texts,
                          eval_dtype="float32", eval_device="cpu")
    assert not fp32["passed"] and fp32["matches"] == 2 and not fp32["mismatches"]
    assert fp32["eval_answers"] == {**fp32["eval_answers"], "checked": True, "passed": False, "reproduced": 1}
