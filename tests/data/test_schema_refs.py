"""Tool schemas never reach outside themselves: `$ref` resolves only inside the document (issue 21)."""

import json
import socket
import threading

import pytest

from slmtune.data.registry import ToolSchemaError, load_catalog_file, make_tool, validate_call
from slmtune.eval.scoring import schema_check


def _tool(ref: str, defs: dict | None = None) -> dict:
    params = {"type": "object", "properties": {"a": {"$ref": ref}}}
    if defs is not None:
        params["$defs"] = defs
    return {"name": "f", "parameters": params}


@pytest.fixture
def listener():
    """A socket that records whether anything connected (never answers): a fetched URL would show up here."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    hits = []

    def accept():
        try:
            conn, _ = server.accept()
            hits.append(1)
            conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/schema.json", hits
    thread.join()
    server.close()


def test_file_ref_is_refused_naming_file_and_field(tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text('{"type": "string", "description": "SECRET-CONTENT"}')
    catalog = tmp_path / "cat.json"
    catalog.write_text(json.dumps({"domain": "d", "tools": [_tool(secret.as_uri())]}))
    with pytest.raises(ToolSchemaError) as err:
        load_catalog_file(catalog)
    assert str(catalog) in str(err.value) and "properties.a.$ref" in str(err.value)
    assert "SECRET-CONTENT" not in str(err.value)
    with pytest.raises(ToolSchemaError, match="outside the schema"):
        make_tool(_tool(str(secret)))  # a bare path is a relative URI reference: outside too


def test_http_ref_is_refused_without_fetching(listener):
    url, hits = listener
    with pytest.raises(ToolSchemaError, match="outside the schema"):
        make_tool(_tool(url), source="suite.jsonl:3")
    # the scorer reads request tools as given: it must refuse too, never fetch
    with pytest.raises(ValueError, match="outside the schema"):
        schema_check([{"name": "f", "arguments": {"a": 1}}], [_tool(url)])
    assert hits == []


def test_missing_fragment_and_loops_are_named_errors():
    with pytest.raises(ToolSchemaError, match="points to nothing"):
        make_tool(_tool("#/$defs/missing"))
    with pytest.raises(ToolSchemaError, match="forms a loop"):
        make_tool(_tool("#/$defs/x", {"x": {"$ref": "#/$defs/y"},
                                      "y": {"type": "array", "items": {"$ref": "#/$defs/x"}}}))
    with pytest.raises(ToolSchemaError, match="forms a loop"):
        make_tool({"name": "f", "parameters": {"type": "object", "properties": {"a": {"$ref": "#"}}}})
    with pytest.raises(ValueError, match="loop"):
        schema_check([{"name": "f", "arguments": {"a": 1}}], [_tool("#/$defs/x", {"x": {"$ref": "#/$defs/x"}})])
    with pytest.raises(ToolSchemaError, match=r"\$id"):
        make_tool({"name": "f", "parameters": {"type": "object", "$id": "http://x/", "properties": {}}})


def test_local_refs_still_resolve():
    tool = make_tool(_tool("#/$defs/n", {"n": {"type": "integer"}}))
    assert validate_call(tool, {"name": "f", "arguments": {"a": 3}}) == []
    assert validate_call(tool, {"name": "f", "arguments": {"a": "x"}})
    assert schema_check([{"name": "f", "arguments": {"a": "x"}}], [tool.function_dict()]) is not None


def test_tool_names_are_matched_whole():
    for bad in ("f\n", "f\nimport os", "f ", ""):
        with pytest.raises(ToolSchemaError, match="invalid tool name"):
            make_tool({"name": bad})
    assert make_tool({"name": "a.b-c_d"}).name == "a.b-c_d"


@pytest.mark.parametrize("spec, field", [
    ({"implementation": 5}, "implementation"),
    ({"queries": [5]}, "queries"),
    ({"values": None}, "values"),
    ({"mentions": {"a": 3}}, "mentions"),
    ({"parameters": {"type": "object", "properties": {"a": {}}, "required": [["a"]]}}, "required"),
    ({"parameters": {"type": "object", "properties": {"a": {"type": [["string"]]}}}}, "type"),
])
def test_malformed_catalog_entries_are_named_errors(tmp_path, spec, field):
    path = tmp_path / "cat.json"
    path.write_text(json.dumps({"domain": "d", "tools": [{"name": "f", "description": "x"} | spec]}))
    with pytest.raises(ToolSchemaError, match=field):
        load_catalog_file(path)


def test_catalog_file_limits(tmp_path):
    path = tmp_path / "cat.json"
    path.write_bytes(b'{"domain": "d", "tools": [\xff]}')
    with pytest.raises(ToolSchemaError, match="UTF-8"):
        load_catalog_file(path)
    deep = '{"type": "object", "properties": {"a": ' * 2000 + "{}" + "}}" * 2000
    path.write_text('{"domain": "d", "tools": [{"name": "f", "parameters": ' + deep + "}]}")
    with pytest.raises(ToolSchemaError, match="deeper"):
        load_catalog_file(path)
