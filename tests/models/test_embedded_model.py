"""The embedded Gemma 3 270M: cached conversion and a constrained BFCL answer (slow: loads 268M parameters)."""

import time

import pytest
import torch

from slmtune.eval.decoding import Decoder, DecodeRequest
from slmtune.eval.evaluation import prepare_requests, score_generation
from slmtune.eval.suites import load_bfcl
from slmtune.models.families import FAMILIES
from slmtune.models.loading import load_base_model, load_tokenizer
from slmtune.models.sources import resolve_source

pytestmark = pytest.mark.slow


def test_embedded_model_loads_from_cache_and_answers_under_the_grammar():
    resolve_source("embedded:gemma3-270m")  # converts once
    started = time.perf_counter()
    source = resolve_source("embedded:gemma3-270m")
    tokenizer = load_tokenizer(source)
    model = load_base_model(source, dtype=torch.float32).eval()
    assert time.perf_counter() - started < 30  # the cached checkpoint, not a new de-quantisation
    assert model.config.model_type.startswith("gemma3") and model.num_parameters() > 2.5e8
    family = FAMILIES["gemma3"]
    dialect = family.dialect()
    prepared = prepare_requests(load_bfcl("simple_python", limit=2), family, dialect, constrained=True)
    decoder = Decoder(model, tokenizer, stop_strings=[family.end_of_turn], max_new_tokens=96,
                      call_trigger=dialect.call_trigger, max_text_tokens=24, closing_reserve=16)
    generations = decoder.generate([DecodeRequest(p.prompt, p.grammar) for p in prepared], batch_size=2)
    for p, generation in zip(prepared, generations):
        row = score_generation(p, generation, dialect, registry=None)
        assert row["schema_valid"] and not row["truncated"], row
