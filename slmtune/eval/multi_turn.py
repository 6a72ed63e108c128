"""BFCL v4 multi-turn evaluation: entries, BFCL's stateful API simulators run in process, and BFCL's checker.

An entry (``bfcl:multi_turn_base``, ``…_miss_func``, ``…_miss_param``, ``…_long_context``) is a conversation of user
turns over one or more simulated back-ends (a file system, messaging, posting, ticketing, trading, travel booking,
vehicle control, maths). The simulators are the Python classes that ship in bfcl-eval's source
(``bfcl_eval/eval_checker/multi_turn_eval/func_source_code/``, stdlib + mpmath only); each entry gets fresh
instances loaded with its ``initial_config``.

Nothing here ``eval``s text. A model's call arrives parsed by its dialect (a name and a JSON object of arguments) and
is dispatched only to a public method that one of the entry's classes exposes *and* that the functions offered at
that turn list, after binding the arguments to the method's signature; anything else becomes an error string as
the tool result, as BFCL's executor returns one (``Error during execution: …``). The ground truth's call strings are
parsed with :mod:`ast` (literal arguments only). Arguments are copied into each call and a mutable default is passed
as a fresh copy, so a simulator that keeps and extends them (``TwitterAPI.post_tweet``'s ``mentions=[]``) cannot
carry state from one entry (or one check) to the next, as it does inside BFCL's own process.

Checking re-implements BFCL's ``multi_turn_checker``: after each turn whose ground truth holds calls, (1) the
model's simulator instances must equal those that executed the ground truth (every public attribute), and (2) the
ground truth's execution results of that turn must be a sub-multiset of every result the model's calls produced so
far; a turn with ground-truth calls and no model call fails. The model's calls are re-executed on fresh instances, as
BFCL does. Unlike BFCL, which stops at the first failing turn, every turn gets a verdict (later turns are checked
against the ground truth's state, so a diverged state usually fails them too); the entry's verdict and error type are
BFCL's (the first failing turn's).
"""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from slmtune.eval.suites import _read_entries, _Where, bfcl_data_dir

__all__ = [
    "ADDITIONAL_FUNCTIONS_PROMPT",
    "MAX_STEPS_PER_TURN",
    "MULTI_TURN_CATEGORIES",
    "Call",
    "MultiTurnEntry",
    "MultiTurnVerdict",
    "SimulatorCallError",
    "Simulators",
    "check_trajectory",
    "load_bfcl_multi_turn",
    "parse_call_text",
]

MULTI_TURN_CATEGORIES = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param",
                         "multi_turn_long_context")

# BFCL's MAXIMUM_STEP_LIMIT (bfcl_eval/constants/default_prompts.py): a turn whose model keeps calling is force-quit
# after more call steps than this, and the whole entry fails ("multi_turn:force_terminated").
MAX_STEPS_PER_TURN = 20

# BFCL's DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC: the user message of a miss_func turn that adds functions.
ADDITIONAL_FUNCTIONS_PROMPT = "I have updated some more functions you can choose from. What about now?"

SIMULATOR_PACKAGE = "bfcl_eval.eval_checker.multi_turn_eval.func_source_code"
# class -> (module under SIMULATOR_PACKAGE, function-doc file under data/multi_turn_func_doc/)
SIMULATORS = {
    "GorillaFileSystem": ("gorilla_file_system", "gorilla_file_system.json"),
    "MathAPI": ("math_api", "math_api.json"),
    "MessageAPI": ("message_api", "message_api.json"),
    "TwitterAPI": ("posting_api", "posting_api.json"),
    "TicketAPI": ("ticket_api", "ticket_api.json"),
    "TradingBot": ("trading_bot", "trading_bot.json"),
    "TravelAPI": ("travel_booking", "travel_booking.json"),
    "VehicleControlAPI": ("vehicle_control", "vehicle_control.json"),
}
STATELESS_CLASSES = ("MathAPI",)  # no scenario to load (BFCL's STATELESS_CLASSES)

# BFCL's error types (eval_runner / multi_turn_checker)
FORCE_TERMINATED = "multi_turn:force_terminated"
EMPTY_TURN = "multi_turn:empty_turn_model_response"
STATE_MISMATCH = "multi_turn:instance_state_mismatch"
RESPONSE_MISMATCH = "multi_turn:execution_response_mismatch"
ERROR_TYPES = (FORCE_TERMINATED, EMPTY_TURN, STATE_MISMATCH, RESPONSE_MISMATCH)


class SimulatorCallError(Exception):
    """A call refused (``kind`` ``unknown_tool``: not offered or no such method; ``invalid_call``: its arguments do
    not bind to the method) or whose method raised (``execution_error``); ``str(err)`` is the result BFCL shows."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Call:
    """One call: a function name with positional and keyword arguments (a model's calls have keywords only)."""

    name: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    @classmethod
    def of(cls, call: dict) -> Call:
        """From slmtune's ``{"name", "arguments"}`` shape."""
        arguments = call.get("arguments") or {}
        if not isinstance(arguments, dict):
            raise ValueError(f"call {call.get('name')!r}: arguments must be an object")
        return cls(str(call.get("name")), (), dict(arguments))


def parse_call_text(text: str) -> Call:
    """A ground-truth call string such as ``mv(source='a.txt', destination='temp')``, parsed without evaluation:
    a plain function name with literal arguments, else ``ValueError``."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"{text!r}: not a call ({exc.msg})") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError(f"{text!r}: not a call of a plain function name")
    try:
        args = tuple(ast.literal_eval(a) for a in node.args)
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    except ValueError:
        raise ValueError(f"{text!r}: arguments must be literals") from None
    if None in kwargs:
        raise ValueError(f"{text!r}: ** arguments are not allowed")
    return Call(node.func.id, args, kwargs)


# --------------------------------------------------------------------------------------------
# Entries
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MultiTurnEntry:
    """One BFCL multi-turn entry. ``turns[t]`` are the user messages of turn ``t`` (empty for a miss_func turn that
    only adds functions); ``tools`` the function docs offered from the start; ``added_tools[t]`` the docs that turn
    ``t`` adds (miss_func); ``ground_truth[t]`` the calls of turn ``t`` (empty where the model should not call)."""

    id: str
    category: str
    turns: list[list[dict]]
    initial_config: dict
    involved_classes: list[str]
    tools: list[dict]
    added_tools: dict[int, list[dict]]
    ground_truth: list[list[Call]]
    suite: str = "bfcl"

    @property
    def long_context(self) -> bool:
        return "long_context" in self.category

    def offered_names(self, turn: int) -> set[str]:
        """Names of the functions offered at ``turn``."""
        names = {t["name"] for t in self.tools}
        for at, docs in self.added_tools.items():
            if at <= turn:
                names |= {d["name"] for d in docs}
        return names


def _function_docs(classes: list[str], where: _Where) -> list[dict]:
    docs_dir = bfcl_data_dir() / "multi_turn_func_doc"
    docs: list[dict] = []
    for name in classes:
        if name not in SIMULATORS:
            raise where.error("involved_classes", f"unknown class {name!r}; expected one of {', '.join(SIMULATORS)}")
        path = docs_dir / SIMULATORS[name][1]
        if not path.is_file():
            raise FileNotFoundError(f"missing BFCL function docs {path}")
        for doc_where, doc in _read_entries(path):
            if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
                raise doc_where.error("function", "expected an object with a name")
            docs.append(doc)
    return docs


def load_bfcl_multi_turn(category: str, limit: int | None = None) -> list[MultiTurnEntry]:
    """The first ``limit`` entries of one BFCL multi-turn category, with their function docs and ground truth."""
    if category not in MULTI_TURN_CATEGORIES:
        raise ValueError(f"unknown BFCL multi-turn category {category!r}; expected one of "
                         f"{', '.join(MULTI_TURN_CATEGORIES)}")
    data = bfcl_data_dir()
    answers: dict[str, tuple[Any, _Where]] = {}
    for where, obj in _read_entries(data / "possible_answer" / f"BFCL_v4_{category}.json"):
        if not isinstance(obj, dict) or "id" not in obj:
            raise where.error("entry", "expected an object with an id")
        answers[str(obj["id"])] = (obj.get("ground_truth"), where)
    entries = []
    for where, obj in _read_entries(data / f"BFCL_v4_{category}.json", limit):
        if not isinstance(obj, dict) or "id" not in obj:
            raise where.error("entry", "expected an object with an id")
        entry_id = str(obj["id"])
        question = obj.get("question")
        if not isinstance(question, list) or not all(isinstance(t, list) for t in question):
            raise where.error("question", "must be a list of turns (lists of messages)")
        classes = obj.get("involved_classes")
        if not isinstance(classes, list) or not classes:
            raise where.error("involved_classes", "must be a non-empty list of class names")
        config = obj.get("initial_config", {})
        if not isinstance(config, dict):
            raise where.error("initial_config", "must be an object")
        docs = _function_docs(classes, where)
        added: dict[int, list[dict]] = {}
        for turn, names in (obj.get("missed_function") or {}).items():
            if not str(turn).isdigit() or int(turn) >= len(question) or question[int(turn)]:
                raise where.error(f"missed_function.{turn}", "must name a turn without user messages")
            moved = [d for d in docs if d["name"] in names]
            if len(moved) != len(names):
                raise where.error(f"missed_function.{turn}", f"names {names} not all among the entry's functions")
            docs = [d for d in docs if d["name"] not in names]
            added[int(turn)] = moved
        if entry_id not in answers:
            raise where.error("possible_answer", f"no ground truth for id {entry_id!r}")
        gt, answer_where = answers[entry_id]
        if not isinstance(gt, list) or len(gt) != len(question) or not all(isinstance(t, list) for t in gt):
            raise answer_where.error("ground_truth", f"must be a list of {len(question)} turns of call strings")
        try:
            calls = [[parse_call_text(s) for s in turn] for turn in gt]
        except (ValueError, AttributeError) as exc:
            raise answer_where.error("ground_truth", str(exc)) from None
        entries.append(MultiTurnEntry(
            id=entry_id, category=category, turns=[[dict(m) for m in t] for t in question], initial_config=config,
            involved_classes=[str(c) for c in classes], tools=docs, added_tools=added, ground_truth=calls))
    return entries


# --------------------------------------------------------------------------------------------
# Simulators
# --------------------------------------------------------------------------------------------


def simulator_class(name: str) -> type:
    """BFCL's simulator class ``name`` (imported from bfcl-eval's source; stdlib + mpmath only)."""
    module, _ = SIMULATORS[name]
    try:
        return getattr(importlib.import_module(f"{SIMULATOR_PACKAGE}.{module}"), name)
    except ImportError as exc:
        raise FileNotFoundError(f"BFCL's simulators are not importable ({exc}): install them with "
                                "`pip install --no-deps bfcl-eval` (they need mpmath)") from None


def _result_text(value: Any) -> str:
    """A method's return value as BFCL's executor writes it."""
    if type(value) is str:
        return value
    if type(value) is dict:
        try:
            return json.dumps(value)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


class Simulators:
    """Fresh simulator instances of one entry, loaded with its initial config; calls dispatched strictly."""

    def __init__(self, entry: MultiTurnEntry) -> None:
        self.instances: dict[str, Any] = {}
        self._methods: dict[str, Any] = {}
        for name in entry.involved_classes:
            instance = simulator_class(name)()
            if name not in STATELESS_CLASSES:
                instance._load_scenario(copy.deepcopy(entry.initial_config.get(name, {})),
                                        long_context=entry.long_context)
            self.instances[name] = instance
            for method_name, method in inspect.getmembers(instance, predicate=inspect.ismethod):
                if not method_name.startswith("_"):
                    self._methods[method_name] = method  # a name two classes share: the later class's (as BFCL)

    def call(self, call: Call, offered: Collection[str]) -> str:
        """Execute ``call`` if ``offered`` lists its name and the entry's classes expose it and its arguments bind to
        the method's signature; the result as text. Raises :class:`SimulatorCallError` (its text the result BFCL
        would show) on a refusal or when the method raises."""
        method = self._methods.get(call.name) if call.name in offered else None
        if method is None:
            raise SimulatorCallError("unknown_tool", f"Error during execution: name '{call.name}' is not defined")
        signature = inspect.signature(method)
        try:
            bound = signature.bind(*copy.deepcopy(call.args), **copy.deepcopy(call.kwargs))
        except TypeError as exc:
            raise SimulatorCallError("invalid_call", f"Error during execution: {call.name}() {exc}") from None
        # A mutable default (TwitterAPI.post_tweet's `mentions=[]`) is one object shared by every call in the
        # process, and the simulators store and extend it: pass a fresh copy, so that no verdict depends on what ran
        # before (BFCL's own checker sees that history; here every call behaves as in a fresh process).
        for name, parameter in signature.parameters.items():
            if name not in bound.arguments and isinstance(parameter.default, list | dict | set):
                bound.arguments[name] = copy.deepcopy(parameter.default)
        try:
            return _result_text(method(*bound.args, **bound.kwargs))
        except Exception as exc:  # noqa: BLE001 - the simulator's own failure is the tool result, as in BFCL
            raise SimulatorCallError("execution_error", f"Error during execution: {exc}") from None

    def result(self, call: Call, offered: Collection[str]) -> str:
        """:meth:`call`'s result or its error text."""
        try:
            return self.call(call, offered)
        except SimulatorCallError as exc:
            return str(exc)

    def state(self) -> dict[str, dict[str, Any]]:
        """Every instance's public attributes (what the state check compares)."""
        return {name: {k: v for k, v in vars(obj).items() if not k.startswith("_")}
                for name, obj in self.instances.items()}


# --------------------------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------------------------


@dataclass
class MultiTurnVerdict:
    """``valid``: the entry passes; ``error_type``/``error``/``turn``: the first failure (BFCL's error types);
    ``turns``: per turn True/False, None where the ground truth has no call (not checked, as in BFCL)."""

    valid: bool
    turns: list[bool | None]
    error_type: str | None = None
    error: str | None = None
    turn: int | None = None


def _sub_multiset(needed: list[str], have: list[str]) -> list[str]:
    """The items of ``needed`` missing from ``have`` (each item of ``have`` used once)."""
    pool = list(have)
    missing = []
    for item in needed:
        try:
            pool.remove(item)
        except ValueError:
            missing.append(item)
    return missing


def _state_difference(model: Simulators, truth: Simulators) -> str | None:
    for name, truth_instance in truth.instances.items():
        model_instance = model.instances[name]
        differing = [attr for attr in vars(truth_instance) if not attr.startswith("_")
                     and getattr(model_instance, attr) != getattr(truth_instance, attr)]
        if differing:
            return f"{name}: {', '.join(differing)} differ from the ground truth's"
    return None


def check_trajectory(entry: MultiTurnEntry, model_turns: list[list[list[dict]]]) -> MultiTurnVerdict:
    """BFCL's verdict on a model's trajectory: ``model_turns[t]`` the steps of turn ``t``, each a list of
    ``{"name", "arguments"}`` calls (a step without calls is ignored, as BFCL ignores text). Fewer turns than the
    entry has means the run was force-terminated (BFCL fails it outright)."""
    n = len(entry.ground_truth)
    if len(model_turns) != n:
        return MultiTurnVerdict(False, [False] * n, FORCE_TERMINATED,
                                f"model trajectory has {len(model_turns)} turns, the entry {n}",
                                min(len(model_turns), n))
    model, truth = Simulators(entry), Simulators(entry)
    all_results: list[str] = []
    turns: list[bool | None] = []
    first: tuple[str, str, int] | None = None
    for t, (steps, gt_calls) in enumerate(zip(model_turns, entry.ground_truth)):
        offered = entry.offered_names(t)
        steps = [s for s in steps if s]
        for step in steps:
            for raw in step:
                try:
                    call = Call.of(raw)
                except ValueError as exc:
                    all_results.append(f"Error during execution: {exc}")
                    continue
                all_results.append(model.result(call, offered))
        truth_results = [truth.result(call, offered) for call in gt_calls]
        if not gt_calls:
            turns.append(None)
            continue
        failure: tuple[str, str] | None = None
        if not steps:
            failure = (EMPTY_TURN, f"no model call in turn {t}")
        elif (difference := _state_difference(model, truth)) is not None:
            failure = (STATE_MISMATCH, f"turn {t}: {difference}")
        elif missing := _sub_multiset(truth_results, all_results):
            failure = (RESPONSE_MISMATCH, f"turn {t}: {len(missing)} ground-truth result(s) missing, first "
                                          f"{missing[0][:200]!r}")
        turns.append(failure is None)
        if failure is not None and first is None:
            first = (*failure, t)
    if first is None:
        return MultiTurnVerdict(True, turns)
    return MultiTurnVerdict(False, turns, first[0], first[1], first[2])
