"""The router's signals from an OpenAI-compatible response equal the decoder's on the same tokens.

``slmtune.router.signals_from_openai`` reads what vLLM / SGLang return (``choices[0].logprobs.content[*]`` with
``token``, ``logprob``, ``bytes``, ``top_logprobs``); the eval computes the signals from its decoder's
``TokenRecord``s. Here a tiny random Gemma 3 (the real Gemma tokenizer) decodes one constrained request per dialect,
the decoder's tokens are written out as vLLM writes them (token text decoded per token, corrected with up to four
preceding tokens where a byte-fallback token leaves a character incomplete; log-probs of the grammar-masked
distribution with forbidden tokens at -9999.0; the end-of-turn token listed last), through JSON, and both sides'
signals must agree.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from slmtune.models.dialects import DIALECTS, get_dialect
from slmtune.models.families import FAMILIES
from slmtune.route.signals import (
    FORCED_MARGIN,
    NOT_ALLOWED,
    SIGNAL_NAMES,
    SIGNAL_TOP_K,
    OpenAIResponseError,
    TokenView,
    token_signals,
    tokens_from_openai,
)
from slmtune.router import signals_from_openai

FAMILY = FAMILIES["gemma3"]
DIALECT = FAMILY.dialect()  # hermes
STOP = FAMILY.end_of_turn
TOOLS = [
    {"name": "lookup_word", "description": "Look a word up in the dictionary.",
     "parameters": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]}},
    {"name": "get_weather", "description": "Weather in a city.",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                    "required": ["city", "days"]}},
]
MESSAGES = [{"role": "user", "content": "What does 'serendipity' mean?"}]


# ------------------------------------------------------------------------------------------ building responses
def _top(values) -> list[dict]:
    """vLLM's top_logprobs entries: -inf (a token the grammar forbids) is written as -9999.0."""
    return [{"token": f"alt{j}", "logprob": max(v, NOT_ALLOWED), "bytes": None} for j, v in enumerate(values)]


def _entry(token: str, logprob: float, top, raw: bytes | None = None) -> dict:
    data = token.encode("utf-8") if raw is None else raw
    return {"token": token, "logprob": max(logprob, NOT_ALLOWED), "bytes": list(data), "top_logprobs": _top(top)}


FORCED_TOP = (0.0,) + (-math.inf,) * (SIGNAL_TOP_K - 1)  # the only token the grammar allows


def vllm_token_text(tokenizer, ids: list[int], i: int) -> str:
    """The token text vLLM reports for ``ids[i]``: decoded alone, or, when that ends in U+FFFD (a byte-fallback
    piece of a character), what it adds to up to four preceding tokens (``""`` while the character is incomplete)."""
    text = tokenizer.decode([ids[i]])
    if not text.endswith("\ufffd"):
        return text
    for n in range(1, min(i, 4) + 1):
        context = ids[i - n:i]
        full = tokenizer.decode(context + [ids[i]])
        if full.endswith("\ufffd"):
            continue
        clean = len(context)
        while clean > 0 and tokenizer.decode([context[clean - 1]]).endswith("\ufffd"):
            clean -= 1
        prefix = tokenizer.decode(context[:clean]) if clean else ""
        if full.startswith(prefix):
            return full[len(prefix):]
    return ""


def byte_values(tokenizer, token_id: int) -> bytes:
    """A token's raw bytes, as OpenAI's own API reports them (``<0xF0>`` is the single byte 0xF0)."""
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
        return bytes([int(piece[3:5], 16)])
    return tokenizer.decode([token_id]).encode("utf-8")


def response_from_generation(generation, tokenizer, *, raw_bytes: bool = False) -> dict:
    """The chat completion vLLM would return for the decoder's tokens (a jump-forward token is written as a token
    the grammar alone chose: log-prob 0, every other token forbidden), passed through JSON."""
    ids = [t.token_id for t in generation.tokens]
    content = []
    for i, rec in enumerate(generation.tokens):
        token = vllm_token_text(tokenizer, ids, i)
        raw = byte_values(tokenizer, ids[i]) if raw_bytes else None
        if rec.forced:
            content.append(_entry(token, 0.0, FORCED_TOP, raw))
        else:
            content.append(_entry(token, rec.logprob, rec.top_logprobs, raw))
    finish = "length" if generation.truncated else "stop"
    if generation.stop_margin is not None:
        content.append(_entry(STOP, -0.01, (-0.01, -5.0) + (-math.inf,) * (SIGNAL_TOP_K - 2)))
    response = {"id": "chatcmpl-1", "object": "chat.completion", "model": "tiny",
                "choices": [{"index": 0, "finish_reason": finish,
                             "message": {"role": "assistant", "content": generation.text},
                             "logprobs": {"content": content}}]}
    return json.loads(json.dumps(response, allow_nan=False))


# ------------------------------------------------------------------------------------------ the tiny model
@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from slmtune.models.sources import resolve_source

    path = Path(resolve_source("random:gemma3").path)
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


class BiasedLM:
    """The tiny model with a fixed bias added to its logits (to script what greedy decoding prefers)."""

    def __init__(self, model, bias) -> None:
        self.inner, self.bias, self.device = model, bias, model.device

    def get_output_embeddings(self):
        return self.inner.get_output_embeddings()

    def __call__(self, **kwargs):
        out = self.inner(**kwargs)
        out.logits = out.logits + self.bias
        return out


@pytest.fixture(scope="module")
def decoder(tiny):
    from slmtune.eval.decoding import Decoder

    model, tokenizer = tiny
    return Decoder(model, tokenizer, stop_strings=[STOP], max_new_tokens=40, closing_reserve=10)


@pytest.fixture(scope="module")
def generations(decoder):
    """One request per dialect that must call (one or two calls), decoded with and without jump-forward (vLLM has
    none: it samples every token)."""
    from slmtune.eval.decoding import DecodeRequest

    names = sorted(DIALECTS)
    requests = [DecodeRequest(FAMILY.render_prompt(MESSAGES, TOOLS, name),
                              get_dialect(name).grammar(TOOLS, allow_text=False, max_calls=2)) for name in names]
    sampled_only = copy.copy(decoder)
    sampled_only.jump_forward = False
    return {jump: dict(zip(names, d.generate(requests, batch_size=len(requests))))
            for jump, d in ((True, decoder), (False, sampled_only))}


def decoder_signals(generation, dialect_name: str) -> dict[str, float]:
    from slmtune.eval.evaluation import confidence_signals

    dialect = get_dialect(dialect_name)
    parsed = dialect.parse(generation.text)
    spans = dialect.spans(generation.text) if parsed.calls and not parsed.error else []
    return confidence_signals(generation, spans, len(parsed.calls))


@pytest.mark.parametrize("jump_forward", [False, True], ids=["sampled", "jump-forward"])
@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_signals_from_an_openai_response_equal_the_decoder_s(tiny, generations, dialect, jump_forward):
    _, tokenizer = tiny
    generation = generations[jump_forward][dialect]
    expected = decoder_signals(generation, dialect)
    for raw_bytes in (False, True):
        response = response_from_generation(generation, tokenizer, raw_bytes=raw_bytes)
        text, tokens, _ = tokens_from_openai(response, stop_tokens=[STOP])
        assert text == generation.text
        assert [(t.start, t.end) for t in tokens] == [(t.start, t.end) for t in generation.tokens]
        got = signals_from_openai(response, dialect=dialect, stop_tokens=[STOP])
        assert set(got) == set(SIGNAL_NAMES)
        assert got == expected  # bit for bit: same values, summed in the same order
    if not jump_forward:  # every token sampled, as vLLM samples them
        assert generation.forced_tokens == 0
        assert any(t.top_logprobs[1] > NOT_ALLOWED for t in generation.tokens)  # some tokens were real choices


def test_a_text_answer_is_read_over_the_tokens_the_decoder_kept(tiny, decoder):
    """The decoder cuts a plain-text answer after ``max_text_tokens``; a server writes on to its end. With the
    eval's ``max_text_tokens`` the server's longer answer gives the decoder's signals."""
    import torch

    from slmtune.eval.decoding import DecodeRequest

    model, tokenizer = tiny
    bias = torch.zeros(model.get_output_embeddings().weight.shape[0])
    bias[tokenizer.convert_tokens_to_ids("hello")] = 100.0  # "hello" wherever the grammar allows text
    rambler = decoder.with_model(BiasedLM(model, bias))
    rambler.jump_forward, rambler.call_trigger, rambler.max_text_tokens = False, DIALECT.call_trigger, 6
    grammar = DIALECT.grammar(TOOLS, allow_text=True, max_calls=1)
    generation = rambler.generate([DecodeRequest(FAMILY.render_prompt(MESSAGES, TOOLS, DIALECT), grammar)])[0]
    assert generation.text_cut and generation.output_tokens == 6
    expected = decoder_signals(generation, DIALECT.name)
    response = response_from_generation(generation, tokenizer)
    content = response["choices"][0]["logprobs"]["content"]
    more = [_entry("hello", -0.01, (-0.01, -4.0 - i) + (-math.inf,) * 18) for i in range(10)]
    content[len(generation.tokens):len(generation.tokens)] = more  # the server went on, then stopped
    got = signals_from_openai(response, dialect=DIALECT.name, stop_tokens=[STOP], max_text_tokens=6)
    assert got == expected and got["num_calls"] == 0.0 and got["truncated"] == 0.0
    longer = signals_from_openai(response, dialect=DIALECT.name, stop_tokens=[STOP])
    assert longer["seq_logprob"] < got["seq_logprob"]  # every token counts without the cut
    with pytest.raises(ValueError, match="max_text_tokens must be a positive integer"):
        signals_from_openai(response, dialect=DIALECT.name, max_text_tokens=0)


def test_a_character_split_over_byte_tokens_belongs_to_the_token_with_its_last_byte(tiny, decoder):
    """A hermes call whose value is a character the Gemma tokenizer spells in four byte-fallback tokens: the
    decoder's token spans, vLLM's token texts ("" until the last byte) and OpenAI's raw bytes give one text and
    one span per token, so the value log-probs are those of the same tokens."""
    _, tokenizer = tiny
    text = DIALECT.render_calls([{"name": "lookup_word", "arguments": {"word": "\U0002A6B2"}}])
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert sum(tokenizer.convert_ids_to_tokens(i).startswith("<0x") for i in ids) == 4
    records = []
    for i, token_id in enumerate(ids):
        lp = -0.05 * (i + 1)
        records.append({"id": token_id, "forced": False, "logprob": lp, "raw_logprob": lp, "margin": 1.0,
                        "top_logprobs": (lp, lp - 1.0 - i / 7) + (-math.inf,) * (SIGNAL_TOP_K - 2)})
    generation = decoder._finish(ids, records, False, 0.0, 1, text_cut=False, closed_early=False, stop_margin=1.0)
    assert generation.text == text
    byte_tokens = [t for t in generation.tokens if tokenizer.convert_ids_to_tokens(t.token_id).startswith("<0x")]
    assert [t.end - t.start for t in byte_tokens] == [0, 0, 0, 1]
    assert text[byte_tokens[-1].start:byte_tokens[-1].end] == "\U0002A6B2"
    expected = decoder_signals(generation, "hermes")
    for raw_bytes in (False, True):
        response = response_from_generation(generation, tokenizer, raw_bytes=raw_bytes)
        assert signals_from_openai(response, dialect="hermes", stop_tokens=[STOP]) == expected


# ------------------------------------------------------------------------------------------ hand-computed
def hermes_response(finish: str = "stop", top_k: int = SIGNAL_TOP_K) -> dict:
    """``<tool_call>{"name": "get_weather", ...}`` with a real choice at the trigger, the name and the value."""
    pad = (-math.inf,) * top_k
    content = [
        _entry("<tool_call>", -0.1, ((-0.1, -2.5) + pad)[:top_k]),
        _entry('\n{"name": "', 0.0, ((0.0,) + pad)[:top_k]),
        _entry("get", -0.5, ((-0.5, -1.0) + pad)[:top_k]),
        _entry("_weather", 0.0, ((0.0,) + pad)[:top_k]),
        _entry('", "arguments": {"city": "', 0.0, ((0.0,) + pad)[:top_k]),
        _entry("Par", -1.5, ((-0.4, -1.5, -3.0) + pad)[:top_k]),
        _entry('is", "days": ', -0.2, ((-0.2, -1.8) + pad)[:top_k]),
        _entry("3", -2.0, ((-2.0, -2.1) + pad)[:top_k]),
        _entry("}}\n</tool_call>", 0.0, ((0.0,) + pad)[:top_k]),
        _entry(STOP, -0.01, ((-0.01, -6.0) + pad)[:top_k]),
    ]
    return {"choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": None},
                         "logprobs": {"content": content}}]}


def test_hand_computed_hermes_signals():
    got = signals_from_openai(hermes_response(), dialect="hermes", stop_tokens=[STOP])
    chosen = [-0.1, -0.5, -1.5, -0.2, -2.0]  # the tokens where the grammar allowed two or more
    values = [-1.5, -0.2, -2.0]  # "Par", 'is", ...' (overlaps "Paris" and the 3) and "3"
    p = [math.exp(-0.5), math.exp(-1.0)]
    assert got == {
        "seq_logprob": sum(chosen),
        "mean_logprob": pytest.approx(sum(chosen) / 5, abs=1e-15),
        "mean_value_logprob": pytest.approx(sum(values) / 3, abs=1e-15),
        "min_value_logprob": -2.0,
        "decision_margin": pytest.approx(2.4, abs=1e-15),
        "name_entropy": pytest.approx(-(p[0] * -0.5 + p[1] * -1.0), abs=1e-15),
        "name_margin": 0.5,
        "num_calls": 1.0,
        "truncated": 0.0,
    }
    # the end-of-turn token is part of neither the text nor the signals; a truncated answer is flagged
    text, tokens, truncated = tokens_from_openai(hermes_response(), stop_tokens=[STOP])
    assert STOP not in text and len(tokens) == 9 and not truncated
    assert signals_from_openai(hermes_response("length"), dialect="hermes")["truncated"] == 1.0


def test_a_plain_text_answer_and_an_empty_one():
    text = {"choices": [{"finish_reason": "stop", "logprobs": {"content": [
        _entry("Hello", -0.3, (-0.3, -1.0) + (-math.inf,) * 18), _entry(" there", -0.7, (-0.2, -0.7, -4.0))
        | {"top_logprobs": _top([-0.2, -0.7] + [-9.0] * 18)}]}}]}
    got = signals_from_openai(text, dialect="hermes")
    assert got["num_calls"] == 0.0 and got["seq_logprob"] == -1.0
    assert got["mean_value_logprob"] == got["mean_logprob"] == -0.5  # no values: every chosen token
    assert got["name_entropy"] == 0.0 and got["name_margin"] == FORCED_MARGIN
    empty = {"choices": [{"finish_reason": "stop", "logprobs": {"content": []}}]}
    assert signals_from_openai(empty, dialect="hermes") == token_signals([], [], 0, False)


def test_an_openai_python_object_is_read_through_model_dump():
    class ChatCompletion:  # what openai-python returns: a pydantic model
        def model_dump(self):
            return hermes_response()

    assert signals_from_openai(ChatCompletion(), dialect="hermes", stop_tokens=[STOP]) == \
        signals_from_openai(hermes_response(), dialect="hermes", stop_tokens=[STOP])


def test_fewer_top_logprobs_are_enough_only_when_the_grammar_allowed_no_more():
    # ten entries whose last is forbidden list every allowed token: the same signals as twenty
    assert signals_from_openai(hermes_response(top_k=10), dialect="hermes", stop_tokens=[STOP]) == \
        signals_from_openai(hermes_response(), dialect="hermes", stop_tokens=[STOP])


def test_token_view_entropy_uses_the_top_k_allowed_tokens():
    view = TokenView(0, 1, -0.1, (-0.1, -2.5, -3.0, -math.inf, NOT_ALLOWED))
    assert view.chosen and view.margin() == pytest.approx(2.4)
    assert view.entropy(2) == pytest.approx(-(math.exp(-0.1) * -0.1 + math.exp(-2.5) * -2.5))
    assert not TokenView(0, 1, 0.0, (0.0, NOT_ALLOWED)).chosen
    assert not TokenView(0, 1, None, (), forced=True).chosen


# ------------------------------------------------------------------------------------------ errors
def _without(response: dict, path: list, key: str) -> dict:
    response = copy.deepcopy(response)
    target = response
    for step in path:
        target = target[step]
    target[key] = None
    return response


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda r: _without(r, ["choices", 0], "logprobs"), r"choices\[0\]\.logprobs is missing: request logprobs=true"),
    (lambda r: _without(r, ["choices", 0, "logprobs"], "content"), r"logprobs\.content is missing"),
    (lambda r: _without(r, ["choices", 0, "logprobs", "content", 2], "top_logprobs"),
     r"content\[2\]\.top_logprobs has 0 entries; .*request top_logprobs=20"),
    (lambda r: _without(r, ["choices", 0, "logprobs", "content", 1], "logprob"), r"content\[1\]\.logprob is missing"),
    (lambda r: {"choices": []}, r"response\.choices has no choice 0"),
    (lambda r: {"id": "x"}, r"response\.choices is missing"),
])
def test_a_response_without_what_the_signals_need_is_refused(mutate, message):
    with pytest.raises(OpenAIResponseError, match=message):
        signals_from_openai(mutate(hermes_response()), dialect="hermes", stop_tokens=[STOP])


def test_too_few_top_logprobs_are_refused():
    response = hermes_response()
    for entry in response["choices"][0]["logprobs"]["content"]:
        entry["top_logprobs"] = _top([-0.1 * j for j in range(5)])  # five allowed tokens, maybe more not listed
    with pytest.raises(OpenAIResponseError, match=r"content\[0\]\.top_logprobs has 5 entries; .*top 20: request "
                                                  r"top_logprobs=20 \(vLLM: --max-logprobs >= 20\)"):
        signals_from_openai(response, dialect="hermes")
    response["choices"][0]["logprobs"]["content"][0]["top_logprobs"] = _top([-0.1])
    with pytest.raises(OpenAIResponseError, match="has 1 entries"):
        signals_from_openai(response, dialect="hermes")


def test_token_ids_instead_of_text_and_unknown_dialects_are_refused():
    response = hermes_response()
    response["choices"][0]["logprobs"]["content"][0]["token"] = "token_id:2"
    with pytest.raises(OpenAIResponseError, match="--return-tokens-as-token-ids"):
        signals_from_openai(response, dialect="hermes")
    with pytest.raises(OpenAIResponseError, match="unknown dialect 'mistral'"):
        signals_from_openai(hermes_response(), dialect="mistral")
    bad = hermes_response()
    bad["choices"][0]["logprobs"]["content"][0]["bytes"] = [300]
    with pytest.raises(OpenAIResponseError, match=r"content\[0\]\.bytes must be a list of byte values"):
        signals_from_openai(bad, dialect="hermes")


# ------------------------------------------------------------------------------------------ calibrate on responses
def recorded(i: int) -> dict:
    """A recorded server answer with its verdict: the surer the model at the value, the likelier it is right."""
    response = hermes_response()
    value = response["choices"][0]["logprobs"]["content"][5]
    value["logprob"] = -0.3 * i
    value["top_logprobs"] = _top([-0.1, -0.3 * i - 0.01] + [-math.inf] * 18)
    return {"id": f"q{i}", "category": "simple", "suite": "traffic", "valid": i % 3 != 2 and i < 9,
            "response": response}


def test_calibrate_fits_on_recorded_server_responses(tmp_path):
    from slmtune.config import compose
    from slmtune.router import Router
    from slmtune.stages import calibrate

    path = tmp_path / "traffic.jsonl"
    path.write_text("".join(json.dumps(recorded(i)) + "\n" for i in range(12)))
    cfg = compose(["+recipe=tiny", f"run.output_dir={tmp_path / 'outputs'}", "tracking.mode=disabled",
                   f"calibrate.predictions=[{path}]"])
    calibrate.run(cfg)
    out = tmp_path / "outputs" / "tiny" / "main" / "calibrate"
    router = Router.load(out / "router.json")
    options = {"dialect": "hermes", "stop_tokens": [STOP], "max_text_tokens": None, "top_k": SIGNAL_TOP_K}
    assert router.fitted_on["signals_from"] == "openai" and router.fitted_on["openai_signals"] == options
    fitted = [json.loads(line) for line in (out / "signals.jsonl").read_text().splitlines()]
    for row, i in zip(fitted, range(12)):
        assert row["signals"] == signals_from_openai(recorded(i)["response"], **options)
        assert router.signals_from_openai(recorded(i)["response"]) == row["signals"]
    use_slm, p = router.decide(router.signals_from_openai(recorded(0)["response"]), target_precision=0.9)
    assert 0.0 <= p <= 1.0 and isinstance(use_slm, bool)


def test_calibrate_refuses_unreadable_responses_and_mixed_sources(tmp_path):
    from slmtune.config import compose
    from slmtune.stages import calibrate

    options = calibrate.openai_signal_options(compose(["+recipe=tiny"]), from_responses=True)
    bad = recorded(0)
    bad["response"]["choices"][0]["logprobs"] = None
    path = tmp_path / "traffic.jsonl"
    path.write_text(json.dumps(recorded(1)) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=rf"^{path}:2: response: .*logprobs is missing"):
        calibrate.select_rows([path], 1, options)
    eval_rows = tmp_path / "predictions.jsonl"
    eval_rows.write_text(json.dumps({"id": "e", "valid": True, "signals": {"seq_logprob": -1.0}}) + "\n")
    path.write_text(json.dumps(recorded(1)) + "\n")
    with pytest.raises(ValueError, match="mix recorded server responses with the eval's predictions"):
        calibrate.select_rows([path, eval_rows], 1, options)


def test_the_decoder_s_router_reads_responses_with_the_eval_s_text_cut():
    from slmtune.config import compose
    from slmtune.stages import calibrate

    cfg = compose(["+recipe=tiny"])
    assert calibrate.openai_signal_options(cfg, from_responses=False) == {
        "dialect": "hermes", "stop_tokens": [STOP], "max_text_tokens": cfg.eval.max_text_tokens,
        "top_k": SIGNAL_TOP_K}


# ------------------------------------------------------------------------------------------ router.json, purity
def _router_doc(openai_signals) -> dict:
    doc = {"schema_version": 1, "model": {"name": "tiny", "source": "random:gemma3", "adapter_sha256": None},
           "signals": ["seq_logprob"], "calibrator": {"type": "temperature", "params": {"a": 1.0, "b": 0.0}},
           "operating_points": [{"target_precision": 0.9, "threshold": 0.5, "coverage": 0.5, "precision": 0.9}],
           "metrics": {k: {"value": 0.1} for k in ("auroc", "ece", "brier", "aurc")}, "cascade": None,
           "fitted_on": {"suites": ["s"], "n": 10, "n_positive": 5, "cross_fit_folds": 2, "seed": 0}}
    if openai_signals is not None:
        doc["fitted_on"]["openai_signals"] = openai_signals
    return doc


def test_router_json_says_how_to_read_a_response():
    from slmtune.router import Router, RouterFileError, RouterInputError

    options = {"dialect": "hermes", "stop_tokens": [STOP], "max_text_tokens": 24, "top_k": 20}
    router = Router.from_dict(_router_doc(options))
    assert router.signals_from_openai(hermes_response()) == signals_from_openai(hermes_response(), **options)
    with pytest.raises(RouterInputError, match="no 'fitted_on.openai_signals'.*signals_from_openai\\(response, "):
        Router.from_dict(_router_doc(None)).signals_from_openai(hermes_response())
    for key, value, why in (("stop_tokens", "<end_of_turn>", "an array of strings"),
                            ("max_text_tokens", 0, "a positive integer or null"), ("dialect", None, "a string")):
        with pytest.raises(RouterFileError, match=f"field 'fitted_on.openai_signals.{key}' must be {why}"):
            Router.from_dict(_router_doc(options | {key: value}))
    with pytest.raises(RouterFileError, match="field 'fitted_on.openai_signals.top_k' is missing"):
        Router.from_dict(_router_doc({k: v for k, v in options.items() if k != "top_k"}))
    with pytest.raises(RouterFileError, match=r"has unknown keys \['temperature'\]"):
        Router.from_dict(_router_doc(options | {"temperature": 0}))


def test_signals_from_openai_needs_neither_torch_nor_numpy(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "response.json"
    path.write_text(json.dumps(hermes_response()))
    code = ("import sys, json; [sys.modules.__setitem__(m, None) for m in ('torch', 'numpy', 'xgrammar', "
            "'transformers', 'sklearn', 'scipy')]; from slmtune.router import signals_from_openai; "
            f"s = signals_from_openai(json.load(open({str(path)!r})), dialect='hermes', stop_tokens=['{STOP}']); "
            "print(json.dumps(s))")
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == signals_from_openai(hermes_response(), dialect="hermes", stop_tokens=[STOP])


def test_a_stop_token_decoded_to_nothing_is_left_out_only_at_a_stop():
    response = hermes_response()
    response["choices"][0]["logprobs"]["content"][-1].update(token="", bytes=[])
    text, tokens, _ = tokens_from_openai(response)
    assert len(tokens) == 9 and text.endswith("</tool_call>")
    response["choices"][0]["finish_reason"] = "length"
    assert len(tokens_from_openai(response)[1]) == 10
    assert len(tokens_from_openai(hermes_response(), stop_tokens=[])[1]) == 10  # not named a stop token: kept
