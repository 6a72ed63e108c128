"""Unseen-tool augmentation: derived tools stay valid, grounded and executable."""

from __future__ import annotations

import random
import re

import pytest

from slmtune.data.augmentation import (
    Augmenter,
    paraphrase_description,
    rename_function,
    split_identifier,
    third_person,
    transform_tool,
)
from slmtune.data.registry import TOOL_NAME_PATTERN, ToolRegistry, make_tool
from slmtune.data.synthesis import SampleBuilder, ToolProfile, add_derived_profiles, build_profiles, realise
from slmtune.data.verification import verify_sample

CALLS: list[dict] = []


def search_one_way(origin: str, destination: str, date: str, cabin: str = "economy", max_stops: int = 1,
                   passengers: int = 1, budget: float = 0.0) -> dict:
    """Implementation that records exactly what it receives (original parameter names and types)."""
    CALLS.append({"origin": origin, "destination": destination, "date": date, "cabin": cabin,
                  "max_stops": max_stops, "budget": budget})
    if type(max_stops) is not int or type(passengers) is not int:
        raise ValueError("max_stops and passengers must be integers")
    if origin == destination:
        raise ValueError("origin equals destination")
    return {"flights": []}


SPEC = {
    "name": "flights.search_one_way",
    "description": "Search one-way flights between two airports on a given date.",
    "parameters": {
        "type": "object",
        "properties": {
            "origin": {"type": "string", "description": "IATA code of the departure airport, e.g. SFO."},
            "destination": {"type": "string", "description": "IATA code of the arrival airport."},
            "date": {"type": "string", "format": "date", "description": "Departure date, YYYY-MM-DD."},
            "cabin": {"type": "string", "enum": ["economy", "premium", "business", "first"], "default": "economy",
                      "description": "Cabin class."},
            "max_stops": {"type": "integer", "minimum": 0, "maximum": 3, "default": 1, "description": "Max stops."},
            "passengers": {"type": "integer", "minimum": 1, "default": 1, "description": "Travellers."},
            "budget": {"type": "number", "minimum": 0, "default": 0, "description": "Budget in USD."},
        },
        "required": ["origin", "destination", "date"],
    },
}
META = dict(
    values={"origin": ["SFO", "JFK", "LHR"], "destination": ["CDG", "SIN", "YYZ"], "date": ["2025-03-14"],
            "cabin": ["business", "first"], "max_stops": [0, 2], "passengers": [2, 3], "budget": [800, 1500]},
    mentions={"max_stops": {"0": "nonstop"}},
    queries=("Find flights from {origin} to {destination} on {date}.",
             "I need a {cabin} seat from {origin} to {destination} on {date}, {max_stops}.",
             "{passengers} of us fly {origin} to {destination} on {date} with at most {max_stops} stops.",
             "Flights {origin}-{destination} {date}, budget {budget}?"),
)


@pytest.fixture
def tool():
    return make_tool(SPEC, implementation=search_one_way, domain="travel", **META)


@pytest.fixture(scope="module")
def dialect():
    from slmtune.models.dialects import get_dialect
    return get_dialect("hermes")


def test_identifier_helpers():
    assert split_identifier("flights.searchOneWay_fast") == ["flights", "search", "one", "way", "fast"]
    assert third_person("Search") == "Searches" and third_person("apply") == "applies" and third_person("get") == "gets"
    rng = random.Random(0)
    names = {rename_function("flights.search_one_way", rng) for _ in range(40)}
    assert len(names) > 10 and all(TOOL_NAME_PATTERN.match(n) for n in names)
    assert any("." not in n for n in names) and any(re.search(r"[a-z][A-Z]", n) for n in names)
    texts = {paraphrase_description(SPEC["description"], rng) for _ in range(30)}
    assert len(texts) > 3 and SPEC["description"] not in texts


def test_rename_parameters_consistently(tool):
    derived = transform_tool(tool, name="air.find_flights", renames={"origin": "from_airport", "max_stops": "stops"},
                             ops=["rename_function", "rename_params"])
    new = derived.tool
    assert list(new.properties)[:2] == ["from_airport", "destination"]
    assert new.required == ["from_airport", "destination", "date"]
    assert new.values["from_airport"] == ["SFO", "JFK", "LHR"] and "origin" not in new.values
    assert new.mentions == {"stops": {"0": "nonstop"}}
    assert all("{origin}" not in q for q in new.queries) and "{from_airport}" in new.queries[0]
    assert derived.param_map["from_airport"] == "origin" and derived.source == "flights.search_one_way"
    CALLS.clear()
    new.implementation(from_airport="SFO", destination="CDG", date="2025-03-14", stops=0)
    assert CALLS[-1]["origin"] == "SFO" and CALLS[-1]["max_stops"] == 0


def test_retype_and_reorder(tool):
    derived = transform_tool(tool, retypes={"max_stops": "number", "cabin": "string", "budget": "integer"},
                             order=["date", "destination", "origin", "cabin", "max_stops", "passengers", "budget"])
    props = derived.tool.properties
    assert list(props) == ["date", "destination", "origin", "cabin", "max_stops", "passengers", "budget"]
    assert derived.tool.required == ["date", "destination", "origin"]
    assert props["max_stops"]["type"] == "number" and props["budget"]["type"] == "integer"
    assert "enum" not in props["cabin"] and "'business'" in props["cabin"]["description"]
    CALLS.clear()
    derived.tool.implementation(origin="SFO", destination="CDG", date="2025-03-14", max_stops=2.0)
    assert type(CALLS[-1]["max_stops"]) is int          # widened integer -> number is narrowed back


def test_masking_keeps_descriptions(tool):
    augmenter = Augmenter(seed=3)
    masked = augmenter.mask(tool, mask_params=True)
    assert re.fullmatch(r"(fn|func|f|tool|op|api)_[0-9a-f]{4,8}", masked.name)
    assert masked.ops == ("mask_function", "mask_params")
    assert masked.tool.description == tool.description
    assert [s.get("description") for s in masked.tool.properties.values()] == \
        [s.get("description") for s in tool.properties.values()]
    assert all(re.fullmatch(r"(arg|p|param|x)_[0-9a-f]{2}", p) for p in masked.tool.properties)


def test_derived_tools_verify_and_execute(tool, dialect):
    augmenter = Augmenter(seed=0, forbidden_names={"find_one_way_flights", "flights_find_one_way"})
    pool = augmenter.derive_pool([tool], variants_per_tool=12, masked_per_tool=3)
    variants = pool[tool.name]
    names = [v.name for v in variants]
    assert len(set(names)) == len(names) and tool.name not in names
    assert not {"find_one_way_flights", "flights_find_one_way"} & set(names)
    ops = {op for v in variants for op in v.ops}
    assert {"rename_function", "rename_params", "paraphrase", "reorder", "retype", "mask_function"} <= ops
    registry = ToolRegistry([tool] + [v.tool for v in variants])
    rng = random.Random(0)
    for variant in variants:
        profile = ToolProfile.build(variant.tool, source=variant.source, ops=variant.ops)
        assert len(profile.templates) == len(tool.queries)
        for _ in range(10):
            clause = realise(profile, rng)
            s = {"id": "a", "category": "simple", "domain": "travel", "tools": [profile.function],
                 "messages": [{"role": "user", "content": clause.text}], "tool_calls": clause.calls,
                 "provenance": {}}
            assert verify_sample(s, registry, dialect) == [], (variant.ops, clause.text, clause.calls)
            CALLS.clear()
            registry.execute(clause.calls[0])        # the registry's own validate-and-run path works too
            assert set(CALLS[-1]) >= {"origin", "destination", "date"}


def test_builder_mixes_variants_and_samples_verify(tool, dialect):
    other = make_tool({**SPEC, "name": "hotels.search", "description": "Search hotels."},
                      implementation=search_one_way, domain="lodging", **META)
    profiles = build_profiles([tool, other])
    augmenter = Augmenter(seed=1)
    add_derived_profiles(profiles, augmenter.derive_pool([tool, other]))
    registry = ToolRegistry(p.tool for group in profiles.values() for p in group)
    builder = SampleBuilder(profiles)
    seen_ops = set()
    for seed in range(150):
        sample = builder.build("simple", seed)
        seen_ops.update(sample["provenance"]["augmentation"])
        assert verify_sample(sample, registry, dialect) == []
        assert sample["provenance"]["source_tools"][0] in {tool.name, other.name}
    assert "rename_function" in seen_ops and "mask_function" in seen_ops


def test_dialect_safe_names(tool):
    from slmtune.models.dialects import get_dialect
    pythonic = get_dialect("pythonic")
    safe = Augmenter(seed=0, reserved_names=[tool.name]).dialect_safe(tool)
    assert safe.name == "flights_search_one_way" and safe.ops == ("dialect_safe",)
    pythonic.validate_tools([safe.tool.function_dict()])
