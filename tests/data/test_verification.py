"""Each verifier rejects a planted bad sample with its reason; good samples pass."""

from __future__ import annotations

import copy

import pytest

from slmtune.data.registry import ToolRegistry, make_tool
from slmtune.data.verification import (
    REASONS,
    CallValidator,
    VerificationStats,
    check_execution,
    check_format,
    check_grounding,
    check_schema,
    validator_for,
    verify_sample,
)


def book_table(city: str, guests: int, date: str, outdoor: bool = False, cuisine: str = "any",
               budget: float | None = None, tags: list | None = None, contact: dict | None = None) -> dict:
    if city == "Atlantis":
        raise ValueError(f"no restaurants in {city}")
    return {"city": city, "guests": guests, "date": date}


SPEC = {
    "name": "dining.book_table",
    "description": "Book a restaurant table.",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City."},
            "guests": {"type": "integer", "minimum": 1, "maximum": 20},
            "date": {"type": "string", "format": "date"},
            "outdoor": {"type": "boolean", "default": False},
            "cuisine": {"type": "string", "enum": ["any", "thai", "middle_eastern"], "default": "any"},
            "budget": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "contact": {"type": "object", "properties": {"name": {"type": "string"}, "phone": {"type": "string"}}},
        },
        "required": ["city", "guests", "date"],
    },
}


@pytest.fixture(scope="module")
def registry():
    tool = make_tool(SPEC, implementation=book_table, domain="dining",
                     mentions={"outdoor": {"true": "on the terrace"}})
    return ToolRegistry([tool])


@pytest.fixture(scope="module")
def dialect():
    from slmtune.models.dialects import get_dialect
    return get_dialect("hermes")


def sample(text: str, arguments: dict, category: str = "simple", calls: list | None = None) -> dict:
    function = {k: SPEC[k] for k in ("name", "description", "parameters")}
    return {
        "id": "t-1", "category": category, "domain": "dining", "tools": [copy.deepcopy(function)],
        "messages": [{"role": "user", "content": text}],
        "tool_calls": calls if calls is not None else [{"name": "dining.book_table", "arguments": arguments}],
        "provenance": {},
    }


GOOD = sample("Book a table in Lisbon for 4 on March 14, 2025, on the terrace, Middle Eastern food, budget "
              "$1,250.5, tagged quiet and window; contact Ana Ruiz at +351-555-0101.",
              {"city": "Lisbon", "guests": 4, "date": "2025-03-14", "outdoor": True, "cuisine": "middle_eastern",
               "budget": 1250.5, "tags": ["quiet", "window"],
               "contact": {"name": "Ana Ruiz", "phone": "+351-555-0101"}})


def test_good_sample_passes_every_check(registry, dialect):
    assert verify_sample(GOOD, registry, dialect) == []
    iso = sample("Table for 2 in Oslo on 2025-11-02 please.", {"city": "Oslo", "guests": 2, "date": "2025-11-02"})
    assert verify_sample(iso, registry, dialect) == []
    spelled = sample("Table for two in Oslo on 2 November 2025.", {"city": "Oslo", "guests": 2, "date": "2025-11-02"})
    assert verify_sample(spelled, registry, dialect) == []
    default = sample("Table for 2 in Oslo on 2025-11-02.",
                     {"city": "Oslo", "guests": 2, "date": "2025-11-02", "outdoor": False, "cuisine": "any"})
    assert verify_sample(default, registry, dialect) == []       # defaults need not be stated
    irrelevance = sample("Tell me a joke.", {}, category="irrelevance", calls=[])
    assert verify_sample(irrelevance, registry, dialect) == []


# -- format --------------------------------------------------------------------------------------------------------

def test_format_rejects_non_json_values(registry, dialect):
    bad = sample("Table for 2 in Oslo on 2025-11-02.", {"city": "Oslo", "guests": 2, "date": "2025-11-02",
                                                         "tags": {"quiet"}})          # a set: not JSON
    assert "format" in verify_sample(bad, registry, dialect)
    nan = sample("Table for 2 in Oslo on 2025-11-02, budget nan.",
                 {"city": "Oslo", "guests": 2, "date": "2025-11-02", "budget": float("nan")})
    assert "format" in verify_sample(nan, registry, dialect)       # NaN never equals itself after a round trip
    assert check_format(GOOD, dialect)
    unordered = sample("Table for 2 in Oslo on 2025-11-02.", {"date": "2025-11-02", "city": "Oslo", "guests": 2})
    assert verify_sample(unordered, registry, dialect) == ["format"]   # gold arguments must be in schema order


def test_format_rejects_a_name_the_dialect_cannot_express(registry):
    from slmtune.models.dialects import get_dialect
    pythonic = get_dialect("pythonic")                              # no dotted names in pythonic calls
    assert verify_sample(GOOD, registry, pythonic) == ["format"]


def test_format_rejects_lossy_dialect(registry):
    class DropsArguments:
        def render_calls(self, calls, tools=None):
            return "call"

        def parse(self, text):
            from slmtune.models.dialects import ParseResult
            return ParseResult([{"name": "dining.book_table", "arguments": {"city": "Lisbon"}}], None, None)

    assert verify_sample(GOOD, registry, DropsArguments()) == ["format"]


# -- schema --------------------------------------------------------------------------------------------------------

def test_schema_rejects_wrong_type(registry, dialect):
    bad = sample("Table for 4 in Oslo on 2025-11-02.", {"city": "Oslo", "guests": "4", "date": "2025-11-02"})
    assert verify_sample(bad, registry, dialect) == ["schema"]      # execution is skipped after a schema failure


@pytest.mark.parametrize("arguments,calls,category", [
    ({"city": "Oslo", "date": "2025-11-02"}, None, "simple"),                       # missing required
    ({"city": "Oslo", "guests": 2, "date": "2025-11-02", "seats": 2}, None, "simple"),  # unknown parameter
    ({"city": "Oslo", "guests": 99, "date": "2025-11-02"}, None, "simple"),         # above maximum
    ({"city": "Oslo", "guests": 2, "date": "2025-13-45"}, None, "simple"),          # bad date format
    ({}, [{"name": "other_tool", "arguments": {}}], "simple"),                      # tool not offered
    ({"city": "Oslo", "guests": 2, "date": "2025-11-02"}, None, "irrelevance"),     # irrelevance with a call
    ({"city": "Oslo", "guests": 2, "date": "2025-11-02"}, None, "parallel"),        # parallel with one call
])
def test_schema_rejects(registry, arguments, calls, category):
    assert not check_schema(sample("Table for 2 in Oslo on 2025-11-02 2025-13-45 99.", arguments, category, calls),
                            validator_lookup(registry))


def validator_lookup(registry):
    from slmtune.data.verification import ToolLookup
    return ToolLookup(registry)


def test_schema_rejects_a_schema_differing_from_the_registry(registry, dialect):
    bad = copy.deepcopy(GOOD)
    bad["tools"][0]["parameters"]["properties"]["guests"]["type"] = "string"
    assert "schema" in verify_sample(bad, registry, dialect)


def test_cached_validator_agrees_with_jsonschema():
    import jsonschema
    params = SPEC["parameters"]
    full = jsonschema.Draft202012Validator(params, format_checker=jsonschema.FormatChecker())
    fast = CallValidator(params)
    assert fast.simple and validator_for(params) is validator_for(params)
    cases = [GOOD["tool_calls"][0]["arguments"], {"city": "x", "guests": 1.0, "date": "2025-01-01"},
             {"city": "x", "guests": True, "date": "2025-01-01"}, {"city": "x", "guests": 1, "date": "nope"},
             {"city": 1, "guests": 1, "date": "2025-01-01"}, {"guests": 1, "date": "2025-01-01"},
             {"city": "x", "guests": 1, "date": "2025-01-01", "tags": ["a", 1]}]
    for _ in range(2):            # second round answers from the memo
        for args in cases:
            assert fast.is_valid(args) == full.is_valid(args), args


# -- execution -----------------------------------------------------------------------------------------------------

def test_execution_rejects_an_implementation_raising(registry, dialect):
    bad = sample("Table for 2 in Atlantis on 2025-11-02.", {"city": "Atlantis", "guests": 2, "date": "2025-11-02"})
    assert verify_sample(bad, registry, dialect) == ["execution"]
    assert check_execution(GOOD, validator_lookup(registry))


def test_execution_skipped_without_implementation(dialect):
    tool = make_tool(SPEC)      # no implementation
    bad = sample("Table for 2 in Atlantis on 2025-11-02.", {"city": "Atlantis", "guests": 2, "date": "2025-11-02"})
    assert verify_sample(bad, ToolRegistry([tool]), dialect) == []
    assert verify_sample(bad, None, dialect) == []                  # schemas from the sample itself


# -- grounding -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,arguments", [
    ("Table for 2 in Rome on 2025-11-02.", {"city": "Paris", "guests": 2, "date": "2025-11-02"}),      # wrong city
    ("Table for 2 in Paris on 2025-11-02.", {"city": "Paris", "guests": 3, "date": "2025-11-02"}),     # wrong number
    ("Table for 2 in Paris on 2025-11-03.", {"city": "Paris", "guests": 2, "date": "2025-11-02"}),     # wrong date
    ("Table for 2 in Paris on 2025-11-02.", {"city": "Paris", "guests": 2, "date": "2025-11-02",
                                            "outdoor": True}),                                          # unstated bool
    ("Table for 2 in Parisville on 2025-11-02.", {"city": "Paris", "guests": 2, "date": "2025-11-02"}),  # word boundary
    ("Table for 12 in Paris on March 5, 2025.", {"city": "Paris", "guests": 2, "date": "2025-03-05"}),  # 2 in 12
    ("Table for 2 in Paris on 2025-11-02, tag quiet.", {"city": "Paris", "guests": 2, "date": "2025-11-02",
                                                       "tags": ["quiet", "window"]}),                   # array element
])
def test_grounding_rejects_unstated_values(registry, dialect, text, arguments):
    assert verify_sample(sample(text, arguments), registry, dialect) == ["grounding"]


def test_grounding_accepts_realisations(registry):
    lookup = validator_lookup(registry)
    ok = [
        ("Dinner for 2 in PARIS on Nov 2nd, 2025.", {"city": "Paris", "guests": 2, "date": "2025-11-02"}),
        ("Dinner for 2 in Paris on the 2nd of November 2025.", {"city": "Paris", "guests": 2, "date": "2025-11-02"}),
        ("Dinner for 2 in Paris on 2025-11-02, outdoors on the terrace, budget 15%.",
         {"city": "Paris", "guests": 2, "date": "2025-11-02", "outdoor": True, "budget": 0.15}),
        ("Dinner for 2 in Paris on 2025-11-02, middle eastern.",
         {"city": "Paris", "guests": 2, "date": "2025-11-02", "cuisine": "middle_eastern"}),
        ("Dinner for 2 in Paris on 2025-11-02, budget 10,000.",
         {"city": "Paris", "guests": 2, "date": "2025-11-02", "budget": 10000}),
    ]
    for text, arguments in ok:
        assert check_grounding(sample(text, arguments), lookup), text


# -- stats ---------------------------------------------------------------------------------------------------------

def test_stats_count_by_reason(registry, dialect):
    stats = VerificationStats()
    planted = [
        GOOD,
        sample("Table for 4 in Oslo on 2025-11-02.", {"city": "Oslo", "guests": "4", "date": "2025-11-02"}),
        sample("Table for 2 in Atlantis on 2025-11-02.", {"city": "Atlantis", "guests": 2, "date": "2025-11-02"}),
        sample("Table for 2 in Rome on 2025-11-02.", {"city": "Paris", "guests": 2, "date": "2025-11-02"}),
        sample("Table for 2 in Oslo on 2025-11-02.", {"city": "Oslo", "guests": 2, "date": "2025-11-02",
                                                      "tags": {"x"}}),
    ]
    for s in planted:
        stats.record(verify_sample(s, registry, dialect), s["id"])
    stats.record(verify_sample(SCORER_WRONG, None, dialect), SCORER_WRONG["id"])
    d = stats.as_dict()
    assert d["checked"] == 6 and d["passed"] == 1 and d["rejected"] == 5
    assert set(d["rejected_by_reason"]) == set(REASONS)
    assert all(d["rejected_by_reason"][r] >= 1 for r in REASONS)


MEAN = make_tool({"name": "lab.mean", "description": "Mean of readings.",
                  "parameters": {"type": "object", "required": ["readings"],
                                 "properties": {"readings": {"type": "array", "items": {"type": "number"}}}}})
SCORER_WRONG = {"id": "t-2", "category": "simple", "domain": "lab", "tools": [MEAN.function_dict()],
                "messages": [{"role": "user", "content": "Mean of 3.5 and 8?"}],
                "tool_calls": [{"name": "lab.mean", "arguments": {"readings": [3.5, 8]}}], "provenance": {}}


def test_labels_the_scorer_would_call_wrong_are_rejected(dialect):
    """data.seed=1 made 10 of 240 test labels like [3.5, 8] for an array of float: valid JSON Schema, wrong by
    BFCL's nested-type rule, so eval scored the gold answer itself as invalid (issue 21)."""
    from slmtune.data.verification import check_scorer

    tool, bad = MEAN, SCORER_WRONG
    assert check_scorer(bad) is False
    assert "scorer" in verify_sample(bad, ToolRegistry([tool]), dialect)
    good = copy.deepcopy(bad)
    good["tool_calls"][0]["arguments"]["readings"] = [3.5, 8.0]
    assert check_scorer(good) is True and check_scorer(GOOD) is True
    assert "scorer" in REASONS
