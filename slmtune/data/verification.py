"""Verification of generated samples: format, schema, execution, grounding.

:func:`verify_sample` runs four independent checks and returns the names of those that failed (empty = keep):

- ``format`` — the gold calls render through the dialect and parse back unchanged (names, argument names, values
  and JSON types, argument order);
- ``schema`` — every call names an offered tool and its arguments validate against that tool's JSON Schema (no
  unknown parameters); the call count fits the category (none for irrelevance, ≥ 2 for parallel, ...);
- ``execution`` — where the tool has an implementation in the registry, the call runs without raising
  (implementations are registered Python callables; nothing is ever ``eval``-ed; a derived tool runs through its
  wrapper, which maps renamed parameters back). Skipped when the schema check failed;
- ``grounding`` — every argument value is stated in, or derivable from, the user turn (case-insensitive, on word
  boundaries; numbers compared numerically, "1,500" = 1500, "5%" = 5 or 0.05; ISO dates also accepted spelled out,
  "March 14, 2025" / "14 March 2025" / "Mar 14th, 2025"; booleans/enums through the tool's ``mentions``; arrays and
  objects element by element), or equals the parameter's default.

A ``multi_turn`` conversation (:mod:`slmtune.data.multiturn`) is checked turn by turn (:func:`verify_conversation`):
``format`` also covers its shape (user first; each assistant message holds calls or text; every call is answered by
a ``tool`` message of the same name, in order; the conversation ends with a text answer); ``execution`` re-runs
every call and requires its ``tool`` message to hold exactly the result; ``grounding`` accepts an argument stated
in the user turns so far, or one that ``provenance.from_results`` names, which must equal the value at that path of
that earlier tool result.

JSON Schema validators are compiled once per schema and cached (building one costs far more than validating).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slmtune.data.registry import Tool, ToolRegistry, schema_validator
from slmtune.eval.scoring import ast_check, function_dict, gold_to_possible_answer, normalise_category

REASONS = ("format", "schema", "execution", "grounding", "scorer")

_MONTHS = {name: i + 1 for i, name in enumerate(
    ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
     "december"))}
_MONTHS.update({name[:3]: i for name, i in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_MONTH_RE = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DATE_PATTERNS = (
    (re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)"), ("y", "m", "d")),
    (re.compile(_MONTH_RE + r"\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})"), ("M", "d", "y")),
    (re.compile(r"(?<!\d)(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH_RE + r",?\s+(\d{4})"), ("d", "M", "y")),
    (re.compile(r"(?<!\d)(\d{4})/(\d{1,2})/(\d{1,2})(?!\d)"), ("y", "m", "d")),
)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMBER = re.compile(r"(?<![\d.,])(\d{1,3}(?:,\d{3})+(?!\d)|\d+)(\.\d+)?(%?)")
_NUMBER_WORDS = {w: i for i, w in enumerate(
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
     "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"))}
_NUMBER_WORDS.update({"a dozen": 12, "a couple of": 2, "a pair of": 2, "single": 1, "once": 1, "twice": 2,
                      "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
                      "ninety": 90, "hundred": 100, "a hundred": 100, "a thousand": 1000, "half": 0.5})
_CATEGORY_CALLS = {"simple": (1, 1), "multiple": (1, 1), "parallel": (2, None), "parallel_multiple": (2, None),
                   "irrelevance": (0, 0)}


# ----------------------------------------------------------------------------------------------------------------
# Stats

@dataclass
class VerificationStats:
    """Counts of verified samples and of rejections by reason (a sample may fail several checks)."""

    checked: int = 0
    passed: int = 0
    rejected: int = 0
    by_reason: Counter = field(default_factory=lambda: Counter({r: 0 for r in REASONS}))
    examples: dict[str, str] = field(default_factory=dict)    # reason -> the id of a first rejected sample

    def record(self, reasons: Sequence[str], sample_id: str | None = None) -> None:
        self.checked += 1
        if reasons:
            self.rejected += 1
            for reason in reasons:
                self.by_reason[reason] += 1
                if sample_id is not None:
                    self.examples.setdefault(reason, sample_id)
        else:
            self.passed += 1

    def merge(self, other: VerificationStats) -> None:
        self.checked += other.checked
        self.passed += other.passed
        self.rejected += other.rejected
        self.by_reason.update(other.by_reason)
        for k, v in other.examples.items():
            self.examples.setdefault(k, v)

    def as_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "passed": self.passed, "rejected": self.rejected,
                "rejected_by_reason": {r: int(self.by_reason.get(r, 0)) for r in REASONS}}


# ----------------------------------------------------------------------------------------------------------------
# Tool lookup and cached validators

_VALIDATORS_BY_ID: dict[int, tuple[Any, Any]] = {}
_VALIDATORS_BY_KEY: dict[str, Any] = {}
_CACHE_LIMIT = 20000


_SIMPLE_TOP_KEYS = {"type", "properties", "required", "description", "title", "$schema", "additionalProperties"}


def _has_ref(schema: Any) -> bool:
    if isinstance(schema, Mapping):
        return any(k in ("$ref", "$dynamicRef", "$defs", "definitions") or _has_ref(v) for k, v in schema.items())
    if isinstance(schema, list):
        return any(_has_ref(v) for v in schema)
    return False


def _value_key(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return (type(value), value)
    return ("json", json.dumps(value, sort_keys=True, default=repr))


class CallValidator:
    """Validates a call's arguments against a tool's parameter schema.

    For the usual shape (an object schema with ``properties``/``required`` and no references), each property is
    validated by its own compiled sub-validator and the verdict per (property, value) is memoised — catalog values
    repeat, so most checks become dictionary look-ups. Other schemas go through the full validator. The verdicts
    equal ``jsonschema.Draft202012Validator(parameters, format_checker=FormatChecker()).is_valid``.
    """

    __slots__ = ("full", "simple", "required", "properties", "additional", "_cache")

    def __init__(self, parameters: Mapping[str, Any]) -> None:
        self.full = schema_validator(dict(parameters))
        additional = parameters.get("additionalProperties", True)
        self.simple = (set(parameters) <= _SIMPLE_TOP_KEYS and parameters.get("type") == "object"
                       and isinstance(parameters.get("properties", {}), Mapping)
                       and isinstance(additional, bool) and not _has_ref(parameters))
        self.required = tuple(parameters.get("required", ()))
        self.additional = additional
        self.properties = {
            name: schema_validator(sub)
            for name, sub in parameters.get("properties", {}).items()} if self.simple else {}
        self._cache: dict[tuple[str, Any], bool] = {}

    def is_valid(self, arguments: Any) -> bool:
        if not self.simple:
            return self.full.is_valid(arguments)
        if not isinstance(arguments, dict):
            return False
        for name in self.required:
            if name not in arguments:
                return False
        cache = self._cache
        for name, value in arguments.items():
            sub = self.properties.get(name)
            if sub is None:
                if not self.additional:
                    return False
                continue
            key = (name, _value_key(value))
            ok = cache.get(key)
            if ok is None:
                ok = sub.is_valid(value)
                if len(cache) > 50000:
                    cache.clear()
                cache[key] = ok
            if not ok:
                return False
        return True

    def iter_errors(self, arguments: Any) -> Iterable[Any]:
        return self.full.iter_errors(arguments)


def validator_for(parameters: Mapping[str, Any]) -> CallValidator:
    """A :class:`CallValidator` (Draft 2020-12, with format checks) for ``parameters``, cached by identity and by
    content."""
    entry = _VALIDATORS_BY_ID.get(id(parameters))
    if entry is not None and entry[0] is parameters:
        return entry[1]
    key = json.dumps(parameters, sort_keys=True, default=str)
    validator = _VALIDATORS_BY_KEY.get(key)
    if validator is None:
        if len(_VALIDATORS_BY_KEY) > _CACHE_LIMIT:
            _VALIDATORS_BY_KEY.clear()
            _VALIDATORS_BY_ID.clear()
        validator = CallValidator(parameters)
        _VALIDATORS_BY_KEY[key] = validator
    if len(_VALIDATORS_BY_ID) > _CACHE_LIMIT:
        _VALIDATORS_BY_ID.clear()
    _VALIDATORS_BY_ID[id(parameters)] = (parameters, validator)
    return validator


class ToolLookup:
    """Resolves tool names to registry :class:`Tool` objects (implementation, mentions, defaults).

    A registry or mapping is consulted live (tools added later are seen); an iterable is indexed once."""

    def __init__(self, tools: ToolRegistry | Mapping[str, Tool] | Iterable[Tool] | None) -> None:
        if tools is None:
            self._get = {}.get
        elif isinstance(tools, ToolRegistry):
            registry = tools
            self._get = lambda name: registry.get(name) if name in registry else None
        elif isinstance(tools, Mapping):
            self._get = tools.get
        else:
            self._get = {t.name: t for t in tools}.get

    def get(self, name: str) -> Tool | None:
        return self._get(name)


_LOOKUPS: dict[int, tuple[Any, ToolLookup]] = {}


def _lookup(tools: Any) -> ToolLookup:
    if isinstance(tools, ToolLookup):
        return tools
    entry = _LOOKUPS.get(id(tools))
    if entry is not None and entry[0] is tools:
        return entry[1]
    lookup = ToolLookup(tools)
    if len(_LOOKUPS) > 64:
        _LOOKUPS.clear()
    _LOOKUPS[id(tools)] = (tools, lookup)
    return lookup


def _offered(sample: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    out = {}
    for tool in sample.get("tools", []):
        function = tool.get("function", tool) if isinstance(tool, Mapping) else {}
        if isinstance(function, Mapping) and "name" in function:
            out[function["name"]] = function
    return out


# ----------------------------------------------------------------------------------------------------------------
# The four checks

def _parsed_call(call: Any) -> dict[str, Any]:
    if isinstance(call, Mapping):
        arguments = call.get("arguments", call.get("parameters"))
        return {"name": call.get("name"), "arguments": arguments}
    return {"name": getattr(call, "name", None), "arguments": getattr(call, "arguments", None)}


def _strict_equal(a: Any, b: Any) -> bool:
    """Equality that also compares JSON types (1 ≠ 1.0 ≠ True) and object key order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_strict_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def check_format(sample: Mapping[str, Any], dialect: Any) -> bool:
    """The gold calls render through ``dialect`` and parse back unchanged."""
    calls = sample.get("tool_calls") or []
    if not calls:
        return True
    try:
        text = dialect.render_calls(calls, tools=sample.get("tools"))
        result = dialect.parse(text)
    except Exception:  # noqa: BLE001 - any failure to render or parse is a format failure
        return False
    if getattr(result, "error", None):
        return False
    parsed = getattr(result, "calls", None)
    if parsed is None or len(parsed) != len(calls):
        return False
    for gold, got in zip(calls, parsed, strict=True):
        got = _parsed_call(got)
        if got["name"] != gold.get("name") or not _strict_equal(got["arguments"], gold.get("arguments")):
            return False
    return True


def check_schema(sample: Mapping[str, Any], lookup: ToolLookup | None = None) -> bool:
    """Every call names an offered tool and validates against its schema; the call count fits the category."""
    calls = sample.get("tool_calls")
    if not isinstance(calls, list):
        return False
    bounds = _CATEGORY_CALLS.get(sample.get("category"))
    if bounds is not None:
        lo, hi = bounds
        if len(calls) < lo or (hi is not None and len(calls) > hi):
            return False
        if sample.get("category") == "parallel" and len({c.get("name") for c in calls if isinstance(c, Mapping)}) != 1:
            return False
    offered = _offered(sample)
    for call in calls:
        if not isinstance(call, Mapping):
            return False
        function = offered.get(call.get("name"))
        arguments = call.get("arguments")
        if function is None or not isinstance(arguments, dict):
            return False
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        if lookup is not None:
            tool = lookup.get(call["name"])
            if tool is not None and tool.parameters is not parameters and tool.parameters != parameters:
                return False        # the sample shows a schema other than the registered tool's
        properties = parameters.get("properties", {})
        for key in arguments:
            if key not in properties:
                return False
        try:
            if not validator_for(parameters).is_valid(arguments):
                return False
        except Exception:  # noqa: BLE001 - an unusable schema cannot validate anything
            return False
    return True


_EXECUTIONS: dict[tuple[str, int, str], tuple[Any, bool]] = {}


def run_call(tool: Tool, arguments: Mapping[str, Any], memo: bool = True) -> bool:
    """Run ``tool``'s implementation on ``arguments``; True when it returns without raising.

    Catalog implementations are deterministic and side-effect free (data/tools/README.md), so the outcome is
    memoised per (tool, implementation, canonical arguments): the same call is executed once per process."""
    if not memo:
        return _execute(tool, arguments)
    try:
        key = (tool.name, id(tool.implementation), json.dumps(arguments, sort_keys=True, allow_nan=True))
    except (TypeError, ValueError):
        return _execute(tool, arguments)
    entry = _EXECUTIONS.get(key)
    if entry is not None and entry[0] is tool.implementation:
        return entry[1]
    ok = _execute(tool, arguments)
    if len(_EXECUTIONS) > 200_000:
        _EXECUTIONS.clear()
    _EXECUTIONS[key] = (tool.implementation, ok)
    return ok


def _execute(tool: Tool, arguments: Mapping[str, Any]) -> bool:
    try:
        tool.implementation(**dict(arguments))
    except Exception:  # noqa: BLE001 - any exception means the call does not execute
        return False
    return True


def check_execution(sample: Mapping[str, Any], lookup: ToolLookup, memo: bool = True) -> bool:
    """Every call whose tool has a registered implementation runs without raising (the registry's callable; a
    derived tool's wrapper maps its parameters back to the original function's)."""
    for call in sample.get("tool_calls") or []:
        tool = lookup.get(call.get("name"))
        if tool is None or tool.implementation is None:
            continue
        if not run_call(tool, call.get("arguments") or {}, memo):
            return False
    return True


def clear_caches() -> None:
    """Forget compiled validators and memoised execution outcomes."""
    _VALIDATORS_BY_ID.clear()
    _VALIDATORS_BY_KEY.clear()
    _EXECUTIONS.clear()
    _LOOKUPS.clear()


class _UserText:
    """The user turn, normalised once, with lazily extracted numbers and dates."""

    __slots__ = ("text", "_numbers", "_dates")

    def __init__(self, text: str) -> None:
        self.text = normalise_text(text)
        self._numbers: set[float] | None = None
        self._dates: set[str] | None = None

    def contains(self, phrase: str) -> bool:
        phrase = normalise_text(phrase)
        if not phrase:
            return False
        text = self.text
        start = text.find(phrase)
        n = len(phrase)
        check_left = phrase[0].isalnum()
        check_right = phrase[-1].isalnum()
        while start != -1:
            ok_left = not check_left or start == 0 or not text[start - 1].isalnum()
            end = start + n
            ok_right = not check_right or end == len(text) or not text[end].isalnum()
            if ok_left and ok_right:
                return True
            start = text.find(phrase, start + 1)
        return False

    @property
    def numbers(self) -> set[float]:
        if self._numbers is None:
            found: set[float] = set()
            text = self.text
            for match in _NUMBER.finditer(text):
                value = float(match.group(1).replace(",", "") + (match.group(2) or ""))
                values = [value]
                start = match.start()
                if start and text[start - 1] in "-\u2212":
                    values.append(-value)      # "-10 degrees" (also "SKU-64250": harmless extra)
                for v in values:
                    found.add(v)
                    if match.group(3):
                        found.add(v / 100)
            for word, value in _NUMBER_WORDS.items():
                if word in self.text and self.contains(word):
                    found.add(float(value))
            self._numbers = found
        return self._numbers

    @property
    def dates(self) -> set[str]:
        if self._dates is None:
            found: set[str] = set()
            for pattern, order in _DATE_PATTERNS:
                for match in pattern.finditer(self.text):
                    parts = dict(zip(order, match.groups(), strict=True))
                    month = _MONTHS.get(parts["M"].rstrip(".")) if "M" in parts else int(parts["m"])
                    if month:
                        found.add(f"{int(parts['y']):04d}-{month:02d}-{int(parts['d']):02d}")
            self._dates = found
        return self._dates


def normalise_text(text: str) -> str:
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    return " ".join(text.split())


def _is_default(value: Any, schema: Mapping[str, Any]) -> bool:
    if "default" not in schema:
        return False
    default = schema["default"]
    if isinstance(value, bool) or isinstance(default, bool):
        return type(value) is type(default) and value == default
    return value == default


def _grounded(value: Any, schema: Mapping[str, Any], mentions: Mapping[str, Mapping[str, str]], path: str,
              user: _UserText) -> bool:
    if _is_default(value, schema):
        return True
    mention = mentions.get(path)
    if mention:
        phrase = mention.get(json.dumps(value, ensure_ascii=False))
        if phrase is not None and user.contains(phrase):
            return True
    if isinstance(value, bool):
        return user.contains("true" if value else "false")
    if value is None:
        return user.contains("none") or user.contains("null")
    if isinstance(value, (int, float)):
        return float(value) in user.numbers
    if isinstance(value, str):
        if user.contains(value):
            return True
        trimmed = value.rstrip(".!?;,")
        if trimmed and trimmed != value and user.contains(trimmed):
            return True     # a sentence-final period of the value merged with the request's punctuation
        if "_" in value and user.contains(value.replace("_", " ")):
            return True
        if _ISO_DATE.match(value) and value in user.dates:
            return True
        return False
    if isinstance(value, list):
        items = schema.get("items") if isinstance(schema.get("items"), Mapping) else {}
        return all(_grounded(v, items, mentions, path, user) for v in value)
    if isinstance(value, dict):
        props = schema.get("properties", {}) if isinstance(schema.get("properties"), Mapping) else {}
        return all(_grounded(v, props.get(k, {}), mentions, f"{path}.{k}", user) for k, v in value.items())
    return False


def check_grounding(sample: Mapping[str, Any], lookup: ToolLookup | None = None) -> bool:
    """Every argument value is stated in (or derivable from) the user turn, or is the parameter's default."""
    calls = sample.get("tool_calls") or []
    if not calls:
        return True
    user = _UserText(" \n ".join(m.get("content") or "" for m in sample.get("messages", [])
                                 if m.get("role") == "user"))
    offered = _offered(sample)
    for call in calls:
        tool = lookup.get(call.get("name")) if lookup is not None else None
        function = offered.get(call.get("name"))
        parameters = tool.parameters if tool is not None else (function or {}).get("parameters", {})
        properties = parameters.get("properties", {})
        mentions = tool.mentions if tool is not None else {}
        arguments = call.get("arguments")
        if not isinstance(arguments, Mapping):
            return False
        for key, value in arguments.items():
            if not _grounded(value, properties.get(key, {}), mentions, key, user):
                return False
    return True


def check_scorer(sample: Mapping[str, Any]) -> bool:
    """The gold label passes the project's own scorer against itself: the BFCL AST check that eval applies to the
    test split, with the possible answer eval derives from the label (DESIGN §6: no label that eval would call
    wrong, e.g. ``[3.5, 8]`` for an array of float under BFCL's nested-type rule). Samples of categories that the
    AST scorer does not cover (multi-turn) pass."""
    category = sample.get("category")
    try:
        scored = normalise_category(category) if isinstance(category, str) else None
    except ValueError:
        return True
    if scored is None:
        return True
    calls = [_parsed_call(c) for c in sample.get("tool_calls") or []]
    tools = list(sample.get("tools") or [])
    try:
        by_name = {function_dict(t)["name"]: t for t in tools}
        answer = None if scored in ("irrelevance", "relevance") else \
            [gold_to_possible_answer(by_name[c["name"]], c) for c in calls]
        return ast_check(calls, tools, answer, category).valid
    except (KeyError, TypeError, ValueError):
        return False


def _conversation_shape(messages: Any) -> bool:
    """User first (after an optional system message); assistant messages hold a non-empty call list or text;
    each call list is followed by one ``tool`` message per call with the call's name; ends in a text answer."""
    if not isinstance(messages, list) or not messages or not all(isinstance(m, Mapping) for m in messages):
        return False
    start = 1 if messages[0].get("role") == "system" else 0
    if start >= len(messages) or messages[start].get("role") != "user":
        return False
    i = start
    while i < len(messages):
        message = messages[i]
        role = message.get("role")
        if role == "user":
            if not isinstance(message.get("content"), str) or not message["content"]:
                return False
            i += 1
        elif role == "assistant":
            calls = message.get("tool_calls")
            if calls:
                if not isinstance(calls, list) or not all(isinstance(c, Mapping) for c in calls):
                    return False
                answers = messages[i + 1:i + 1 + len(calls)]
                if len(answers) != len(calls) or any(
                        a.get("role") != "tool" or a.get("name") != c.get("name")
                        or not isinstance(a.get("content"), str) for a, c in zip(answers, calls, strict=True)):
                    return False
                i += 1 + len(calls)
            elif isinstance(message.get("content"), str) and message["content"]:
                i += 1
            else:
                return False
        else:
            return False
    last = messages[-1]
    return last.get("role") == "assistant" and not last.get("tool_calls")


def _result_references(sample: Mapping[str, Any]) -> dict[tuple[int, int, str], tuple[int, list]] | None:
    refs = (sample.get("provenance") or {}).get("from_results") or []
    out = {}
    for ref in refs:
        try:
            out[(int(ref["message"]), int(ref["call"]), str(ref["argument"]))] = (int(ref["tool_message"]),
                                                                                list(ref["path"]))
        except (KeyError, TypeError, ValueError):
            return None
    return out


def verify_conversation(sample: Mapping[str, Any], registry_or_tools: Any, dialect: Any) -> list[str]:
    """The checks of :func:`verify_sample` on every assistant turn of a ``multi_turn`` conversation (module doc)."""
    from slmtune.data.multiturn import result_text, value_at

    lookup = _lookup(registry_or_tools)
    messages = sample.get("messages")
    if not _conversation_shape(messages):
        return ["format"]
    refs = _result_references(sample)
    reasons: list[str] = []

    def fail(reason: str) -> None:
        if reason not in reasons:
            reasons.append(reason)

    if refs is None:
        fail("grounding")
        refs = {}
    offered = _offered(sample)
    used_refs = set()
    for i, message in enumerate(messages):
        calls = message.get("tool_calls") if message.get("role") == "assistant" else None
        if not calls:
            continue
        turn = {"category": None, "tools": sample.get("tools"), "tool_calls": calls}
        if not check_format(turn, dialect):
            fail("format")
        schema_ok = check_schema(turn, lookup)
        if not schema_ok:
            fail("schema")
        else:
            for j, call in enumerate(calls):
                tool = lookup.get(call.get("name"))
                if tool is None or tool.implementation is None:
                    fail("execution")  # a conversation needs the result the tool really returns
                    continue
                try:
                    produced = result_text(tool.implementation(**dict(call["arguments"])))
                except Exception:  # noqa: BLE001 - a call that does not run, or a result that is not JSON
                    fail("execution")
                    continue
                if produced != messages[i + 1 + j].get("content"):
                    fail("execution")
            one = "multiple" if len(calls) == 1 else "parallel_multiple"
            if not check_scorer({"category": one, "tools": sample.get("tools"), "tool_calls": calls}):
                fail("scorer")
        user = _UserText(" \n ".join(m.get("content") or "" for m in messages[:i] if m.get("role") == "user"))
        for j, call in enumerate(calls):
            arguments = call.get("arguments")
            if not isinstance(arguments, Mapping):
                fail("grounding")
                continue
            tool = lookup.get(call.get("name"))
            function = offered.get(call.get("name")) or {}
            properties = (tool.parameters if tool is not None else function.get("parameters", {})).get("properties", {})
            mentions = tool.mentions if tool is not None else {}
            for key, value in arguments.items():
                ref = refs.get((i, j, key))
                if ref is not None:
                    used_refs.add((i, j, key))
                    source, path = ref
                    if not (0 <= source < i and messages[source].get("role") == "tool"):
                        fail("grounding")
                        continue
                    try:
                        taken = value_at(json.loads(messages[source]["content"]), path)
                    except (KeyError, ValueError):
                        fail("grounding")
                        continue
                    if not _strict_equal(taken, value):
                        fail("grounding")
                elif not _grounded(value, properties.get(key, {}), mentions, key, user):
                    fail("grounding")
    if used_refs != set(refs):
        fail("grounding")     # a reference to an argument no call has
    return [r for r in REASONS if r in reasons]


def verify_sample(sample: Mapping[str, Any], registry_or_tools: Any, dialect: Any) -> list[str]:
    """Run the five checks; return the failed ones among ``"format"``, ``"schema"``, ``"execution"``,
    ``"grounding"``, ``"scorer"`` (empty list = the sample is kept).

    ``registry_or_tools`` is a :class:`ToolRegistry`, a ``{name: Tool}`` mapping, an iterable of tools or ``None``
    (then schemas come from the sample's own tool list and execution is skipped). ``dialect`` needs
    ``render_calls(calls, tools=None) -> str`` and ``parse(text) -> ParseResult(calls, content, error)``.
    """
    if sample.get("category") == "multi_turn":
        return verify_conversation(sample, registry_or_tools, dialect)
    lookup = _lookup(registry_or_tools)
    reasons = []
    if not check_format(sample, dialect):
        reasons.append("format")
    schema_ok = check_schema(sample, lookup)
    if not schema_ok:
        reasons.append("schema")
    elif not check_execution(sample, lookup):
        reasons.append("execution")
    if not check_grounding(sample, lookup):
        reasons.append("grounding")
    if schema_ok and not check_scorer(sample):
        reasons.append("scorer")
    return reasons
