"""Unit tests for slmtune.eval.scoring: BFCL AST semantics, edge by edge, and schema validity."""

from __future__ import annotations

import copy
import enum
import importlib.util
import json
import random
import re
import types
from pathlib import Path

import pytest

from slmtune.eval.scoring import (
    AstResult,
    ast_check,
    gold_to_possible_answer,
    normalise_category,
    schema_check,
    standardize_string,
    to_bfcl_calls,
)

# A BFCL-style function doc exercising every parameter type.
ORDER = {
    "name": "shop.order",
    "description": "Order things.",
    "parameters": {
        "type": "dict",
        "properties": {
            "item": {"type": "string"},
            "count": {"type": "integer"},
            "price": {"type": "float"},
            "express": {"type": "boolean"},
            "coords": {"type": "tuple", "items": {"type": "float"}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "sizes": {"type": "array", "items": {"type": "integer"}},
            "address": {"type": "dict", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}},
            "lines": {"type": "array", "items": {"type": "dict"}},
            "note": {"type": "string", "default": "none"},
            "extra": {"type": "any"},
        },
        "required": ["item", "count"],
    },
}


def answer(**params):
    """Possible answer for ORDER with item/count fixed unless overridden."""
    base = {"item": ["apple"], "count": [3]}
    base.update(params)
    return [{"shop.order": base}]


def call(name="shop.order", **arguments):
    return {"name": name, "arguments": arguments}


def check(arguments, possible, category="simple", tools=(ORDER,), name="shop.order", **kw) -> AstResult:
    return ast_check([call(name, **arguments)], list(tools), possible, category, **kw)


# --- categories ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("simple", "simple"),
        ("simple_python", "simple"),
        ("live_simple", "simple"),
        ("live_multiple", "multiple"),
        ("live_parallel", "parallel"),
        ("live_parallel_multiple", "parallel_multiple"),
        ("parallel_multiple", "parallel_multiple"),
        ("live_irrelevance", "irrelevance"),
        ("live_relevance", "relevance"),
    ],
)
def test_normalise_category(given, expected):
    assert normalise_category(given) == expected


def test_unknown_category_rejected():
    with pytest.raises(ValueError, match="unknown category"):
        ast_check([], [ORDER], answer(), "multi_turn_base")


@pytest.mark.parametrize("category", ["simple_java", "simple_javascript"])
def test_other_language_categories_are_refused(category):
    # BFCL scores these on string-typed arguments by its Java/JS converters: Python rules would invert verdicts
    with pytest.raises(ValueError, match="Python/JSON-typed"):
        normalise_category(category)


# --- types ----------------------------------------------------------------------------------


def test_exact_match_is_valid():
    assert check({"item": "apple", "count": 3}, answer()) == AstResult(True, None, None)


def test_int_accepted_for_float():
    assert check({"item": "apple", "count": 3, "price": 2}, answer(price=[2.0])).valid


def test_float_rejected_for_int():
    result = check({"item": "apple", "count": 3.0}, answer())
    assert not result.valid
    assert result.error_type == "type_error:simple"


def test_bool_rejected_for_int():
    result = check({"item": "apple", "count": True}, answer(count=[1]))
    assert result.error_type == "type_error:simple"


def test_string_rejected_for_boolean():
    result = check({"item": "apple", "count": 3, "express": "true"}, answer(express=[True]))
    assert result.error_type == "type_error:simple"


def test_tuple_param_accepts_list_and_python_tuple():
    possible = answer(coords=[[1.5, 2.5]])
    assert check({"item": "apple", "count": 3, "coords": [1.5, 2.5]}, possible).valid
    assert check({"item": "apple", "count": 3, "coords": (1.5, 2.5)}, possible).valid
    assert not check({"item": "apple", "count": 3, "coords": [2.5, 1.5]}, possible).valid


def test_nested_element_type_checked():
    result = check({"item": "apple", "count": 3, "sizes": [1, "2"]}, answer(sizes=[[1, 2]]))
    assert result.error_type == "type_error:nested"


def test_nested_int_not_accepted_for_float_elements():
    # BFCL converts int to float only at the top level, not inside arrays.
    result = check({"item": "apple", "count": 3, "coords": [1, 2.5]}, answer(coords=[[1.0, 2.5]]))
    assert result.error_type == "type_error:nested"


def test_any_type_is_a_string():
    assert check({"item": "apple", "count": 3, "extra": "X"}, answer(extra=["x"])).valid
    assert check({"item": "apple", "count": 3, "extra": 5}, answer(extra=["x"])).error_type == "type_error:simple"


def test_variable_in_possible_answer_compared_literally():
    # BFCL: an acceptable answer of another type than the doc's is a variable name.
    assert check({"item": "apple", "count": "n"}, answer(count=["n"])).valid
    assert check({"item": "apple", "count": "N"}, answer(count=["n"])).error_type == "value_error:others"


def test_json_schema_type_names_supported():
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {
                "type": "object",
                "properties": {"x": {"type": "number"}, "o": {"type": "object"}},
                "required": ["x"],
            },
        },
    }
    possible = [{"f": {"x": [2.0], "o": [{"k": ["v"]}]}}]
    assert ast_check([call("f", x=2, o={"k": "V"})], [tool], possible, "simple").valid
    assert not ast_check([call("f", x=2, o={"k": "w"})], [tool], possible, "simple").valid


# --- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "acceptable", "valid"),
    [
        ("New York, NY", "new york ny", True),
        ("NEW-YORK_NY", "New York NY", True),
        ("a.b/c*d^e", "abcde", True),
        ("it's", 'it"s', True),
        ("Boston", "New York", False),
        ("New York!", "New York", False),
        ("New York; NY", "New York NY", False),
    ],
)
def test_string_normalisation(model, acceptable, valid):
    result = check({"item": model, "count": 3}, answer(item=[acceptable]))
    assert result.valid is valid
    if not valid:
        assert result.error_type == "value_error:string"


def test_standardize_string():
    assert standardize_string("Apr 1, 2024 - 'x'_Y") == 'apr12024"x"y'


def test_list_values_standardised_and_ordered():
    possible = answer(tags=[["Red Apple", "green"]])
    assert check({"item": "apple", "count": 3, "tags": ["red apple", "GREEN"]}, possible).valid
    result = check({"item": "apple", "count": 3, "tags": ["green", "red apple"]}, possible)
    assert result.error_type == "value_error:list/tuple"


def test_wrong_number_value():
    assert check({"item": "apple", "count": 4}, answer()).error_type == "value_error:others"


def test_one_of_several_acceptable_values():
    assert check({"item": "pear", "count": 3}, answer(item=["apple", "pear"])).valid


# --- dicts and lists of dicts ------------------------------------------------------------------


def test_dict_param():
    possible = answer(address=[{"city": ["Paris"], "zip": ["", "75001"]}])
    assert check({"item": "apple", "count": 3, "address": {"city": "paris"}}, possible).valid
    assert check({"item": "apple", "count": 3, "address": {"city": "Paris", "zip": "75001"}}, possible).valid
    wrong_value = check({"item": "apple", "count": 3, "address": {"city": "Lyon"}}, possible)
    assert wrong_value.error_type == "value_error:dict_value"
    unknown_key = check({"item": "apple", "count": 3, "address": {"city": "Paris", "street": "x"}}, possible)
    assert unknown_key.error_type == "value_error:dict_key"
    missing_key = check({"item": "apple", "count": 3, "address": {"zip": "75001"}}, possible)
    assert missing_key.error_type == "value_error:dict_key"


def test_list_of_dicts_param():
    possible = answer(lines=[[{"sku": ["a1"], "qty": [1]}, {"sku": ["b2"], "qty": [2]}]])
    good = [{"sku": "A1", "qty": 1}, {"sku": "b2", "qty": 2}]
    assert check({"item": "apple", "count": 3, "lines": good}, possible).valid
    swapped = check({"item": "apple", "count": 3, "lines": good[::-1]}, possible)
    assert swapped.error_type == "value_error:dict_value"
    short = check({"item": "apple", "count": 3, "lines": good[:1]}, possible)
    assert short.error_type == "value_error:list_dict_count"


# --- parameters -----------------------------------------------------------------------------------


def test_optional_param_omitted_when_empty_string_acceptable():
    assert check({"item": "apple", "count": 3}, answer(note=["", "none"])).valid


def test_optional_param_omitted_when_not_acceptable():
    result = check({"item": "apple", "count": 3}, answer(note=["gift"]))
    assert result.error_type == "simple_function_checker:missing_optional"


def test_unknown_param():
    result = check({"item": "apple", "count": 3, "colour": "red"}, answer())
    assert result.error_type == "simple_function_checker:unexpected_param"


def test_param_in_doc_but_not_in_possible_answer_is_unexpected():
    result = check({"item": "apple", "count": 3, "express": True}, answer())
    assert result.error_type == "simple_function_checker:unexpected_param"


def test_missing_required():
    result = check({"item": "apple"}, answer())
    assert result.error_type == "simple_function_checker:missing_required"


def test_wrong_name():
    result = check({"item": "apple", "count": 3}, answer(), name="shop.buy")
    assert result.error_type == "simple_function_checker:wrong_func_name"


def test_dotted_name_exact_unless_underscore_to_dot():
    args = {"item": "apple", "count": 3}
    assert not check(args, answer(), name="shop_order").valid
    assert check(args, answer(), name="shop_order", underscore_to_dot=True).valid
    # BFCL then expects the underscore spelling only.
    assert not check(args, answer(), name="shop.order", underscore_to_dot=True).valid


def test_arguments_as_json_string():
    calls = [{"name": "shop.order", "arguments": json.dumps({"item": "apple", "count": 3})}]
    assert ast_check(calls, [ORDER], answer(), "simple").valid
    bad = [{"name": "shop.order", "arguments": "{not json"}]
    assert ast_check(bad, [ORDER], answer(), "simple").error_type == "ast_decoder:decoder_failed"


def test_malformed_call_is_wrong_format():
    result = ast_check([{"arguments": {}}], [ORDER], answer(), "simple")
    assert result.error_type == "ast_decoder:decoder_wrong_output_format"


# --- counts and categories --------------------------------------------------------------------------

WEATHER = {
    "name": "weather",
    "parameters": {"type": "dict", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME = {
    "name": "time",
    "parameters": {"type": "dict", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
}


def test_simple_needs_exactly_one_call():
    calls = [call(item="apple", count=3), call(item="apple", count=3)]
    assert ast_check(calls, [ORDER], answer(), "simple").error_type == "simple_function_checker:wrong_count"
    assert ast_check([], [ORDER], answer(), "simple").error_type == "simple_function_checker:wrong_count"


def test_multiple_picks_expected_function():
    possible = [{"time": {"tz": ["CET"]}}]
    assert ast_check([call("time", tz="cet")], [WEATHER, TIME], possible, "multiple").valid
    wrong = ast_check([call("weather", city="cet")], [WEATHER, TIME], possible, "live_multiple")
    assert wrong.error_type == "simple_function_checker:wrong_func_name"
    two = ast_check([call("time", tz="CET")] * 2, [WEATHER, TIME], possible, "multiple")
    assert two.error_type == "multiple_function_checker:wrong_count"


PARALLEL = [{"weather": {"city": ["Paris"]}}, {"weather": {"city": ["Rome"]}}, {"time": {"tz": ["CET"]}}]


def test_parallel_any_order():
    calls = [call("time", tz="CET"), call("weather", city="rome"), call("weather", city="Paris")]
    assert ast_check(calls, [WEATHER, TIME], PARALLEL, "parallel_multiple").valid


def test_parallel_wrong_count():
    calls = [call("weather", city="Paris"), call("weather", city="Rome")]
    result = ast_check(calls, [WEATHER, TIME], PARALLEL, "live_parallel_multiple")
    assert result.error_type == "parallel_function_checker_no_order:wrong_count"


def test_parallel_duplicate_call_cannot_match():
    calls = [call("weather", city="Paris"), call("weather", city="Paris"), call("time", tz="CET")]
    result = ast_check(calls, [WEATHER, TIME], PARALLEL, "parallel")
    assert result.error_type == "parallel_function_checker_no_order:cannot_find_match"
    assert "index 1 of possible answers" in result.error


def test_parallel_matching_is_greedy_like_bfcl():
    # Answer 0 accepts both calls, answer 1 only the first: a perfect matching exists (0->1, 1->0),
    # but BFCL's greedy pass gives call 0 to answer 0 and then fails answer 1.
    possible = [{"weather": {"city": ["Paris", "Rome"]}}, {"weather": {"city": ["Paris"]}}]
    calls = [call("weather", city="Paris"), call("weather", city="Rome")]
    assert not ast_check(calls, [WEATHER], possible, "parallel").valid
    assert ast_check(calls[::-1], [WEATHER], possible, "parallel").valid


def test_irrelevance():
    assert ast_check([], [WEATHER], None, "irrelevance").valid
    result = ast_check([call("weather", city="Paris")], [WEATHER], None, "live_irrelevance")
    assert result.error_type == "irrelevance_error:decoder_success"


def test_relevance():
    assert ast_check([call("weather", city="anything")], [WEATHER], None, "live_relevance").valid
    assert ast_check([], [WEATHER], None, "relevance").error_type == "relevance_error:decoder_failed"


def test_undecodable_calls_count_as_no_call_for_relevance_categories():
    # BFCL's relevance runner catches the decoder's exception and scores "no call"
    undecodable = [{"name": "weather", "arguments": "{not json"}]
    assert ast_check(undecodable, [WEATHER], None, "irrelevance").valid
    assert ast_check([{"arguments": {}}], [WEATHER], None, "live_irrelevance").valid
    assert ast_check(undecodable, [WEATHER], None, "relevance").error_type == "relevance_error:decoder_failed"


def test_missing_possible_answer_is_an_error():
    with pytest.raises(ValueError, match="possible_answer"):
        ast_check([call("weather", city="x")], [WEATHER], None, "simple")


# --- conversions -------------------------------------------------------------------------------------


def test_to_bfcl_calls():
    calls = [call("weather", city="Paris"), {"name": "time", "arguments": '{"tz": "CET"}'}]
    assert to_bfcl_calls(calls) == [{"weather": {"city": "Paris"}}, {"time": {"tz": "CET"}}]


def test_gold_to_possible_answer():
    gold = call(
        item="apple",
        count=3,
        address={"city": "Paris"},
        lines=[{"sku": "a1", "qty": 1}],
        tags=["x"],
    )
    possible = gold_to_possible_answer(ORDER, gold)
    params = possible["shop.order"]
    assert params["item"] == ["apple"]
    assert params["count"] == [3]
    assert params["tags"] == [["x"]]
    assert params["address"] == [{"city": ["Paris"], "zip": [""]}]
    assert params["lines"] == [[{"sku": ["a1"], "qty": [1]}]]
    assert params["note"] == ["", "none"]  # absent optional with a default
    assert params["price"] == [""]  # absent optional without a default
    # The gold call itself passes, so do omission of and explicit default for `note`.
    assert ast_check([gold], [ORDER], [possible], "simple").valid
    with_default = call(**gold["arguments"], note="none")
    assert ast_check([with_default], [ORDER], [possible], "simple").valid
    other = call(**gold["arguments"], note="gift wrap")
    assert ast_check([other], [ORDER], [possible], "simple").error_type == "value_error:string"


def test_gold_to_possible_answer_dict_default_in_bfcl_form():
    options = {"type": "object", "properties": {"unit": {"type": "string"}, "limit": {"type": "integer"}}}
    tool = {"name": "report", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"},
        "opts": dict(options, default={"unit": "metric", "limit": 10}),
        "pairs": {"type": "array", "items": options, "default": [{"unit": "si"}]},
    }, "required": ["city"]}}
    possible = gold_to_possible_answer(tool, call("report", city="Oslo"))
    assert possible["report"]["opts"] == ["", {"unit": ["metric"], "limit": [10]}]
    assert possible["report"]["pairs"] == ["", [{"unit": ["si"], "limit": [""]}]]
    explicit = call("report", city="Oslo", opts={"unit": "metric", "limit": 10}, pairs=[{"unit": "si"}])
    assert ast_check([explicit], [tool], [possible], "simple").valid
    other = call("report", city="Oslo", opts={"unit": "imperial", "limit": 10})
    assert ast_check([other], [tool], [possible], "simple").error_type == "value_error:dict_value"


def test_gold_to_possible_answer_openai_tool_and_errors():
    tool = {"type": "function", "function": WEATHER}
    assert gold_to_possible_answer(tool, call("weather", city="Oslo")) == {"weather": {"city": ["Oslo"]}}
    with pytest.raises(ValueError, match="required"):
        gold_to_possible_answer(tool, call("weather"))
    with pytest.raises(ValueError, match="names"):
        gold_to_possible_answer(tool, call("time", tz="x"))


# --- schema validity -----------------------------------------------------------------------------------


def test_schema_check_pass():
    args = {"item": "apple", "count": 3, "price": 2, "coords": [1, 2.5], "address": {"city": "x"}, "extra": [1]}
    assert schema_check([call(**args)], [ORDER]) is None
    assert schema_check([], [ORDER]) is None
    assert schema_check([call("weather", city="x")], [{"type": "function", "function": WEATHER}]) is None


@pytest.mark.parametrize(
    ("the_call", "fragment"),
    [
        (call("nope", city="x"), "not an offered tool"),
        (call(item="apple"), "'count' is a required property"),
        (call(item="apple", count="3"), "arguments.count"),
        (call(item="apple", count=True), "arguments.count"),
        (call(item="apple", count=3, price="cheap"), "arguments.price"),
        (call(item="apple", count=3, address="Paris"), "arguments.address"),
        (call(item="apple", count=3, tags=["a", 1]), "arguments.tags[1]"),
        ({"name": "shop.order", "arguments": "[1]"}, "must be an object"),
    ],
)
def test_schema_check_fail(the_call, fragment):
    error = schema_check([call("weather", city="ok"), the_call], [ORDER, WEATHER])
    assert error is not None
    assert error.startswith("call 1")
    assert fragment in error


def test_schema_check_format_asserted():
    tool = {
        "name": "book",
        "parameters": {"type": "object", "properties": {"date": {"type": "string", "format": "date"}}},
    }
    assert schema_check([call("book", date="2025-03-14")], [tool]) is None
    assert "date" in schema_check([call("book", date="14 March")], [tool])


# --- conformance with BFCL's own checker -----------------------------------------------------------------


def _bfcl_reference():
    """BFCL's ast_checker module, executed from its source with its package imports stubbed
    (importing bfcl_eval itself pulls in every API client it supports)."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None:
        pytest.skip("bfcl_eval data package not installed")
    source_path = Path(next(iter(spec.submodule_search_locations))) / "eval_checker/ast_eval/ast_checker.py"
    if not source_path.is_file():
        pytest.skip("bfcl_eval ships no ast_checker.py")
    source = source_path.read_text()
    source = re.sub(r"^from bfcl_eval[^\n]*\([^)]*\)\n", "", source, flags=re.MULTILINE)
    source = re.sub(r"^from bfcl_eval[^\n]*\n", "", source, flags=re.MULTILINE)

    class Language(enum.Enum):
        PYTHON = "python"
        JAVA = "java"
        JAVASCRIPT = "javascript"

    class Config:
        underscore_to_dot = False

    module = types.ModuleType("bfcl_ast_reference")
    module.__dict__.update(
        Language=Language,
        MODEL_CONFIG_MAPPING={"m": Config()},
        JAVA_TYPE_CONVERSION={},
        JS_TYPE_CONVERSION={},
        java_type_converter=None,
        js_type_converter=None,
    )
    exec(compile(source, str(source_path), "exec"), module.__dict__)  # noqa: S102 - trusted installed file
    return module.ast_checker, Language.PYTHON


def _pick(rng, acceptable):
    value = rng.choice(acceptable) if acceptable else ""
    if isinstance(value, dict):
        return {k: _pick(rng, v) for k, v in value.items() if not (rng.random() < 0.5 and "" in v)}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [_pick(rng, [v]) for v in value]
    return value


def _perturb(rng, value):
    if isinstance(value, bool):
        return rng.choice([not value, "true", 1])
    if isinstance(value, int | float):
        return rng.choice([value + 1, float(value), int(value), str(value)])
    if isinstance(value, str):
        return rng.choice([value.upper(), value + " x", " " + value + ".", value[:-1], 5])
    if isinstance(value, list) and value:
        return rng.choice([value[::-1], value + value[:1], [_perturb(rng, value[0]), *value[1:]]])
    if isinstance(value, dict):
        return {**value, "zzz": 1}
    return value


def test_agrees_with_bfcl_checker_on_real_data():
    from slmtune.eval.suites import load_bfcl

    reference, python = _bfcl_reference()
    rng = random.Random(1234)
    compared = failures = 0
    mismatches = []
    for category in ("simple_python", "multiple", "parallel", "parallel_multiple", "live_simple", "live_multiple",
                     "live_parallel", "live_parallel_multiple"):
        for request in load_bfcl(category, limit=60):
            for trial in range(3):
                output = []
                for entry in request.possible_answer:
                    (name, params), = entry.items()
                    args = {}
                    for p, acceptable in params.items():
                        value = _pick(rng, acceptable)
                        if not (value == "" and rng.random() < 0.8):
                            args[p] = value
                    output.append({name: args})
                if trial and output:
                    (name, args), = rng.choice(output).items()
                    action = rng.random()
                    if args and action < 0.6:
                        key = rng.choice(list(args))
                        args[key] = _perturb(rng, args[key])
                    elif args and action < 0.75:
                        del args[rng.choice(list(args))]
                    elif action < 0.85:
                        output.pop()
                    else:
                        args["unknown_param"] = 1
                rng.shuffle(output)
                expected = reference(request.tools, copy.deepcopy(output), request.possible_answer, python,
                                     category, "m")
                calls = [{"name": n, "arguments": a} for item in output for n, a in item.items()]
                got = ast_check(calls, request.tools, request.possible_answer, category)
                compared += 1
                failures += not expected["valid"]
                if got.valid != expected["valid"] or (not got.valid and got.error_type != expected["error_type"]):
                    mismatches.append((request.id, output, expected.get("error_type"), got))
    assert not mismatches, mismatches[:3]
    assert compared > 1000
    assert 0.2 < failures / compared < 0.8  # both outcomes exercised
