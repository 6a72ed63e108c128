"""Golden render/parse/spans tests for every tool-call dialect."""

from __future__ import annotations

import pytest

from slmtune.models.dialects import DIALECTS, Dialect, ParseResult, Span, get_dialect

WEATHER = {
    "name": "get_weather",
    "description": "Get the weather",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["c", "f"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 14},
        },
        "required": ["city"],
    },
}
FACTORIAL = {
    "name": "math.factorial",
    "description": "n!",
    "parameters": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}, "required": ["n"]},
}
EVENT = {
    "name": "create_event",
    "description": "Create an event",
    "parameters": {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "attendees": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
                    "required": ["name"],
                },
                "maxItems": 4,
            },
            "options": {
                "type": "object",
                "properties": {"private": {"type": "boolean"}, "reminder": {"type": ["integer", "null"]}},
            },
        },
        "required": ["title", "attendees"],
    },
}
TOOLS = [WEATHER, FACTORIAL, EVENT]

ONE = [{"name": "get_weather", "arguments": {"unit": "c", "city": "Paris"}}]  # reordered by schema
TWO = [
    {"name": "get_weather", "arguments": {"city": "Paris"}},
    {"name": "get_weather", "arguments": {"city": "Oslo", "days": 3}},
]
DOTTED = [{"name": "math.factorial", "arguments": {"n": 5}}]
NESTED = [
    {
        "name": "create_event",
        "arguments": {
            "title": "Sync",
            "attendees": [{"name": "Ana", "email": "ana@x.io"}, {"name": "Bo"}],
            "options": {"private": True, "reminder": None},
        },
    }
]
UNICODE = [{"name": "get_weather", "arguments": {"city": 'Zürich "Süd" 東京'}}]

_NESTED_JSON = (
    '{"title": "Sync", "attendees": [{"name": "Ana", "email": "ana@x.io"}, {"name": "Bo"}], '
    '"options": {"private": true, "reminder": null}}'
)

GOLDEN = {
    "hermes": {
        "one": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}\n</tool_call>',
        "two": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo", "days": 3}}\n</tool_call>',
        "dotted": '<tool_call>\n{"name": "math.factorial", "arguments": {"n": 5}}\n</tool_call>',
        "nested": '<tool_call>\n{"name": "create_event", "arguments": ' + _NESTED_JSON + "}\n</tool_call>",
        "unicode": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich \\"Süd\\" 東京"}}\n</tool_call>',
    },
    "llama3_json": {
        "one": '{"name": "get_weather", "parameters": {"city": "Paris", "unit": "c"}}',
        "two": '{"name": "get_weather", "parameters": {"city": "Paris"}}; '
        '{"name": "get_weather", "parameters": {"city": "Oslo", "days": 3}}',
        "dotted": '{"name": "math.factorial", "parameters": {"n": 5}}',
        "nested": '{"name": "create_event", "parameters": ' + _NESTED_JSON + "}",
        "unicode": '{"name": "get_weather", "parameters": {"city": "Zürich \\"Süd\\" 東京"}}',
    },
    "phi4_mini_json": {
        "one": 'functools[{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}]',
        "two": 'functools[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
        '{"name": "get_weather", "arguments": {"city": "Oslo", "days": 3}}]',
        "dotted": 'functools[{"name": "math.factorial", "arguments": {"n": 5}}]',
        "nested": 'functools[{"name": "create_event", "arguments": ' + _NESTED_JSON + "}]",
        "unicode": 'functools[{"name": "get_weather", "arguments": {"city": "Zürich \\"Süd\\" 東京"}}]',
    },
    "pythonic": {
        "one": '[get_weather(city="Paris", unit="c")]',
        "two": '[get_weather(city="Paris"), get_weather(city="Oslo", days=3)]',
        "dotted": None,  # refused
        "nested": '[create_event(title="Sync", attendees=[{"name": "Ana", "email": "ana@x.io"}, {"name": "Bo"}], '
        'options={"private": True, "reminder": None})]',
        "unicode": '[get_weather(city="Zürich \\"Süd\\" 東京")]',
    },
}
CASES = {"one": ONE, "two": TWO, "dotted": DOTTED, "nested": NESTED, "unicode": UNICODE}


def test_registry():
    assert set(DIALECTS) == {"hermes", "llama3_json", "phi4_mini_json", "pythonic"}
    expected = {
        "hermes": ("hermes", "<tool_call>"),
        "llama3_json": ("llama3_json", '{"name": '),
        "phi4_mini_json": ("phi4_mini_json", "functools["),
        "pythonic": ("pythonic", "["),
    }
    for name, (parser, trigger) in expected.items():
        d = get_dialect(name)
        assert isinstance(d, Dialect) and d.name == name
        assert d.vllm_tool_parser == parser and d.call_trigger == trigger and d.supports_parallel
        assert get_dialect(d) is d
    with pytest.raises(ValueError, match="unknown dialect 'nope'; known: hermes, llama3_json"):
        get_dialect("nope")


@pytest.mark.parametrize("dialect", sorted(GOLDEN))
@pytest.mark.parametrize("case", sorted(CASES))
def test_render_golden_and_round_trip(dialect, case):
    d = get_dialect(dialect)
    expected = GOLDEN[dialect][case]
    if expected is None:
        with pytest.raises(ValueError, match="not a plain Python identifier"):
            d.render_calls(CASES[case], TOOLS)
        return
    text = d.render_calls(CASES[case], TOOLS)
    assert text == expected
    result = d.parse(text)
    assert result == ParseResult(CASES[case], None, None)
    # canonical key order is the schema's
    for got, call in zip(result.calls, CASES[case], strict=True):
        props = next(t for t in TOOLS if t["name"] == call["name"])["parameters"]["properties"]
        assert list(got["arguments"]) == [k for k in props if k in call["arguments"]]


@pytest.mark.parametrize("dialect", sorted(GOLDEN))
def test_openai_style_calls_and_json_string_arguments(dialect):
    d = get_dialect(dialect)
    wrapped = [{"type": "function", "function": {"name": "get_weather", "arguments": '{"unit": "c", "city": "Paris"}'}}]
    assert d.render_calls(wrapped, [{"type": "function", "function": WEATHER}]) == GOLDEN[dialect]["one"]
    # without tools the given key order is kept
    assert d.parse(d.render_calls(ONE)).calls == ONE


@pytest.mark.parametrize("dialect", sorted(GOLDEN))
def test_spans_slice_names_and_values(dialect):
    d = get_dialect(dialect)
    text = d.render_calls(NESTED + TWO + UNICODE, TOOLS)
    spans = d.spans(text)
    sliced = [(s.kind, s.call, s.key, text[s.start : s.end]) for s in spans]
    value = '{"private": true, "reminder": null}'
    if dialect == "pythonic":
        value = '{"private": True, "reminder": None}'
    assert sliced == [
        ("name", 0, None, "create_event"),
        ("value", 0, "title", '"Sync"'),
        ("value", 0, "attendees", '[{"name": "Ana", "email": "ana@x.io"}, {"name": "Bo"}]'),
        ("value", 0, "options", value),
        ("name", 1, None, "get_weather"),
        ("value", 1, "city", '"Paris"'),
        ("name", 2, None, "get_weather"),
        ("value", 2, "city", '"Oslo"'),
        ("value", 2, "days", "3"),
        ("name", 3, None, "get_weather"),
        ("value", 3, "city", '"Zürich \\"Süd\\" 東京"'),
    ]
    assert all(isinstance(s, Span) for s in spans)
    assert d.spans("no call here") == []
    assert d.spans(text[:-3]) == []  # malformed -> no spans


@pytest.mark.parametrize("dialect", sorted(GOLDEN))
def test_plain_answer(dialect):
    d = get_dialect(dialect)
    assert d.parse("  The capital of France is Paris.\n") == ParseResult([], "The capital of France is Paris.", None)
    assert d.parse("") == ParseResult([], None, None)


PARSE_CASES = {
    "hermes": [
        # content before the calls; text after dropped (like vLLM)
        (
            'Sure.\n<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>\nbye',
            ParseResult([{"name": "f", "arguments": {"x": 1}}], "Sure.", None),
        ),
        # vLLM tolerates an unclosed last block and compact JSON
        (
            '<tool_call>{"name":"f","arguments":{}}</tool_call><tool_call>\n{"name": "g", "arguments": {"y": [1]}}',
            ParseResult([{"name": "f", "arguments": {}}, {"name": "g", "arguments": {"y": [1]}}], None, None),
        ),
        ('<tool_call>\n{"name": "f", "parameters": {}}\n</tool_call>', "has no 'arguments' key"),
        ('<tool_call>\n{"name": "f", "arguments": {"x": 1}\n</tool_call>', "block 1"),
        ('<tool_call>\n{"name": "f", "arguments": "x=1"}\n</tool_call>', "must be a JSON object"),
        ('<tool_call>\n{"name": "f", "arguments": {}} extra\n</tool_call>', "unexpected text"),
        ("<tool_call>\nget_weather(city='Paris')\n</tool_call>", "does not hold a JSON object"),
    ],
    "llama3_json": [
        (
            'Let me check. {"name": "f", "parameters": {"x": 1}}; {"name": "g", "arguments": {}}',
            ParseResult([{"name": "f", "arguments": {"x": 1}}, {"name": "g", "arguments": {}}], "Let me check.", None),
        ),
        (
            '<|python_tag|>{"name": "f", "parameters": {"a": "b"}}',
            ParseResult([{"name": "f", "arguments": {"a": "b"}}], None, None),
        ),
        # braces in prose without a call object are content (as in vLLM)
        ("Use {x} and {y}.", ParseResult([], "Use {x} and {y}.", None)),
        ('{"name": "f", "parameters": {"x": 1}} and {oops}', "offset 42 is not a call"),
        ('{"name": "f"}', "has no 'arguments' or 'parameters' key"),
        ('{"name": "f", "parameters": {"x": 1}', "unterminated"),
        ('{"name": 3, "parameters": {}}', 'without a string "name"'),
    ],
    "phi4_mini_json": [
        (
            'Checking. functools[{"name": "f", "arguments": {"xs": [1, 2]}}, {"name": "g", "parameters": {}}]',
            ParseResult(
                [{"name": "f", "arguments": {"xs": [1, 2]}}, {"name": "g", "arguments": {}}], "Checking.", None
            ),
        ),
        ('functools[{"name": "f", "arguments": {}}', "not closed"),
        ("functools[]", "empty functools[] call list"),
        ('functools["f"]', "expected a call object"),
        ('functools[{"name": "f", "arguments": {}} {"name": "g", "arguments": {}}]', "expected ',' or ']'"),
    ],
    "pythonic": [
        # vLLM-compatible forms: single quotes, Python literals, negative numbers, no-arg calls
        (
            "[f(a='x', b=True, c=None, d=-2.5, e={'k': [1, 2]}), g()]",
            ParseResult(
                [
                    {"name": "f", "arguments": {"a": "x", "b": True, "c": None, "d": -2.5, "e": {"k": [1, 2]}}},
                    {"name": "g", "arguments": {}},
                ],
                None,
                None,
            ),
        ),
        # prose first: vLLM's parser only matches at position 0 -> content, not a call
        ("Sure: [f(a=1)]", ParseResult([], "Sure: [f(a=1)]", None)),
        ("[1] See the docs.", ParseResult([], "[1] See the docs.", None)),
        (" [f(a=1)]", "must start with '['"),
        ("[math.factorial(n=5)]", "dotted function name 'math.factorial'"),
        ("[f(1)]", "positional arguments"),
        ("[f(a=x)]", "must be literals"),
        ("[f(a=1)", "not valid Python"),
        ("[f(a=1), 2]", "item 2 is not a call"),
        ("[f(**{'a': 1})]", "**kwargs"),
    ],
}


@pytest.mark.parametrize(
    ("dialect", "text", "expected"),
    [(d, t, e) for d, cases in PARSE_CASES.items() for t, e in cases],
)
def test_parse_cases(dialect, text, expected):
    result = get_dialect(dialect).parse(text)
    if isinstance(expected, ParseResult):
        assert result == expected
    else:
        assert result.calls == [] and result.content == text and not result.ok
        assert expected in result.error


def test_pythonic_refuses_non_identifier_names():
    d = get_dialect("pythonic")
    for tools in ([FACTORIAL], [{"name": "f", "parameters": {"type": "object", "properties": {"first-name": {}}}}]):
        with pytest.raises(ValueError, match="vLLM's pythonic parser cannot read it"):
            d.tools_instruction(tools)
        with pytest.raises(ValueError, match="not a plain Python identifier"):
            d.grammar(tools, allow_text=True)
    with pytest.raises(ValueError, match="'class'"):
        d.render_calls([{"name": "f", "arguments": {"class": 1}}])
    with pytest.raises(ValueError, match="'_f'"):
        d.render_calls([{"name": "_f", "arguments": {}}])
    # a dotted tool that is offered but not called does not block rendering the call
    assert d.render_calls(ONE, TOOLS) == GOLDEN["pythonic"]["one"]


@pytest.mark.parametrize("dialect", sorted(GOLDEN))
def test_tools_instruction_presents_schema_first(dialect):
    d = get_dialect(dialect)
    tools = [WEATHER, EVENT]
    text = d.tools_instruction(tools)
    assert text == d.tools_instruction([{"type": "function", "function": t} for t in tools])
    first_schema = text.index('"name": "get_weather"')
    assert first_schema < text.index("To call") if "To call" in text else first_schema < text.index("For each")
    assert "plain text" in text
    assert text.rstrip() == text  # the family decides what follows


def test_tools_instruction_golden_hermes():
    assert get_dialect("hermes").tools_instruction(
        [{"name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}}]
    ) == (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        '{"type": "function", "function": {"name": "f", "description": "d", "parameters": '
        '{"type": "object", "properties": {}}}}\n</tools>\n\n'
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>\n\n'
        "If none of the functions fits the query, reply in plain text without a tool call."
    )


def test_render_calls_needs_calls():
    with pytest.raises(ValueError):
        get_dialect("hermes").render_calls([])
    with pytest.raises(ValueError, match="not valid JSON"):
        get_dialect("hermes").render_calls([{"name": "f", "arguments": "{oops"}])
