"""Training on whole multi-turn conversations: golden renderings per family and dialect (every assistant turn a
target, tool results in the family's markup, the text the exported chat template renders), exact loss masks, the
start-up mask check, per-target decision weights and the length filter."""

from __future__ import annotations

import copy

import pytest
from transformers.utils.chat_template_utils import render_jinja_template

from slmtune.models.families import FAMILIES
from slmtune.train.trainer import (
    IGNORE_INDEX,
    LabelMaskError,
    LeftPadCollator,
    check_label_masks,
    fit_length,
    render_segments,
    tokenize_examples,
)
from tests.train.common import MARKUP_TOKENS, TIME_TOOL

RESULT = '{"city": "Oslo", "time": "10:15"}'
CONVERSATION = {
    "id": "c1", "category": "multi_turn", "tools": [TIME_TOOL], "tool_calls": [],
    "messages": [
        {"role": "user", "content": "What time is it in the city I'm in?"},
        {"role": "assistant", "content": "Which city are you in?"},
        {"role": "user", "content": "Oslo."},
        {"role": "assistant", "tool_calls": [{"name": "get_time", "arguments": {"city": "Oslo", "days": 2}}]},
        {"role": "tool", "name": "get_time", "content": RESULT},
        {"role": "assistant", "content": "It is 10:15 in Oslo."},
    ],
}
HERMES = '<tool_call>\n{"name": "get_time", "arguments": {"city": "Oslo", "days": 2}}\n</tool_call>'
GEMMA_USER = "\n<start_of_turn>user\nOslo.<end_of_turn>\n<start_of_turn>model\n"
GEMMA_TOOL = f"\n<start_of_turn>user\n<tool_response>\n{RESULT}\n</tool_response><end_of_turn>\n<start_of_turn>model\n"
LLAMA_USER = ("<|start_header_id|>user<|end_header_id|>\n\nOslo.<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n")
LLAMA_TOOL = (f"<|start_header_id|>ipython<|end_header_id|>\n\n{RESULT}<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n")
# (family, dialect, [target texts], [context between targets]): the targets carry the loss, nothing else does.
GOLDEN = [
    ("qwen2", "hermes",
     ["Which city are you in?<|im_end|>", HERMES + "<|im_end|>", "It is 10:15 in Oslo.<|im_end|>"],
     ["\n<|im_start|>user\nOslo.<|im_end|>\n<|im_start|>assistant\n",
      f"\n<|im_start|>user\n<tool_response>\n{RESULT}\n</tool_response><|im_end|>\n<|im_start|>assistant\n"]),
    ("gemma3", "hermes",
     ["Which city are you in?<end_of_turn>", HERMES + "<end_of_turn>", "It is 10:15 in Oslo.<end_of_turn>"],
     [GEMMA_USER, GEMMA_TOOL]),
    ("gemma2", "hermes",
     ["Which city are you in?<end_of_turn>", HERMES + "<end_of_turn>", "It is 10:15 in Oslo.<end_of_turn>"],
     [GEMMA_USER, GEMMA_TOOL]),
    ("llama", "llama3_json",
     ["Which city are you in?<|eot_id|>", '{"name": "get_time", "parameters": {"city": "Oslo", "days": 2}}<|eot_id|>',
      "It is 10:15 in Oslo.<|eot_id|>"],
     [LLAMA_USER, LLAMA_TOOL]),
    ("phi3", "phi4_mini_json",
     ["Which city are you in?<|end|>",
      'functools[{"name": "get_time", "arguments": {"city": "Oslo", "days": 2}}]<|end|>',
      "It is 10:15 in Oslo.<|end|>"],
     ["<|user|>Oslo.<|end|><|assistant|>", f"<|tool|>{RESULT}<|end|><|assistant|>"]),
    ("llama", "pythonic",
     ["Which city are you in?<|eot_id|>", '[get_time(city="Oslo", days=2)]<|eot_id|>',
      "It is 10:15 in Oslo.<|eot_id|>"],
     [LLAMA_USER, LLAMA_TOOL]),
    ("gemma3", "pythonic",
     ["Which city are you in?<end_of_turn>", '[get_time(city="Oslo", days=2)]<end_of_turn>',
      "It is 10:15 in Oslo.<end_of_turn>"],
     [GEMMA_USER, GEMMA_TOOL]),
]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from slmtune.models.sources import resolve_source

    tok = AutoTokenizer.from_pretrained(resolve_source("embedded:gemma3-270m").path)
    tok.add_special_tokens({"additional_special_tokens": MARKUP_TOKENS})
    return tok


@pytest.mark.parametrize("family,dialect,targets,contexts", GOLDEN)
def test_golden_segments_per_family_and_dialect(family, dialect, targets, contexts):
    fam = FAMILIES[family]
    segments = render_segments(CONVERSATION, fam, dialect)
    assert [t for t, is_target in segments if is_target] == targets
    assert [t for t, is_target in segments if not is_target][1:] == contexts
    messages, tools = CONVERSATION["messages"], CONVERSATION["tools"]
    # training text = serving text: the segments are what render_prompt and the exported chat template render
    whole = fam.render_prompt(messages, tools, dialect)
    served, _ = render_jinja_template([messages], tools=tools, chat_template=fam.chat_template(dialect),
                                      add_generation_prompt=True)
    assert served[0] == whole and whole.startswith("".join(t for t, _ in segments))
    # and each target's context is exactly the prompt an agent (or the teacher-forced eval) sends for that turn
    starts = [len("".join(t for t, _ in segments[:k])) for k, (_, is_target) in enumerate(segments) if is_target]
    joined = "".join(t for t, _ in segments)
    assert [joined[:start] for start in starts] == [fam.render_prompt(messages[:i], tools, dialect) for i in (1, 3, 5)]


def test_consecutive_tool_results_merge_into_one_turn_in_chatml_and_gemma():
    conversation = copy.deepcopy(CONVERSATION)
    call = {"name": "get_time", "arguments": {"city": "Rome"}}
    conversation["messages"][3]["tool_calls"].append(call)
    conversation["messages"].insert(5, {"role": "tool", "name": "get_time", "content": '{"time": "11:15"}'})
    contexts = [t for t, is_target in render_segments(conversation, FAMILIES["gemma3"], "hermes") if not is_target]
    assert contexts[-1] == (f"\n<start_of_turn>user\n<tool_response>\n{RESULT}\n</tool_response>\n<tool_response>\n"
                            '{"time": "11:15"}\n</tool_response><end_of_turn>\n<start_of_turn>model\n')


@pytest.mark.parametrize("family,dialect,targets,contexts", GOLDEN)
def test_loss_mask_covers_every_assistant_turn_and_nothing_else(tokenizer, family, dialect, targets, contexts):
    single = {"messages": [{"role": "user", "content": "Time in Oslo?"}], "tools": [TIME_TOOL],
              "tool_calls": [{"name": "get_time", "arguments": {"city": "Oslo"}}]}
    examples, dropped = tokenize_examples([CONVERSATION, single], tokenizer, FAMILIES[family], dialect, 4096)
    assert dropped == 0 and len(examples[0].targets) == 3 and not examples[1].targets
    batch = LeftPadCollator(tokenizer.pad_token_id)([e.feature() for e in examples])
    check_label_masks(batch, examples, tokenizer)       # the start-up check accepts it
    labels = batch["labels"][0]
    offset = labels.shape[0] - len(examples[0].input_ids)
    trained = [tokenizer.decode(labels[offset + a:offset + b].tolist()) for a, b in examples[0].targets]
    assert trained == targets
    masked = (labels != IGNORE_INDEX).nonzero().flatten().tolist()
    assert masked == [offset + i for a, b in examples[0].targets for i in range(a, b)]
    # no user, tool-result or tool-schema character carries loss
    assert tokenizer.decode(labels[labels != IGNORE_INDEX].tolist()) == "".join(targets)
    assert int(batch["logits_window"]) >= len(examples[0].input_ids) - examples[0].targets[0][0] + 1


def test_mask_check_refuses_a_labelled_tool_result(tokenizer):
    examples, _ = tokenize_examples([CONVERSATION], tokenizer, FAMILIES["gemma3"], "hermes", 4096)
    batch = LeftPadCollator(tokenizer.pad_token_id)([e.feature() for e in examples])
    start = examples[0].targets[1][1] + 2        # inside the tool-result turn that follows the call
    batch["labels"][0, start] = batch["input_ids"][0, start]
    with pytest.raises(LabelMaskError, match="tool-result"):
        check_label_masks(batch, examples, tokenizer)
    unlabelled = LeftPadCollator(tokenizer.pad_token_id)([e.feature() for e in examples])
    unlabelled["labels"][0, examples[0].targets[2][0]:] = IGNORE_INDEX   # the last turn not trained
    with pytest.raises(LabelMaskError):
        check_label_masks(unlabelled, examples, tokenizer)


def test_decision_weight_on_the_first_token_of_every_turn(tokenizer):
    examples, _ = tokenize_examples([CONVERSATION], tokenizer, FAMILIES["gemma3"], "hermes", 4096)
    batch = LeftPadCollator(tokenizer.pad_token_id, decision_weight=5.0)([e.feature() for e in examples])
    weights = batch["loss_weights"][0]
    firsts = [a for a, _ in examples[0].targets]
    assert (weights == 5.0).nonzero().flatten().tolist() == firsts
    assert int((weights > 0).sum()) == sum(b - a for a, b in examples[0].targets)


def test_long_conversations_keep_the_turns_that_fit(tokenizer):
    (full,), _ = tokenize_examples([CONVERSATION], tokenizer, FAMILIES["gemma3"], "hermes", 4096)
    second_end = full.targets[1][1]
    cut = fit_length(full, second_end + 3)
    assert cut.cut and cut.targets == full.targets[:2] and len(cut.input_ids) == second_end
    assert cut.target_texts == full.target_texts[:2]
    assert fit_length(full, full.targets[0][1] - 1) is None
    examples, dropped = tokenize_examples([CONVERSATION], tokenizer, FAMILIES["gemma3"], "hermes", second_end + 3)
    assert dropped == 0 and examples[0].cut
    batch = LeftPadCollator(tokenizer.pad_token_id)([e.feature() for e in examples])
    check_label_masks(batch, examples, tokenizer)
