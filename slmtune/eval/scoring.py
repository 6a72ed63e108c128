"""Scoring: BFCL AST semantics and schema validity.

`ast_check` reproduces the single-turn AST checker of the Berkeley Function Calling Leaderboard
(`bfcl_eval/eval_checker/ast_eval/ast_checker.py`, Python language) rule for rule, including its
quirks, and returns the same ``error_type`` strings:

- count: simple needs exactly one call (``simple_function_checker:wrong_count``); multiple and parallel
  need as many calls as ground-truth entries (``multiple_function_checker:wrong_count``,
  ``parallel_function_checker_no_order:wrong_count``);
- the expected function name must be the call's name, compared exactly; BFCL turns ``a.b`` into ``a_b`` in
  the expected name only for models whose API forbids dots (``underscore_to_dot=True`` here), and then
  only the underscore spelling matches;
- every required parameter present, no parameter outside both the function doc and the ground truth;
- type check with the doc's type (``int`` accepted where ``float`` is expected, ``tuple`` is a list,
  ``any`` is a string, one level of nested element types for arrays/tuples); a value whose type is the type
  of the acceptable answers instead of the doc's is a "variable" and compared literally;
- values: strings (also in lists and one-level dicts) compared after removing spaces and ``,./-_*^``,
  lower-casing and turning ``'`` into ``"``; dicts key by key; lists of dicts element by element in order;
- an optional parameter may be omitted only if ``""`` is among its acceptable answers;
- parallel calls matched in any order with BFCL's greedy algorithm (each ground-truth entry in turn
  takes the first unmatched call that passes);
- irrelevance passes iff there is no call, relevance iff there is at least one.

Extensions for tools that use plain JSON Schema rather than BFCL's type names: ``object`` is ``dict``,
``number`` is ``float``; a parameter without a type, or with an unknown one, skips the type check; a type
list (``["string", "null"]``) uses its first non-null entry, and ``None`` passes the type check where
``"null"`` is listed. An array without ``items`` skips the element check.

`schema_check` validates calls against the offered tools' JSON Schemas (Draft 2020-12, formats asserted).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema
import referencing.exceptions

from slmtune.data.jsonlimits import JSONLimitError, check_value
from slmtune.data.registry import check_refs, schema_validator

__all__ = [
    "AST_CATEGORIES",
    "UNSUPPORTED_LANGUAGE_CATEGORIES",
    "AstResult",
    "ast_check",
    "function_dict",
    "gold_to_possible_answer",
    "normalise_category",
    "schema_check",
    "standardize_string",
    "to_bfcl_calls",
]

AST_CATEGORIES = ("simple", "multiple", "parallel", "parallel_multiple", "irrelevance", "relevance")

_CATEGORY_ALIASES = {
    "simple": "simple",
    "simple_python": "simple",
    "multiple": "multiple",
    "parallel": "parallel",
    "parallel_multiple": "parallel_multiple",
    "irrelevance": "irrelevance",
    "relevance": "relevance",
}

# BFCL's other-language categories, which its checker scores by other rules.
UNSUPPORTED_LANGUAGE_CATEGORIES = {"simple_java": "Java", "simple_javascript": "JavaScript"}

# BFCL's Python type mapping, plus the JSON Schema spellings of the same types.
_PY_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "float": float,
    "number": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "object": dict,
    "any": str,
}
_NESTED_CHECK_TYPES = ("array", "tuple")
_FLOAT_TYPES = ("float", "number")

_STANDARDIZE_RE = re.compile(r"[ \,\.\/\-\_\*\^]")


@dataclass(frozen=True)
class AstResult:
    valid: bool
    error: str | None = None
    error_type: str | None = None


_OK = AstResult(True)


def normalise_category(category: str) -> str:
    """Map a BFCL test category (``simple_python``, ``live_parallel_multiple``...) to one of
    `AST_CATEGORIES`. Raises ``ValueError`` for anything else."""
    name = category.strip().lower()
    name = name.removeprefix("live_")
    if name in UNSUPPORTED_LANGUAGE_CATEGORIES:
        raise ValueError(
            f"category {category!r}: BFCL passes {UNSUPPORTED_LANGUAGE_CATEGORIES[name]} arguments as strings in that "
            "language's syntax and scores them with its own type converters; slmtune scores Python/JSON-typed calls"
        )
    try:
        return _CATEGORY_ALIASES[name]
    except KeyError:
        raise ValueError(
            f"unknown category {category!r}; expected one of {', '.join(AST_CATEGORIES)} "
            "or a BFCL single-turn category name"
        ) from None


def standardize_string(value: str) -> str:
    """BFCL's string normalisation: drop spaces and ``,./-_*^``, lower-case, ``'`` → ``"``."""
    return _STANDARDIZE_RE.sub("", value).lower().replace("'", '"')


def function_dict(tool: dict) -> dict:
    """The function part of a tool: unwraps OpenAI's ``{"type": "function", "function": {...}}``."""
    if isinstance(tool, dict) and isinstance(tool.get("function"), dict) and "name" not in tool:
        return tool["function"]
    return tool


def _arguments(call: Any) -> dict:
    """The arguments dict of a ``{"name", "arguments"}`` call (a JSON string is decoded)."""
    args = call.get("arguments", {})
    if isinstance(args, str):
        args = json.loads(args) if args.strip() else {}
    if not isinstance(args, dict):
        raise TypeError(f"arguments must be an object, got {type(args).__name__}")
    return args


def to_bfcl_calls(calls: list[dict]) -> list[dict]:
    """``[{"name", "arguments"}]`` → BFCL's model-output format ``[{name: {arg: value}}]``."""
    return [{call["name"]: dict(_arguments(call))} for call in calls]


# --------------------------------------------------------------------------------------------
# AST check
# --------------------------------------------------------------------------------------------


def ast_check(
    calls: list[dict],
    tools: list[dict],
    possible_answer: list[dict] | None,
    category: str,
    *,
    underscore_to_dot: bool = False,
) -> AstResult:
    """Score one request's calls with BFCL's AST rules.

    ``calls``: the model's parsed calls ``[{"name", "arguments"}]`` (arguments may be a JSON string);
    a parse failure should be passed as ``[]``, as BFCL's relevance runner counts an undecodable
    output as "no call". ``tools``: the request's function docs (BFCL or OpenAI). ``possible_answer``:
    BFCL's ground truth ``[{func_name: {arg: [acceptable values]}}]`` (unused for irrelevance and
    relevance). ``underscore_to_dot``: the BFCL model-config flag of the same name (expected names
    with dots are compared in their underscore spelling).
    """
    cat = normalise_category(category)
    try:
        check_value(calls, "calls")
    except JSONLimitError as err:
        return AstResult(False, str(err), "value_error:limits")

    outputs, decode_error = _decode_calls(calls)
    if decode_error is not None:
        if cat not in ("irrelevance", "relevance"):
            return decode_error
        outputs = []  # BFCL's relevance runner: an output that does not decode contains no call

    if cat == "irrelevance":
        if outputs:
            return AstResult(
                False, "Valid syntax. Successfully decode AST when it should not.", "irrelevance_error:decoder_success"
            )
        return _OK
    if cat == "relevance":
        if not outputs:
            return AstResult(
                False, "Invalid syntax. Failed to decode AST when it should have.", "relevance_error:decoder_failed"
            )
        return _OK

    if not possible_answer:
        raise ValueError(f"category {category!r} needs a non-empty possible_answer")
    _check_possible_answer(possible_answer)
    docs = [function_dict(t) for t in tools]

    if cat in ("parallel", "parallel_multiple"):
        return _parallel_no_order(docs, outputs, possible_answer, underscore_to_dot)
    if cat == "multiple":
        if len(outputs) != len(possible_answer):
            return AstResult(False, "Wrong number of functions.", "multiple_function_checker:wrong_count")
        doc = _find_description(docs, possible_answer[0])
        return _simple_function_check(doc, outputs[0], possible_answer[0], underscore_to_dot)
    # simple
    if len(outputs) != 1:
        return AstResult(False, "Wrong number of functions.", "simple_function_checker:wrong_count")
    doc = _find_description(docs, possible_answer[0], fallback_single=True)
    return _simple_function_check(doc, outputs[0], possible_answer[0], underscore_to_dot)


def _check_possible_answer(possible_answer: Any) -> None:
    """``ValueError`` unless ``possible_answer`` has BFCL's shape ``[{name: {param: [acceptable, ...]}}]``."""
    if not isinstance(possible_answer, list):
        raise ValueError("possible_answer must be a list of {function_name: {param: [acceptable values]}}")
    for i, entry in enumerate(possible_answer):
        if not isinstance(entry, dict) or len(entry) != 1 or not isinstance(next(iter(entry)), str):
            raise ValueError(f"possible_answer[{i}] must be an object with exactly one function name")
        params = next(iter(entry.values()))
        if not isinstance(params, dict) or not all(isinstance(v, list) for v in params.values()):
            raise ValueError(f"possible_answer[{i}] must map parameter names to lists of acceptable values")


def _decode_calls(calls: Any) -> tuple[list[dict], AstResult | None]:
    """``[{name: arguments}]`` for BFCL's checker, or the decoder error that stops scoring."""
    if not isinstance(calls, list | tuple):
        return [], AstResult(False, "Model output is not a list of calls.", "ast_decoder:decoder_wrong_output_format")
    outputs: list[dict] = []
    for i, call in enumerate(calls):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            return [], AstResult(
                False,
                f"Call {i} is not a {{'name', 'arguments'}} object.",
                "ast_decoder:decoder_wrong_output_format",
            )
        try:
            outputs.append({call["name"]: _arguments(call)})
        except (TypeError, ValueError) as exc:
            return [], AstResult(False, f"Call {i}: cannot decode arguments: {exc}", "ast_decoder:decoder_failed")
    return outputs, None


def _expected_name(answer: dict) -> str:
    if not isinstance(answer, dict) or len(answer) != 1:
        raise ValueError(f"a possible answer entry must be a one-key dict {{func_name: params}}, got {answer!r}")
    return next(iter(answer))


def _find_description(docs: list[dict], answer: dict, fallback_single: bool = False) -> dict:
    name = _expected_name(answer)
    for doc in docs:
        if doc.get("name") == name:
            return doc
    if fallback_single and len(docs) == 1:  # BFCL's simple checker takes the first doc regardless
        return docs[0]
    raise ValueError(f"ground-truth function {name!r} is not among the offered tools")


def _parallel_no_order(docs: list[dict], outputs: list[dict], answers: list[dict], u2d: bool) -> AstResult:
    if len(outputs) != len(answers):
        return AstResult(False, "Wrong number of functions.", "parallel_function_checker_no_order:wrong_count")
    matched: set[int] = set()
    for i, answer in enumerate(answers):
        doc = _find_description(docs, answer)
        errors: list[str] = []
        result: AstResult | None = None
        for index, output in enumerate(outputs):
            if index in matched:
                continue
            result = _simple_function_check(doc, output, answer, u2d)
            if result.valid:
                matched.add(index)
                break
            errors.append(f"model call {index}: [{result.error_type}] {result.error}")
        if result is None or not result.valid:
            considered = [k for k in range(len(outputs)) if k not in matched]
            message = (
                f"Could not find a matching function among index {considered} of model output "
                f"for index {i} of possible answers."
            )
            return AstResult(
                False,
                " ".join([message, *errors]),
                "parallel_function_checker_no_order:cannot_find_match",
            )
    return _OK


def _doc_type(prop: dict) -> tuple[str | None, bool]:
    """(BFCL type name or None to skip the type check, whether None is an allowed value)."""
    t = prop.get("type") if isinstance(prop, dict) else None
    nullable = False
    if isinstance(t, list):
        nullable = "null" in t
        rest = [x for x in t if x != "null"]
        t = rest[0] if rest else None
    if not isinstance(t, str) or t not in _PY_TYPES:
        return None, nullable
    return t, nullable


def _simple_function_check(doc: dict, output: dict, answer: dict, u2d: bool) -> AstResult:
    possible = next(iter(answer.values()))
    params = doc.get("parameters") or {}
    details = params.get("properties") or {}
    required = params.get("required") or []

    func_name = doc["name"]
    if u2d and "." in func_name:
        func_name = func_name.replace(".", "_")
    if func_name not in output:
        return AstResult(
            False, f"Function name {func_name!r} not found in model output.", "simple_function_checker:wrong_func_name"
        )
    model_params = output[func_name]

    for param in required:
        if param not in model_params:
            return AstResult(False, f"Missing required parameter: {param!r}.",
                             "simple_function_checker:missing_required")

    for param, value in model_params.items():
        if param not in details or param not in possible:
            return AstResult(False, f"Unexpected parameter: {param!r}.", "simple_function_checker:unexpected_param")
        acceptable = possible[param]
        if not isinstance(acceptable, list):
            raise TypeError(f"acceptable answers for {param!r} must be a list, got {acceptable!r}")

        prop = details[param]
        type_name, nullable = _doc_type(prop)
        if type_name is None or (value is None and nullable):
            # Untyped (plain JSON Schema) parameter: no type check; values compared as BFCL does.
            result = _untyped_value_check(param, value, acceptable)
            if not result.valid:
                return result
            continue

        expected = _PY_TYPES[type_name]
        nested: type | None = None
        if type_name in _NESTED_CHECK_TYPES:
            items_type, _ = _doc_type(prop.get("items") or {})
            nested = _PY_TYPES[items_type] if items_type else None

        if type_name == "tuple" and type(value) is tuple:
            value = list(value)
        if type_name in _FLOAT_TYPES and type(value) is int:
            value = float(value)

        type_result, is_variable = _type_check(param, value, acceptable, type_name, expected, nested)
        if not type_result.valid:
            return type_result

        if not is_variable:
            if expected is dict:
                result = _dict_check(param, value, acceptable)
            elif expected is list and nested is dict:
                result = _list_dict_check(param, value, acceptable)
            elif expected is str:
                result = _string_check(param, value, acceptable)
            elif expected is list:
                result = _list_check(param, value, acceptable)
            else:
                result = None
            if result is not None:
                if not result.valid:
                    return result
                continue

        if value not in acceptable:
            return AstResult(
                False,
                f"Invalid value for parameter {param!r}: {value!r}. Expected one of {acceptable}.",
                "value_error:others",
            )

    for param, acceptable in possible.items():
        if param not in model_params and "" not in acceptable:
            return AstResult(
                False,
                f"Optional parameter {param!r} not provided and not marked as optional.",
                "simple_function_checker:missing_optional",
            )
    return _OK


def _answer_type(acceptable: list) -> type | None:
    for answer in acceptable:
        if answer != "":
            return type(answer)
    return None


def _type_check(
    param: str, value: Any, acceptable: list, description: str, expected: type, nested: type | None
) -> tuple[AstResult, bool]:
    """BFCL's ``type_checker``: returns (result, is_variable)."""
    answer_type = _answer_type(acceptable)
    is_variable = answer_type is not None and answer_type is not expected
    error_type = "type_error:simple"
    error = ""

    if type(value) is expected:
        if nested is None:
            return _OK, is_variable
        for item in acceptable:
            ok = True  # a non-list acceptable answer (e.g. "") imposes no element type
            if type(item) is list:
                for element in value:
                    element_result, _ = _type_check(param, element, item, str(nested), nested, None)
                    if not element_result.valid:
                        ok = False
                        break
            if ok:
                return _OK, is_variable
        error = (
            f"Nested type checking failed for parameter {param!r}. Expected outer type {description} "
            f"with inner type {nested}. Parameter value: {value!r}."
        )
        error_type = "type_error:nested"

    # A value of the acceptable answers' type (rather than the doc's) is a variable name.
    if answer_type is not None and type(value) is answer_type:
        return AstResult(False, error, error_type) if error else _OK, True

    message = (
        f"Incorrect type for parameter {param!r}. Expected type {description}, got {type(value).__name__}. "
        f"Parameter value: {value!r}."
    )
    return AstResult(False, f"{error} {message}".strip(), "type_error:simple"), is_variable


def _std(value: Any) -> Any:
    return standardize_string(value) if type(value) is str else value


def _string_check(param: str, value: str, acceptable: list) -> AstResult:
    allowed = [standardize_string(a) for a in acceptable if type(a) is str]
    if standardize_string(value) not in allowed:
        return AstResult(
            False,
            f"Invalid value for parameter {param!r}: {value!r}. Expected one of {acceptable}. Case insensitive.",
            "value_error:string",
        )
    return _OK


def _list_check(param: str, value: list, acceptable: list) -> AstResult:
    standardized = [_std(v) for v in value]
    # Like BFCL, an acceptable "" standardises to [] (so an empty list matches an optional marker).
    allowed = [[_std(a) for a in answer] for answer in acceptable if isinstance(answer, list | tuple | str)]
    if standardized not in allowed:
        return AstResult(
            False,
            f"Invalid value for parameter {param!r}: {value!r}. Expected one of {acceptable}.",
            "value_error:list/tuple",
        )
    return _OK


def _dict_check(param: str, value: dict, acceptable: list) -> AstResult:
    unclear = AstResult(False, f"No acceptable dict value for parameter {param!r}.", "dict_checker:unclear")
    result = unclear
    for answer in acceptable:
        if answer == "":
            continue
        if not isinstance(answer, dict):  # BFCL would crash on such ground truth; it matches nothing
            continue
        result = unclear
        ok = True
        for key, item in value.items():
            if key not in answer:
                result = AstResult(False, f"Unexpected dict key parameter: '{key}'.", "value_error:dict_key")
                ok = False
                break
            allowed = [_std(a) for a in answer[key]]
            if _std(item) not in allowed:
                result = AstResult(
                    False,
                    f"Invalid value for parameter {key!r}: {item!r}. Expected one of {allowed}.",
                    "value_error:dict_value",
                )
                ok = False
                break
        for key, allowed_raw in answer.items():
            if key not in value and "" not in allowed_raw:
                message = f"Missing dict key parameter: '{key}'."
                previous = "" if result is unclear else result.error + " "
                result = AstResult(False, previous + message, "value_error:dict_key")
                ok = False
                break
        if ok:
            return _OK
    return result


def _list_dict_check(param: str, value: list, acceptable: list) -> AstResult:
    result = AstResult(False, f"No acceptable list value for parameter {param!r}.", "list_dict_checker:unclear")
    for answer in acceptable:
        if not isinstance(answer, list | str) or len(value) != len(answer):
            result = AstResult(False, "Wrong number of dictionaries in the list.", "value_error:list_dict_count")
            continue
        ok = True
        for index, item in enumerate(value):
            result = _dict_check(param, item, [answer[index]])
            if not result.valid:
                ok = False
                break
        if ok:
            return _OK
    return result


def _untyped_value_check(param: str, value: Any, acceptable: list) -> AstResult:
    if type(value) is str:
        return _string_check(param, value, acceptable)
    if value not in acceptable:
        return AstResult(
            False,
            f"Invalid value for parameter {param!r}: {value!r}. Expected one of {acceptable}.",
            "value_error:others",
        )
    return _OK


# --------------------------------------------------------------------------------------------
# Ground truth for our own samples
# --------------------------------------------------------------------------------------------


def _optional_answer(prop: Any) -> list:
    if isinstance(prop, dict) and "default" in prop:
        return ["", _gold_value(prop, prop["default"])]  # a dict default in BFCL's {key: [value]} form
    return [""]


def _gold_dict(prop: Any, value: dict) -> dict:
    answer = {key: [item] for key, item in value.items()}
    properties = prop.get("properties") if isinstance(prop, dict) else None
    if isinstance(properties, dict):
        for key, sub in properties.items():
            if key not in answer:
                answer[key] = _optional_answer(sub)
    return answer


def _gold_value(prop: Any, value: Any) -> Any:
    type_name, _ = _doc_type(prop if isinstance(prop, dict) else {})
    if type_name in ("dict", "object") and isinstance(value, dict):
        return _gold_dict(prop, value)
    if type_name in _NESTED_CHECK_TYPES and isinstance(value, list):
        items = prop.get("items") or {}
        items_type, _ = _doc_type(items if isinstance(items, dict) else {})
        if items_type in ("dict", "object") and all(isinstance(v, dict) for v in value):
            return [_gold_dict(items, v) for v in value]
    return value


def gold_to_possible_answer(tool: dict, call: dict) -> dict:
    """BFCL ground truth ``{name: {arg: [acceptable]}}`` for one gold call of our data.

    Given arguments are the one acceptable value (dict arguments become BFCL's ``{key: [value]}``
    form, lists of dicts a list of those); optional parameters absent from the call accept omission
    (``""``) or the schema default. A required parameter missing from the call raises ``ValueError``.
    """
    doc = function_dict(tool)
    if call.get("name") != doc.get("name"):
        raise ValueError(f"call names {call.get('name')!r} but the tool is {doc.get('name')!r}")
    params = doc.get("parameters") or {}
    properties = params.get("properties") or {}
    args = _arguments(call)
    for name in params.get("required") or []:
        if name not in args:
            raise ValueError(f"gold call to {doc['name']!r} misses required parameter {name!r}")
    answer = {name: [_gold_value(properties.get(name), value)] for name, value in args.items()}
    for name, prop in properties.items():
        if name not in answer:
            answer[name] = _optional_answer(prop)
    return {doc["name"]: answer}


# --------------------------------------------------------------------------------------------
# Schema validity
# --------------------------------------------------------------------------------------------

_BFCL_TO_JSON_TYPES = {"dict": "object", "float": "number", "tuple": "array"}
_SUBSCHEMA_MAP_KEYS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SUBSCHEMA_KEYS = (
    "items", "additionalProperties", "contains", "not", "if", "then", "else",
    "propertyNames", "unevaluatedItems", "unevaluatedProperties", "additionalItems",
)
_SUBSCHEMA_LIST_KEYS = ("anyOf", "oneOf", "allOf", "prefixItems")


def _normalise_bfcl_schema(schema: Any) -> Any:
    """A copy of ``schema`` with BFCL type names mapped to JSON Schema ones (``dict``→``object``,
    ``float``→``number``, ``tuple``→``array``, ``any``→ no type), recursively."""
    if not isinstance(schema, dict):
        return copy.deepcopy(schema)
    out: dict = {}
    for key, value in schema.items():
        if key == "type":
            if isinstance(value, str):
                if value == "any":
                    continue
                out[key] = _BFCL_TO_JSON_TYPES.get(value, value)
            elif isinstance(value, list):
                if "any" in value:
                    continue
                out[key] = [_BFCL_TO_JSON_TYPES.get(v, v) for v in value]
            else:
                out[key] = value
        elif key in _SUBSCHEMA_MAP_KEYS and isinstance(value, dict):
            out[key] = {k: _normalise_bfcl_schema(v) for k, v in value.items()}
        elif key == "items" and isinstance(value, list):  # draft-4 tuple form
            out["prefixItems"] = [_normalise_bfcl_schema(v) for v in value]
        elif key in _SUBSCHEMA_KEYS:
            out[key] = _normalise_bfcl_schema(value)
        elif key in _SUBSCHEMA_LIST_KEYS and isinstance(value, list):
            out[key] = [_normalise_bfcl_schema(v) for v in value]
        else:
            out[key] = copy.deepcopy(value)
    return out


@functools.lru_cache(maxsize=4096)
def _validator(schema_json: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(schema_json)
    jsonschema.Draft202012Validator.check_schema(schema)
    check_refs(schema, "parameters")  # local, existing, loop-free `$ref`s only (ToolSchemaError: a ValueError)
    return schema_validator(schema)


def _error_path(error: jsonschema.ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"arguments{path}"


def schema_check(calls: list[dict], tools: list[dict]) -> str | None:
    """None when every call names an offered tool and its arguments validate against that tool's
    parameter schema (BFCL type names normalised; JSON Schema Draft 2020-12 with format assertion);
    otherwise a message naming the first failing call. An empty call list is valid. Raises
    ``ValueError`` when an offered tool's schema is itself invalid."""
    docs = {}
    for tool in tools:
        doc = function_dict(tool)
        if isinstance(doc, dict) and isinstance(doc.get("name"), str):
            docs[doc["name"]] = doc
    for i, call in enumerate(calls):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            return f"call {i}: not a {{'name', 'arguments'}} object"
        name = call["name"]
        if name not in docs:
            return f"call {i}: {name!r} is not an offered tool (offered: {', '.join(sorted(docs)) or 'none'})"
        try:
            args = _arguments(call)
        except (TypeError, ValueError) as exc:
            return f"call {i} {name!r}: {exc}"
        try:
            check_value(args, f"call {i} {name!r}: arguments")
        except JSONLimitError as exc:
            return str(exc)
        parameters = docs[name].get("parameters") or {"type": "object"}
        try:
            check_value(parameters, f"tool {name!r}: parameters")
            schema_json = json.dumps(_normalise_bfcl_schema(parameters), sort_keys=True)
            validator = _validator(schema_json)
            error = jsonschema.exceptions.best_match(validator.iter_errors(args))
        except jsonschema.SchemaError as exc:
            raise ValueError(f"tool {name!r} has an invalid parameter schema: {exc.message}") from None
        except referencing.exceptions.Unresolvable as exc:
            raise ValueError(f"tool {name!r}: unresolvable $ref in its parameter schema: {exc}") from None
        if error is not None:
            return f"call {i} {name!r}: {_error_path(error)}: {error.message}"
    return None
