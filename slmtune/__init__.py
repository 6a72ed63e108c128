"""slmtune: fine-tune small language models into reliable function-calling models."""

__version__ = "0.1.0"
