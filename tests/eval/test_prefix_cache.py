"""The decoder's prefix cache (``Decoder(prefix_cache=True)``): a single prompt that extends the previous one
continues its KV cache and prefills only the new tokens, with the answers and recorded log-probs of a full prefill;
any other prompt, another model object or another adapter state is prefilled in full.

Tiny random models of two architectures, both with the Gemma tokenizer (as every ``random:`` model) and so Gemma's
prompt format: Gemma 3 with a sliding-window layer whose window (8 tokens) the prompts overrun, beside a
full-attention layer, and Qwen2 (full attention only)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

from slmtune.eval.decoding import Decoder, DecodeRequest, Generation
from slmtune.models.families import FAMILIES
from slmtune.models.sources import resolve_source

TOOL = {"name": "lookup_word", "description": "Look a word up in the dictionary.",
        "parameters": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]}}
ASK = [{"role": "user", "content": "What does 'serendipity' mean?"}]
CALLED = ASK + [{"role": "assistant", "tool_calls": [{"name": "lookup_word", "arguments": {"word": "serendipity"}}]},
                {"role": "tool", "name": "lookup_word", "content": '{"meaning": "a happy accident"}'}]
ANSWERED = CALLED + [{"role": "assistant", "content": "It means a happy accident."},
                     {"role": "user", "content": "And 'ephemeral'?"}]
OTHER = [{"role": "user", "content": "Spell 'rhythm' backwards."}]


FAMILY = FAMILIES["gemma3"]  # the prompt format of the Gemma tokenizer


def tiny_model(architecture: str):
    """A seeded tiny random model of ``architecture`` (Gemma 3: an 8-token sliding-window layer, then a full
    one)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path = Path(resolve_source(f"random:{architecture}").path)
    config = AutoConfig.from_pretrained(path)
    if architecture == "gemma3":
        config.sliding_window = 8
        config.layer_types = ["sliding_attention", "full_attention"]
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval(), AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module", params=["gemma3", "qwen2"])
def tiny(request):
    model, tokenizer = tiny_model(request.param)
    return request.param, model, tokenizer


_COMPILED: dict[int, Decoder] = {}  # per tokenizer: a decoder whose compiled grammars the tests' decoders share


def decoder_for(model, tokenizer, prefix_cache: bool) -> Decoder:
    if id(tokenizer) not in _COMPILED:
        _COMPILED[id(tokenizer)] = Decoder(model, tokenizer, stop_strings=[FAMILY.end_of_turn], max_new_tokens=12)
    return _COMPILED[id(tokenizer)].with_model(model, prefix_cache=prefix_cache)


def request(messages) -> DecodeRequest:
    dialect = FAMILY.dialect()
    return DecodeRequest(FAMILY.render_prompt(messages, [TOOL], dialect), dialect.grammar([TOOL], allow_text=True))


def decode_each(decoder: Decoder, requests: list[DecodeRequest]) -> list[Generation]:
    return [decoder.generate([r], batch_size=1)[0] for r in requests]


def assert_same(got: list[Generation], want: list[Generation], tolerance: float, *, until_tie: bool = False) -> None:
    """The same tokens with log-probs and margins within ``tolerance``; ``until_tie``: up to the first token that
    ``want`` chose from an exact tie (margin 0), which rounding may break either way."""
    for a, b in zip(got, want, strict=True):
        end = next((k for k, t in enumerate(b.tokens) if until_tie and t.margin == 0.0), len(b.tokens))
        if end == len(b.tokens):
            assert a.text == b.text
        assert [t.token_id for t in a.tokens][:end] == [t.token_id for t in b.tokens][:end]
        for x, y in zip(a.tokens[:end], b.tokens[:end]):
            for u, v in ((x.logprob, y.logprob), (x.raw_logprob, y.raw_logprob), (x.margin, y.margin)):
                assert (u is None) == (v is None)
                if u is not None:
                    assert math.isclose(u, v, abs_tol=tolerance), (u, v)


CONVERSATION = [ASK, CALLED, ANSWERED, ANSWERED, OTHER, ASK]  # 3 extensions (one repeats), then 2 fresh prompts


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_reused_prefixes_give_the_answers_and_logprobs_of_full_prefills(tiny, dtype):
    architecture, model, tokenizer = tiny
    model = copy.deepcopy(model).to(dtype)
    requests = [request(messages) for messages in CONVERSATION]
    ids = [tokenizer(r.prompt, add_special_tokens=False)["input_ids"] for r in requests]
    assert all(longer[: len(shorter)] == shorter for shorter, longer in zip(ids[:3], ids[1:4]))  # extensions
    assert len(ids[0]) > 8  # the sliding window is overrun before the first reuse

    want = decode_each(decoder_for(model, tokenizer, prefix_cache=False), requests)
    cached = decoder_for(model, tokenizer, prefix_cache=True)
    got = decode_each(cached, requests)

    # fp32: equal up to the rounding of chunked attention sums. bf16: the same tokens until the full prefill's
    # answer meets an exact tie (a random model's near-flat logits have them; bf16 rounding breaks a tie either way,
    # as it does between batch compositions), log-probs within bf16 noise
    if dtype == torch.float32:
        assert_same(got, want, tolerance=1e-4)
    else:
        assert_same(got, want, tolerance=0.02, until_tie=True)
    stats = cached.prefix_cache_stats.to_dict()
    assert stats["hits"] == 3 and stats["misses"] == 3 and stats["hit_rate"] == 0.5
    assert stats["reused_tokens"] == len(ids[0]) + len(ids[1]) + len(ids[2])
    assert stats["prefilled_tokens"] == len(ids[0]) + (len(ids[2]) - len(ids[0])) + len(ids[4]) + len(ids[5])


def test_batches_of_several_requests_never_use_the_cache(tiny):
    architecture, model, tokenizer = tiny
    requests = [request(ASK), request(CALLED)]
    cached = decoder_for(model, tokenizer, prefix_cache=True)
    got = cached.generate(requests, batch_size=2)
    want = decoder_for(model, tokenizer, prefix_cache=False).generate(requests, batch_size=2)
    assert [g.text for g in got] == [g.text for g in want]
    assert cached.prefix_cache_stats.to_dict()["hits"] + cached.prefix_cache_stats.to_dict()["misses"] == 0


def test_another_model_object_never_continues_a_kept_cache(tiny):
    architecture, model, tokenizer = tiny
    other = tiny_model(architecture)[0]
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.mul_(1.5)  # other weights: its answers on the same prompts differ
    first, second = request(ASK), request(CALLED)
    want = decode_each(decoder_for(other, tokenizer, prefix_cache=False), [second])
    assert decode_each(decoder_for(model, tokenizer, prefix_cache=False), [second])[0].text != want[0].text

    cached = decoder_for(model, tokenizer, prefix_cache=True)
    decode_each(cached, [first])
    cached.model = other  # the same decoder, another model: the kept cache is the first model's
    assert_same(decode_each(cached, [second]), want, tolerance=1e-4)
    assert cached.prefix_cache_stats.misses == 2

    fresh = cached.with_model(model)  # with_model starts empty, with its own counts
    decode_each(fresh, [second])
    assert (fresh.prefix_cache_stats.hits, fresh.prefix_cache_stats.misses) == (0, 1)


def test_base_and_tuned_weights_of_one_peft_model_never_share_a_cache(tiny):
    from peft import LoraConfig, get_peft_model

    architecture, model, tokenizer = tiny
    torch.manual_seed(1)
    tuned = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"],
                                                            init_lora_weights=False)).eval()
    first, second = request(ASK), request(CALLED)
    plain = decoder_for(tuned, tokenizer, prefix_cache=False)
    with tuned.disable_adapter():
        base_answer = decode_each(plain, [second])
    tuned_answer = decode_each(plain, [second])
    assert base_answer[0].tokens[0].raw_logprob != tuned_answer[0].tokens[0].raw_logprob  # the adapter matters

    cached = decoder_for(tuned, tokenizer, prefix_cache=True)
    with tuned.disable_adapter():  # the eval's base variant under a tuned model
        decode_each(cached, [first])
    assert_same(decode_each(cached, [second]), tuned_answer, tolerance=1e-4)  # tuned after base: a miss
    with tuned.disable_adapter():
        assert_same(decode_each(cached, [second]), base_answer, tolerance=1e-4)  # base after tuned: a miss
    assert (cached.prefix_cache_stats.hits, cached.prefix_cache_stats.misses) == (0, 3)
    with tuned.disable_adapter():  # the same state again: a hit
        assert_same(decode_each(cached, [second]), base_answer, tolerance=1e-4)
    assert cached.prefix_cache_stats.hits == 1
