"""Model-family specifics in one place: families (LoRA targets, special tokens, prompt format), tool-call dialects,
model sources (embedded, hub, local, GGUF, random) and loading tokenizers, base models and adapters."""
