"""JSON Schema -> EBNF converter and dialect grammars, checked with xgrammar itself."""

from __future__ import annotations

import json
from functools import lru_cache

import pytest
import torch
import xgrammar as xgr

from slmtune.eval.grammar import GrammarLimits, python_literal, schema_to_ebnf
from slmtune.models.dialects import get_dialect

DIALECT_NAMES = ["hermes", "llama3_json", "phi4_mini_json", "pythonic"]


@lru_cache(maxsize=1)
def _string_compiler() -> xgr.GrammarCompiler:
    # an empty vocabulary: matchers can only accept strings (enough to test the language)
    return xgr.GrammarCompiler(xgr.TokenizerInfo([]), cache_enabled=False)


@lru_cache(maxsize=64)
def _compiled(ebnf: str) -> xgr.CompiledGrammar:
    return _string_compiler().compile_grammar(xgr.Grammar.from_ebnf(ebnf))


def accepts(ebnf: str, text: str) -> bool:
    matcher = xgr.GrammarMatcher(_compiled(ebnf), terminate_without_stop_token=True)
    return matcher.accept_string(text) and matcher.is_terminated()


def schema_grammar(schema: dict, limits: GrammarLimits | None = None, style: str = "json") -> str:
    root, rules = schema_to_ebnf(schema, "s", limits, style=style)
    return f"root ::= {root}\n{rules}"


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def test_xgrammar_bounded_repetition_syntax():
    # verified on the installed xgrammar (0.2.8): `x{m,n}` is supported
    g = 'root ::= [0-9]{1,3} "x"'
    assert accepts(g, "1x") and accepts(g, "123x")
    assert not accepts(g, "1234x") and not accepts(g, "x")


def test_schema_to_ebnf_returns_named_root_without_root_rule():
    root, rules = schema_to_ebnf({"type": "object", "properties": {"a": {"type": "integer"}}}, "my-tool.v1")
    assert root == "my_tool_v1"
    assert f"{root} ::= " in rules and "root ::=" not in rules
    assert all(line.split(" ::= ")[0].startswith("my_tool_v1") for line in rules.splitlines())


OBJ = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 14},
        "count": {"type": "integer", "minimum": 0},
        "delta": {"type": "integer"},
        "temp": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "when": {"type": "string", "format": "date"},
        "at": {"type": "string", "format": "date-time"},
        "code": {"type": "string", "maxLength": 3},
        "any": {},
        "maybe": {"type": ["string", "null"]},
        "opts": {
            "type": "object",
            "properties": {"a": {"type": "boolean"}, "b": {"type": "null"}},
            "required": ["b"],
        },
        "free": {"type": "object"},
        "pick": {"anyOf": [{"type": "integer"}, {"type": "string", "const": "all"}]},
    },
    "required": ["city"],
}


@pytest.mark.parametrize(
    "value",
    [
        {"city": "Paris"},
        {"city": ""},
        {"city": 'Zürich "Süd"\n東京 \\ \t\u0001'},
        {"city": "P", "unit": "fahrenheit", "days": 14},
        {"city": "P", "count": 0, "delta": -123456789012},
        {"city": "P", "temp": 3.0},
        {"city": "P", "temp": -0.25},
        {"city": "P", "temp": 123456.123456},
        {"city": "P", "temp": 1e-07},
        {"city": "P", "temp": 1.5e16},
        {"city": "P", "temp": 7},
        {"city": "P", "tags": []},
        {"city": "P", "tags": ["a", "b", "c"]},
        {"city": "P", "when": "2024-02-29", "at": "2024-02-29T13:05:00Z"},
        {"city": "P", "at": "2024-02-29T13:05:00.123+02:00"},
        {"city": "P", "code": "FRA"},
        {"city": "P", "any": {"k": [1, {"x": None}], "s": "t"}},
        {"city": "P", "any": 2.5},
        {"city": "P", "maybe": None},
        {"city": "P", "maybe": "x"},
        {"city": "P", "opts": {"b": None}},
        {"city": "P", "opts": {"a": True, "b": None}},
        {"city": "P", "free": {}},
        {"city": "P", "free": {"x": 1, "y": [True]}},
        {"city": "P", "pick": 3},
        {"city": "P", "pick": "all"},
    ],
)
def test_schema_accepts_canonical_values(value):
    assert accepts(schema_grammar(OBJ), dumps(value))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"city":"P"}', "no space after colon"),
        ('{"city": "P" }', "extra whitespace"),
        ('{ "city": "P"}', "extra whitespace"),
        ('{"city": "P",  "days": 3}', "double space"),
        ('{"unit": "celsius"}', "missing required argument"),
        ('{"days": 3, "city": "P"}', "schema order"),
        ('{"city": "P", "zzz": 1}', "unknown key"),
        ('{"city": "P", "unit": "kelvin"}', "wrong enum value"),
        ('{"city": "P", "days": 15}', "above maximum (small range enumerated)"),
        ('{"city": "P", "days": 0}', "below minimum"),
        ('{"city": "P", "count": -1}', "minimum 0 forbids '-'"),
        ('{"city": "P", "delta": 1234567890123}', "runaway digits beyond the cap"),
        ('{"city": "P", "delta": 007}', "leading zeros"),
        ('{"city": "P", "temp": 3.0000001}', "runaway fraction digits"),
        ('{"city": "P", "temp": 3.000000}', "runaway zeros"),
        ('{"city": "P", "temp": 3.50}', "non-canonical trailing zero"),
        ('{"city": "P", "temp": 1234567890123.5}', "too many integer digits"),
        ('{"city": "P", "temp": 1E-7}', "non-canonical exponent"),
        ('{"city": "P", "tags": ["a", "b", "c", "d"]}', "too many array items (maxItems)"),
        ('{"city": "P", "tags": ["a","b"]}', "array separator"),
        ('{"city": "P", "when": "2024-13-01"}', "bad month"),
        ('{"city": "P", "when": "29.02.2024"}', "not a date"),
        ('{"city": "P", "code": "FRAN"}', "maxLength"),
        ('{"city": "P", "opts": {"a": true}}', "nested required missing"),
        ('{"city": "P", "maybe": 3}', "type list"),
        ('{"city": "P\\/"}', "non-canonical escape"),
        ('{"city": "P\\u00E9"}', "non-canonical unicode escape"),
        ('{"city": "P", "pick": "some"}', "anyOf const"),
        ('{"city": "P", "free": {"x": 1,"y": 2}}', "free-form separator"),
    ],
)
def test_schema_rejects(text, why):
    assert not accepts(schema_grammar(OBJ), text), why


def test_default_caps():
    g = schema_grammar({"type": "array", "items": {"type": "integer"}})
    assert accepts(g, dumps(list(range(16))))
    assert not accepts(g, dumps(list(range(17))))  # default cap 16
    small = GrammarLimits(max_array_items=2, max_number_int_digits=3, max_fraction_digits=2)
    g = schema_grammar({"type": "array", "items": {"type": "number"}}, small)
    assert accepts(g, "[999.25, -1.5]")
    assert not accepts(g, "[1, 2, 3]") and not accepts(g, "[1000]") and not accepts(g, "[0.125]")
    g = schema_grammar({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3})
    assert accepts(g, "[1, 2]") and not accepts(g, "[1]") and not accepts(g, "[]")
    # untyped values are depth-bounded
    g = schema_grammar({}, GrammarLimits(max_any_depth=1))
    assert accepts(g, '{"a": 1}') and accepts(g, "[1, 2]")
    assert not accepts(g, "[[1]]")
    # a string cap (opt-in) is exact
    g = schema_grammar({"type": "string"}, GrammarLimits(max_string_length=4))
    assert accepts(g, '"abcd"') and not accepts(g, '"abcde"')


def test_property_order_and_empty_objects():
    a = {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}}
    b = {"type": "object", "properties": {"y": {"type": "integer"}, "x": {"type": "integer"}}}
    g = schema_grammar({"type": "array", "items": {"anyOf": [a, {"type": "array", "items": b}]}})
    assert accepts(g, '[{"x": 1, "y": 2}, [{"y": 2, "x": 1}]]')
    assert not accepts(g, '[{"y": 2, "x": 1}]') and not accepts(g, '[[{"x": 1, "y": 2}]]')
    g = schema_grammar({"type": "object", "properties": {}})
    assert accepts(g, "{}") and not accepts(g, '{"x": 1}')
    g = schema_grammar({"type": "object", "additionalProperties": False})
    assert accepts(g, "{}") and not accepts(g, '{"x": 1}')


def test_python_style_values():
    g = schema_grammar({"type": "array", "items": {}}, style="python")
    value = [True, False, None, {"k": [1, "s"]}, -2.5]
    assert python_literal(value) == '[True, False, None, {"k": [1, "s"]}, -2.5]'
    assert accepts(g, python_literal(value))
    assert not accepts(g, dumps(value))  # true/false/null are JSON, not Python
    g = schema_grammar({"enum": [True, None, "a"]}, style="python")
    assert accepts(g, "True") and accepts(g, "None") and accepts(g, '"a"') and not accepts(g, "true")


WEATHER = {
    "name": "get_weather",
    "description": "Get the weather",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["c", "f"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 14},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        },
        "required": ["city"],
    },
}
NOW = {"name": "get_time", "description": "Current time", "parameters": {"type": "object", "properties": {}}}
TOOLS = [WEATHER, NOW]
CALL = {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "c", "days": 3, "tags": ["x"]}}
CALL2 = {"name": "get_time", "arguments": {}}


def _swap_name(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
def test_dialect_grammar_accepts_canonical_calls(dialect):
    d = get_dialect(dialect)
    g = d.grammar(TOOLS, allow_text=False)
    assert g.startswith("root ::= ")
    for calls in ([CALL], [CALL2], [CALL, CALL2, CALL], [{"name": "get_weather", "arguments": {"city": "P"}}]):
        assert accepts(g, d.render_calls(calls, TOOLS)), calls


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
def test_dialect_grammar_rejects(dialect):
    d = get_dialect(dialect)
    g = d.grammar(TOOLS, allow_text=False)
    good = d.render_calls([CALL], TOOLS)
    assert accepts(g, good)
    bad = {
        "unknown tool name": _swap_name(good, "get_weather", "get_wether"),
        "missing required argument": d.render_calls([{"name": "get_weather", "arguments": {"unit": "c"}}]),
        "wrong enum value": d.render_calls([{"name": "get_weather", "arguments": {"city": "P", "unit": "k"}}]),
        "too many array items": d.render_calls(
            [{"name": "get_weather", "arguments": {"city": "P", "tags": ["a", "b", "c"]}}]
        ),
        "runaway digits": d.render_calls([{"name": "get_weather", "arguments": {"city": "P", "days": 1400}}]),
        "extra whitespace": good.replace(", ", ",  ", 1),
        "leading whitespace": " " + good,
        "text when allow_text=False": "The weather is fine.",
        "empty output": "",
    }
    for why, text in bad.items():
        assert not accepts(g, text), why


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
def test_dialect_grammar_call_counts(dialect):
    d = get_dialect(dialect)
    one = d.render_calls([CALL], TOOLS)
    two = d.render_calls([CALL, CALL2], TOOLS)
    g1 = d.grammar(TOOLS, allow_text=False, max_calls=1)
    assert accepts(g1, one) and not accepts(g1, two)
    g2 = d.grammar(TOOLS, allow_text=False, min_calls=2, max_calls=2)
    assert accepts(g2, two) and not accepts(g2, one)
    nine = d.render_calls([CALL2] * 9, TOOLS)
    assert not accepts(d.grammar(TOOLS, allow_text=False), nine)  # default cap: 8 calls
    assert accepts(d.grammar(TOOLS, allow_text=False, limits=GrammarLimits(max_calls=9)), nine)
    with pytest.raises(ValueError):
        d.grammar(TOOLS, allow_text=False, min_calls=0)
    with pytest.raises(ValueError):
        d.grammar([], allow_text=False)


TEXT_TRAPS = {
    "hermes": ["Call <tool_call> now", "<tool_call>\n"],
    "llama3_json": ['Use {"name": "get_time", "parameters": {}}', "a {b} c"],
    "phi4_mini_json": ['Do functools[{"name": "get_time", "arguments": {}}]', "functools["],
    "pythonic": ["[1] See the docs.", "[x"],
}


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
def test_dialect_grammar_text_alternative(dialect):
    d = get_dialect(dialect)
    g = d.grammar(TOOLS, allow_text=True)
    for text in ("The capital of France is Paris.", "Line one.\nLine two: a < b, [1], x=2.", "Ok"):
        assert accepts(g, text), text
        assert d.parse(text).calls == []
    assert accepts(g, d.render_calls([CALL, CALL2], TOOLS))
    for text in TEXT_TRAPS[dialect]:
        assert not accepts(g, text), text  # text that the vLLM parser would read as a call
    assert not accepts(g, " leading space") and not accepts(g, "")
    text_only = d.grammar([], allow_text=True)
    assert accepts(text_only, "Hello.") and not accepts(text_only, d.render_calls([CALL2]))


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
def test_byte_level_tokenizer_matcher(dialect):
    """Token-level check: a 256-byte vocabulary plus an end token, as GrammarMatcher uses it."""
    d = get_dialect(dialect)
    vocab = [bytes([i]) for i in range(256)] + [b"</s>"]
    info = xgr.TokenizerInfo(vocab, vocab_type=xgr.VocabType.RAW, stop_token_ids=[256])
    compiled = xgr.GrammarCompiler(info, cache_enabled=False).compile_grammar(
        d.grammar(TOOLS, allow_text=False, max_calls=1)
    )
    matcher = xgr.GrammarMatcher(compiled)
    mask = xgr.allocate_token_bitmask(1, info.vocab_size)
    text = d.render_calls([CALL], TOOLS)
    for byte in text.encode("utf-8"):
        matcher.fill_next_token_bitmask(mask)
        assert (int(mask[0, byte // 32]) >> (byte % 32)) & 1  # the next byte is allowed
        assert matcher.accept_token(byte)
    matcher.fill_next_token_bitmask(mask)
    allowed = torch.nonzero(xgr.testing.bitmask_to_bool_mask(mask, info.vocab_size)[0]).flatten().tolist()
    assert allowed == [256]  # a complete single call: only the end token remains
    assert matcher.accept_token(256) and matcher.is_terminated()


def test_unsupported_schema_errors():
    with pytest.raises(ValueError, match="unsupported JSON Schema type"):
        schema_to_ebnf({"type": "tuple"})
    with pytest.raises(ValueError, match="empty enum"):
        schema_to_ebnf({"enum": []})
    with pytest.raises(ValueError, match="empty range"):
        schema_to_ebnf({"type": "integer", "minimum": 5, "maximum": 1})


@pytest.mark.parametrize(("pattern", "good", "bad"), [
    ("^TCK-[0-9]{5}$", ["TCK-20931"], ["TCK-2093", "tck-20931", "TCK-209311", ")"]),
    ("^(ALL|[A-Z]{2})$", ["ALL", "NO"], ["ALLX", "N"]),
    ("^[a-z]{2}(-[A-Z]{2})?$", ["en", "en-GB"], ["en-gb", "e"]),
    ("^\\S+( \\S+){1}$", ["ab cd", "x/y z"], ["ab", "a  b", 'a" b', "a\\\\ b"]),  # no quote or backslash
    ("[0-9]{3}", ["abc123def", "123"], ["12", "abc"]),  # unanchored: anything around a match
])
def test_string_pattern_is_enforced(pattern, good, bad):
    ebnf = schema_grammar({"type": "string", "pattern": pattern})
    for text in good:
        assert accepts(ebnf, json.dumps(text)), text
    for text in bad:
        assert not accepts(ebnf, '"' + text + '"'), text


@pytest.mark.parametrize("pattern", ["^a.b$", '^"x"$', "^a\\\\b$", "^\\s+$", "^\\u0041$", "^(unclosed$"])
def test_patterns_that_cannot_be_enforced_fall_back_to_a_plain_string(pattern):
    from slmtune.eval.grammar import pattern_ebnf

    assert pattern_ebnf(pattern) is None
    assert accepts(schema_grammar({"type": "string", "pattern": pattern}), '"anything at all"')


@pytest.mark.parametrize(("schema", "good", "bad"), [
    ({"type": "integer", "minimum": 1, "maximum": 500}, ["1", "500", "250"], ["0", "501", "-1", "0250"]),
    ({"type": "integer", "minimum": -180, "maximum": 180}, ["-180", "0", "77"], ["181", "-181"]),
    ({"type": "integer", "minimum": 1}, ["1", "999999"], ["0", "-5"]),
    ({"type": "number", "minimum": -180, "maximum": 180}, ["-180", "180.0", "12.5", "0"], ["185.5", "-180.5", "181"]),
    ({"type": "number", "minimum": 0, "maximum": 1}, ["0", "1", "0.5", "1.0", "0.125"], ["1.5", "-0.1"]),
    ({"type": "number", "exclusiveMinimum": 0}, ["0.5", "12"], ["0", "-1"]),
    ({"type": "number", "minimum": 0.5, "maximum": 100}, ["0.5", "99.99", "100"], ["0.4", "100.5"]),
])
def test_numeric_ranges_are_exact(schema, good, bad):
    ebnf = schema_grammar(schema)
    for text in good:
        assert accepts(ebnf, text), text
    for text in bad:
        assert not accepts(ebnf, text), text


@pytest.mark.parametrize(("fmt", "good", "bad"), [
    ("time", ["00:00:00", "23:59:59"], ["24:00:00", "12:30", "12:30:00Z", "12:30:00.5", "12:30:00+01:00"]),
    ("date-time", ["2024-02-29T13:05:00Z", "2023-12-31T23:59:59.5-05:00"],
     ["2023-02-29T13:05:00Z", "2024-01-01T13:05:00", "2024-01-01 13:05:00Z"]),
    ("email", ["ana@example.com", "a.b+c@d"], ["ana.example.com", "@x", "a@", "a b@c", "a@b@c"]),
    ("idn-email", ["ana@example.com"], ["ana"]),
    ("ipv4", ["10.0.0.1", "255.255.255.255", "0.0.0.0"], ["256.1.1.1", "10.0.0", "01.2.3.4", "1.2.3.4.5"]),
    ("uuid", ["123e4567-e89b-12d3-a456-426614174000"], ["123e4567e89b12d3a456426614174000", "123e4567-e89b-12d3"]),
])
def test_string_formats_accept_only_what_the_validator_accepts(fmt, good, bad):
    import jsonschema

    checker = jsonschema.FormatChecker()
    ebnf = schema_grammar({"type": "string", "format": fmt})
    for text in good:
        assert accepts(ebnf, json.dumps(text)), text
        assert fmt not in checker.checkers or checker.conforms(text, fmt), text
    for text in bad:
        assert not accepts(ebnf, json.dumps(text)), text


def test_date_format_accepts_exactly_the_real_calendar_dates():
    import datetime

    ebnf = schema_grammar({"type": "string", "format": "date"})
    for year in ("0000", "0001", "1900", "2000", "2023", "2024", "2100", "2400"):
        for month in range(0, 14):
            for day in range(0, 33):
                text = f"{year}-{month:02d}-{day:02d}"
                try:
                    datetime.date.fromisoformat(text)
                    real = True
                except ValueError:
                    real = False
                assert accepts(ebnf, json.dumps(text)) == real, text


def test_string_values_never_contain_the_forbidden_text():
    from slmtune.eval.grammar import EBNFBuilder

    def grammar(schema: dict, forbid: str | None) -> str:
        builder = EBNFBuilder("s", string_forbids=forbid)
        return f"root ::= {builder.schema_rule(schema)}\n{builder.render()}"

    free, short, nonempty = {"type": "string"}, {"type": "string", "maxLength": 8}, {"type": "string", "minLength": 1}
    for value in ["", "<", "a<<b", "</", "x</", "<//t", "</d>", "<\\u0000/t", 'say "</" \\n']:
        text = dumps(value) if "\\u" not in value else f'"{value}"'
        assert accepts(grammar(free, None), text), value
        assert accepts(grammar(free, "</t"), text), value
    for value in ["</t", "a</tool_call>b", "<</t", "</</t", "x</td>"]:
        assert accepts(grammar(free, None), dumps(value)), value
        assert not accepts(grammar(free, "</t"), dumps(value)), value
    assert not accepts(grammar(nonempty, "</t"), '""') and accepts(grammar(nonempty, "</t"), '"<"')
    # a bounded run long enough to hold the text loses its first character instead
    assert accepts(grammar(short, "</t"), dumps("a/t")) and not accepts(grammar(short, "</t"), dumps("a<"))
    assert accepts(grammar({"type": "string", "maxLength": 2}, "</t"), dumps("<<"))
    with pytest.raises(ValueError, match="string_forbids"):
        EBNFBuilder("s", string_forbids="<<")


def test_hermes_string_arguments_cannot_close_the_call_block():
    dialect = get_dialect("hermes")
    tool = {"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "string"}}}}
    grammar = dialect.grammar([tool], allow_text=False)
    assert accepts(grammar, dialect.render_calls([{"name": "f", "arguments": {"x": "<b>bold</b>"}}]))
    assert not accepts(grammar, dialect.render_calls([{"name": "f", "arguments": {"x": "a</tool_call>"}}]))


def test_unique_item_arrays_are_marked_for_the_decoder_and_accept_the_same_language():
    from slmtune.eval.grammar import repeated_unique_items

    unique = {"type": "array", "items": {"type": "integer"}, "uniqueItems": True, "maxItems": 4}
    grammar = schema_grammar(unique)
    assert '[capture="unique_open:' in grammar and '[capture="unique_item:' in grammar
    assert '[capture=' not in schema_grammar({**unique, "uniqueItems": False})
    for text in ["[]", "[1]", "[1, 2]", "[5, 5, 55]"]:  # a grammar cannot forbid the repeat: the decoder does
        assert accepts(grammar, text), text

    def captured(text: str) -> list[tuple[str, bytes]]:
        matcher = xgr.GrammarMatcher(_compiled(grammar), terminate_without_stop_token=True)
        assert matcher.accept_string(text)
        return matcher.get_captures()

    assert repeated_unique_items(captured("[5, 55, 6"), last_number_closed=False) == 0
    assert repeated_unique_items(captured("[5, 5"), last_number_closed=False) == 0  # "5" may become "55"
    assert repeated_unique_items(captured("[5, 5"), last_number_closed=True) == 1
    assert repeated_unique_items(captured("[5, 5, 7"), last_number_closed=False) == 1

    nested = schema_grammar({"type": "array", "maxItems": 3,
                             "items": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}})
    matcher = xgr.GrammarMatcher(_compiled(nested), terminate_without_stop_token=True)
    assert matcher.accept_string('[["a", "b"], ["a"')  # each array is its own set of items
    assert repeated_unique_items(matcher.get_captures(), last_number_closed=False) == 0
    assert matcher.accept_string(', "a"')
    assert repeated_unique_items(matcher.get_captures(), last_number_closed=False) == 1


# --- hostile schemas (issue 21) -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("schema", "good", "bad"), [
    ({"type": "integer", "minimum": 1e12}, ["1700000000000", "1000000000000"], ["999999999999", "-1", '""']),
    ({"type": "integer", "minimum": 1_700_000_000_000, "maximum": 1_800_000_000_000}, ["1750000000000"],
     ["1699999999999", "1800000000001"]),
    ({"type": "integer", "maximum": -(10**14)}, ["-100000000000000"], ["-99999999999999", "0"]),
    ({"type": "number", "minimum": 1e12}, ["1700000000000.5", "1000000000000"], ["999999999999.9"]),
])
def test_large_bounds_widen_the_digit_cap(schema, good, bad):
    ebnf = schema_grammar(schema)
    assert all(accepts(ebnf, text) for text in good)
    assert not any(accepts(ebnf, text) for text in bad)


def test_infinite_and_absurd_bounds():
    assert accepts(schema_grammar({"type": "integer", "minimum": float("-inf")}), "-5")  # no bound
    with pytest.raises(ValueError, match="digits"):
        schema_to_ebnf({"type": "integer", "minimum": 10**400})
    with pytest.raises(ValueError, match="digits"):
        schema_to_ebnf({"type": "number", "maximum": 1e300})


def test_large_enums_build_in_linear_time():
    import time

    values = [f"value_{i}" for i in range(40_000)] + ["value_7"]
    started = time.perf_counter()
    _, ebnf = schema_to_ebnf({"type": "string", "enum": values})
    assert time.perf_counter() - started < 3.0  # 6.4 s with the quadratic de-duplication
    assert ebnf.count('"\\"value_7\\""') == 1
