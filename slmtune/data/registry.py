"""Type-safe function registry: tools as JSON Schema with optional Python implementations.

A tool is the OpenAI ``function`` object ``{"name", "description", "parameters"}`` whose ``parameters`` is a JSON
Schema object. BFCL's type names (``dict``, ``float``, ``tuple``, ``any``) are normalised on the way in, so every
tool inside slmtune speaks standard JSON Schema. One function, :func:`validate_call`, decides whether a call is valid
for a tool; data generation, evaluation and export all use it.

Usage::

    registry = load_catalog()                       # the built-in catalog under data/tools/
    tool = registry.get("flights.search_one_way")
    errors = validate_call(tool, {"name": tool.name, "arguments": {"origin": "SFO"}})
    result = registry.execute({"name": "convert_currency", "arguments": {...}})
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import re
import types
import typing
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import referencing.exceptions

from slmtune.data.jsonlimits import MAX_DEPTH, JSONLimitError, check_value
from slmtune.data.jsonlimits import loads as json_loads

CATALOG_DIR = Path(__file__).resolve().parents[2] / "data" / "tools"
TOOL_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[.-][A-Za-z_][A-Za-z0-9_]*)*")  # use fullmatch
IMPLEMENTATION_PACKAGE = "slmtune.catalog"

_BFCL_TYPE_NAMES = {"dict": "object", "float": "number", "tuple": "array"}
_JSON_TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}
# Non-standard keys BFCL puts into parameter schemas; harmless annotations, kept out of validation.
_DROPPED_KEYS = {"optional"}
# Keys that name another document or move a schema's base URI: a tool schema stands alone, so they are refused.
_REFUSED_KEYS = ("$id", "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor")
# A registry that holds nothing and retrieves nothing: a `$ref` resolves only inside the schema being validated.
LOCAL_ONLY = referencing.Registry()


def schema_validator(schema: Mapping[str, Any]) -> jsonschema.Draft202012Validator:
    """A Draft 2020-12 validator (format assertion on) whose ``$ref``s resolve only inside ``schema``: it never
    reads a file or fetches a URL (jsonschema's default registry would)."""
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker(), registry=LOCAL_ONLY)


class ToolSchemaError(ValueError):
    """A tool declaration is malformed. The message names the source and the JSON path of the problem."""


class UnknownToolError(KeyError):
    """A call names a tool the registry does not hold."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0])


@dataclass(frozen=True)
class Tool:
    """One callable tool: JSON Schema parameters, an optional implementation, and catalog metadata."""

    name: str
    description: str
    parameters: dict[str, Any]
    implementation: Callable[..., Any] | None = None
    domain: str | None = None
    values: dict[str, list[Any]] = field(default_factory=dict)
    mentions: dict[str, dict[str, str]] = field(default_factory=dict)
    queries: tuple[str, ...] = ()

    def function_dict(self) -> dict[str, Any]:
        """The OpenAI ``function`` object (what prompts and samples carry)."""
        return {"name": self.name, "description": self.description, "parameters": copy.deepcopy(self.parameters)}

    @property
    def required(self) -> list[str]:
        return list(self.parameters.get("required", []))

    @property
    def properties(self) -> dict[str, Any]:
        return self.parameters.get("properties", {})


def normalize_schema(schema: Any, where: str = "parameters", _depth: int = 0) -> dict[str, Any]:
    """Return a standard JSON Schema copy of ``schema``, mapping BFCL type names; raise ``ToolSchemaError``.

    ``where`` is the JSON path used in error messages. Schemas nested deeper than ``MAX_DEPTH`` are refused.
    """
    if _depth > MAX_DEPTH:
        raise ToolSchemaError(f"{where}: schema nested deeper than {MAX_DEPTH} levels")
    if not isinstance(schema, Mapping):
        raise ToolSchemaError(f"{where}: expected a JSON Schema object, got {type(schema).__name__}")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "type":
            out["type"] = _normalize_type(value, f"{where}.type")
        elif key == "properties":
            if not isinstance(value, Mapping):
                raise ToolSchemaError(f"{where}.properties: expected an object")
            out["properties"] = {
                name: normalize_schema(sub, f"{where}.properties.{name}", _depth + 1) for name, sub in value.items()
            }
        elif key == "items":
            if isinstance(value, list):  # BFCL tuples sometimes list per-position schemas
                out["prefixItems"] = [normalize_schema(s, f"{where}.items[{i}]", _depth + 1)
                                      for i, s in enumerate(value)]
            else:
                out["items"] = normalize_schema(value, f"{where}.items", _depth + 1)
        elif key in ("anyOf", "oneOf", "allOf"):
            if not isinstance(value, list):
                raise ToolSchemaError(f"{where}.{key}: expected a list of schemas")
            out[key] = [normalize_schema(s, f"{where}.{key}[{i}]", _depth + 1) for i, s in enumerate(value)]
        elif key == "additionalProperties" and isinstance(value, Mapping):
            out[key] = normalize_schema(value, f"{where}.additionalProperties", _depth + 1)
        elif key in _REFUSED_KEYS:
            raise ToolSchemaError(f"{where}.{key}: not supported in a tool schema (it must stand alone)")
        else:
            try:
                check_value(value, f"{where}.{key}", MAX_DEPTH - _depth)
            except JSONLimitError as err:
                raise ToolSchemaError(str(err)) from None
            out[key] = copy.deepcopy(value)
    if out.get("type") == "any":
        del out["type"]
    if "required" in out:
        required = out["required"]
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise ToolSchemaError(f"{where}.required: expected a list of parameter names")
        if "properties" not in out and required:
            # JSON Schema: these keys must be present, with any value (BFCL's parallel_29 declares a dict this way)
            out["properties"] = {name: {} for name in required}
        unknown = [r for r in required if r not in out.get("properties", {})]
        if unknown:
            raise ToolSchemaError(f"{where}.required: {unknown} not among properties {list(out.get('properties', {}))}")
    return out


def _normalize_type(value: Any, where: str, in_list: bool = False) -> Any:
    if isinstance(value, list) and not in_list:
        return [_normalize_type(v, where, True) for v in value]
    if not isinstance(value, str):
        raise ToolSchemaError(f"{where}: expected a type name, got {value!r}")
    value = _BFCL_TYPE_NAMES.get(value, value)
    if value != "any" and value not in _JSON_TYPES:
        raise ToolSchemaError(f"{where}: unknown type {value!r} (expected one of {sorted(_JSON_TYPES)})")
    return value


def make_tool(spec: Mapping[str, Any], source: str = "<tool>", **extra: Any) -> Tool:
    """Build a :class:`Tool` from an OpenAI tool (``{"type": "function", "function": {...}}``), a function dict or a
    BFCL function doc. ``source`` names the file (or other origin) in error messages."""
    if not isinstance(spec, Mapping):
        raise ToolSchemaError(f"{source}: expected a tool object, got {type(spec).__name__}")
    if spec.get("type") == "function" and isinstance(spec.get("function"), Mapping):
        spec = spec["function"]
    name = spec.get("name")
    if not isinstance(name, str) or not TOOL_NAME_PATTERN.fullmatch(name):
        raise ToolSchemaError(f"{source}.name: invalid tool name {name!r}")
    description = spec.get("description", "")
    if not isinstance(description, str):
        raise ToolSchemaError(f"{source}.description: expected a string")
    parameters = normalize_schema(spec.get("parameters", {"type": "object", "properties": {}}), f"{source}.parameters")
    if parameters.get("type") != "object":
        raise ToolSchemaError(f"{source}.parameters.type: must be 'object', got {parameters.get('type')!r}")
    parameters.setdefault("properties", {})
    try:
        jsonschema.Draft202012Validator.check_schema(parameters)
    except jsonschema.SchemaError as err:
        path = ".".join(str(p) for p in err.absolute_path)
        raise ToolSchemaError(f"{source}.parameters.{path}: {err.message}") from None
    check_refs(parameters, f"{source}.parameters")
    return Tool(name=name, description=description, parameters=parameters, **extra)


def _pointer_target(document: Any, ref: str, where: str) -> Any:
    """The part of ``document`` that the local reference ``ref`` (``#`` or ``#/json/pointer``) names."""
    if not ref.startswith("#"):
        raise ToolSchemaError(f"{where}: $ref {ref!r} points outside the schema; only local references "
                              "('#/...') are resolved (no files, no URLs)")
    pointer = urllib.parse.unquote(ref[1:])
    if pointer and not pointer.startswith("/"):
        raise ToolSchemaError(f"{where}: $ref {ref!r} is an anchor; only JSON pointers ('#/...') are resolved")
    target = document
    for part in pointer.split("/")[1:] if pointer else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(target, Mapping) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            raise ToolSchemaError(f"{where}: $ref {ref!r} points to nothing in the schema")
    return target


def check_refs(schema: Mapping[str, Any], where: str = "parameters") -> None:
    """Refuse any ``$ref`` of ``schema`` that leaves the document, names a missing part of it or forms a loop (a
    schema that refers to itself, directly or not, has no finite grammar); ``ToolSchemaError`` names the field."""
    refs: dict[int, tuple[str, str]] = {}  # id(node holding $ref) -> (ref, path)
    stack: list[tuple[Any, str]] = [(schema, where)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, Mapping):
            if "$ref" in node:
                if not isinstance(node["$ref"], str):
                    raise ToolSchemaError(f"{path}.$ref: expected a string")
                refs[id(node)] = (node["$ref"], f"{path}.$ref")
            stack.extend((v, f"{path}.{k}") for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(node))
    if not refs:
        return
    targets = {key: _pointer_target(schema, ref, path) for key, (ref, path) in refs.items()}

    def inner_refs(node: Any) -> list[int]:
        found, todo = [], [node]
        while todo:
            item = todo.pop()
            if isinstance(item, Mapping):
                if id(item) in refs:
                    found.append(id(item))
                todo.extend(item.values())
            elif isinstance(item, list):
                todo.extend(item)
        return found

    edges = {key: inner_refs(target) for key, target in targets.items()}
    done: set[int] = set()
    for start in edges:
        if start in done:
            continue
        on_path: set[int] = set()
        order: list[tuple[int, int]] = [(start, 0)]
        on_path.add(start)
        while order:
            key, i = order[-1]
            if i < len(edges[key]):
                order[-1] = (key, i + 1)
                nxt = edges[key][i]
                if nxt in on_path:
                    raise ToolSchemaError(f"{refs[nxt][1]}: $ref {refs[nxt][0]!r} forms a loop (a recursive schema "
                                          "is not supported)")
                if nxt not in done:
                    on_path.add(nxt)
                    order.append((nxt, 0))
            else:
                order.pop()
                on_path.discard(key)
                done.add(key)


def tool_from_function(fn: Callable[..., Any], name: str | None = None, domain: str | None = None) -> Tool:
    """Declare a tool from a typed Python function: parameters from its signature and type hints, descriptions from
    the docstring (first paragraph = tool description; ``name: text`` lines under ``Args:`` = parameter docs)."""
    hints = typing.get_type_hints(fn)
    doc = inspect.getdoc(fn) or ""
    summary, arg_docs = _parse_docstring(doc)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolSchemaError(f"{fn.__qualname__}: *args/**kwargs cannot be described as a tool parameter")
        if param.name not in hints:
            raise ToolSchemaError(f"{fn.__qualname__}.{param.name}: missing type annotation")
        schema = _python_type_to_schema(hints[param.name], f"{fn.__qualname__}.{param.name}")
        if param.name in arg_docs:
            schema["description"] = arg_docs[param.name]
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
        else:
            schema["default"] = param.default
        properties[param.name] = schema
    spec = {"name": name or fn.__name__, "description": summary,
            "parameters": {"type": "object", "properties": properties, "required": required}}
    return make_tool(spec, source=fn.__qualname__, implementation=fn, domain=domain)


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    summary = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    arg_docs: dict[str, str] = {}
    in_args = False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
            continue
        if in_args:
            match = re.match(r"^(\w+)(?:\s*\([^)]*\))?:\s*(.+)$", stripped)
            if match:
                arg_docs[match.group(1)] = match.group(2)
            elif not stripped:
                in_args = False
    return summary, arg_docs


def _python_type_to_schema(tp: Any, where: str) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is type(None):
        return {"type": "null"}
    if tp is Any:
        return {}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        item = args[0] if args and args[0] is not Ellipsis else Any
        return {"type": "array", "items": _python_type_to_schema(item, f"{where}[]")}
    if origin is dict or tp is dict:
        return {"type": "object"}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_python_type_to_schema(a, where) for a in args]}
    raise ToolSchemaError(f"{where}: cannot describe type {tp!r} as JSON Schema")


def validate_call(tool: Tool, call: Mapping[str, Any]) -> list[str]:
    """Check one call ``{"name", "arguments"}`` against ``tool``; return the problems (empty list = valid)."""
    problems: list[str] = []
    if call.get("name") != tool.name:
        problems.append(f"name: expected {tool.name!r}, got {call.get('name')!r}")
    arguments = call.get("arguments")
    if not isinstance(arguments, Mapping):
        return problems + [f"arguments: expected an object, got {type(arguments).__name__}"]
    unknown = sorted(set(arguments) - set(tool.properties))
    if unknown:
        problems.append(f"arguments: unknown parameter(s) {unknown}")
    try:
        check_value(dict(arguments), "arguments")
    except JSONLimitError as err:
        return problems + [str(err)]
    validator = schema_validator(tool.parameters)
    for err in sorted(validator.iter_errors(dict(arguments)), key=lambda e: [str(p) for p in e.absolute_path]):
        path = ".".join(str(p) for p in err.absolute_path)
        problems.append(f"arguments{'.' + path if path else ''}: {err.message}")
    return problems


class ToolRegistry:
    """Tools by name. Executing a call runs only a registered implementation (never ``eval``)."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ToolSchemaError(f"duplicate tool name {tool.name!r}")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownToolError(f"unknown tool {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self):
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def domains(self) -> list[str]:
        return sorted({t.domain for t in self._tools.values() if t.domain})

    def execute(self, call: Mapping[str, Any]) -> Any:
        """Validate ``call`` and run its tool's registered implementation; raise ``ValueError`` if it cannot run."""
        tool = self.get(call.get("name"))
        if tool.implementation is None:
            raise ValueError(f"tool {tool.name!r} has no implementation")
        problems = validate_call(tool, call)
        if problems:
            raise ValueError(f"invalid call to {tool.name!r}: " + "; ".join(problems))
        return tool.implementation(**call["arguments"])


def resolve_implementation(reference: str, where: str) -> Callable[..., Any]:
    """Import ``"slmtune.catalog.<module>:<function>"``; anything outside that package is refused."""
    module_name, _, attr = reference.partition(":")
    if not attr or not (module_name == IMPLEMENTATION_PACKAGE or module_name.startswith(IMPLEMENTATION_PACKAGE + ".")):
        raise ToolSchemaError(f"{where}: implementation must be '{IMPLEMENTATION_PACKAGE}.<module>:<function>', "
                              f"got {reference!r}")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ToolSchemaError(f"{where}: cannot import {reference!r}: {err}") from None
    if not callable(fn):
        raise ToolSchemaError(f"{where}: {reference!r} is not callable")
    return fn


def load_catalog_file(path: Path) -> list[Tool]:
    """Load one ``data/tools/<domain>.json`` file (format: data/tools/README.md)."""
    try:
        doc = json_loads(path.read_bytes(), str(path))
    except json.JSONDecodeError as err:
        raise ToolSchemaError(f"{path}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    except JSONLimitError as err:
        raise ToolSchemaError(str(err)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("domain"), str) or not isinstance(doc.get("tools"), list):
        raise ToolSchemaError(f"{path}: expected an object with 'domain' (string) and 'tools' (list)")
    tools = []
    for index, spec in enumerate(doc["tools"]):
        where = f"{path}: $.tools[{index}]"
        if not isinstance(spec, dict):
            raise ToolSchemaError(f"{where}: expected an object")
        implementation = None
        if spec.get("implementation") is not None:
            if not isinstance(spec["implementation"], str):
                raise ToolSchemaError(f"{where}.implementation: expected a string 'module:function'")
            implementation = resolve_implementation(spec["implementation"], f"{where}.implementation")
        values, mentions, queries = spec.get("values", {}), spec.get("mentions", {}), spec.get("queries", [])
        if not isinstance(values, dict):
            raise ToolSchemaError(f"{where}.values: expected an object of parameter -> list of values")
        if not isinstance(mentions, dict) or not all(
                isinstance(m, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in m.items())
                for m in mentions.values()):
            raise ToolSchemaError(f"{where}.mentions: expected an object of parameter -> {{value: text}}")
        if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
            raise ToolSchemaError(f"{where}.queries: expected a list of strings")
        tool = make_tool(
            {k: spec[k] for k in ("name", "description", "parameters") if k in spec},
            source=where,
            implementation=implementation,
            domain=doc["domain"],
            values=values,
            mentions=mentions,
            queries=tuple(queries),
        )
        _check_catalog_metadata(tool, where)
        tools.append(tool)
    return tools


def _check_catalog_metadata(tool: Tool, where: str) -> None:
    for param, values in tool.values.items():
        if param not in tool.properties:
            raise ToolSchemaError(f"{where}.values.{param}: not a parameter of {tool.name!r}")
        if not isinstance(values, list) or not values:
            raise ToolSchemaError(f"{where}.values.{param}: expected a non-empty list")
        # validated inside the whole parameter schema, so local `$ref`s resolve
        validator = schema_validator(dict(tool.parameters, required=[]))
        for i, value in enumerate(values):
            error = jsonschema.exceptions.best_match(validator.iter_errors({param: value}))
            if error is not None:
                raise ToolSchemaError(f"{where}.values.{param}[{i}]: {error.message}")
    for i, query in enumerate(tool.queries):
        for placeholder in re.findall(r"\{([^{}]+)\}", query):
            param = placeholder.split(".", 1)[0]
            if param not in tool.values:
                raise ToolSchemaError(f"{where}.queries[{i}]: placeholder {{{placeholder}}} has no values")
        missing = [r for r in tool.required if not re.search(r"\{" + re.escape(r) + r"[.}]", query)]
        if missing:
            raise ToolSchemaError(f"{where}.queries[{i}]: required parameter(s) {missing} not mentioned")


def load_catalog(directory: Path | str = CATALOG_DIR) -> ToolRegistry:
    """Load every ``*.json`` catalog file under ``directory`` into one registry."""
    directory = Path(directory)
    files = sorted(directory.glob("*.json"))
    if not files:
        raise ToolSchemaError(f"{directory}: no tool catalog files (*.json)")
    registry = ToolRegistry()
    for path in files:
        for tool in load_catalog_file(path):
            if tool.name in registry:
                raise ToolSchemaError(f"{path}: tool {tool.name!r} already declared in another catalog file")
            registry.add(tool)
    return registry
