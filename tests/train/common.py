"""Constants shared by the training tests."""

# Markup tokens of the non-Gemma families: added to the Gemma tokenizer as special tokens, as their own tokenizers
# have them, so that every family's prompts and completions tokenise the way they would with the real tokenizer.
MARKUP_TOKENS = ["<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                 "<|eot_id|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|tool|>"]

TIME_TOOL = {
    "name": "get_time",
    "description": "Local time in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                   "required": ["city"]},
}
