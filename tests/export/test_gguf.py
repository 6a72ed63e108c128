"""GGUF export: tiny models of each supported architecture written as GGUF, read back with transformers' GGUF
loader, compared with merged/; conversions with a known mistake must fail the same check."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from slmtune.export.gguf import (
    GGUF_LOGIT_RTOL,
    GgufExportError,
    GgufVerificationError,
    check_gguf_request,
    export_gguf,
    gguf_file_name,
    verify_gguf,
    write_gguf,
)
from slmtune.export.merge import write_tokenizer
from slmtune.models.families import FAMILIES
from tests.hubcache import build_checkpoint

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object",
                                                           "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}]
CONVERSATIONS = [
    [{"role": "user", "content": "What is the weather in Oslo?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Rome, 3 days?"},
     {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "get_weather",
                                                                            "arguments": {"city": "Rome"}}}]},
     {"role": "tool", "content": '{"temp": 21}'}],
]


def _merged(tmp_path, family_name: str):
    """A tiny random checkpoint of ``family_name`` laid out like export/merged/ (family chat template), with
    non-trivial norm weights and sharp attention so that a norm or q/k mistake shows."""
    from transformers import AutoModelForCausalLM

    out = tmp_path / family_name
    out.mkdir()
    build_checkpoint(family_name, out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.normal_(0.0, 0.3)
            elif name.endswith(("q_proj.weight", "k_proj.weight")):
                param.mul_(20.0)  # sharp attention, as in a trained model: a q/k layout mistake must show
            elif name.endswith(("v_proj.weight", "o_proj.weight")):
                param.mul_(10.0)  # attention carries the residual stream (random init leaves it to the embeddings)
    model.save_pretrained(out)
    (out / "pytorch_model.bin").unlink()
    _real_pre_tokenizer(out, FAMILIES[family_name].gguf.tokenizer_pre)
    write_tokenizer(out, out, FAMILIES[family_name])
    return out


def _real_pre_tokenizer(out, pre: str) -> None:
    """Give the byte-level test tokenizer the split regex of the real one (Llama 3's, Qwen2's), which the GGUF's
    ``tokenizer.ggml.pre`` names; the test tokenizer's plain GPT-2 split would tokenise differently."""
    from tokenizers import Regex, Tokenizer, pre_tokenizers
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

    if pre not in GGUF_PRE_TOKENIZER_SPLITS:
        return
    backend = Tokenizer.from_file(str(out / "tokenizer.json"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GGUF_PRE_TOKENIZER_SPLITS[pre]), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    backend.save(str(out / "tokenizer.json"))


def _prompts(family):
    return [family.render_prompt(m, TOOLS) for m in CONVERSATIONS]


def _metadata(path):
    from gguf import GGUFReader

    fields = GGUFReader(path).fields
    return {key: fields[key].contents() for key in ("general.architecture", "tokenizer.chat_template",
                                                    "tokenizer.ggml.model", "tokenizer.ggml.eos_token_id",
                                                    "tokenizer.ggml.eot_token_id", "tokenizer.ggml.add_bos_token")}


@pytest.mark.parametrize("family_name", ["gemma3", "llama", "qwen2"])
def test_round_trip_within_tolerance_with_chat_template(tmp_path, family_name):
    family = FAMILIES[family_name]
    merged = _merged(tmp_path, family_name)
    records = export_gguf(merged, tmp_path / "gguf", ["f16", "q8_0"], family, _prompts(family))
    assert [r["type"] for r in records] == ["f16", "q8_0"]
    for record in records:
        check = record["verification"]
        assert check["passed"], check
        assert check["tokenization_matches"] and check["chat_template_matches"] and not check["config_differences"]
        assert check["relative_diff"] <= GGUF_LOGIT_RTOL[record["type"]]
        assert record["path"] == f"gguf/{gguf_file_name(record['type'])}"
    assert records[0]["tensor_types"].get("F16") and records[1]["tensor_types"].get("Q8_0")
    assert records[1]["bytes"] < records[0]["bytes"]
    meta = _metadata(tmp_path / "gguf" / gguf_file_name("q8_0"))
    assert meta["general.architecture"] == family.gguf.arch
    assert meta["tokenizer.chat_template"] == family.chat_template()
    assert "tools" in meta["tokenizer.chat_template"]
    tokenizer_json = json.loads((merged / "tokenizer.json").read_text())
    vocab = {**tokenizer_json["model"]["vocab"], **{a["content"]: a["id"] for a in tokenizer_json["added_tokens"]}}
    assert meta["tokenizer.ggml.eot_token_id"] == vocab[family.end_of_turn]
    assert meta["tokenizer.ggml.add_bos_token"] is False  # the chat template writes BOS (if any) itself
    # f16 only rounds the weights: an order of magnitude inside q8_0's error
    assert records[0]["verification"]["relative_diff"] < records[1]["verification"]["relative_diff"]


@pytest.mark.parametrize("family_name,mistake", [("gemma3", {"norm_offset": 0.0}),
                                                 ("llama", {"permute_qk": False})])
def test_a_wrong_conversion_exceeds_the_q8_0_bound(tmp_path, family_name, mistake):
    family = FAMILIES[family_name]
    merged = _merged(tmp_path, family_name)
    prompts = _prompts(family)
    wrong = dataclasses.replace(family, gguf=dataclasses.replace(family.gguf, **mistake))
    path = tmp_path / "wrong.gguf"
    write_gguf(merged, path, "q8_0", wrong)
    check = verify_gguf(path, merged, prompts, family, qtype="q8_0")
    assert not check["passed"]
    assert check["tokenization_matches"] and not check["config_differences"]  # only the weights are wrong
    assert check["relative_diff"] > 3 * GGUF_LOGIT_RTOL["q8_0"], check["relative_diff"]  # ~1: far outside
    with pytest.raises(GgufVerificationError, match="logits differ"):
        import slmtune.export.gguf as gguf_module

        original = gguf_module.write_gguf
        gguf_module.write_gguf = lambda m, p, q, f, **kw: original(m, p, q, wrong, **kw)
        try:
            export_gguf(merged, tmp_path / "gguf", ["q8_0"], family, prompts)
        finally:
            gguf_module.write_gguf = original


def test_unsupported_requests_fail_before_any_work(tmp_path):
    with pytest.raises(GgufExportError, match=r"unknown GGUF type\(s\) \['q4_k'\]"):
        check_gguf_request(["q4_k"], FAMILIES["gemma3"])
    with pytest.raises(GgufExportError, match="family 'phi3' .*Phi3Config.*no GGUF layout"):
        check_gguf_request(["f16"], FAMILIES["phi3"])
    assert check_gguf_request([], FAMILIES["phi3"]) == []
    assert check_gguf_request(["q8_0", "f16", "q8_0"], FAMILIES["gemma3"]) == ["q8_0", "f16"]
    config = FAMILIES["gemma3"].tiny_config(vocab_size=64).to_dict()
    config["query_pre_attn_scalar"] = 256
    with pytest.raises(GgufExportError, match="query_pre_attn_scalar=256"):
        check_gguf_request(["f16"], FAMILIES["gemma3"], config)
    llama = FAMILIES["llama"].tiny_config(vocab_size=64).to_dict()
    llama["rope_parameters"] = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0}
    with pytest.raises(GgufExportError, match="rope scaling 'llama3'"):
        check_gguf_request(["q8_0"], FAMILIES["llama"], llama)
    merged = tmp_path / "m"
    merged.mkdir()
    (merged / "config.json").write_text(json.dumps(config))
    with pytest.raises(GgufExportError, match="query_pre_attn_scalar"):
        write_gguf(merged, tmp_path / "x.gguf", "f16", FAMILIES["gemma3"])
    assert not list(tmp_path.glob("*.gguf*"))
