"""Model families: golden prompts, chat templates equal to render_prompt, tiny configs."""

from __future__ import annotations

import dataclasses

import pytest
from transformers.utils.chat_template_utils import render_jinja_template

from slmtune.models.dialects import DIALECTS, get_dialect
from slmtune.models.families import FAMILIES, Family, family_for_model_type

TOOL = {
    "name": "get_time",
    "description": "Time in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
USER = [{"role": "user", "content": "Time in Oslo?"}]
CALL = [{"name": "get_time", "arguments": {"city": "Oslo"}}]

_TOOL_LINE = (
    '{"type": "function", "function": {"name": "get_time", "description": "Time in a city", "parameters": '
    '{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}'
)
_HERMES_TOOLS = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    + _TOOL_LINE
    + "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>\n\n'
    "If none of the functions fits the query, reply in plain text without a tool call."
)
_LLAMA_TOOL = """{
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Time in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {
                    "type": "string"
                }
            },
            "required": [
                "city"
            ]
        }
    }
}"""

GOLDEN_PROMPTS = {
    "qwen2": (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n"
        + _HERMES_TOOLS
        + "<|im_end|>\n<|im_start|>user\nTime in Oslo?<|im_end|>\n<|im_start|>assistant\n"
    ),
    "llama": (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
        "You have access to the following functions:\n\n" + _LLAMA_TOOL + "\n\n"
        'To call a function, respond with a JSON object in the format {"name": function name, '
        '"parameters": dictionary of argument name and its value}. To call several functions, separate '
        'their JSON objects with "; ". Do not use variables. If none of the functions fits the request, '
        "reply in plain text without any JSON.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nTime in Oslo?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "phi3": (
        "<|system|>You are a helpful assistant with some tools.\n\n"
        '<|tool|>[{"name": "get_time", "description": "Time in a city", "parameters": {"type": "object", '
        '"properties": {"city": {"type": "string"}}, "required": ["city"]}}]<|/tool|>\n'
        "To call functions, respond with functools followed by a JSON list of the calls, in the format "
        'functools[{"name": function name, "arguments": dictionary of argument name and its value}, ...]. '
        "Do not use variables. If none of the functions fits the request, reply in plain text without "
        "functools.<|end|><|user|>Time in Oslo?<|end|><|assistant|>"
    ),
    "gemma2": ("<bos><start_of_turn>user\n" + _HERMES_TOOLS + "\n\nTime in Oslo?<end_of_turn>\n<start_of_turn>model\n"),
}
GOLDEN_PROMPTS["gemma3"] = GOLDEN_PROMPTS["gemma2"]

GOLDEN_COMPLETIONS = {
    "qwen2": '<tool_call>\n{"name": "get_time", "arguments": {"city": "Oslo"}}\n</tool_call><|im_end|>',
    "llama": '{"name": "get_time", "parameters": {"city": "Oslo"}}<|eot_id|>',
    "phi3": 'functools[{"name": "get_time", "arguments": {"city": "Oslo"}}]<|end|>',
    "gemma2": '<tool_call>\n{"name": "get_time", "arguments": {"city": "Oslo"}}\n</tool_call><end_of_turn>',
    "gemma3": '<tool_call>\n{"name": "get_time", "arguments": {"city": "Oslo"}}\n</tool_call><end_of_turn>',
}

WEATHER = {
    "name": "get_weather",
    "description": "Weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
CONVERT = {
    "type": "function",
    "function": {
        "name": "convert",
        "description": "Convert money",
        "parameters": {"type": "object", "properties": {"amount": {"type": "number"}, "flag": {"type": "boolean"}}},
    },
}
MULTI = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Zürich and 3 EUR in USD?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"days": 2, "city": "Zürich"}}},
            {
                "id": "c2",
                "type": "function",
                "function": {"name": "convert", "arguments": {"amount": 3.0, "flag": None}},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 21}'},
    {"role": "tool", "tool_call_id": "c2", "content": {"usd": 3.2}},
    {"role": "assistant", "content": "21 °C; 3 EUR = 3.20 USD."},
    {"role": "user", "content": [{"type": "text", "text": "Thanks"}, {"type": "text", "text": "!"}]},
]


def _jinja(family: Family, dialect, messages, tools) -> str:
    rendered, _ = render_jinja_template(
        [messages], tools=tools, chat_template=family.chat_template(dialect), add_generation_prompt=True
    )
    return rendered[0]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_golden_prompt_and_completion(name):
    fam = FAMILIES[name]
    assert fam.render_prompt(USER, [TOOL], fam.default_dialect) == GOLDEN_PROMPTS[name]
    assert fam.render_prompt(USER, [{"type": "function", "function": TOOL}]) == GOLDEN_PROMPTS[name]
    assert fam.render_completion(CALL, None, tools=[TOOL]) == GOLDEN_COMPLETIONS[name]
    assert fam.render_completion([], "It is noon.") == "It is noon." + fam.end_of_turn
    # prompts end on a token boundary (a newline or a special token)
    assert GOLDEN_PROMPTS[name].endswith(("\n", "|>"))
    assert GOLDEN_PROMPTS[name].startswith(fam.bos_text)


def test_golden_prompts_without_tools():
    assert FAMILIES["qwen2"].render_prompt(USER, None) == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nTime in Oslo?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert FAMILIES["llama"].render_prompt([{"role": "system", "content": "Be brief."}, *USER], []) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nTime in Oslo?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert FAMILIES["phi3"].render_prompt(USER, None) == "<|user|>Time in Oslo?<|end|><|assistant|>"
    assert FAMILIES["gemma3"].render_prompt([{"role": "system", "content": "Be brief."}, *USER], None) == (
        "<bos><start_of_turn>user\nBe brief.\n\nTime in Oslo?<end_of_turn>\n<start_of_turn>model\n"
    )


def test_golden_multi_turn_chatml():
    text = FAMILIES["qwen2"].render_prompt(MULTI, [WEATHER, CONVERT])
    tail = text[text.index("<|im_start|>user\nWeather") :]
    assert tail == (
        "<|im_start|>user\nWeather in Zürich and 3 EUR in USD?<|im_end|>\n"
        "<|im_start|>assistant\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich", "days": 2}}\n</tool_call>\n'
        '<tool_call>\n{"name": "convert", "arguments": {"amount": 3.0, "flag": null}}\n</tool_call><|im_end|>\n'
        '<|im_start|>user\n<tool_response>\n{"temp": 21}\n</tool_response>\n'
        '<tool_response>\n{"usd": 3.2}\n</tool_response><|im_end|>\n'
        "<|im_start|>assistant\n21 °C; 3 EUR = 3.20 USD.<|im_end|>\n"
        "<|im_start|>user\nThanks!<|im_end|>\n<|im_start|>assistant\n"
    )
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n")


def test_golden_multi_turn_llama_phi():
    llama = FAMILIES["llama"].render_prompt(MULTI, [WEATHER, CONVERT])
    assert (
        '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", "parameters": '
        '{"city": "Zürich", "days": 2}}; {"name": "convert", "parameters": {"amount": 3.0, "flag": null}}<|eot_id|>'
        '<|start_header_id|>ipython<|end_header_id|>\n\n{"temp": 21}<|eot_id|>'
        '<|start_header_id|>ipython<|end_header_id|>\n\n{"usd": 3.2}<|eot_id|>'
    ) in llama
    phi = FAMILIES["phi3"].render_prompt(MULTI, [WEATHER, CONVERT])
    assert phi.startswith("<|system|>Be brief.\n\n<|tool|>[")
    assert (
        '<|assistant|>functools[{"name": "get_weather", "arguments": {"city": "Zürich", "days": 2}}, '
        '{"name": "convert", "arguments": {"amount": 3.0, "flag": null}}]<|end|>'
        '<|tool|>{"temp": 21}<|end|><|tool|>{"usd": 3.2}<|end|>'
        "<|assistant|>21 °C; 3 EUR = 3.20 USD.<|end|><|user|>Thanks!<|end|><|assistant|>"
    ) in phi


@pytest.mark.parametrize("name", sorted(FAMILIES))
@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_chat_template_equals_render_prompt(name, dialect):
    fam = FAMILIES[name]
    tools = [WEATHER, CONVERT]
    for messages in (USER, MULTI, [], [{"role": "system", "content": "Only system."}]):
        for offered in (tools, None):
            expected = fam.render_prompt(messages, offered, dialect)
            assert _jinja(fam, dialect, messages, offered) == expected, (messages, offered)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_apply_chat_template_through_a_tokenizer(name):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "Time": 1}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    fam = FAMILIES[name]
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, chat_template=fam.chat_template())
    for messages in (USER, MULTI):
        for tools in ([{"type": "function", "function": TOOL}], [WEATHER, CONVERT]):
            text = tok.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=False)
            assert text == fam.render_prompt(messages, tools)


def test_chat_template_names_the_dialect():
    tpl = FAMILIES["llama"].chat_template("pythonic")
    assert tpl.startswith(
        "{#- slmtune chat template: family llama, dialect pythonic (vLLM --tool-call-parser pythonic)"
    )
    assert get_dialect("pythonic").render_calls(CALL) in _jinja(
        FAMILIES["llama"], "pythonic", [*USER, {"role": "assistant", "tool_calls": CALL}], [TOOL]
    )


def test_gemma_has_no_later_system_turn():
    fam = FAMILIES["gemma3"]
    messages = [*USER, {"role": "system", "content": "late"}]
    with pytest.raises(ValueError, match="Gemma has no system role"):
        fam.render_prompt(messages, None)
    with pytest.raises(Exception, match="Gemma has no system role"):
        _jinja(fam, "hermes", messages, None)
    # a conversation that starts with the assistant still gets the tools in a user turn
    text = fam.render_prompt([{"role": "assistant", "content": "Hi."}], [TOOL])
    assert text.startswith("<bos><start_of_turn>user\n# Tools") and "<start_of_turn>model\nHi.<end_of_turn>\n" in text


def test_family_lookup():
    assert family_for_model_type("gemma3_text") is FAMILIES["gemma3"]
    assert family_for_model_type("gemma3") is FAMILIES["gemma3"]
    assert family_for_model_type("qwen2").default_dialect == "hermes"
    assert family_for_model_type("phi3").default_dialect == "phi4_mini_json"
    assert family_for_model_type("llama").default_dialect == "llama3_json"
    assert family_for_model_type("gemma2").default_dialect == "hermes"
    with pytest.raises(ValueError, match=r"no model family for model_type 'mistral'; known model types: qwen2"):
        family_for_model_type("mistral")
    with pytest.raises(dataclasses.FrozenInstanceError):
        FAMILIES["qwen2"].name = "x"  # type: ignore[misc]
    assert [f.has_system_role for f in FAMILIES.values()] == [True, True, True, False, False]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_tiny_config_builds_model_with_lora_targets(name):
    import torch
    from transformers import AutoModelForCausalLM

    fam = FAMILIES[name]
    cfg = fam.tiny_config(vocab_size=128)
    assert type(cfg).__name__ == fam.config_class
    assert cfg.model_type in fam.model_types
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads) == (2, 64, 4, 2)
    assert cfg.intermediate_size == 128
    model = AutoModelForCausalLM.from_config(cfg)
    assert family_for_model_type(model.config.model_type) is fam
    param_names = [n for n, _ in model.named_parameters()]
    for target in fam.lora_target_modules:
        assert any(f".{target}." in n for n in param_names), target
    with torch.no_grad():
        out = model(torch.tensor([[1, 2, 3]]))
    assert out.logits.shape == (1, 3, 128)
