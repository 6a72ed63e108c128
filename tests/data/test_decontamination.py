"""Decontamination against BFCL: planted function names and 8-grams are caught and dropped."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys

import pytest

from slmtune.data import decontamination
from slmtune.data.decontamination import BfclIndex, BfclNotInstalledError, ngrams, words

QUESTION = "Find the area of a triangle with a base of 10 units and height of 5 units."


def write_bfcl(tmp_path):
    data = tmp_path / "bfcl_eval" / "data"
    (data / "multi_turn_func_doc").mkdir(parents=True)
    rows = [
        {"id": "simple_python_0", "question": [[{"role": "user", "content": QUESTION}]],
         "function": [{"name": "calculate_triangle_area", "description": "Area.",
                       "parameters": {"type": "dict", "properties": {}}}]},
        {"id": "live_simple_1", "question": [[{"role": "system", "content": "Be brief."},
                                             {"role": "user", "content": "¿Qué tiempo hace hoy en la ciudad de "
                                                                         "Madrid por la mañana temprano?"}]],
         "function": [{"name": "weather.get_current", "description": "", "parameters": {}}]},
    ]
    (data / "BFCL_v4_simple_python.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    multi = {"id": "multi_turn_base_0", "question": [[{"role": "user", "content": "Move the report file."}], []],
             "involved_classes": ["GorillaFileSystem"]}
    (data / "BFCL_v4_multi_turn_base.json").write_text(json.dumps(multi) + "\n")
    (data / "BFCL_v4_format_sensitivity.json").write_text(json.dumps({"simple_python": ["simple_python_0"]}))
    (data / "multi_turn_func_doc" / "gorilla_file_system.json").write_text(
        json.dumps({"name": "mv", "description": "Move.", "parameters": {}}) + "\n")
    return data


def sample(text: str, names=("tools.safe_name",), calls=()) -> dict:
    return {"id": "x", "category": "simple", "domain": "d",
            "tools": [{"name": n, "description": "", "parameters": {"type": "object", "properties": {}}}
                      for n in names],
            "messages": [{"role": "user", "content": text}],
            "tool_calls": [{"name": n, "arguments": {}} for n in calls], "provenance": {}}


def test_ngrams_are_normalised():
    assert words("Hello, WORLD! It's 10-3.") == ["hello", "world", "it", "s", "10", "3"]
    assert len(ngrams("one two three four five six seven eight nine")) == 2
    assert ngrams("short text") == []


def test_index_reads_question_files(tmp_path):
    index = BfclIndex.load(write_bfcl(tmp_path))
    assert {"calculate_triangle_area", "weather.get_current", "mv"} <= index.function_names
    assert index.num_questions == 4            # two in simple (system + user), one multi-turn, none in the mapping
    assert "find the area of a triangle with a" in index.ngram_set


def test_check_catches_planted_function_name(tmp_path):
    index = BfclIndex.load(write_bfcl(tmp_path))
    assert index.check(sample("Totally fresh wording here.")) == []
    assert index.check(sample("Totally fresh wording here.", names=("calculate_triangle_area",))) == [
        "function_name:calculate_triangle_area"]
    assert index.check(sample("Fresh words.", names=("x",), calls=("calculate_triangle_area",))) == [
        "function_name:calculate_triangle_area"]
    # normalised: dots/dashes vs underscores and case do not hide a BFCL name
    assert index.check(sample("Fresh words.", names=("Weather_Get_Current",)))


def test_check_catches_planted_ngram(tmp_path):
    index = BfclIndex.load(write_bfcl(tmp_path))
    hits = index.check(sample("Hi! Could you find the AREA of a triangle, with a base of 7 please?"))
    assert hits == ["ngram:find the area of a triangle with a", "ngram:the area of a triangle with a base",
                    "ngram:area of a triangle with a base of"]
    assert index.check(sample("qué tiempo hace hoy en la ciudad de madrid, gracias"))
    assert index.check(sample("Is a triangle with a base of 10 meters big?")) == []   # 7 words shared, not 8


def test_missing_bfcl_raises_with_install_hint(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    with pytest.raises(BfclNotInstalledError, match=r"pip install --no-deps bfcl-eval==2026\.3\.23"):
        BfclIndex.load()


def test_load_does_not_import_bfcl_eval():
    if importlib.util.find_spec("bfcl_eval") is None:
        pytest.skip("bfcl-eval not installed")
    before = "bfcl_eval" in sys.modules
    index = BfclIndex.load()
    assert ("bfcl_eval" in sys.modules) == before
    assert index.is_bfcl_function("calculate_triangle_area")
    assert index.check(sample(QUESTION))
    assert decontamination.find_bfcl_data_dir().name == "data"


def _registry(tmp_path):
    from slmtune.data.registry import load_catalog
    spec = lambda name, queries: {  # noqa: E731
        "name": name, "description": "Compute something.",
        "parameters": {"type": "object", "properties": {"base": {"type": "integer"}, "height": {"type": "integer"}},
                       "required": ["base", "height"]},
        "values": {"base": [10, 12, 14], "height": [5, 6, 7]},
        "queries": queries,
    }
    catalogs = {
        "geometry": [
            spec("calculate_triangle_area", ["Triangle area for base {base} and height {height}."]),   # a BFCL name
            spec("geo.leaky", ["Find the area of a triangle with a base of {base} units and height of {height}.",
                               "Area please: base {base}, height {height}."]),                        # BFCL 8-gram
            spec("geo.clean", ["Base {base}, height {height}: rectangle area?", "Rectangle {base} by {height}."]),
        ],
        "misc": [spec(f"misc.tool_{i}", [f"Tool {i} with {{base}} and {{height}}.",
                                         f"Run number {i}: {{base}}/{{height}}."]) for i in range(4)],
    }
    directory = tmp_path / "tools"
    directory.mkdir()
    for domain, tools in catalogs.items():
        (directory / f"{domain}.json").write_text(json.dumps({"domain": domain, "tools": tools}))
    registry = load_catalog(directory)
    return registry


def test_contaminated_samples_are_dropped_and_counted(tmp_path):
    from slmtune.data.datasets_io import generate_dataset
    from slmtune.models.dialects import get_dialect
    registry = _registry(tmp_path)
    index = BfclIndex.load(write_bfcl(tmp_path))
    ds = generate_dataset(registry, num_samples=120, category_mix={"simple": 1.0}, dialect=get_dialect("hermes"),
                          seed=1, bfcl_index=index, test_fraction_tools=0.0, augment_probability=0,
                          masking_probability=0)
    stats = ds.stats
    assert stats["contamination"]["catalog_tools_excluded_for_bfcl_names"] == ["calculate_triangle_area"]
    assert stats["contamination_hits"] > 0 and stats["contamination"]["ngram_hits"] > 0
    assert stats["contamination"]["hits_in_kept_samples"] == 0
    kept = [s for split in ds.splits.values() for s in split]
    assert kept and all(index.check(s) == [] for s in kept)
    assert not any("calculate_triangle_area" in json.dumps(s) for s in kept)
    # the leaky tool still contributes through its clean template
    assert any("geo.leaky" in s["provenance"]["source_tools"] for s in kept)
    assert dataclasses.is_dataclass(index)


def test_check_covers_every_turn_of_a_conversation(tmp_path):
    index = BfclIndex.load(write_bfcl(tmp_path))
    conversation = {"category": "multi_turn", "tools": [{"name": "x"}], "tool_calls": [], "messages": [
        {"role": "user", "content": "Fresh words."},
        {"role": "assistant", "tool_calls": [{"name": "calculate_triangle_area", "arguments": {}}]},
        {"role": "tool", "name": "calculate_triangle_area", "content": "{}"},
        {"role": "assistant", "content": "Could you find the area of a triangle with a base of 7?"}]}
    assert index.check(conversation) == ["function_name:calculate_triangle_area",
                                         "ngram:find the area of a triangle with a",
                                         "ngram:the area of a triangle with a base",
                                         "ngram:area of a triangle with a base of"]
