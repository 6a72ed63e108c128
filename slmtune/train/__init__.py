"""LoRA / QLoRA supervised fine-tuning with loss on the assistant's tokens only."""
