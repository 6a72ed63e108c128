"""Function registry: schema normalisation, declaration from typed functions, validation, execution, errors."""

import json
from typing import Literal

import pytest

from slmtune.data.registry import (
    ToolRegistry,
    ToolSchemaError,
    UnknownToolError,
    load_catalog,
    load_catalog_file,
    make_tool,
    normalize_schema,
    tool_from_function,
    validate_call,
)


def test_bfcl_type_names_are_normalised():
    schema = normalize_schema({"type": "dict", "properties": {
        "x": {"type": "float"}, "pair": {"type": "tuple", "items": {"type": "integer"}}, "blob": {"type": "any"}},
        "required": ["x"]})
    assert schema["type"] == "object"
    assert schema["properties"]["x"]["type"] == "number"
    assert schema["properties"]["pair"]["type"] == "array"
    assert "type" not in schema["properties"]["blob"]


def test_unknown_type_names_the_json_path():
    with pytest.raises(ToolSchemaError, match=r"t\.parameters\.properties\.n\.type: unknown type 'integr'"):
        make_tool({"name": "f", "parameters": {"type": "object", "properties": {"n": {"type": "integr"}}}},
                  source="t")


def test_required_must_name_properties():
    with pytest.raises(ToolSchemaError, match=r"required: \['zz'\] not among properties"):
        make_tool({"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}},
                                               "required": ["zz"]}})


def test_required_without_properties_means_any_value():
    # JSON Schema: the keys must be there, with any value (BFCL's parallel_29 declares its `population` dict so)
    tool = make_tool({"name": "f", "parameters": {"type": "dict", "properties": {
        "population": {"type": "dict", "required": ["adults", "children"]}}, "required": ["population"]}})
    assert tool.properties["population"]["properties"] == {"adults": {}, "children": {}}


def test_invalid_tool_name_is_refused():
    with pytest.raises(ToolSchemaError, match="invalid tool name"):
        make_tool({"name": "bad name!", "parameters": {"type": "object", "properties": {}}})


def test_tool_from_typed_function_and_execution():
    def convert(amount: float, unit: Literal["km", "mi"] = "km", round_to: int = 2) -> float:
        """Convert a distance.

        Args:
            amount: The distance to convert.
            unit: Target unit.
        """
        return round(amount * (0.621371 if unit == "mi" else 1.0), round_to)

    tool = tool_from_function(convert)
    assert tool.required == ["amount"]
    assert tool.properties["unit"] == {"enum": ["km", "mi"], "description": "Target unit.", "default": "km"}
    assert tool.description == "Convert a distance."
    registry = ToolRegistry([tool])
    assert registry.execute({"name": "convert", "arguments": {"amount": 10, "unit": "mi"}}) == 6.21
    with pytest.raises(ValueError, match="invalid call"):
        registry.execute({"name": "convert", "arguments": {"amount": "ten"}})
    with pytest.raises(UnknownToolError, match="unknown tool 'nope'"):
        registry.execute({"name": "nope", "arguments": {}})


def test_validate_call_reports_each_problem():
    tool = make_tool({"name": "f", "parameters": {"type": "object", "properties": {
        "n": {"type": "integer", "minimum": 0}, "s": {"type": "string", "enum": ["a", "b"]}}, "required": ["n"]}})
    assert validate_call(tool, {"name": "f", "arguments": {"n": 1, "s": "a"}}) == []
    problems = validate_call(tool, {"name": "g", "arguments": {"n": -1, "s": "c", "extra": 1}})
    text = " | ".join(problems)
    assert "name: expected 'f'" in text and "unknown parameter(s) ['extra']" in text
    assert "arguments.n" in text and "arguments.s" in text


def test_catalog_file_errors_name_file_and_path(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"domain": "d", "tools": [{"name": "ok_tool", "parameters": {
        "type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
        "values": {"n": ["x"]}, "queries": ["use {n}"]}]}))
    with pytest.raises(ToolSchemaError, match=r"broken.json: \$\.tools\[0\]\.values\.n\[0\]"):
        load_catalog_file(path)
    path.write_text("{not json")
    with pytest.raises(ToolSchemaError, match=r"broken.json: invalid JSON at line 1"):
        load_catalog_file(path)


def test_implementations_outside_the_catalog_package_are_refused(tmp_path):
    path = tmp_path / "evil.json"
    path.write_text(json.dumps({"domain": "d", "tools": [{"name": "t", "implementation": "os:system",
                                                          "parameters": {"type": "object", "properties": {}}}]}))
    with pytest.raises(ToolSchemaError, match="implementation must be 'slmtune.catalog"):
        load_catalog_file(path)


def test_builtin_catalog_size():
    registry = load_catalog()
    assert len(registry) >= 150 and len(registry.domains) >= 20
    assert sum(t.implementation is not None for t in registry) >= len(registry) / 2
