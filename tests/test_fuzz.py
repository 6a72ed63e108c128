"""Fuzzing the readers of hostile input with hypothesis: every target answers with its documented, named error or
a result, never another exception (issue 21; RELIABILITY.md lists the targets and the long-run numbers).

Each target runs twice: a short budget in the default test run (``SHORT`` inputs each) and, under ``-m fuzz``, a
long run of ``SLMTUNE_FUZZ_EXAMPLES`` inputs (default 10,000) that prints ``FUZZ <target>: <n> inputs, 0 unclean``.
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slmtune.data.registry import ToolSchemaError, load_catalog_file, make_tool, validate_call
from slmtune.eval.scoring import ast_check, gold_to_possible_answer, schema_check
from slmtune.eval.suites import load_user_suite
from slmtune.models.dialects import get_dialect
from slmtune.models.dialects.base import ParseResult
from slmtune.router import Router, RouterFileError, RouterInputError

SHORT = 25
LONG = int(os.environ.get("SLMTUNE_FUZZ_EXAMPLES", "10000"))
DIALECTS = ("hermes", "llama3_json", "phi4_mini_json", "pythonic")
SCRATCH = Path(tempfile.mkdtemp(prefix="slmtune-fuzz-"))

# -- strategies -------------------------------------------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**400), max_value=10**400)
           | st.floats() | st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=16)
types = st.sampled_from(["string", "integer", "number", "boolean", "array", "object", "null", "dict", "float",
                         "tuple", "any", "bogus"])
schema_keys = {
    "type": types | st.lists(types, max_size=3) | json_values,
    "enum": st.lists(scalars, max_size=5) | json_values,
    "const": scalars,
    "minimum": st.integers(min_value=-(10**15), max_value=10**15) | st.floats() | json_values,
    "maximum": st.integers(min_value=-(10**15), max_value=10**15) | st.floats(),
    "exclusiveMinimum": st.integers(-100, 100) | st.floats(),
    "minLength": st.integers(-2, 30) | json_values,
    "maxLength": st.integers(-2, 30),
    "minItems": st.integers(-1, 20),
    "maxItems": st.integers(-1, 20),
    "pattern": st.sampled_from(["^[a-z]+$", "[", "\\d{3}", "(a|b)*", ".*"]) | st.text(max_size=6),
    "format": st.sampled_from(["date", "time", "date-time", "email", "uri", "weird"]),
    "$ref": st.sampled_from(["#", "#/$defs/a", "#/properties/x", "file:///etc/passwd", "http://127.0.0.1:9/s",
                             "other.json#/a", "#/$defs/missing", "#anchor"]) | st.text(max_size=8),
    "required": st.lists(names, max_size=3) | json_values,
    "uniqueItems": st.booleans(),
    "additionalProperties": st.booleans(),
    "nullable": st.booleans(),
    "default": scalars,
    "description": st.text(max_size=10),
}


def _schema(children):
    keyed = st.fixed_dictionaries({}, optional={k: v for k, v in schema_keys.items()})
    nested = st.fixed_dictionaries({}, optional={
        "properties": st.dictionaries(names, children, max_size=3),
        "items": children | st.lists(children, max_size=2),
        "anyOf": st.lists(children, max_size=3),
        "allOf": st.lists(children, max_size=2),
        "$defs": st.dictionaries(st.just("a"), children, max_size=1),
    })
    return st.builds(lambda a, b: {**a, **b}, keyed, nested)


schemas = st.recursive(st.fixed_dictionaries({}, optional=schema_keys), _schema, max_leaves=8)
tool_specs = st.fixed_dictionaries(
    {"name": names | st.text(max_size=6)},
    optional={"description": st.text(max_size=10) | json_values,
              "parameters": st.builds(lambda p, r: {"type": "object", "properties": p, "required": r},
                                      st.dictionaries(names, schemas, max_size=3),
                                      st.lists(names, max_size=2)) | schemas | json_values})


def _target(name):
    """Register ``fn`` (one input -> None, raising only on an unclean failure) as a short and a long test."""

    def register(fn):
        def run(n: int) -> int:
            count = [0]

            @settings(max_examples=n, deadline=None, database=None, derandomize=n <= SHORT,
                      suppress_health_check=list(HealthCheck))
            @given(fn.strategy)
            def body(value):
                count[0] += 1
                fn(value)

            body()
            return count[0]

        def short():
            run(SHORT)

        @pytest.mark.fuzz
        def long():
            tried = run(LONG)
            print(f"FUZZ {name}: {tried} inputs, 0 unclean failures")

        globals()[f"test_fuzz_{name}"] = short
        globals()[f"test_fuzz_{name}_long"] = long
        return fn

    return register


def strategy(strat):
    def attach(fn):
        fn.strategy = strat
        return fn
    return attach


# -- dialect parsers --------------------------------------------------------------------------------------------


def _near_call(dialect_name: str):
    def make(args, cut, insert):
        dialect = get_dialect(dialect_name)
        try:
            text = dialect.render_calls([{"name": "f", "arguments": args}])
        except (ValueError, TypeError):
            text = json.dumps(args, default=str)
        cut = min(cut, len(text))
        return text[:cut] + insert + text[cut:]
    hostile = st.sampled_from(["[f(a=" + "-" * 10_000 + "1)]", "[f(a='\ud83d')]", "[" * 5000, '{"a": NaN}'])
    return (st.builds(make, st.dictionaries(names, json_values, max_size=4), st.integers(0, 400), st.text(max_size=4))
            | st.text() | hostile)


for _name in DIALECTS:
    def _make_dialect_target(dialect_name: str):
        @_target(f"parse_{dialect_name}")
        @strategy(_near_call(dialect_name))
        def parse(text: str) -> None:
            dialect = get_dialect(dialect_name)
            result = dialect.parse(text)
            assert isinstance(result, ParseResult)
            assert result.calls == [] or result.error is None
            json.dumps(result.calls, allow_nan=False, ensure_ascii=False).encode("utf-8")  # writable as predictions
            dialect.spans(text)
        return parse
    _make_dialect_target(_name)


# -- registry and catalog loader --------------------------------------------------------------------------------


catalog_docs = (st.fixed_dictionaries({"domain": st.text(max_size=5), "tools": st.lists(
    st.builds(lambda spec, extra: {**spec, **extra}, tool_specs, st.fixed_dictionaries({}, optional={
        "implementation": st.sampled_from(["slmtune.catalog.weather:nope", "os:system", "x"]) | json_values,
        "values": json_values, "mentions": json_values, "queries": json_values})), max_size=3)}) | json_values)


@_target("catalog")
@strategy(catalog_docs.map(lambda d: json.dumps(d).encode()) | st.binary(max_size=200))
def catalog(data: bytes) -> None:
    path = SCRATCH / "catalog.json"
    path.write_bytes(data)
    try:
        tools = load_catalog_file(path)
    except ToolSchemaError:
        return
    for tool in tools:
        validate_call(tool, {"name": tool.name, "arguments": {}})


@_target("make_tool")
@strategy(st.tuples(tool_specs, json_values))
def tool_and_call(spec_args) -> None:
    spec, args = spec_args
    try:
        tool = make_tool(spec)
    except ToolSchemaError:
        return
    assert isinstance(validate_call(tool, {"name": tool.name, "arguments": args}), list)


# -- suite loader -----------------------------------------------------------------------------------------------


messages_entry = st.fixed_dictionaries({}, optional={
    "id": st.text(max_size=4) | json_values,
    "messages": st.just([{"role": "user", "content": "hi"}]) | json_values,
    "tools": st.lists(tool_specs, max_size=2) | json_values,
    "expected_calls": st.lists(st.fixed_dictionaries({"name": names, "arguments": json_values}), max_size=2)
    | json_values,
    "category": st.sampled_from(["simple", "parallel", "irrelevance", "java", "nope"]) | json_values,
})
bfcl_entry = st.fixed_dictionaries({}, optional={
    "id": st.sampled_from(["simple_0", "parallel_1", "x"]) | json_values,
    "question": st.just([[{"role": "user", "content": "hi"}]]) | json_values,
    "function": st.lists(tool_specs, max_size=2) | json_values,
})
suite_texts = (st.lists(messages_entry | bfcl_entry, max_size=3).map(lambda es: "\n".join(json.dumps(e) for e in es))
               | st.lists(messages_entry | bfcl_entry, max_size=3).map(json.dumps)
               | st.tuples(st.lists(messages_entry, max_size=2).map(json.dumps), st.text(max_size=5))
               .map("".join))


@_target("suite")
@strategy(suite_texts.map(str.encode) | st.binary(max_size=200))
def suite(data: bytes) -> None:
    path = SCRATCH / "suite.jsonl"
    path.write_bytes(data)
    try:
        requests = load_user_suite(path)
    except ValueError:
        return
    for request in requests:
        json.dumps(request.possible_answer, allow_nan=False, ensure_ascii=False).encode("utf-8")


# -- scorer ------------------------------------------------------------------------------------------------------


SCORER_TOOLS = [
    {"name": "f", "parameters": {"type": "object", "required": ["a"], "properties": {
        "a": {"type": "number"}, "b": {"type": "array", "items": {"type": "float"}}, "c": {"type": "string"},
        "d": {"type": "dict", "properties": {"x": {"type": "integer"}}}}}},
    {"name": "g", "parameters": {"type": "object", "properties": {"t": {"type": "tuple", "items": {"type": "any"}}}}},
]
calls = st.lists(st.fixed_dictionaries({"name": st.sampled_from(["f", "g", "h"]) | json_values,
                                        "arguments": st.dictionaries(st.sampled_from("abcdtz"), json_values,
                                                                     max_size=4) | json_values}) | json_values,
                 max_size=3)
categories = st.sampled_from(["simple", "multiple", "parallel", "parallel_multiple", "irrelevance",
                              "live_relevance", "live_simple", "java", "unknown"])


def _answer(gold_calls):
    out = []
    for call in gold_calls:
        tool = next((t for t in SCORER_TOOLS if isinstance(call, dict) and t["name"] == call.get("name")), None)
        try:
            out.append(gold_to_possible_answer(tool, call) if tool else call)
        except (ValueError, TypeError, AttributeError):
            out.append(call)
    return out


@_target("scorer")
@strategy(st.tuples(calls, calls.map(_answer) | json_values, categories, st.lists(tool_specs, max_size=2)))
def scorer(case) -> None:
    model_calls, answer, category, extra_tools = case
    try:
        ast_check(model_calls, SCORER_TOOLS, answer, category)
    except ValueError:
        pass
    try:
        schema_check(model_calls, SCORER_TOOLS + extra_tools)
    except ValueError:
        pass


# -- grammar builder + XGrammar compile --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _compiler():
    import xgrammar as xgr

    return xgr.GrammarCompiler(xgr.TokenizerInfo([]), cache_enabled=False)


@_target("grammar")
@strategy(st.tuples(st.dictionaries(names, schemas, min_size=1, max_size=3), st.sampled_from(DIALECTS),
                    st.booleans(), st.sampled_from([None, 1, 3])))
def grammar(case) -> None:
    import xgrammar as xgr

    properties, dialect_name, allow_text, max_calls = case
    try:
        tool = make_tool({"name": "f", "parameters": {"type": "object", "properties": properties}})
    except ToolSchemaError:
        return
    try:
        ebnf = get_dialect(dialect_name).grammar([tool.function_dict()], allow_text=allow_text, max_calls=max_calls)
    except ValueError:  # the builder refuses a schema it cannot express (empty enum, empty range ...)
        return
    _compiler().compile_grammar(xgr.Grammar.from_ebnf(ebnf))  # what it builds, XGrammar compiles


# -- router -------------------------------------------------------------------------------------------------------


ROUTER = {
    "schema_version": 1, "model": {"name": "tiny", "source": "random:llama", "adapter_sha256": None},
    "signals": ["seq_logprob", "name_margin"],
    "calibrator": {"type": "logistic", "params": {"coef": [1.0, -2.0], "intercept": 0.5, "mean": [0.0, 1.0],
                                                   "scale": [1.0, 2.0]}},
    "operating_points": [{"target_precision": 0.9, "threshold": 0.3, "coverage": 0.7, "precision": 0.91}],
    "metrics": {k: {"value": 0.1, "ci_low": 0.05, "ci_high": 0.15} for k in ("auroc", "ece", "brier", "aurc")},
    "cascade": None, "fitted_on": {"suites": ["synthetic"], "n": 100, "n_positive": 60, "cross_fit_folds": 5,
                                   "seed": 0},
}
PATHS = [("schema_version",), ("signals",), ("signals", 0), ("calibrator",), ("calibrator", "type"),
         ("calibrator", "params"), ("calibrator", "params", "coef"), ("calibrator", "params", "coef", 0),
         ("calibrator", "params", "intercept"), ("operating_points",), ("operating_points", 0),
         ("operating_points", 0, "threshold"), ("operating_points", 0, "target_precision"), ("fitted_on",),
         ("model",), ("metrics",)]


def _mutate(edits):
    """The valid router document with values replaced at some paths (paths that no longer exist are skipped)."""
    doc = json.loads(json.dumps(ROUTER))
    for path, value in edits:
        node = doc
        for key in path[:-1]:
            if isinstance(node, dict) and isinstance(key, str) and key in node:
                node = node[key]
            elif isinstance(node, list) and isinstance(key, int) and key < len(node):
                node = node[key]
            else:
                node = None
                break
        last = path[-1]
        if isinstance(node, dict) and isinstance(last, str):
            node[last] = value
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = value
    return json.dumps(doc, allow_nan=True)


router_files = (st.lists(st.tuples(st.sampled_from(PATHS), json_values), max_size=3).map(_mutate).map(str.encode)
                | st.binary(max_size=100))
signal_values = st.dictionaries(st.sampled_from(["seq_logprob", "name_margin", "x"]), scalars | json_values,
                                max_size=3)


@_target("router")
@strategy(st.tuples(router_files, signal_values, scalars | json_values))
def router(case) -> None:
    data, signals, target = case
    path = SCRATCH / "router.json"
    path.write_bytes(data)
    try:
        loaded = Router.load(path)
    except RouterFileError:
        return
    for arguments in ((signals, target), (signals, 0.9)):
        try:
            use, p = loaded.decide(*arguments)
            assert isinstance(use, bool) and 0.0 <= p <= 1.0
        except RouterInputError:
            pass
