"""slmtune.eval.decoding: constrained answers stay finite and complete.

A tiny random Gemma 3 (the real Gemma tokenizer) is pushed towards one token by a logit bias, which makes it ramble
on purpose: a plain-text answer that never stops, and a string argument that never closes.  The decoder must cut the
text answer (``text_cut``) and steer the call to close before ``max_new_tokens`` (``closed_early``), so the output
still parses and validates.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slmtune.eval.decoding import Decoder, DecodeRequest, decode_batches
from slmtune.eval.scoring import schema_check
from slmtune.models.families import FAMILIES
from slmtune.models.sources import resolve_source

FAMILY = FAMILIES["gemma3"]
DIALECT = FAMILY.dialect()
TOOL = {"name": "lookup_word", "description": "Look a word up in the dictionary.",
        "parameters": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]}}
MESSAGES = [{"role": "user", "content": "What does 'serendipity' mean?"}]


class BiasedLM(torch.nn.Module):
    """Wraps a causal LM and adds a fixed bias to its logits (to script what greedy decoding prefers)."""

    def __init__(self, model, bias: torch.Tensor) -> None:
        super().__init__()
        self.inner, self.bias = model, bias

    @property
    def device(self):
        return self.inner.device

    def get_output_embeddings(self):
        return self.inner.get_output_embeddings()

    def forward(self, **kwargs):
        out = self.inner(**kwargs)
        out.logits = out.logits + self.bias
        return out


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(resolve_source("random:gemma3").path)
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def rambler(tiny) -> BiasedLM:
    """The tiny model, made to say "hello" wherever it may (and to open strings with the quote token ' "')."""
    model, tokenizer = tiny
    bias = torch.zeros(model.get_output_embeddings().weight.shape[0])
    bias[tokenizer.convert_tokens_to_ids("hello")] = 100.0
    bias[tokenizer.convert_tokens_to_ids('▁"')] = 50.0  # jump-forward leaves the opening quote to the model
    return BiasedLM(model, bias)


def decode(tiny, model, grammar: str, **options):
    _, tokenizer = tiny
    decoder = Decoder(model, tokenizer, stop_strings=[FAMILY.end_of_turn], **options)
    prompt = FAMILY.render_prompt(MESSAGES, [TOOL], DIALECT)
    return decoder.generate([DecodeRequest(prompt, grammar)], batch_size=1)[0]


def test_rambling_text_answer_is_cut_once_it_cannot_become_a_call(tiny):
    model = rambler(tiny)
    grammar = DIALECT.grammar([TOOL], allow_text=True)
    kept = decode(tiny, model, grammar, max_new_tokens=30)
    assert kept.truncated and not kept.text_cut and kept.output_tokens == 30

    cut = decode(tiny, model, grammar, max_new_tokens=30, call_trigger=DIALECT.call_trigger, max_text_tokens=6)
    assert cut.text_cut and not cut.truncated and cut.output_tokens == 6
    assert kept.text.startswith(cut.text)
    parsed = DIALECT.parse(cut.text)
    assert parsed.error is None and parsed.calls == []


def test_runaway_string_argument_is_closed_before_the_budget_ends(tiny):
    model = rambler(tiny)
    grammar = DIALECT.grammar([TOOL], allow_text=False, max_calls=1)
    runaway = decode(tiny, model, grammar, max_new_tokens=40)
    assert runaway.truncated and DIALECT.parse(runaway.text).error  # the call never closes

    # (the call trigger lets the decoder tell a complete call that fills the budget from cut-off prose)
    closed = decode(tiny, model, grammar, max_new_tokens=40, closing_reserve=8, call_trigger=DIALECT.call_trigger)
    assert closed.closed_early and not closed.truncated and closed.output_tokens <= 40
    parsed = DIALECT.parse(closed.text)
    assert parsed.error is None and len(parsed.calls) == 1
    assert schema_check(parsed.calls, [TOOL]) is None
    assert parsed.calls[0]["arguments"]["word"].startswith("hello")


def test_text_answer_detection_waits_for_the_trigger_prefix(tiny):
    decoder = Decoder(tiny[0], tiny[1], stop_strings=[FAMILY.end_of_turn], call_trigger="<tool_call>",
                      max_text_tokens=4)
    assert not decoder._is_text_answer("<tool")  # may still become a call
    assert not decoder._is_text_answer('<tool_call>\n{"name"')
    assert decoder._is_text_answer("I cannot")
    assert decoder._is_text_answer("<b>bold</b>")


def test_decoder_rejects_inconsistent_options(tiny):
    with pytest.raises(ValueError, match="call_trigger"):
        Decoder(tiny[0], tiny[1], stop_strings=[FAMILY.end_of_turn], max_text_tokens=4)
    with pytest.raises(ValueError, match="closing_reserve"):
        Decoder(tiny[0], tiny[1], stop_strings=[FAMILY.end_of_turn], max_new_tokens=8, closing_reserve=8)


def repeater(tiny) -> BiasedLM:
    """The tiny model, made never to stop and to answer each call with an empty string: it repeats the call."""
    model, tokenizer = tiny
    bias = torch.zeros(model.get_output_embeddings().weight.shape[0])
    bias[tokenizer.convert_tokens_to_ids(FAMILY.end_of_turn)] = -100.0
    bias[tokenizer.convert_tokens_to_ids('▁"')] = 50.0
    bias[tokenizer.convert_tokens_to_ids('"')] = 60.0
    return BiasedLM(model, bias)


def test_repeated_calls_end_after_a_complete_call_when_another_would_not_fit(tiny):
    model = repeater(tiny)
    grammar = DIALECT.grammar([TOOL], allow_text=False, min_calls=1, max_calls=50)
    runaway = decode(tiny, model, grammar, max_new_tokens=70)
    assert runaway.truncated and DIALECT.parse(runaway.text).error  # cut inside a call

    ended = decode(tiny, model, grammar, max_new_tokens=70, closing_reserve=4)
    assert ended.closed_early and not ended.truncated
    parsed = DIALECT.parse(ended.text)
    assert parsed.error is None and len(parsed.calls) >= 2
    call_tokens = ended.output_tokens / len(parsed.calls)
    assert 70 - ended.output_tokens < call_tokens + 4  # it ended only because another call would not fit


def test_jump_forward_never_feeds_more_tokens_than_the_budget_has_left(tiny):
    import xgrammar as xgr

    decoder = Decoder(tiny[0], tiny[1], stop_strings=[FAMILY.end_of_turn])
    compiled = decoder.compiled(DIALECT.grammar([TOOL], allow_text=False, max_calls=1))
    head = tiny[1](xgr.GrammarMatcher(compiled).find_jump_forward_string(), add_special_tokens=False)["input_ids"]
    assert len(head) > 4
    assert len(decoder._forced_tokens(xgr.GrammarMatcher(compiled), room=100)) == len(head) - 1  # last one healed
    assert len(decoder._forced_tokens(xgr.GrammarMatcher(compiled), room=4)) == 4


def test_closing_tiers_put_every_token_with_a_separator_last():
    from slmtune.eval.decoding import closing_token_tiers

    vocab = [b'"', b'",', b'"}', b"]", b",", b"a", b'"]}', b"", b"},", b"'"]
    tiers = closing_token_tiers(vocab)
    assert [ids.tolist() for ids, _ in tiers] == [[0, 2, 6], [3], [1, 4, 8]]
    assert [lengths.tolist() for _, lengths in tiers] == [[1, 2, 3], [1], [2, 1, 2]]


def test_steered_close_does_not_open_an_optional_argument(tiny):
    model, tokenizer = tiny
    tool = {"name": "lookup_word", "description": "Look a word up.",
            "parameters": {"type": "object", "properties": {"word": {"type": "string"}, "note": {"type": "string"}},
                           "required": ["word"]}}
    biased = rambler(tiny)
    biased.bias[tokenizer.convert_tokens_to_ids('",')] = 80.0  # the model's favourite way to close "word" opens "note"
    decoder = Decoder(biased, tokenizer, stop_strings=[FAMILY.end_of_turn], max_new_tokens=40, closing_reserve=8,
                      call_trigger=DIALECT.call_trigger)
    prompt = FAMILY.render_prompt(MESSAGES, [tool], DIALECT)
    closed = decoder.generate([DecodeRequest(prompt, DIALECT.grammar([tool], allow_text=False, max_calls=1))])[0]
    assert closed.closed_early and not closed.truncated
    parsed = DIALECT.parse(closed.text)
    assert parsed.error is None and list(parsed.calls[0]["arguments"]) == ["word"]


def test_steering_starts_early_enough_for_a_long_required_tail(tiny):
    """After the rambling "word" the call still owes a required date-time (some 20 tokens): more than the reserve."""
    model, tokenizer = tiny
    tool = {"name": "book_word", "description": "Book a word for a date.",
            "parameters": {"type": "object", "required": ["word", "when"],
                           "properties": {"word": {"type": "string"},
                                          "when": {"type": "string", "format": "date-time"}}}}
    decoder = Decoder(rambler(tiny), tokenizer, stop_strings=[FAMILY.end_of_turn], max_new_tokens=60,
                      closing_reserve=8, call_trigger=DIALECT.call_trigger)
    prompt = FAMILY.render_prompt(MESSAGES, [tool], DIALECT)
    closed = decoder.generate([DecodeRequest(prompt, DIALECT.grammar([tool], allow_text=False, max_calls=1))])[0]
    assert closed.closed_early and not closed.truncated, closed.text
    parsed = DIALECT.parse(closed.text)
    assert parsed.error is None and list(parsed.calls[0]["arguments"]) == ["word", "when"]
    assert schema_check(parsed.calls, [tool]) is None
    assert parsed.calls[0]["arguments"]["word"].startswith("hello"), closed.text  # it did not close at once


def test_closing_length_counts_the_tokens_a_steered_close_needs(tiny):
    import xgrammar as xgr

    model, tokenizer = tiny
    decoder = Decoder(model, tokenizer, stop_strings=[FAMILY.end_of_turn], max_new_tokens=60, closing_reserve=8)
    matcher = xgr.GrammarMatcher(decoder.compiled(DIALECT.grammar([TOOL], allow_text=False, max_calls=1)))
    head = '<tool_call>\n{"name": "lookup_word", "arguments": {"word": "hel'
    assert matcher.accept_string(head)
    needed = decoder._closing_length(matcher, limit=100)
    tail = tokenizer('"}}\n</tool_call>', add_special_tokens=False)["input_ids"]
    assert 1 <= needed <= len(tail)
    assert decoder._closing_length(matcher, limit=1) == 1
    assert matcher.accept_string('lo"}}\n</tool_call>')  # the simulation left the matcher where it was


def test_an_array_with_unique_items_never_repeats_the_model_s_favourite_item(tiny):
    """A grammar cannot forbid repeating an item; the decoder bans the token that would complete a repeat."""
    model, tokenizer = tiny
    colours = {"type": "array", "items": {"type": "string", "enum": ["red", "green", "blue"]},
               "minItems": 3, "maxItems": 3, "uniqueItems": True}
    tool = {"name": "paint", "description": "Paint stripes.",
            "parameters": {"type": "object", "properties": {"colours": colours}, "required": ["colours"]}}
    bias = torch.zeros(model.get_output_embeddings().weight.shape[0])
    bias[tokenizer.convert_tokens_to_ids("red")] = 100.0
    decoder = Decoder(BiasedLM(model, bias), tokenizer, stop_strings=[FAMILY.end_of_turn], max_new_tokens=60)
    prompt = FAMILY.render_prompt(MESSAGES, [tool], DIALECT)

    def colours_written(schema: dict) -> list[str]:
        grammar = DIALECT.grammar([schema], allow_text=False, max_calls=1)
        parsed = DIALECT.parse(decoder.generate([DecodeRequest(prompt, grammar)])[0].text)
        assert parsed.error is None
        return parsed.calls[0]["arguments"]["colours"]

    plain = {**tool, "parameters": {**tool["parameters"], "properties": {"colours": {**colours, "uniqueItems": False}}}}
    assert colours_written(plain) == ["red", "red", "red"]
    written = colours_written(tool)
    assert written[0] == "red" and sorted(written) == ["blue", "green", "red"]


def test_decode_batches_sort_by_prompt_length_keeping_ties_in_order():
    requests = [DecodeRequest(p) for p in ("ccc", "a", "bb", "dd", "e", "ffff", "gg")]
    assert decode_batches(requests, 3) == [[1, 4, 2], [3, 6, 0], [5]]
    assert decode_batches(requests, 10) == [[1, 4, 2, 3, 6, 0, 5]]
    assert decode_batches([], 4) == []


def test_one_batch_decoded_alone_reproduces_its_answers_to_the_last_bit(tiny):
    """What export's answer check relies on: a batch of :func:`decode_batches`, decoded on its own in its
    original order, sees exactly the float sums it saw among all the requests."""
    _, tokenizer = tiny
    decoder = Decoder(tiny[0], tokenizer, stop_strings=[FAMILY.end_of_turn], max_new_tokens=12)
    words = ["serendipity", "cat", "an extraordinarily long word", "ephemeral", "go", "quixotic and more"]
    requests = [DecodeRequest(FAMILY.render_prompt([{"role": "user", "content": f"What does '{w}' mean?"}], [TOOL],
                                                   DIALECT)) for w in words]
    everything = decoder.generate(requests, batch_size=3)
    batch = next(b for b in decode_batches(requests, 3) if 0 in b)
    assert len(batch) == 3
    alone = decoder.generate([requests[i] for i in sorted(batch)], batch_size=len(batch))
    for i, generation in zip(sorted(batch), alone):
        assert generation.text == everything[i].text
        assert [t.raw_logprob for t in generation.tokens] == [t.raw_logprob for t in everything[i].tokens]


# -- devices --------------------------------------------------------------------------------------------------------


class DeviceCheckingLM(BiasedLM):
    """Fails unless every tensor it is given lives on its device; runs the wrapped model there explicitly, so that
    the caller's default device does not matter to the model itself."""

    def forward(self, **kwargs):
        for name, value in kwargs.items():
            if isinstance(value, torch.Tensor):
                assert value.device == self.device, f"{name} is on {value.device}, the model on {self.device}"
        with torch.device(self.device):
            return super().forward(**kwargs)


def test_every_tensor_the_decoder_builds_is_placed_explicitly_on_the_model_s_device(tiny):
    """With the default device set to ``meta``, a tensor built without naming its device lands on ``meta``: feeding
    it to the model, copying it to the model's device or filling a grammar bitmask there would then fail. The decoder
    must build model inputs on the model's device and its grammar bookkeeping in host memory, and answer exactly as
    it does without the trap (constrained with steering and unique items, and unconstrained, in one batch)."""
    model, tokenizer = tiny
    colours = {"type": "array", "items": {"type": "string", "enum": ["red", "green", "blue"]},
               "minItems": 2, "maxItems": 2, "uniqueItems": True}
    paint = {"name": "paint", "description": "Paint stripes.",
             "parameters": {"type": "object", "properties": {"colours": colours}, "required": ["colours"]}}
    prompt = FAMILY.render_prompt(MESSAGES, [TOOL, paint], DIALECT)
    requests = [DecodeRequest(prompt, DIALECT.grammar([TOOL], allow_text=False, max_calls=1)),
                DecodeRequest(prompt, DIALECT.grammar([paint], allow_text=False, max_calls=1)),
                DecodeRequest(prompt + "Sure", None)]

    checked = DeviceCheckingLM(model, rambler(tiny).bias)

    def answers(decoder) -> list:
        return [(g.text, g.closed_early) for g in decoder.generate(requests, batch_size=3)]

    with torch.device("meta"):
        decoder = Decoder(checked, tokenizer, stop_strings=[FAMILY.end_of_turn], max_new_tokens=24,
                          closing_reserve=8, call_trigger=DIALECT.call_trigger)
        trapped = answers(decoder)
    expected = answers(decoder)
    assert trapped == expected
    assert expected[0][1]  # the steering path (closing choice on the host) ran


def test_the_grammar_bitmask_is_applied_on_the_logits_device(monkeypatch):
    """XGrammar fills bitmasks on the CPU but applies them only where the logits are (its CUDA kernel needs both on
    the GPU): ``meta`` logits stand in for a GPU here."""
    import xgrammar as xgr

    from slmtune.eval.decoding import apply_bitmask, host_bitmask

    seen = []

    def apply(logits, bitmask, **kwargs):
        assert bitmask.device == logits.device, f"bitmask on {bitmask.device}, logits on {logits.device}"
        seen.append(bitmask)

    bitmask = host_bitmask(2, 70)
    assert bitmask.device.type == "cpu" and bitmask.shape == (2, 3) and bool((bitmask == -1).all())
    monkeypatch.setattr(xgr, "apply_token_bitmask_inplace", apply)
    logits = torch.zeros(2, 70, device="meta")
    assert apply_bitmask(logits, bitmask).device.type == "meta" and seen[-1].device.type == "meta"
    apply_bitmask(torch.zeros(2, 70), bitmask)
    assert seen[-1] is bitmask  # on the CPU: applied in place, not copied
    monkeypatch.undo()

    bitmask[0, 0] = 0b101  # row 0: tokens 0 and 2 of the first 32, none of the rest
    bitmask[0, 1:] = 0
    logits = torch.arange(140, dtype=torch.float32).reshape(2, 70)
    masked = apply_bitmask(logits, bitmask)
    assert torch.isfinite(masked[0]).nonzero().flatten().tolist() == [0, 2]
    assert torch.isfinite(masked[1]).all() and torch.equal(logits[0], torch.arange(70, dtype=torch.float32))


def test_non_finite_logits_raise_instead_of_decoding_garbage(tiny):
    """float16 overflows in some models (Gemma's): NaN logits must stop the decoder, naming the precision, rather
    than give arbitrary greedy choices and NaN confidence signals scored as wrong answers."""
    model, tokenizer = tiny
    bias = torch.zeros(model.get_output_embeddings().weight.shape[0])
    bias[tokenizer.convert_tokens_to_ids("hello")] = float("nan")
    with pytest.raises(FloatingPointError, match=r"NaN or inf \(rows \[0\] of a batch of 1.*bfloat16 or float32"):
        decode(tiny, BiasedLM(model, bias), None, max_new_tokens=4)


def test_the_stop_token_choice_keeps_its_margin(tiny):
    """An answer that ends on a stop token the model chose records that choice's top-2 margin (export's answer
    check judges an answer that ends where another goes on by it)."""
    model, tokenizer = tiny
    bias = torch.zeros(model.get_output_embeddings().weight.shape[0])
    bias[tokenizer.convert_tokens_to_ids(FAMILY.end_of_turn)] = 50.0
    generation = decode(tiny, BiasedLM(model, bias), None, max_new_tokens=4)
    assert generation.text == "" and generation.tokens == []
    assert generation.stop_margin is not None and generation.stop_margin > 40


def test_a_decoder_for_another_model_shares_the_compiled_grammars(tiny):
    model, tokenizer = tiny
    decoder = Decoder(model, tokenizer, stop_strings=[FAMILY.end_of_turn], max_new_tokens=8)
    grammar = DIALECT.grammar([TOOL], allow_text=False, max_calls=1)
    compiled = decoder.compiled(grammar)
    other = decoder.with_model(rambler(tiny))
    assert other.model is not decoder.model and other.compiled(grammar) is compiled
    assert (other.max_new_tokens, other.stop_ids) == (decoder.max_new_tokens, decoder.stop_ids)


class LogitWidths(BiasedLM):
    """Records how many positions' logits each forward returns; ``full`` drops ``logits_to_keep`` (every position)."""

    def __init__(self, model, full: bool) -> None:
        super().__init__(model, torch.zeros(()))
        self.full, self.widths = full, []

    def forward(self, **kwargs):
        if self.full:
            kwargs.pop("logits_to_keep", None)
        out = super().forward(**kwargs)
        self.widths.append(out.logits.shape[1])
        return out


def test_prefill_computes_only_the_last_positions_logits(tiny):
    grammar = DIALECT.grammar([TOOL], allow_text=True)
    kept, full = LogitWidths(tiny[0], full=False), LogitWidths(tiny[0], full=True)
    answer = decode(tiny, kept, grammar, max_new_tokens=12)
    assert kept.widths[0] == 1 and full.widths == []
    assert decode(tiny, full, grammar, max_new_tokens=12).text == answer.text
    assert full.widths[0] > 100  # the whole prompt


# -- logits of the decoded positions only ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_logits_of_the_decoded_positions_only_give_the_same_answers_as_full_logits(tiny, dtype):
    """The decoder asks the model for the logits of each row's last position only (``logits_to_keep``): on the
    prefill of left-padded prompts and on steps where jump-forward feeds several tokens to some rows (right-padded).
    The answers are the same token for token; their log-probabilities agree to the rounding of the vocabulary
    projection, whose matrix product is blocked differently for fewer rows (1e-6 in fp32, a bf16 step in bf16)."""
    model, tokenizer = tiny
    model = model.to(dtype)
    try:
        words = ["serendipity", "cat", "an extraordinarily long word", "ephemeral", "go"]
        prompts = [FAMILY.render_prompt([{"role": "user", "content": f"What does '{w}' mean?"}], [TOOL], DIALECT)
                   for w in words]
        grammar = DIALECT.grammar([TOOL], allow_text=True, max_calls=1)
        requests = [DecodeRequest(p, grammar if i % 2 == 0 else None) for i, p in enumerate(prompts)]
        requests.append(DecodeRequest(prompts[0], DIALECT.grammar([TOOL], allow_text=False, max_calls=1)))
        calls = []
        forward = model.forward

        def counting(*args, **kwargs):
            calls.append(kwargs.get("logits_to_keep"))
            return forward(*args, **kwargs)

        model.forward = counting
        answers = {}
        for full in (True, False):
            decoder = Decoder(model, tokenizer, stop_strings=[FAMILY.end_of_turn], max_new_tokens=16,
                              call_trigger=DIALECT.call_trigger, max_text_tokens=8, closing_reserve=4,
                              full_logits=full)
            answers[full] = decoder.generate(requests, batch_size=3)
        del model.forward
        assert all(keep is None for keep in calls[: len(calls) // 2])
        assert all(keep is not None for keep in calls[len(calls) // 2:])
        assert any(keep > 1 for keep in calls[len(calls) // 2:])  # a jump-forward step kept several positions
        assert sum(g.forced_tokens for g in answers[False]) > 0
        for full, kept in zip(answers[True], answers[False]):
            assert kept.text == full.text
            assert [(t.start, t.end, t.forced) for t in kept.tokens] == \
                [(t.start, t.end, t.forced) for t in full.tokens]
            tolerance = 1e-4 if dtype == torch.float32 else 0.1
            for mine, theirs in zip(kept.tokens, full.tokens):
                if not mine.forced:
                    assert mine.raw_logprob == pytest.approx(theirs.raw_logprob, abs=tolerance)
                    assert mine.logprob == pytest.approx(theirs.logprob, abs=tolerance)
    finally:
        model.to(torch.float32)
