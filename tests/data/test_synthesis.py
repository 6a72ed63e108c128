"""Query synthesis, sample building and dataset generation (small catalogs written in tmp_path)."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from slmtune.data.datasets_io import (
    allocate,
    decode_row,
    generate_dataset,
    hold_out_tools,
    load_dataset_dict,
    write_dataset,
)
from slmtune.data.decontamination import BfclIndex
from slmtune.data.registry import load_catalog
from slmtune.data.synthesis import (
    CATEGORIES,
    SINGLE_TURN_CATEGORIES,
    SampleBuilder,
    Template,
    ToolProfile,
    build_profiles,
    format_number,
    join_list,
    realise,
    spell_date,
    value_phrases,
)
from slmtune.data.verification import verify_sample

DOMAINS = {
    "travel": ("trip", ["Lisbon", "Osaka", "Quito", "Tallinn", "Perth"]),
    "weather": ("forecast", ["Bergen", "Hanoi", "Denver", "Nairobi", "Cusco"]),
    "finance": ("ledger", ["ACME-11", "BOLT-22", "CRUX-33", "DUNE-44", "ECHO-55"]),
    "cooking": ("recipe", ["risotto", "ramen", "paella", "goulash", "tagine"]),
    "fitness": ("workout", ["rowing", "cycling", "swimming", "climbing", "yoga"]),
}
VERBS = ("plan", "check", "compute", "list")
FLAVOURS = ("harbour lanterns", "granite quarries", "velvet orchards", "copper kettles", "amber dunes",
            "silver glaciers", "cobalt meadows", "ivory towers", "crimson canyons", "jade lagoons", "opal reefs",
            "maple groves", "saffron markets", "marble fountains", "cedar cabins", "tidal marshes", "basalt cliffs",
            "willow bridges", "coral gardens", "iron foundries")


def tool_spec(domain: str, noun: str, verb: str, k: int, subjects: list[str]) -> dict:
    name = f"{domain}_{k}.{verb}_{noun}" if k % 2 else f"{verb}_{noun}_{domain}"
    return {
        "name": name,
        "description": f"{verb.capitalize()} {noun} near {FLAVOURS[list(DOMAINS).index(domain) * 4 + k]}.",
        "parameters": {
            "type": "object",
            "properties": {
                "subject": {"type": "string", "description": f"The {domain} subject."},
                "count": {"type": "integer", "minimum": 1, "maximum": 50, "default": 1,
                          "description": "How many results."},
                "day": {"type": "string", "format": "date", "description": "Day, YYYY-MM-DD."},
                "speed": {"type": "string", "enum": ["slow_pace", "normal", "fast"], "default": "normal",
                          "description": "Pace."},
                "detailed": {"type": "boolean", "default": False, "description": "Detailed output."},
                "tags": {"type": "array", "items": {"type": "string"}, "description": "Tags."},
                "amount": {"type": "number", "description": "An amount."},
            },
            "required": ["subject"],
        },
        "values": {
            "subject": subjects[k:] + subjects[:k],
            "count": [2, 5, 12],
            "day": ["2025-03-14", "2025-11-02"],
            "speed": ["slow_pace", "fast"],
            "detailed": [True, False],
            "tags": [["red", "blue"], ["green", "gold", "teal"]],
            "amount": [12.5, 300, 15000],
        },
        "mentions": {"detailed": {"true": "with full detail", "false": "briefly"}},
        "queries": [
            f"{verb.capitalize()} the {noun} for {{subject}}.",
            f"Can you {verb} {{count}} {noun} entries for {{subject}} on {{day}}?",
            f"{verb} {noun}: {{subject}}, {{speed}} pace, {{detailed}}",
            f"I want the {noun} for {{subject}} tagged {{tags}} with amount {{amount}}.",
            f"Please {verb} the {noun} of {{subject}} on {{day}} {{detailed}}.",
        ],
    }


def write_catalog(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for domain, (noun, subjects) in DOMAINS.items():
        tools = [tool_spec(domain, noun, VERBS[k], k, subjects) for k in range(4)]
        (directory / f"{domain}.json").write_text(json.dumps({"domain": domain, "tools": tools}))
    return directory


def implementation(subject: str, count: int = 1, day: str | None = None, speed: str = "normal",
                   detailed: bool = False, tags: list | None = None, amount: float | None = None) -> dict:
    if subject == "Atlantis":
        raise ValueError("unknown subject")
    if not isinstance(count, int):
        raise ValueError("count must be an integer")
    return {"subject": subject, "count": count}


def small_registry(tmp_path: Path):
    registry = load_catalog(write_catalog(tmp_path / "tools"))
    for name in [t.name for t in registry]:
        registry._tools[name] = dataclasses.replace(registry.get(name), implementation=implementation)
    return registry


@pytest.fixture
def registry(tmp_path):
    return small_registry(tmp_path)


@pytest.fixture(scope="module")
def dialect():
    from slmtune.models.dialects import get_dialect
    return get_dialect("hermes")


def fake_index() -> BfclIndex:
    return BfclIndex.from_texts(["Find the area of a triangle with a base of 10 units and height of 5 units."],
                                ["calculate_triangle_area"])


# -- value phrasing -------------------------------------------------------------------------------------------------

def test_value_phrases():
    assert spell_date("2025-03-14") == "March 14, 2025"
    assert "2025-03-14" in value_phrases("2025-03-14") and "March 14, 2025" in value_phrases("2025-03-14")
    assert join_list(["a"]) == "a" and join_list(["a", "b"]) == "a and b" and join_list(["a", "b", "c"]) == "a, b and c"
    assert value_phrases(["red", "blue", "gold"])[0] == "red, blue and gold"
    assert format_number(3.0) == "3" and format_number(2.5) == "2.5" and format_number(1e-7) == "0.0000001"
    assert value_phrases(True, {"type": "boolean"}, {"true": "with detail"}) == ["with detail"]
    assert value_phrases("slow_pace", {"enum": ["slow_pace"]}) == ["slow pace"]
    assert value_phrases({"lat": 1.5}, {"type": "object"}) == ["lat 1.5"]


def test_template_parse():
    t = Template.parse("Find {origin} to {dest.city} on {date}?", 0)
    assert t.params == ("origin", "dest", "date")
    assert t.fields["dest"] == frozenset({("city",)}) and t.fields["origin"] is None
    assert t.question and not t.imperative
    assert Template.parse("Find it for {x}.", 1).imperative


def test_realise_fills_values_and_orders_arguments(registry):
    tool = next(iter(registry))
    profile = ToolProfile.build(tool)
    rng = random.Random(3)
    for _ in range(50):
        clause = realise(profile, rng)
        args = clause.calls[0]["arguments"]
        assert list(args) == [p for p in tool.properties if p in args]      # schema order
        assert "subject" in args and args["subject"] in clause.text
        assert "{" not in clause.text


def test_every_category_builds_and_verifies(registry, dialect):
    builder = SampleBuilder(build_profiles(registry))
    for category in SINGLE_TURN_CATEGORIES:      # multi_turn: tests/data/test_multiturn.py
        for seed in range(40):
            sample = builder.build(category, seed)
            assert sample is not None and sample["category"] == category
            assert verify_sample(sample, registry, dialect) == [], (sample, verify_sample(sample, registry, dialect))
            names = [t["name"] for t in sample["tools"]]
            calls = sample["tool_calls"]
            assert len(set(names)) == len(names)
            if category == "simple":
                assert len(names) == 1 and len(calls) == 1
            elif category == "multiple":
                assert 2 <= len(names) <= 4 and len(calls) == 1 and calls[0]["name"] in names
            elif category == "parallel":
                assert 2 <= len(calls) <= 4 and len({c["name"] for c in calls}) == 1
                assert len({json.dumps(c["arguments"], sort_keys=True) for c in calls}) == len(calls)
            elif category == "parallel_multiple":
                assert 2 <= len(calls) <= 4 and len({c["name"] for c in calls}) >= 2
            else:
                assert calls == []
                source = sample["provenance"]["template"]
                assert all(s.split("#")[0] not in sample["provenance"]["source_tools"] for s in source)
            text = sample["messages"][-1]["content"]
            assert text[0].isupper() or text[0].isdigit() or not text[0].isalpha()
            assert "  " not in text and " ," not in text and ".." not in text.replace("...", "")


def test_multiple_offers_two_to_four_tools_like_bfcl(registry):
    """BFCL's multiple offers 2-4 tools (mostly 2 or 3); offering 3-6 made most multiple samples too long to train on
    (dropped by train.max_length), so that the several-tool prompts left were nearly all no-call samples."""
    builder = SampleBuilder(build_profiles(registry))
    counts = Counter(len(builder.build("multiple", seed)["tools"]) for seed in range(150))
    assert set(counts) == {2, 3, 4}, counts


def test_builder_is_deterministic(registry):
    a = SampleBuilder(build_profiles(registry))
    b = SampleBuilder(build_profiles(registry))
    for category in CATEGORIES:
        for seed in (1, 99, 12345):
            assert json.dumps(a.build(category, seed)) == json.dumps(b.build(category, seed))
    texts = {a.build("simple", s)["messages"][-1]["content"] for s in range(60)}
    assert len(texts) > 40           # many phrasings


def test_parallel_joins_read_naturally(registry):
    builder = SampleBuilder(build_profiles(registry))
    styles = Counter()
    for seed in range(200):
        sample = builder.build("parallel", seed)
        styles[sample["provenance"]["style"]] += 1
        text = sample["messages"][-1]["content"]
        assert text.rstrip()[-1] in ".?!"
    assert styles["compact"] and (styles["inline"] or styles["sentences"])


# -- dataset generation ---------------------------------------------------------------------------------------------

def test_allocate_and_holdout(registry):
    assert allocate(10, {"a": 0.5, "b": 0.3, "c": 0.2}) == {"a": 5, "b": 3, "c": 2}
    assert sum(allocate(7, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}).values()) == 7
    held = hold_out_tools(list(registry), 0.25, seed=0)
    assert len(held) == 5
    domains = Counter(registry.get(n).domain for n in held)
    assert max(domains.values()) <= 2          # spread over the domains, not one domain emptied


def test_generate_dataset_splits_mix_and_holdout(registry, dialect, tmp_path):
    mix = {"simple": 0.4, "multiple": 0.2, "parallel": 0.2, "parallel_multiple": 0.1, "irrelevance": 0.1}
    ds = generate_dataset(registry, num_samples=500, category_mix=mix, dialect=dialect, seed=7,
                          val_fraction=0.1, test_fraction_tools=0.2, bfcl_index=fake_index())
    stats = ds.stats
    assert stats["num_samples"] == 500 and not stats["shortfall"]
    assert stats["per_category"] == {c: round(500 * w) for c, w in mix.items()}
    held = set(stats["held_out_tools"])
    assert held and len(held) == 4
    for split in ("train", "val"):
        for sample in ds.splits[split]:
            assert not held & set(sample["provenance"]["source_tools"])
            assert not held & {t["name"] for t in sample["tools"]}
    for sample in ds.splits["test"]:
        assert {c["name"] for c in sample["tool_calls"]} <= held
    assert len(ds.splits["test"]) == 100 and len(ds.splits["val"]) == 50
    assert {s["category"] for s in ds.splits["test"]} == set(mix)
    for key in ("num_tools", "num_domains", "per_category", "rejected_by_reason", "contamination_hits",
                "num_samples", "per_domain", "per_split", "held_out_tools", "num_implemented_tools",
                "generation_seconds"):
        assert key in stats
    assert stats["num_domains"] == 5 and stats["num_tools"] == 20
    assert stats["contamination"]["hits_in_kept_samples"] == 0
    assert any(s["provenance"]["augmentation"] for s in ds.splits["train"])

    out = write_dataset(ds, tmp_path / "data")
    assert {p.name for p in out.iterdir()} == {"train.jsonl", "val.jsonl", "test.jsonl", "stats.json", "card.md"}
    assert json.loads((out / "stats.json").read_text())["num_samples"] == 500
    assert "Decontamination" in (out / "card.md").read_text()
    dd = load_dataset_dict(out)
    assert set(dd) == {"train", "val", "test"} and len(dd["train"]) == 350
    row = decode_row(dd["test"][0])
    assert row == ds.splits["test"][0]
    lines = (out / "val.jsonl").read_text().splitlines()
    broken = json.loads(lines[1])
    del broken["domain"]
    (out / "val.jsonl").write_text("\n".join([lines[0], json.dumps(broken), *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match=r"val.jsonl:2: not a sample: missing or malformed field 'domain'"):
        load_dataset_dict(out)


def test_generate_dataset_is_deterministic(registry, dialect):
    kwargs = dict(num_samples=150, dialect=dialect, seed=3, bfcl_index=fake_index())
    a = generate_dataset(registry, **kwargs)
    b = generate_dataset(registry, **kwargs)
    assert json.dumps(a.splits) == json.dumps(b.splits)
    c = generate_dataset(registry, **{**kwargs, "seed": 4})
    assert json.dumps(a.splits) != json.dumps(c.splits)


def test_shortfall_is_reported(registry, dialect):
    def broken(**_):
        raise ValueError("always fails")
    for name in [t.name for t in registry]:
        registry._tools[name] = dataclasses.replace(registry.get(name), implementation=broken)
    ds = generate_dataset(registry, num_samples=40, category_mix={"simple": 1.0}, dialect=dialect,
                          bfcl_index=fake_index(), max_attempts_factor=1.0, augment_probability=0,
                          masking_probability=0)
    assert ds.stats["num_samples"] == 0
    assert ds.stats["shortfall"] and ds.stats["rejected_by_reason"]["execution"] > 0


def test_related_tools_are_not_offered_as_irrelevant_or_distractors(registry):
    from slmtune.data.registry import ToolRegistry, make_tool
    parameters = {"type": "object", "properties": {"principal": {"type": "number"}}, "required": ["principal"]}
    loan = make_tool({"name": "loan.payment_schedule", "description": "Monthly payment and amortization schedule "
                      "of a fixed rate loan with total interest.", "parameters": parameters},
                     domain="finance_x", values={"principal": [1000, 2000]},
                     queries=("Monthly payment on a loan of {principal}?",))
    mortgage = make_tool({**loan.function_dict(), "name": "mortgage.amortization_schedule",
                          "description": "Amortization schedule and monthly payment of a fixed rate mortgage loan "
                                         "with total interest."},
                         domain="housing_x", values=loan.values, queries=loan.queries)
    tools = ToolRegistry(list(registry) + [loan, mortgage])
    builder = SampleBuilder(build_profiles(tools))
    pair = {"loan.payment_schedule", "mortgage.amortization_schedule"}
    for category in ("irrelevance", "multiple", "parallel_multiple"):
        for seed in range(400):
            sample = builder.build(category, seed)
            if sample is None:        # e.g. more parallel calls asked of a tool than it has distinct values
                continue
            sources = set(sample["provenance"]["source_tools"])
            asked = {t.split("#")[0] for t in sample["provenance"]["template"]}
            if asked & pair:
                assert not (pair - asked) & sources, (category, sample["provenance"])
