"""BFCL multi-turn: loading, strict dispatch to BFCL's simulators, and parity of our checker with BFCL's own."""

from __future__ import annotations

import importlib
import json
import random
import re
from collections import Counter

import pytest
from bfcl_trajectories import as_keywords, ground_truth_trajectory

from slmtune.eval.multi_turn import (
    EMPTY_TURN,
    FORCE_TERMINATED,
    MAX_STEPS_PER_TURN,
    MULTI_TURN_CATEGORIES,
    RESPONSE_MISMATCH,
    STATE_MISMATCH,
    Call,
    SimulatorCallError,
    Simulators,
    check_trajectory,
    load_bfcl_multi_turn,
    parse_call_text,
)

pytest.importorskip("mpmath", reason="BFCL's simulators need mpmath")


@pytest.fixture(scope="module")
def base():
    return load_bfcl_multi_turn("multi_turn_base")


def test_loads_every_category():
    for category in MULTI_TURN_CATEGORIES:
        entries = load_bfcl_multi_turn(category, limit=5)
        assert len(entries) == 5
        for entry in entries:
            assert len(entry.turns) == len(entry.ground_truth)
            assert entry.tools and all("name" in d and "parameters" in d for d in entry.tools)
    miss_func = load_bfcl_multi_turn("multi_turn_miss_func", limit=1)[0]
    (turn, added), = miss_func.added_tools.items()
    assert miss_func.turns[turn] == []  # the turn that adds functions has no user message
    assert not {d["name"] for d in added} & {d["name"] for d in miss_func.tools}
    assert {d["name"] for d in added} <= miss_func.offered_names(turn) - miss_func.offered_names(turn - 1)


def test_step_limit_is_bfcls():
    limit = importlib.import_module("bfcl_eval.constants.default_prompts").MAXIMUM_STEP_LIMIT
    assert limit == MAX_STEPS_PER_TURN


def test_parse_call_text_never_evaluates():
    assert parse_call_text("mv(source='a', destination='b')") == Call("mv", (), {"source": "a", "destination": "b"})
    assert parse_call_text("sort('x.pdf')") == Call("sort", ("x.pdf",), {})
    assert parse_call_text("f(a=[1, {'b': None}], c=-2.5)").kwargs == {"a": [1, {"b": None}], "c": -2.5}
    for bad in ("__import__('os').system('true')", "f(a=g())", "f(**x)", "x.y(1)", "f(", "1 + 2"):
        with pytest.raises(ValueError):
            parse_call_text(bad)


def test_simulators_dispatch_strictly(base):
    entry = next(e for e in base if e.id == "multi_turn_base_0")
    simulators, offered = Simulators(entry), entry.offered_names(0)
    assert {"cd", "mkdir", "post_tweet", "cp"} <= offered  # excluded_function is informative: BFCL offers all

    def call(name, **kwargs):
        return simulators.call(Call(name, (), kwargs), offered)

    assert json.loads(call("cd", folder="document")) == {"current_working_directory": "document"}
    for name, kwargs, kind in (("_load_scenario", {"scenario": {}}, "unknown_tool"),  # private: never dispatched
                               ("send_message", {"receiver_id": "x", "message": "y"}, "unknown_tool"),  # not involved
                               ("mkdir", {"dir_name": "x", "mode": 7}, "invalid_call"),
                               ("mkdir", {}, "invalid_call")):
        with pytest.raises(SimulatorCallError) as err:
            call(name, **kwargs)
        assert err.value.kind == kind and str(err.value).startswith("Error during execution: ")
    assert "x" not in simulators.instances["GorillaFileSystem"]._current_dir.contents
    with pytest.raises(SimulatorCallError, match="not defined"):
        simulators.call(Call("cd", (), {"folder": ".."}), offered - {"cd"})  # a method not offered at this turn
    assert simulators.result(Call("mkdir", (), {}), offered).startswith("Error during execution: ")


def test_no_state_leaks_between_entries(base):
    """TwitterAPI.post_tweet's `mentions=[]` default is one list that `mention` extends: each call gets a fresh one."""
    entry = next(e for e in base if "password" in e.initial_config.get("TwitterAPI", {}))
    login = {k: entry.initial_config["TwitterAPI"][k] for k in ("username", "password")}
    offered = entry.offered_names(0)
    first, second = Simulators(entry), Simulators(entry)

    def call(simulators, name, **kwargs):
        return json.loads(simulators.call(Call(name, (), kwargs), offered))

    call(first, "authenticate_twitter", **login)
    posted = call(first, "post_tweet", content="hello")
    call(first, "mention", tweet_id=posted["id"], mentioned_usernames=["@leak"])
    call(second, "authenticate_twitter", **login)
    assert call(second, "post_tweet", content="hello")["mentions"] == []
    arguments = {"content": "hi", "mentions": ["@a"]}
    tweet = call(first, "post_tweet", **arguments)
    call(first, "mention", tweet_id=tweet["id"], mentioned_usernames=["@b"])
    assert arguments["mentions"] == ["@a"]  # the caller's arguments are copied, never kept by the simulator


def test_ground_truth_passes_every_category():
    for category in MULTI_TURN_CATEGORIES:
        for entry in load_bfcl_multi_turn(category, limit=25):
            verdict = check_trajectory(entry, ground_truth_trajectory(entry))
            assert verdict.valid, (entry.id, verdict.error)
            assert [v is None for v in verdict.turns] == [not gt for gt in entry.ground_truth]


def test_failure_types(base):
    entry = next(e for e in base if len(e.ground_truth) >= 2 and len(e.ground_truth[0]) >= 2)
    gt = ground_truth_trajectory(entry)
    assert check_trajectory(entry, gt[:-1]).error_type == FORCE_TERMINATED
    assert check_trajectory(entry, [[]] + gt[1:]).error_type == EMPTY_TURN
    text_only = [[[]]] + gt[1:]  # a step without calls (a text answer) is ignored
    assert check_trajectory(entry, text_only).error_type == EMPTY_TURN
    verdict = check_trajectory(entry, [[gt[0][0][:1]]] + gt[1:])
    assert not verdict.valid and verdict.error_type in (STATE_MISMATCH, RESPONSE_MISMATCH) and verdict.turn == 0
    assert verdict.turns[0] is False
    split = [[[c] for c in turn[0]] + [[]] for turn in gt]  # one call per step, and text steps: same verdict
    assert check_trajectory(entry, split).valid


# --- parity with BFCL's multi_turn_checker ---------------------------------------------------------------------


def _mutated(value, rng: random.Random):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.choice((1, -1, 7))
    if isinstance(value, float):
        return value + 1.5
    if isinstance(value, str):
        return value + "_x" if value else "x"
    if isinstance(value, list):
        return value[:-1] if value else ["x"]
    if isinstance(value, dict):
        return {}
    return "x"


def perturbations(trajectory: list[list[list[dict]]], rng: random.Random) -> dict[str, list[list[list[dict]]]]:
    """Systematic perturbations of a ground-truth trajectory (one step per turn): each applicable one once."""
    turns = [[dict(c, arguments=dict(c["arguments"])) for c in t[0]] for t in trajectory]
    called = [i for i, t in enumerate(turns) if t]
    out = {"ground_truth": turns}
    if not called:
        return {k: [[v] for v in t] for k, t in out.items()}

    def copy_turns():
        return [[dict(c, arguments=dict(c["arguments"])) for c in t] for t in turns]

    t = rng.choice(called)
    dropped = copy_turns()
    dropped[t].pop(rng.randrange(len(dropped[t])))
    out["dropped_call"] = dropped

    with_args = [(i, j) for i in called for j, c in enumerate(turns[i]) if c["arguments"]]
    if with_args:
        i, j = rng.choice(with_args)
        changed = copy_turns()
        key = rng.choice(sorted(changed[i][j]["arguments"]))
        changed[i][j]["arguments"][key] = _mutated(changed[i][j]["arguments"][key], rng)
        out["changed_argument"] = changed

    extra = copy_turns()
    source = turns[rng.choice(called)]
    extra[t].insert(rng.randrange(len(extra[t]) + 1), dict(rng.choice(source)))
    out["extra_call"] = extra

    multi = [i for i in called if len(turns[i]) >= 2]
    if multi:
        i = rng.choice(multi)
        j = rng.randrange(len(turns[i]) - 1)
        swapped = copy_turns()
        swapped[i][j], swapped[i][j + 1] = swapped[i][j + 1], swapped[i][j]
        out["swapped_order"] = swapped

    if len(turns) >= 2:
        moved = copy_turns()
        if t + 1 < len(turns):
            moved[t + 1].insert(0, moved[t].pop())
        else:
            moved[t - 1].append(moved[t].pop(0))
        out["wrong_turn"] = moved

    emptied = copy_turns()
    emptied[t] = []
    out["empty_turn"] = emptied

    unknown = copy_turns()
    unknown[t].append({"name": "no_such_function", "arguments": {"x": 1}})
    out["unknown_function"] = unknown
    return {k: [[v] if v else [] for v in turns_] for k, turns_ in out.items()}


def _call_text(call: dict) -> str:
    """A call as BFCL's FC decoder writes it (``name(key=repr(value), …)``)."""
    return f"{call['name']}({', '.join(f'{k}={v!r}' for k, v in call['arguments'].items())})"


@pytest.fixture(scope="module")
def bfcl_checker():
    try:
        checker = importlib.import_module("bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker")
        utils = importlib.import_module("bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils")
    except ImportError as exc:
        pytest.skip(f"BFCL's multi_turn_checker cannot be imported here ({exc}); it is the reference oracle")
    return checker, utils


def bfcl_verdict(bfcl_checker, entry, trajectory, run_name: str) -> dict:
    """BFCL's verdict (its eval runner's steps: turn count, empty steps dropped, then multi_turn_checker).
    ``run_name`` keeps BFCL's instances (kept in module globals by name) apart between calls."""
    checker, utils = bfcl_checker
    if len(trajectory) != len(entry.ground_truth):
        return {"valid": False, "error_type": FORCE_TERMINATED}
    decoded = [[[_call_text(c) for c in step] for step in turn if step] for turn in trajectory]
    gt_text = [[_call_text(as_keywords(entry, c)) for c in turn] for turn in entry.ground_truth]
    test_entry = {"id": entry.id, "initial_config": entry.initial_config, "involved_classes": entry.involved_classes}
    try:
        return checker.multi_turn_checker(decoded, gt_text, test_entry, entry.category, run_name)
    finally:
        prefix = re.sub(r"[-./:]", "_", run_name)
        for key in [k for k in vars(utils) if k.startswith(prefix)]:
            del vars(utils)[key]


def held_out_early(entry, trajectory) -> bool:
    """Whether a miss_func function is called before the turn that offers it: we refuse that call (strict dispatch),
    BFCL's checker runs any public method, so there the two differ by design."""
    held_out = {d["name"] for docs in entry.added_tools.values() for d in docs}
    return any(c["name"] in held_out - entry.offered_names(t)
               for t, steps in enumerate(trajectory) for step in steps for c in step)


def test_parity_with_bfcl_checker(base, bfcl_checker):
    entries = base + [e for category in ("multi_turn_miss_param", "multi_turn_miss_func", "multi_turn_long_context")
                      for e in load_bfcl_multi_turn(category, limit=40)]
    rng = random.Random(20261206)
    total, agree, same_type, by_design = 0, 0, 0, 0
    kinds: Counter = Counter()
    disagreements = []
    for n, entry in enumerate(entries):
        for kind, trajectory in perturbations(ground_truth_trajectory(entry), rng).items():
            if held_out_early(entry, trajectory):
                by_design += 1
                continue
            ours = check_trajectory(entry, trajectory)
            theirs = bfcl_verdict(bfcl_checker, entry, trajectory, f"slmtune_parity_{n}_{kind}")
            total += 1
            kinds[(kind, ours.valid)] += 1
            if ours.valid == theirs["valid"]:
                agree += 1
                same_type += ours.valid or ours.error_type == theirs.get("error_type")
            else:
                disagreements.append((entry.id, kind, ours.valid, ours.error, theirs.get("error_message")))
    assert len(entries) >= 200
    assert all(kinds[(kind, False)] for kind in ("dropped_call", "changed_argument", "empty_turn")), kinds
    assert kinds[("ground_truth", True)] == len(entries)
    assert agree / total >= 0.99, (agree, total, disagreements[:10])
    assert same_type / total >= 0.99, (same_type, total)
    assert by_design < 0.05 * total
    print(f"parity: {agree}/{total} verdicts agree ({same_type} with the same error type) over {len(entries)} "
          f"entries ({by_design} trajectories calling a held-out function early left out); {sorted(kinds.items())}")
