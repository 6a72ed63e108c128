"""Tool-call dialects: one per text format a model writes its calls in.

Each dialect renders the tools instruction and the canonical call text, parses raw model output,
builds the XGrammar constraint for a request, yields the spans of names/values, provides the Jinja
pieces for an exported chat template, and names the vLLM ``--tool-call-parser`` that reads it.
"""

from __future__ import annotations

from slmtune.models.dialects.base import Dialect, ParseResult, Span, canonical_arguments, normalize_call, normalize_tool
from slmtune.models.dialects.hermes import HermesDialect
from slmtune.models.dialects.llama3_json import Llama3JsonDialect
from slmtune.models.dialects.phi4_mini_json import Phi4MiniJsonDialect
from slmtune.models.dialects.pythonic import PythonicDialect

DIALECTS: dict[str, Dialect] = {
    d.name: d for d in (HermesDialect(), Llama3JsonDialect(), Phi4MiniJsonDialect(), PythonicDialect())
}


def get_dialect(name: str | Dialect) -> Dialect:
    """The dialect registered under ``name`` (a :class:`Dialect` is returned as is)."""
    if isinstance(name, Dialect):
        return name
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown dialect {name!r}; known: {', '.join(sorted(DIALECTS))}") from None


__all__ = [
    "DIALECTS",
    "Dialect",
    "HermesDialect",
    "Llama3JsonDialect",
    "ParseResult",
    "Phi4MiniJsonDialect",
    "PythonicDialect",
    "Span",
    "canonical_arguments",
    "get_dialect",
    "normalize_call",
    "normalize_tool",
]
