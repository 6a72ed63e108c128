"""Unit tests for slmtune.eval.suites: BFCL loading, user suites (BFCL format, OpenAI JSONL), synthetic split."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from slmtune.eval.scoring import ast_check
from slmtune.eval.suites import (
    BFCL_CATEGORIES,
    EvalRequest,
    bfcl_data_dir,
    load_bfcl,
    load_synthetic_split,
    load_user_suite,
)

# Entry counts of bfcl-eval 2026.3.23 (FIELD_NOTES.md).
BFCL_COUNTS = {
    "simple_python": 400,
    "multiple": 200,
    "parallel": 200,
    "parallel_multiple": 200,
    "irrelevance": 240,
    "live_simple": 258,
    "live_multiple": 1053,
    "live_parallel": 16,
    "live_parallel_multiple": 24,
    "live_irrelevance": 884,
    "live_relevance": 16,
}


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --- BFCL -------------------------------------------------------------------------------------


def test_bfcl_categories():
    assert list(BFCL_CATEGORIES) == list(BFCL_COUNTS)


def test_bfcl_data_dir_found_without_import():
    before = "bfcl_eval" in sys.modules  # the multi-turn tests import BFCL's simulators in the same process
    data = bfcl_data_dir()
    assert (data / "BFCL_v4_simple_python.json").is_file()
    assert (data / "possible_answer" / "BFCL_v4_simple_python.json").is_file()
    assert ("bfcl_eval" in sys.modules) == before


def test_bfcl_data_dir_override(tmp_path, monkeypatch):
    monkeypatch.setenv("SLMTUNE_BFCL_DATA", str(tmp_path))
    assert bfcl_data_dir() == tmp_path
    monkeypatch.setenv("SLMTUNE_BFCL_DATA", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        bfcl_data_dir()


@pytest.mark.parametrize(("category", "count"), list(BFCL_COUNTS.items()))
def test_load_bfcl_counts(category, count):
    requests = load_bfcl(category)
    assert len(requests) == count
    assert len({r.id for r in requests}) == count
    assert {r.category for r in requests} == {category}
    assert {r.suite for r in requests} == {"bfcl"}
    no_answer = category in ("irrelevance", "live_irrelevance", "live_relevance")
    assert all((r.possible_answer is None) == no_answer for r in requests)
    assert all(r.messages for r in requests)
    # Only a few live_irrelevance entries offer no function at all.
    assert sum(not r.tools for r in requests) == (4 if category == "live_irrelevance" else 0)


def test_load_bfcl_first_entry_and_limit():
    requests = load_bfcl("simple_python", limit=5)
    assert [r.id for r in requests] == [f"simple_python_{i}" for i in range(5)]
    first = requests[0]
    assert isinstance(first, EvalRequest)
    assert first.messages == [
        {"role": "user", "content": "Find the area of a triangle with a base of 10 units and height of 5 units."}
    ]
    assert first.tools[0]["name"] == "calculate_triangle_area"
    assert first.possible_answer == [{"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}]
    call = {"name": "calculate_triangle_area", "arguments": {"base": 10, "height": 5}}
    assert ast_check([call], first.tools, first.possible_answer, first.category).valid


def test_load_bfcl_answers_aligned_by_id():
    requests = load_bfcl("live_parallel")
    for request in requests:
        names = {next(iter(a)) for a in request.possible_answer}
        assert names <= {t["name"] for t in request.tools}


def test_load_bfcl_keeps_system_message():
    request = next(r for r in load_bfcl("live_simple") if r.id == "live_simple_58-27-0")
    assert request.messages[0]["role"] == "system"
    assert request.messages[-1]["role"] == "user"


def test_load_bfcl_unknown_category():
    with pytest.raises(ValueError, match="unknown BFCL category"):
        load_bfcl("multi_turn_base")


# --- user suites: BFCL format ------------------------------------------------------------------

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {
        "type": "dict",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "default": "celsius"}},
        "required": ["city"],
    },
}
TIME = {
    "name": "get_time",
    "description": "Time in a zone.",
    "parameters": {"type": "dict", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
}


def bfcl_entry(entry_id, text="Weather in Paris?", tools=(WEATHER,)):
    return {"id": entry_id, "question": [[{"role": "user", "content": text}]], "function": list(tools)}


def bfcl_answer(entry_id, *calls):
    return {"id": entry_id, "ground_truth": list(calls)}


PARIS = {"get_weather": {"city": ["Paris"], "unit": ["", "celsius"]}}
ROME = {"get_weather": {"city": ["Rome"], "unit": [""]}}
CET = {"get_time": {"tz": ["CET"]}}


@pytest.mark.parametrize(
    ("stem", "expected", "answers"),
    [
        ("team_simple", "simple", [PARIS]),
        ("team_simple_python", "simple", [PARIS]),
        ("team_multiple", "multiple", [PARIS]),
        ("team_parallel", "parallel", [PARIS, ROME]),
        ("team_parallel_multiple", "parallel_multiple", [PARIS, CET]),
        ("team_irrelevance", "irrelevance", None),
        ("team_relevance", "relevance", None),
    ],
)
def test_user_bfcl_dir_category_from_file_name(tmp_path, stem, expected, answers):
    write_jsonl(tmp_path / f"{stem}.json", [bfcl_entry("q1", tools=(WEATHER, TIME)), bfcl_entry("q2")])
    if answers is not None:
        write_jsonl(
            tmp_path / "possible_answer" / f"{stem}.json",
            [bfcl_answer("q1", *answers), bfcl_answer("q2", PARIS)],
        )
    requests = load_user_suite(tmp_path)
    assert [r.id for r in requests] == ["q1", "q2"]
    assert {r.category for r in requests} == {expected}
    assert {r.suite for r in requests} == {tmp_path.name}
    if answers is None:
        assert all(r.possible_answer is None for r in requests)
    else:
        assert requests[0].possible_answer == answers


def test_user_bfcl_category_from_id_prefix(tmp_path):
    rows = [
        bfcl_entry("live_parallel_multiple_2-1", tools=(WEATHER, TIME)),
        bfcl_entry("simple_3"),
        bfcl_entry("live_irrelevance_7-0-0"),
    ]
    write_jsonl(tmp_path / "mixed.jsonl", rows)
    write_jsonl(
        tmp_path / "possible_answer" / "mixed.jsonl",
        [bfcl_answer("live_parallel_multiple_2-1", PARIS, CET), bfcl_answer("simple_3", ROME)],
    )
    requests = load_user_suite(tmp_path / "mixed.jsonl", name="mine")
    assert [r.category for r in requests] == ["parallel_multiple", "simple", "irrelevance"]
    assert [r.possible_answer for r in requests] == [[PARIS, CET], [ROME], None]
    assert {r.suite for r in requests} == {"mine"}


def test_user_bfcl_java_entry_is_refused_naming_file_and_line(tmp_path):
    # BFCL's Java/JavaScript entries are scored on strings by other rules: never silently as Python
    path = write_jsonl(tmp_path / "mixed.jsonl", [bfcl_entry("simple_3"), bfcl_entry("simple_java_6")])
    write_jsonl(tmp_path / "possible_answer" / "mixed.jsonl", [bfcl_answer("simple_3", ROME),
                                                               bfcl_answer("simple_java_6", ROME)])
    with pytest.raises(ValueError, match=rf"^{path}:2: id: category 'simple_java': BFCL passes Java arguments"):
        load_user_suite(path)


def test_user_bfcl_no_answer_file_means_irrelevance(tmp_path):
    write_jsonl(tmp_path / "questions.json", [bfcl_entry("a"), bfcl_entry("b")])
    requests = load_user_suite(tmp_path)
    assert [(r.category, r.possible_answer) for r in requests] == [("irrelevance", None)] * 2


def test_user_bfcl_category_inferred_from_ground_truth(tmp_path):
    both = (WEATHER, TIME)
    rows = [bfcl_entry("a"), bfcl_entry("b", tools=both), bfcl_entry("c"), bfcl_entry("d", tools=both)]
    write_jsonl(tmp_path / "questions.json", rows)
    answers = [bfcl_answer("d", PARIS, CET), bfcl_answer("c", PARIS, ROME), bfcl_answer("b", CET),
               bfcl_answer("a", ROME)]
    write_jsonl(tmp_path / "possible_answer" / "questions.json", answers)
    requests = load_user_suite(tmp_path)
    assert [r.category for r in requests] == ["simple", "multiple", "parallel", "parallel_multiple"]
    assert requests[0].possible_answer == [ROME]  # matched by id, not by position


def test_user_bfcl_first_turn_only_and_flat_question(tmp_path):
    two_turns = bfcl_entry("t1")
    two_turns["question"].append([{"role": "user", "content": "And tomorrow?"}])
    flat = bfcl_entry("t2", text="Flat?")
    flat["question"] = flat["question"][0]
    write_jsonl(tmp_path / "turns_irrelevance.json", [two_turns, flat])
    requests = load_user_suite(tmp_path)
    assert [r.messages for r in requests] == [
        [{"role": "user", "content": "Weather in Paris?"}],
        [{"role": "user", "content": "Flat?"}],
    ]


def test_user_bfcl_json_array_file(tmp_path):
    (tmp_path / "arr_simple.json").write_text(json.dumps([bfcl_entry("x1"), bfcl_entry("x2")], indent=2))
    write_jsonl(tmp_path / "possible_answer" / "arr_simple.json", [bfcl_answer("x1", PARIS), bfcl_answer("x2", ROME)])
    requests = load_user_suite(tmp_path / "arr_simple.json")
    assert [r.possible_answer for r in requests] == [[PARIS], [ROME]]


def test_user_bfcl_simple_without_answers_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "team_simple.json", [bfcl_entry("q1")])
    with pytest.raises(ValueError, match=r"team_simple\.json:1: possible_answer"):
        load_user_suite(path)


def test_user_suite_limit_spans_files(tmp_path):
    write_jsonl(tmp_path / "a_irrelevance.json", [bfcl_entry("a1"), bfcl_entry("a2")])
    write_jsonl(tmp_path / "b_irrelevance.json", [bfcl_entry("b1"), bfcl_entry("b2")])
    assert [r.id for r in load_user_suite(tmp_path, limit=3)] == ["a1", "a2", "b1"]
    assert len(load_user_suite(tmp_path)) == 4


def test_real_bfcl_file_as_user_suite(tmp_path):
    source = bfcl_data_dir()
    for folder in ("", "possible_answer"):
        lines = (source / folder / "BFCL_v4_live_parallel.json").read_text().splitlines()
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "BFCL_v4_live_parallel.json").write_text("\n".join(lines) + "\n")
    requests = load_user_suite(tmp_path)
    reference = load_bfcl("live_parallel")
    assert len(requests) == 16
    assert {r.category for r in requests} == {"parallel"}
    assert [r.possible_answer for r in requests] == [r.possible_answer for r in reference]


# --- user suites: OpenAI messages JSONL ----------------------------------------------------------------


def openai_tool(fn):
    return {"type": "function", "function": fn}


def msgs(text):
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def test_openai_jsonl_suite(tmp_path):
    rows = [
        {"id": "r0", "messages": msgs("Hi"), "tools": [openai_tool(WEATHER)], "expected_calls": []},
        {
            "id": "r1",
            "messages": msgs("Paris?"),
            "tools": [openai_tool(WEATHER)],
            "expected_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
        },
        {
            "messages": msgs("Time in CET?"),
            "tools": [WEATHER, TIME],
            "tool_calls": [{"name": "get_time", "arguments": '{"tz": "CET"}'}],
        },
        {
            "id": "r3",
            "messages": msgs("Paris and Rome?"),
            "tools": [openai_tool(WEATHER)],
            "expected_calls": [
                {"name": "get_weather", "arguments": {"city": "Paris"}},
                {"name": "get_weather", "arguments": {"city": "Rome", "unit": "fahrenheit"}},
            ],
        },
        {
            "id": "r4",
            "messages": msgs("Paris weather and CET time?"),
            "tools": [openai_tool(WEATHER), openai_tool(TIME)],
            "expected_calls": [
                {"type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}},
                {"name": "get_weather", "arguments": {"city": "Paris"}},
            ],
        },
        {
            "id": "r5",
            "messages": [
                *msgs("Oslo?"),
                {"role": "assistant", "content": None, "tool_calls": [
                    {"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
                ]},
            ],
            "tools": [openai_tool(WEATHER)],
        },
    ]
    path = write_jsonl(tmp_path / "support.jsonl", rows)
    requests = load_user_suite(path)
    assert [r.id for r in requests] == ["r0", "r1", "support_2", "r3", "r4", "r5"]
    assert [r.category for r in requests] == [
        "irrelevance", "simple", "multiple", "parallel", "parallel_multiple", "simple"
    ]
    assert {r.suite for r in requests} == {"support"}
    assert requests[0].possible_answer is None
    assert requests[1].tools == [WEATHER]  # unwrapped function dicts
    assert requests[1].messages == msgs("Paris?")
    assert requests[1].possible_answer == [{"get_weather": {"city": ["Paris"], "unit": ["", "celsius"]}}]
    assert requests[2].possible_answer == [{"get_time": {"tz": ["CET"]}}]
    assert requests[3].possible_answer[1] == {"get_weather": {"city": ["Rome"], "unit": ["fahrenheit"]}}
    assert requests[5].messages == msgs("Oslo?")  # the target turn is removed from the prompt
    assert requests[5].possible_answer == [{"get_weather": {"city": ["Oslo"], "unit": ["", "celsius"]}}]
    # A model answering the gold (in another order) scores valid; a wrong city does not.
    gold = [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_time", "arguments": {"tz": "cet"}}]
    r4 = requests[4]
    assert ast_check(gold, r4.tools, r4.possible_answer, r4.category).valid
    gold[0]["arguments"]["city"] = "Lyon"
    assert not ast_check(gold, r4.tools, r4.possible_answer, r4.category).valid


def test_directory_mixing_formats(tmp_path):
    write_jsonl(tmp_path / "a_irrelevance.json", [bfcl_entry("a1")])
    write_jsonl(
        tmp_path / "b.jsonl",
        [{"id": "b1", "messages": msgs("x"), "tools": [WEATHER], "expected_calls": [], "category": "relevance"}],
    )
    (tmp_path / "notes.md").write_text("ignored")
    requests = load_user_suite(tmp_path)
    assert [(r.id, r.category) for r in requests] == [("a1", "irrelevance"), ("b1", "relevance")]


# --- malformed entries -------------------------------------------------------------------------------

GOOD = {"id": "ok", "messages": msgs("Paris?"), "tools": [WEATHER], "expected_calls": []}


@pytest.mark.parametrize(
    ("bad_line", "field"),
    [
        ('{"id": "x", "messages": [', "line"),
        (json.dumps({**GOOD, "id": "x", "messages": []}), "messages"),
        (json.dumps({**GOOD, "id": "x", "messages": [{"content": "hi"}]}), "messages[0].role"),
        (json.dumps({"id": "x", "messages": msgs("hi"), "expected_calls": []}), "tools"),
        (json.dumps({**GOOD, "id": "x", "tools": [{"description": "no name"}]}), "tools[0].name"),
        (json.dumps({**GOOD, "id": "x", "tools": [{"type": "function", "function": {"name": 3}}]}),
         "tools[0].function.name"),
        (json.dumps({**GOOD, "id": "x", "expected_calls": [{"name": "nope", "arguments": {}}]}),
         "expected_calls[0].name"),
        (json.dumps({**GOOD, "id": "x", "expected_calls": [{"name": "get_weather", "arguments": [1]}]}),
         "expected_calls[0].arguments"),
        (json.dumps({**GOOD, "id": "x", "expected_calls": [{"name": "get_weather", "arguments": "{bad"}]}),
         "expected_calls[0].arguments"),
        (json.dumps({**GOOD, "id": "x", "expected_calls": [{"name": "get_weather", "arguments": {"city": 5}}]}),
         "expected_calls"),
        (json.dumps({**GOOD, "id": "x", "expected_calls": {"name": "get_weather"}}), "expected_calls"),
        (json.dumps({**GOOD, "id": "x", "category": "bogus"}), "category"),
        (json.dumps({"id": "x", "messages": msgs("hi"), "tools": [WEATHER]}), "expected_calls"),
        (json.dumps(GOOD), "id"),  # repeated id
        (json.dumps([1, 2]), "entry"),
    ],
)
def test_openai_malformed_entry_names_file_line_field(tmp_path, bad_line, field):
    path = tmp_path / "suite.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + bad_line + "\n")
    with pytest.raises(ValueError) as info:
        load_user_suite(path)
    assert str(info.value).startswith(f"{path}:3: {field}:")


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"id": "q2", "function": [WEATHER]}, "question"),
        ({"id": "q2", "question": "Paris?", "function": [WEATHER]}, "question"),
        ({"id": "q2", "question": [[{"role": "user", "content": "hi"}]]}, "function"),
        ({"id": "q2", "question": [[{"role": "user", "content": "hi"}]], "function": [{"name": "f", "parameters": 1}]},
         "function[0].parameters"),
        ({"id": "q2", "question": [[{"role": "user", "content": 7}]], "function": [WEATHER]}, "question[0][0].content"),
        ({"id": "q2", "question": [[{"role": "user", "content": "hi"}]], "function": [TIME]}, "possible_answer"),
    ],
)
def test_bfcl_malformed_entry_names_file_line_field(tmp_path, bad, field):
    path = write_jsonl(tmp_path / "t_simple.json", [bfcl_entry("q1"), bad])
    write_jsonl(tmp_path / "possible_answer" / "t_simple.json", [bfcl_answer("q1", PARIS)])
    with pytest.raises(ValueError) as info:
        load_user_suite(tmp_path)
    assert str(info.value).startswith(f"{path}:2: {field}:")


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"id": "q2", "ground_truth": {"get_weather": {}}}, "ground_truth"),
        ({"id": "q2", "ground_truth": [{"get_weather": {"city": "Paris"}}]}, "ground_truth[0].get_weather.city"),
        ({"id": "q2", "ground_truth": [{"get_time": {"tz": ["CET"]}}]}, "ground_truth[0]"),
        ({"id": "q2", "ground_truth": [PARIS, ROME]}, "ground_truth"),
        ({"id": "q2", "ground_truth": []}, "ground_truth"),
    ],
)
def test_bfcl_malformed_answer_names_answer_file(tmp_path, bad, field):
    write_jsonl(tmp_path / "t_simple.json", [bfcl_entry("q1"), bfcl_entry("q2")])
    answers = write_jsonl(tmp_path / "possible_answer" / "t_simple.json", [bfcl_answer("q1", PARIS), bad])
    with pytest.raises(ValueError) as info:
        load_user_suite(tmp_path)
    assert str(info.value).startswith(f"{answers}:2: {field}:")


def test_unknown_format_and_missing_path(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"prompt": "hi"}])
    with pytest.raises(ValueError, match=r"x\.jsonl:1: entry: neither BFCL"):
        load_user_suite(path)
    with pytest.raises(FileNotFoundError):
        load_user_suite(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no \\*.json"):
        load_user_suite(tmp_path / "empty")


# --- synthetic split ------------------------------------------------------------------------------------


def sample(sample_id, category, calls, tools=(WEATHER,)):
    return {
        "id": sample_id,
        "category": category,
        "domain": "weather",
        "tools": [openai_tool(t) for t in tools],
        "messages": msgs("question"),
        "tool_calls": calls,
        "provenance": {"template": 0},
    }


def test_load_synthetic_split(tmp_path):
    rows = [
        sample("s0", "simple", [{"name": "get_weather", "arguments": {"city": "Paris"}}]),
        sample("s1", "irrelevance", []),
        sample(
            "s2",
            "parallel_multiple",
            [{"name": "get_weather", "arguments": {"city": "Rome"}}, {"name": "get_time", "arguments": {"tz": "UTC"}}],
            tools=(WEATHER, TIME),
        ),
    ]
    path = write_jsonl(tmp_path / "test.jsonl", rows)
    requests = load_synthetic_split(path)
    assert [(r.id, r.category, r.suite) for r in requests] == [
        ("s0", "simple", "synthetic"),
        ("s1", "irrelevance", "synthetic"),
        ("s2", "parallel_multiple", "synthetic"),
    ]
    assert requests[0].possible_answer == [{"get_weather": {"city": ["Paris"], "unit": ["", "celsius"]}}]
    assert requests[0].tools == [WEATHER]
    assert requests[1].possible_answer is None
    assert len(load_synthetic_split(path, limit=2)) == 2
    for request, row in zip(requests, rows, strict=True):
        assert ast_check(row["tool_calls"], request.tools, request.possible_answer, request.category).valid


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({k: v for k, v in sample("s", "simple", []).items() if k != "tool_calls"}, "tool_calls"),
        ({k: v for k, v in sample("s", "simple", []).items() if k != "id"}, "id"),
        (sample("s", "mystery", []), "category"),
        (sample("s", "irrelevance", [{"name": "get_weather", "arguments": {"city": "x"}}]), "tool_calls"),
        (sample("s", "simple", []), "tool_calls"),
        (sample("s", "simple", [{"name": "get_weather", "arguments": {}}]), "tool_calls"),
    ],
)
def test_synthetic_malformed(tmp_path, row, field):
    good = sample("g", "simple", [{"name": "get_weather", "arguments": {"city": "Paris"}}])
    path = write_jsonl(tmp_path / "test.jsonl", [good, row])
    with pytest.raises(ValueError) as info:
        load_synthetic_split(path)
    assert str(info.value).startswith(f"{path}:2: {field}")


# --- hostile suite files (issue 21) -----------------------------------------------------------------------------


def _suite_line(entry_id: str = "r0") -> dict:
    return {"id": entry_id, "messages": [{"role": "user", "content": "Weather?"}], "tools": [WEATHER],
            "expected_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}


@pytest.mark.parametrize("text, problem", [
    ("", "no entries"),
    ("\n  \n", "no entries"),
    ("[]", "no entries"),
    ("[" + json.dumps(_suite_line()) + "] trailing", "after the JSON array"),
    ("[" + json.dumps(_suite_line()) + "]]", "after the JSON array"),
    (json.dumps(_suite_line()).replace('"Paris"', "NaN"), "NaN"),
    (json.dumps(_suite_line()).replace('"Paris"', '"\\ud83d"'), "surrogate"),
    (json.dumps(_suite_line()).replace('"Paris"', "[" * 3000 + "]" * 3000), "deeper"),
    ("[" + json.dumps(_suite_line()).replace('"Paris"', "[" * 3000 + "]" * 3000) + "]", "nested too deeply|deeper"),
])
def test_hostile_suite_files_are_refused_by_name(tmp_path, text, problem):
    path = tmp_path / "suite.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=problem) as err:
        load_user_suite(path)
    assert str(path) in str(err.value)


def test_non_utf8_suite_is_refused(tmp_path):
    path = tmp_path / "suite.jsonl"
    path.write_bytes(json.dumps(_suite_line()).encode() + b"\n\xff\xfe\n")
    with pytest.raises(ValueError, match="UTF-8"):
        load_user_suite(path)
