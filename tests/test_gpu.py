"""CUDA checks (``pytest -m gpu``; skipped without a CUDA device): the decoder, its grammar bitmask, model placement and
LoRA / QLoRA training steps on a GPU, with tiny random models (no hub access). ``scripts/gpu_check.sh`` runs these.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slmtune.eval.decoding import Decoder, DecodeRequest, apply_bitmask, host_bitmask
from slmtune.models.families import FAMILIES
from slmtune.models.loading import default_device, load_base_model
from slmtune.models.sources import ResolvedSource, resolve_source
from slmtune.train.trainer import LeftPadCollator, completion_window_loss, lora_config

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

FAMILY = FAMILIES["gemma3"]
DIALECT = FAMILY.dialect()
TOOL = {"name": "paint", "description": "Paint stripes in a room.",
        "parameters": {"type": "object", "required": ["room", "colours"],
                       "properties": {"room": {"type": "string"},
                                      "colours": {"type": "array", "minItems": 2, "maxItems": 2, "uniqueItems": True,
                                                  "items": {"type": "string", "enum": ["red", "green", "blue"]}}}}}
MESSAGES = [{"role": "user", "content": "Paint the kitchen in two colours."}]


class OnDevice(torch.nn.Module):
    """Fails unless every tensor given to the model is on the model's device."""

    def __init__(self, model) -> None:
        super().__init__()
        self.inner = model

    @property
    def device(self):
        return self.inner.device

    def get_output_embeddings(self):
        return self.inner.get_output_embeddings()

    def forward(self, **kwargs):
        for name, value in kwargs.items():
            if isinstance(value, torch.Tensor):
                assert value.device == self.device, f"{name} on {value.device}, model on {self.device}"
        return self.inner(**kwargs)


@pytest.fixture(scope="module")
def tiny_gemma():
    from transformers import AutoTokenizer

    source = resolve_source("random:gemma3")
    return source, AutoTokenizer.from_pretrained(source.path)


def test_a_single_process_loads_onto_gpu_0(tiny_gemma, monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert default_device() == torch.device("cuda", 0)
    model = load_base_model(tiny_gemma[0], dtype=torch.bfloat16)
    assert {p.device for p in model.parameters()} == {torch.device("cuda", 0)}


def test_the_bitmask_masks_cuda_logits_like_cpu_logits():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1000, generator=generator)
    bitmask = host_bitmask(3, 1000)
    bitmask.copy_(torch.randint(-2**31, 2**31 - 1, bitmask.shape, generator=generator, dtype=torch.int32))
    on_gpu = apply_bitmask(logits.cuda(), bitmask)
    assert on_gpu.device.type == "cuda" and bitmask.device.type == "cpu"
    assert torch.equal(torch.isfinite(on_gpu).cpu(), torch.isfinite(apply_bitmask(logits, bitmask)))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
def test_constrained_decoding_on_the_gpu_gives_valid_calls(tiny_gemma, dtype):
    from slmtune.eval.scoring import schema_check

    source, tokenizer = tiny_gemma
    model = OnDevice(load_base_model(source, dtype=dtype).eval())
    decoder = Decoder(model, tokenizer, stop_strings=[FAMILY.end_of_turn], max_new_tokens=48, closing_reserve=16,
                      call_trigger=DIALECT.call_trigger, max_text_tokens=8)
    prompt = FAMILY.render_prompt(MESSAGES, [TOOL], DIALECT)
    requests = [DecodeRequest(prompt, DIALECT.grammar([TOOL], allow_text=False, max_calls=1)),
                DecodeRequest(prompt, DIALECT.grammar([TOOL], allow_text=True)), DecodeRequest(prompt, None)]
    forced, optional, free = decoder.generate(requests, batch_size=3)
    parsed = DIALECT.parse(forced.text)
    assert parsed.error is None and len(parsed.calls) == 1, forced.text
    assert schema_check(parsed.calls, [TOOL]) is None
    assert free.output_tokens > 0 and optional.output_tokens > 0


def tiny_batch(vocab_size: int = 320):
    generator = torch.Generator().manual_seed(1)
    features = [{"input_ids": torch.randint(3, vocab_size, (n,), generator=generator).tolist(), "completion_start": s}
                for n, s in ((37, 29), (12, 5))]
    return {k: v.cuda() for k, v in LeftPadCollator(pad_id=0)(features).items()}


def train_step(model) -> torch.Tensor:
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.0)
    loss, count = completion_window_loss(model, tiny_batch())
    assert torch.isfinite(loss) and count > 0
    loss.backward()
    optimizer.step()
    return loss


def test_a_bf16_lora_step_on_the_gpu():
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(FAMILIES["qwen2"].tiny_config(320), dtype=torch.bfloat16).cuda()
    model = get_peft_model(model, lora_config(FAMILIES["qwen2"], 8, 16, 0.0, None))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    train_step(model)
    params = dict(model.named_parameters())
    assert all(params[n].device.type == "cuda" and not torch.equal(params[n], before[n]) for n in before)


def test_an_nf4_qlora_step_on_the_gpu(tmp_path: Path):
    from bitsandbytes.nn import Linear4bit
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(FAMILIES["qwen2"].tiny_config(320)).save_pretrained(tmp_path)
    model = load_base_model(ResolvedSource(path=str(tmp_path), identity="test"), dtype=torch.bfloat16,
                            quantize_4bit=True)
    quantized = [m for m in model.modules() if isinstance(m, Linear4bit)]
    assert quantized and all(m.weight.device == torch.device("cuda", 0) for m in quantized)
    assert quantized[0].weight.quant_state.quant_type == "nf4"
    packed = quantized[0].weight.data.clone()
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                            gradient_checkpointing_kwargs={"use_reentrant": False})
    model = get_peft_model(model, lora_config(FAMILIES["qwen2"], 8, 16, 0.0, None))
    train_step(model)
    assert torch.equal(quantized[0].weight.data, packed)  # the 4-bit base stays frozen
