"""Evaluation suites: BFCL's single-turn AST categories, user suites, and our synthetic test split.

Every loader returns a list of `EvalRequest`. ``tools`` are function dicts ``{"name", "description",
"parameters"}`` (OpenAI's ``{"type": "function", "function": {...}}`` wrapper is removed; BFCL type
names are kept, `slmtune.eval.scoring` understands both). ``possible_answer`` is BFCL ground truth
``[{func_name: {arg: [acceptable values]}}]``, or None for irrelevance and relevance.

Malformed input raises ``ValueError("<file>:<line>: <field>: <problem>")``.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmtune.data.jsonlimits import JSONLimitError
from slmtune.data.jsonlimits import loads as json_loads
from slmtune.data.jsonlimits import raw_decode as json_raw_decode
from slmtune.eval.scoring import (
    UNSUPPORTED_LANGUAGE_CATEGORIES,
    function_dict,
    gold_to_possible_answer,
    normalise_category,
    schema_check,
)

__all__ = [
    "BFCL_CATEGORIES",
    "EvalRequest",
    "bfcl_data_dir",
    "load_bfcl",
    "load_synthetic_split",
    "load_user_suite",
]

BFCL_CATEGORIES = (
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "irrelevance",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    "live_irrelevance",
    "live_relevance",
)

_NO_ANSWER_CATEGORIES = ("irrelevance", "relevance")

# File-name endings, longest first so that `_parallel_multiple` wins over `_multiple`.
_NAME_SUFFIXES = (
    ("_parallel_multiple", "parallel_multiple"),
    ("_simple_python", "simple"),
    ("_irrelevance", "irrelevance"),
    ("_relevance", "relevance"),
    ("_parallel", "parallel"),
    ("_multiple", "multiple"),
    ("_simple", "simple"),
)
_ID_PREFIX_RE = re.compile(r"^(?P<prefix>[A-Za-z_]+?)_\d+(?:[-_:]\d+)*$")

BFCL_DATA_ENV = "SLMTUNE_BFCL_DATA"
MULTI_TURN = "multi_turn"  # our synthetic conversations (slmtune.data.multiturn), scored per assistant turn


@dataclass(frozen=True)
class EvalRequest:
    """One request: the messages and tools the model sees and the expected answer.

    A turn of a ``multi_turn`` conversation also names its ``conversation`` and ``turn`` (0-based among the
    conversation's assistant turns) and ``score_as``: the AST category its answer is scored by (``irrelevance`` for
    a text turn: any answer without a call is right; ``multiple`` or ``parallel_multiple`` for a call turn)."""

    id: str
    category: str
    messages: list[dict]
    tools: list[dict]
    possible_answer: list[dict] | None
    suite: str
    conversation: str | None = None
    turn: int | None = None
    score_as: str | None = None

    @property
    def scoring_category(self) -> str:
        return self.score_as or self.category

    @property
    def expects_call(self) -> bool:
        """Whether the right answer holds a call (BFCL: every category but irrelevance)."""
        return not self.scoring_category.endswith("irrelevance")


class _Where:
    """A position in an input file, for error messages."""

    def __init__(self, path: Path, line: int | None):
        self.path = path
        self.line = line

    def error(self, field: str, problem: str) -> ValueError:
        place = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return ValueError(f"{place}: {field}: {problem}")


# --------------------------------------------------------------------------------------------
# BFCL
# --------------------------------------------------------------------------------------------


def bfcl_data_dir() -> Path:
    """The ``data`` folder of the installed ``bfcl_eval`` package, found without importing it
    (override with the ``SLMTUNE_BFCL_DATA`` environment variable)."""
    override = os.environ.get(BFCL_DATA_ENV)
    if override:
        path = Path(override)
        if not path.is_dir():
            raise FileNotFoundError(f"{BFCL_DATA_ENV}={override} is not a directory")
        return path
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "BFCL data not found: install it with `pip install --no-deps bfcl-eval` "
            f"or point {BFCL_DATA_ENV} at a folder holding BFCL_v4_*.json"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not path.is_dir():
        raise FileNotFoundError(f"the bfcl_eval package has no data folder at {path}")
    return path


def load_bfcl(category: str, limit: int | None = None) -> list[EvalRequest]:
    """One BFCL single-turn category (the first ``limit`` entries), suite ``"bfcl"``, category the
    BFCL name (e.g. ``live_simple``)."""
    if category not in BFCL_CATEGORIES:
        raise ValueError(f"unknown BFCL category {category!r}; expected one of {', '.join(BFCL_CATEGORIES)}")
    data = bfcl_data_dir()
    question_file = data / f"BFCL_v4_{category}.json"
    answer_file = data / "possible_answer" / f"BFCL_v4_{category}.json"
    base = normalise_category(category)
    if base in _NO_ANSWER_CATEGORIES:
        answer_file = None
    elif not answer_file.is_file():
        raise FileNotFoundError(f"missing BFCL answer file {answer_file}")
    return _load_bfcl_file(question_file, answer_file, suite="bfcl", limit=limit, category=category, seen={})


def _check_unique(entry_id: str, where: _Where, seen: dict[str, str]) -> None:
    if entry_id in seen:
        raise where.error("id", f"{entry_id!r} is repeated (first at {seen[entry_id]})")
    seen[entry_id] = f"{where.path}:{where.line}"


def _load_bfcl_file(
    path: Path,
    answer_path: Path | None,
    *,
    suite: str,
    limit: int | None,
    category: str | None,
    seen: dict[str, str] | None = None,
) -> list[EvalRequest]:
    """Read BFCL-format questions (and answers). ``category`` fixed, or None to infer per entry."""
    answers_by_id: dict[str, tuple[Any, _Where]] = {}
    answers_by_pos: list[tuple[Any, _Where]] = []
    if answer_path is not None:
        for where, obj in _read_entries(answer_path):
            if not isinstance(obj, dict):
                raise where.error("entry", "expected a JSON object")
            gt = obj.get("ground_truth")
            _check_ground_truth(gt, where)
            answers_by_pos.append((gt, where))
            if "id" in obj:
                answers_by_id[str(obj["id"])] = (gt, where)

    requests = []
    for index, (where, obj) in enumerate(_read_entries(path, limit)):
        if not isinstance(obj, dict):
            raise where.error("entry", "expected a JSON object")
        entry_id = obj.get("id", f"{path.stem}_{index}")
        if not isinstance(entry_id, str | int) or isinstance(entry_id, bool):
            raise where.error("id", "must be a string")
        entry_id = str(entry_id)
        _check_unique(entry_id, where, {} if seen is None else seen)
        messages = _bfcl_messages(obj.get("question"), where)
        tools = _tools(obj.get("function"), where, "function")

        cat = category
        if cat is None:
            cat = _category_from_id(entry_id, where)
        gt = None
        if cat is None or normalise_category(cat) not in _NO_ANSWER_CATEGORIES:
            if answer_path is None:
                if cat is not None:
                    raise where.error(
                        "possible_answer",
                        f"category {cat} needs ground truth in {path.parent / 'possible_answer' / path.name}",
                    )
                cat = "irrelevance"
            else:
                if "id" in obj:
                    found = answers_by_id.get(entry_id)
                elif index < len(answers_by_pos):
                    found = answers_by_pos[index]
                else:
                    found = None
                if found is None:
                    raise where.error("possible_answer", f"no ground truth for id {entry_id!r} in {answer_path}")
                gt, answer_where = found
                _check_answer_functions(gt, tools, answer_where)
                if cat is None:
                    cat = _infer_category(gt, len(tools))
                _check_answer_count(gt, normalise_category(cat), answer_where)
        requests.append(
            EvalRequest(id=entry_id, category=cat, messages=messages, tools=tools, possible_answer=gt, suite=suite)
        )
    return requests


def _bfcl_messages(question: Any, where: _Where) -> list[dict]:
    """The first turn of BFCL's ``question`` (a list of turns, each a list of messages); a flat list
    of messages is accepted too."""
    if not isinstance(question, list) or not question:
        raise where.error("question", "must be a non-empty list of turns (lists of messages)")
    if all(isinstance(m, dict) for m in question):
        turn, field = question, "question"
    else:
        turn, field = question[0], "question[0]"
    return _messages(turn, where, field)


def _messages(messages: Any, where: _Where, field: str) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise where.error(field, "must be a non-empty list of messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise where.error(f"{field}[{i}]", "a message must be an object")
        if not isinstance(message.get("role"), str) or not message["role"]:
            raise where.error(f"{field}[{i}].role", "missing or not a string")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise where.error(f"{field}[{i}].content", "must be a string, a list of parts or null")
    return [dict(m) for m in messages]


def _tools(tools: Any, where: _Where, field: str) -> list[dict]:
    if isinstance(tools, dict):  # BFCL allows a single function doc
        tools = [tools]
    if not isinstance(tools, list):
        raise where.error(field, "must be a list of function definitions")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise where.error(f"{field}[{i}]", "a tool must be an object")
        doc = function_dict(tool)
        sub = f"{field}[{i}].function" if doc is not tool else f"{field}[{i}]"
        if not isinstance(doc.get("name"), str) or not doc["name"]:
            raise where.error(f"{sub}.name", "missing or not a string")
        params = doc.get("parameters")
        if params is not None:
            if not isinstance(params, dict):
                raise where.error(f"{sub}.parameters", "must be an object (a JSON Schema)")
            if "properties" in params and not isinstance(params["properties"], dict):
                raise where.error(f"{sub}.parameters.properties", "must be an object")
            if "required" in params and not isinstance(params["required"], list):
                raise where.error(f"{sub}.parameters.required", "must be a list of names")
        out.append(dict(doc))
    return out


def _check_ground_truth(gt: Any, where: _Where) -> None:
    if not isinstance(gt, list):
        raise where.error("ground_truth", "must be a list of {function_name: {param: [acceptable values]}}")
    for i, entry in enumerate(gt):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise where.error(f"ground_truth[{i}]", "must be an object with exactly one function name")
        (name, params), = entry.items()
        if not isinstance(params, dict):
            raise where.error(f"ground_truth[{i}].{name}", "must map parameter names to lists of acceptable values")
        for param, acceptable in params.items():
            if not isinstance(acceptable, list):
                raise where.error(f"ground_truth[{i}].{name}.{param}", "acceptable values must be a list")


def _check_answer_functions(gt: list[dict], tools: list[dict], where: _Where) -> None:
    names = {t["name"] for t in tools}
    for i, entry in enumerate(gt):
        name = next(iter(entry))
        if name not in names:
            raise where.error(f"ground_truth[{i}]", f"function {name!r} is not among the entry's functions")


def _check_answer_count(gt: list[dict], category: str, where: _Where) -> None:
    if category in ("simple", "multiple") and len(gt) != 1:
        raise where.error("ground_truth", f"a {category} entry needs exactly one expected call, got {len(gt)}")
    if not gt:
        raise where.error("ground_truth", f"a {category} entry needs at least one expected call")


def _category_from_id(entry_id: str, where: _Where) -> str | None:
    match = _ID_PREFIX_RE.match(entry_id)
    if not match:
        return None
    try:
        return normalise_category(match["prefix"])
    except ValueError as err:
        if match["prefix"].lower().removeprefix("live_") in UNSUPPORTED_LANGUAGE_CATEGORIES:
            raise where.error("id", str(err)) from None  # scored by Python rules, its verdicts would be inverted
        return None


def _category_from_name(stem: str) -> str | None:
    lowered = stem.lower()
    for suffix, category in _NAME_SUFFIXES:
        if lowered.endswith(suffix) or lowered == suffix[1:]:
            return category
    return None


def _infer_category(calls: list, n_tools: int) -> str:
    """From the expected calls (``[{"name"}]`` or BFCL ground truth ``[{name: {...}}]``)."""
    names = [c["name"] if "name" in c and isinstance(c.get("name"), str) else next(iter(c)) for c in calls]
    if not names:
        return "irrelevance"
    if len(names) == 1:
        return "simple" if n_tools <= 1 else "multiple"
    return "parallel" if len(set(names)) == 1 else "parallel_multiple"


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------


def _read_entries(path: Path, limit: int | None = None) -> Iterator[tuple[_Where, Any]]:
    """JSON values of a JSON-lines file (blank lines skipped) or of a JSON array file, with the line
    each starts on."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise _Where(path, None).error("file", f"not UTF-8 text ({exc})") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        yield from _read_array(path, text, limit)
        return
    count = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if limit is not None and count >= limit:
            return
        if not line.strip():
            continue
        try:
            obj = json_loads(line, "entry")
        except json.JSONDecodeError as exc:
            raise _Where(path, number).error("line", f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        except JSONLimitError as exc:
            raise _Where(path, number).error("line", str(exc)) from None
        count += 1
        yield _Where(path, number), obj


def _read_array(path: Path, text: str, limit: int | None) -> Iterator[tuple[_Where, Any]]:
    pos = text.index("[") + 1
    count = 0

    def skip(p: int) -> int:
        while p < len(text) and text[p].isspace():
            p += 1
        return p

    def end(p: int) -> None:  # after the array's closing ']': nothing but whitespace
        p = skip(p + 1)
        if p < len(text):
            raise _Where(path, text.count("\n", 0, p) + 1).error("file", "text after the JSON array's closing ']'")

    pos = skip(pos)
    if pos < len(text) and text[pos] == "]":
        end(pos)
        return
    while True:
        if limit is not None and count >= limit:
            return
        line = text.count("\n", 0, pos) + 1
        try:
            obj, pos = json_raw_decode(text, pos, "entry")
        except json.JSONDecodeError as exc:
            raise _Where(path, exc.lineno).error("entry", f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        except JSONLimitError as exc:
            raise _Where(path, line).error("entry", str(exc)) from None
        count += 1
        yield _Where(path, line), obj
        pos = skip(pos)
        if pos < len(text) and text[pos] == ",":
            pos = skip(pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            if limit is None or count < limit:
                end(pos)
            return
        raise _Where(path, text.count("\n", 0, pos) + 1).error("entry", "expected ',' or ']' in the JSON array")


def _first_entry(path: Path) -> tuple[_Where, Any] | None:
    for item in _read_entries(path, limit=1):
        return item
    return None


# --------------------------------------------------------------------------------------------
# User suites
# --------------------------------------------------------------------------------------------


def load_user_suite(path: str | os.PathLike, limit: int | None = None, name: str | None = None) -> list[EvalRequest]:
    """A user's evaluation suite: a directory or a single file, in BFCL format (``question`` +
    ``function`` per entry, ground truth in ``possible_answer/<same file name>``) or in OpenAI-messages
    JSON lines (``messages``, ``tools``, ``expected_calls``). The format is detected per file from its
    first entry. ``limit`` caps the whole suite; ``name`` (default: the path's stem) is the suite name."""
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in (".json", ".jsonl"))
        if not files:
            raise ValueError(f"{root}: no *.json or *.jsonl question files")
    elif root.is_file():
        files = [root]
    else:
        raise FileNotFoundError(f"evaluation suite {root} does not exist")
    suite = name or root.stem

    requests: list[EvalRequest] = []
    seen: dict[str, str] = {}
    for file in files:
        remaining = None if limit is None else limit - len(requests)
        if remaining is not None and remaining <= 0:
            break
        first = _first_entry(file)
        if first is None:
            raise _Where(file, None).error("file", "holds no entries (an empty suite evaluates nothing)")
        where, obj = first
        if not isinstance(obj, dict):
            raise where.error("entry", "expected a JSON object")
        if "question" in obj:
            answer_path = file.parent / "possible_answer" / file.name
            category = _category_from_name(file.stem)
            loaded = _load_bfcl_file(
                file,
                answer_path if answer_path.is_file() else None,
                suite=suite,
                limit=remaining,
                category=category,
                seen=seen,
            )
        elif "messages" in obj:
            loaded = _load_messages_file(file, suite=suite, limit=remaining, synthetic=False, seen=seen)
        else:
            raise where.error(
                "entry", "neither BFCL format (a 'question' field) nor OpenAI messages format (a 'messages' field)"
            )
        requests.extend(loaded)
    return requests


def _expected_calls(raw: Any, where: _Where, field: str) -> list[dict]:
    if not isinstance(raw, list):
        raise where.error(field, "must be a list of {'name', 'arguments'} calls")
    calls = []
    for i, call in enumerate(raw):
        if not isinstance(call, dict):
            raise where.error(f"{field}[{i}]", "a call must be an object")
        sub = f"{field}[{i}]"
        if "name" not in call and isinstance(call.get("function"), dict):  # OpenAI tool_calls item
            call, sub = call["function"], f"{sub}.function"
        if not isinstance(call.get("name"), str) or not call["name"]:
            raise where.error(f"{sub}.name", "missing or not a string")
        args = call.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError as exc:
                raise where.error(f"{sub}.arguments", f"invalid JSON string: {exc.msg}") from None
        if not isinstance(args, dict):
            raise where.error(f"{sub}.arguments", "must be an object")
        calls.append({"name": call["name"], "arguments": args})
    return calls


def _load_messages_file(
    path: Path, *, suite: str, limit: int | None, synthetic: bool, seen: dict[str, str],
    categories: tuple[str, ...] | None = None,
) -> list[EvalRequest]:
    requests = []
    entries = _read_entries(path, None if categories else limit)
    if categories:
        entries = itertools.islice(((w, o) for w, o in entries if isinstance(o, dict) and o.get("category")
                                    in categories), limit)
    for index, (where, obj) in enumerate(entries):
        if synthetic and isinstance(obj, dict) and obj.get("category") == MULTI_TURN:
            turns = _conversation_requests(obj, where, suite)
        else:
            turns = [_messages_entry(obj, where, index, path, suite, synthetic)]
        for request in turns:
            _check_unique(request.id, where, seen)
            requests.append(request)
    return requests


def _conversation_requests(obj: dict, where: _Where, suite: str) -> list[EvalRequest]:
    """One request per assistant turn of a ``multi_turn`` sample, teacher-forced: its messages are the gold history
    before that turn, its expected answer that turn's calls (or, for a text turn, no call)."""
    entry_id = obj.get("id")
    if not isinstance(entry_id, str) or not entry_id:
        raise where.error("id", "missing or not a string")
    messages = _messages(obj.get("messages"), where, "messages")
    if "tools" not in obj:
        raise where.error("tools", "missing")
    tools = _tools(obj["tools"], where, "tools")
    by_name = {t["name"]: t for t in tools}
    requests = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        field = f"messages[{i}].tool_calls"
        calls = _expected_calls(message.get("tool_calls") or [], where, field)
        for j, call in enumerate(calls):
            if call["name"] not in by_name:
                raise where.error(f"{field}[{j}].name", f"{call['name']!r} is not one of the offered tools")
        problem = schema_check(calls, tools) if calls else None
        if problem is not None:
            raise where.error(field, f"expected call does not validate: {problem}")
        try:
            answer = [gold_to_possible_answer(by_name[c["name"]], c) for c in calls] or None
        except ValueError as exc:
            raise where.error(field, str(exc)) from None
        score_as = "irrelevance" if not calls else "multiple" if len(calls) == 1 else "parallel_multiple"
        turn = len(requests)
        requests.append(EvalRequest(id=f"{entry_id}/turn{turn}", category=MULTI_TURN, messages=messages[:i],
                                    tools=tools, possible_answer=answer, suite=suite, conversation=entry_id,
                                    turn=turn, score_as=score_as))
    if not requests:
        raise where.error("messages", "a multi_turn conversation without an assistant turn")
    return requests


def _messages_entry(obj: Any, where: _Where, index: int, path: Path, suite: str, synthetic: bool) -> EvalRequest:
    if not isinstance(obj, dict):
        raise where.error("entry", "expected a JSON object")
    if "id" in obj:
        if not isinstance(obj["id"], str | int) or isinstance(obj["id"], bool) or obj["id"] == "":
            raise where.error("id", "must be a non-empty string")
        entry_id = str(obj["id"])
    elif synthetic:
        raise where.error("id", "missing")
    else:
        entry_id = f"{path.stem}_{index}"

    messages = _messages(obj.get("messages"), where, "messages")
    if "tools" not in obj:
        raise where.error("tools", "missing")
    tools = _tools(obj["tools"], where, "tools")

    if synthetic:
        key = "tool_calls"
        if key not in obj:
            raise where.error(key, "missing (use [] for a no-call sample)")
    else:
        key = next((k for k in ("expected_calls", "tool_calls") if k in obj), None)
    if key is not None:
        calls = _expected_calls(obj[key], where, key)
    else:
        # An OpenAI conversation whose last assistant turn is the target.
        last = messages[-1]
        if last["role"] != "assistant" or len(messages) < 2:
            raise where.error(
                "expected_calls", "missing: give 'expected_calls' (or 'tool_calls'), [] for a no-call request"
            )
        key = f"messages[{len(messages) - 1}].tool_calls"
        calls = _expected_calls(last.get("tool_calls") or [], where, key)
        messages = messages[:-1]

    by_name = {t["name"]: t for t in tools}
    for i, call in enumerate(calls):
        if call["name"] not in by_name:
            raise where.error(f"{key}[{i}].name", f"{call['name']!r} is not one of the offered tools")
    try:
        problem = schema_check(calls, tools)
    except ValueError as exc:
        raise where.error("tools", str(exc)) from None
    if problem is not None:
        raise where.error(key, f"expected call does not validate: {problem}")

    if "category" in obj or synthetic:
        raw = obj.get("category")
        if not isinstance(raw, str):
            raise where.error("category", "missing or not a string")
        try:
            category = normalise_category(raw)
        except ValueError as exc:
            raise where.error("category", str(exc)) from None
    else:
        category = _infer_category(calls, len(tools))

    if category in _NO_ANSWER_CATEGORIES:
        if category == "irrelevance" and calls:
            raise where.error(key, "an irrelevance request must expect no call")
        possible_answer = None
    else:
        if not calls:
            raise where.error(key, f"a {category} request needs at least one expected call")
        if category in ("simple", "multiple") and len(calls) != 1:
            raise where.error(key, f"a {category} request expects exactly one call, got {len(calls)}")
        possible_answer = []
        for i, call in enumerate(calls):
            try:
                possible_answer.append(gold_to_possible_answer(by_name[call["name"]], call))
            except ValueError as exc:
                raise where.error(f"{key}[{i}]", str(exc)) from None
    return EvalRequest(
        id=entry_id, category=category, messages=messages, tools=tools, possible_answer=possible_answer, suite=suite
    )


# --------------------------------------------------------------------------------------------
# Our synthetic test split
# --------------------------------------------------------------------------------------------


def load_synthetic_split(
    path: str | os.PathLike, limit: int | None = None, suite: str = "synthetic",
    categories: tuple[str, ...] | None = None,
) -> list[EvalRequest]:
    """Our ``data/test.jsonl`` samples (``id``, ``category``, ``tools``, ``messages``, ``tool_calls``)
    as requests whose possible answers come from `gold_to_possible_answer`; a ``multi_turn`` conversation becomes
    one request per assistant turn (:class:`EvalRequest` ``conversation``/``turn``; ``limit`` counts samples).
    ``categories``: only the samples of these categories (``limit`` counts those)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"synthetic split {file} does not exist")
    return _load_messages_file(file, suite=suite, limit=limit, synthetic=True, seen={}, categories=categories)
