"""Dialect parsers are total: any text gives calls or a named error, never an exception (issue 21)."""

import json

import pytest

from slmtune.models.dialects import get_dialect
from slmtune.models.dialects.base import normalize_call

DIALECTS = ["hermes", "llama3_json", "phi4_mini_json", "pythonic"]


def wrapped(dialect: str, body: str) -> str:
    return {"hermes": f"<tool_call>\n{body}\n</tool_call>", "llama3_json": body,
            "phi4_mini_json": f"functools[{body}]", "pythonic": body}[dialect]


@pytest.mark.parametrize("name", DIALECTS)
def test_hostile_outputs_give_named_errors(name):
    dialect = get_dialect(name)
    json_call = '{"name": "f", "arguments": {"a": %s}}'
    if name == "phi4_mini_json":
        json_call = '{"name": "f", "parameters": {"a": %s}}'
    values = {"nan": "NaN", "inf": "1e400", "deep": "[" * 5000 + "]" * 5000, "surrogate": '"\\ud83d"',
              "huge": "9" * 1000}
    for kind, value in values.items():
        text = f"[f(a={value})]" if name == "pythonic" else wrapped(name, json_call % value)
        result = dialect.parse(text)
        assert result.calls == [] and result.error, (kind, result)
        assert dialect.spans(text) == []
    # the fuzzer's MemoryError input, a raw lone surrogate, and something too long to bother with
    for text in ("[f(a=" + "-" * 10_000 + "1)]", "[f(a='\ud83d')]", "[" + " " * 1_000_001 + "]"):
        result = dialect.parse(text)
        assert result.calls == [] and (result.error or result.content), result


@pytest.mark.parametrize("name", DIALECTS)
def test_parsed_arguments_always_serialise(name):
    dialect = get_dialect(name)
    text = dialect.render_calls([{"name": "f", "arguments": {"a": "x\u00e9", "b": [1.5, -2]}}])
    result = dialect.parse(text)
    assert result.ok
    json.dumps(result.calls, allow_nan=False).encode("utf-8")


def test_normalize_call_refuses_non_json_arguments():
    for args in ('{"a": NaN}', '{"a": "\\udc00"}', "[" * 3000 + "]" * 3000):
        with pytest.raises(ValueError):
            normalize_call({"name": "f", "arguments": args})
