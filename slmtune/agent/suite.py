"""Running an agent stack (usually a :class:`~slmtune.agent.cascade.VerifierCascade`) over a suite of conversations
and measuring it: task success, Cost per Successful Task of the whole stack, and the share of steps each model
answered (SLM share, fallback share).

A task comes from a data sample (DESIGN §6): each user message opens a turn, and the sample's assistant messages
(plus a single-turn sample's target ``tool_calls``) are the gold answers of their turn. The stack runs turn by turn:
the turn's user messages, then steps until a text answer (or ``max_steps``). A task succeeds when every turn ends in
a text answer and in every turn the calls that ran without error are exactly that turn's gold calls as a multiset
(arguments compared with the tool's top-level defaults filled in, integral floats as integers), whatever steps they
came in. Calls refused or
failed on the way do not count against it (the loop feeds the error back and the model may correct itself); they
cost what they cost. Text answers are not compared (an ``ask`` turn succeeds by asking in any words and not calling).

Usage::

    tasks = tasks_from_samples(read_jsonl("outputs/gemma270m/main/data/test.jsonl"))
    fallback = RecordedPolicy(gold_recordings(tasks, registry), name="fallback", price=Price(0.15, 0.6))
    report = run_suite(tasks, registry, VerifierCascade(slm, fallback, router=router), max_steps=4)
    # report["rows"][i]["turns"]: each turn's trace; report["summary"]: success_rate, cps_usd, share, models
    print(report["summary"]["cps_usd"], report["summary"]["share"])
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slmtune.agent.executors import RegistryExecutor
from slmtune.agent.loop import REASONS, Policy, ToolCallError, TurnTrace, function_dicts, run_turn
from slmtune.data.registry import ToolRegistry
from slmtune.models.dialects import normalize_call

__all__ = ["Task", "Turn", "gold_recordings", "run_suite", "runnable_tasks", "summarize_suite", "task_succeeded",
           "tasks_from_samples"]


@dataclass
class Turn:
    """One user turn of a task: the messages the user (or system) adds, then the gold assistant messages of the turn
    (``{"tool_calls": [...]}`` steps, then ``{"content": text}``; text ``None`` where the sample has none)."""

    messages: list[dict]
    answers: list[dict] = field(default_factory=list)


@dataclass
class Task:
    """One conversation of a suite: the offered tools (function dicts) and its turns with their gold answers."""

    id: str
    category: str
    tools: list[dict]
    turns: list[Turn]

    @property
    def gold_calls(self) -> list[dict]:
        return [call for turn in self.turns for answer in turn.answers for call in answer.get("tool_calls", [])]


def _turns(messages: list[dict], target: list[dict], where: str) -> list[Turn]:
    turns: list[Turn] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "user"):
            if not turns or turns[-1].answers:
                turns.append(Turn([]))
            turns[-1].messages.append(dict(message))
        elif role == "assistant":
            if not turns:
                raise ValueError(f"{where}: an assistant message before any user message")
            calls = [normalize_call(c) for c in message.get("tool_calls") or []]
            turns[-1].answers.append({"tool_calls": calls} if calls else {"content": message.get("content") or ""})
        elif role != "tool":  # tool results are produced again by the executor
            raise ValueError(f"{where}: unsupported role {role!r}")
    if not turns:
        raise ValueError(f"{where}: no user message")
    last = turns[-1]
    if target:
        last.answers.append({"tool_calls": target})
    if not last.answers or "content" not in last.answers[-1]:
        last.answers.append({"content": None})
    return turns


def tasks_from_samples(samples: Iterable[Mapping[str, Any]]) -> list[Task]:
    """Tasks from data samples: a single-turn sample (its ``messages`` and target ``tool_calls``), a multi-turn
    conversation (every assistant message of ``messages`` is gold; a later user message opens a new turn), or a
    sample holding earlier turns before its target. Samples of one conversation cut at different turns (the same
    first turn and tools) give one task, the one with the most gold answers."""
    by_request: dict[str, Task] = {}
    for index, sample in enumerate(samples):
        where = f"sample {sample.get('id', index)}"
        messages = sample.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError(f"{where}: no messages")
        turns = _turns(messages, [normalize_call(c) for c in sample.get("tool_calls") or []], where)
        tools = function_dicts(sample.get("tools") or [])
        task = Task(str(sample.get("id", index)), str(sample.get("category", "")), tools, turns)
        key = json.dumps([turns[0].messages, sorted(t["name"] for t in tools)], sort_keys=True, default=str)
        size = sum(len(t.answers) for t in turns)
        if key not in by_request or size > sum(len(t.answers) for t in by_request[key].turns):
            by_request[key] = task
    return list(by_request.values())


def runnable_tasks(tasks: Iterable[Task], registry: ToolRegistry) -> list[Task]:
    """The tasks whose offered tools are all in ``registry`` and whose gold calls all have an implementation there
    (a gold call that cannot run can never be matched)."""
    def runnable(task: Task) -> bool:
        return all(t["name"] in registry for t in task.tools) and all(
            registry.get(c["name"]).implementation is not None for c in task.gold_calls if c["name"] in registry)

    return [task for task in tasks if runnable(task)]


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    return value


def _call_key(call: Mapping[str, Any], tools: Mapping[str, dict]) -> str:
    params = (tools.get(call["name"]) or {}).get("parameters") or {}
    defaults = {k: s["default"] for k, s in (params.get("properties") or {}).items()
                if isinstance(s, dict) and "default" in s}
    arguments = _canonical(defaults | dict(call["arguments"]))
    return json.dumps([call["name"], arguments], sort_keys=True, ensure_ascii=False)


def task_succeeded(task: Task, traces: list[TurnTrace]) -> bool:
    """Every turn ran and ended in a text answer, and in each turn the calls that ran without error are that turn's
    gold calls (as a multiset, whatever steps they came in)."""
    if len(traces) != len(task.turns) or any(trace.stopped != "answer" for trace in traces):
        return False
    tools = {t["name"]: t for t in task.tools}
    for turn, trace in zip(task.turns, traces):
        ran = Counter(_call_key({"name": r.name, "arguments": r.arguments}, tools)
                      for record in trace.steps for r in record.results if r.ok)
        gold = Counter(_call_key(c, tools) for answer in turn.answers for c in answer.get("tool_calls", []))
        if ran != gold:
            return False
    return True


def gold_recordings(tasks: Iterable[Task], registry: ToolRegistry, *, final_text: Callable[[Task], str] | None = None,
                    count_tokens: Callable[[list[dict], list[dict], dict], tuple[int, int]] | None = None
                    ) -> list[dict]:
    """:class:`~slmtune.agent.policies.RecordedPolicy` records that answer every step of every task as its gold
    labels do (an oracle fallback): at each gold answer the conversation so far (gold calls executed through the
    registry, as the loop would) and that answer; a text answer the sample does not write is ``final_text(task)``
    (default: a sentence naming the tools called). ``count_tokens(messages, tools, answer)`` gives each record's
    ``(tokens_in, tokens_out)``; without it the records carry none (their cost is then zero)."""
    records = []
    for task in tasks:
        executor = RegistryExecutor(registry, [t["name"] for t in task.tools])
        names = sorted({c["name"] for c in task.gold_calls})
        default_text = final_text(task) if final_text else (
            f"Done (called {', '.join(names)})." if names else "None of the available tools can do that.")
        messages: list[dict] = []
        for turn in task.turns:
            messages.extend(dict(m) for m in turn.messages)
            for answer in turn.answers:
                if "content" in answer and answer["content"] is None:
                    answer = {"content": default_text}
                record = {"id": task.id, "messages": [dict(m) for m in messages], "answer": answer}
                if count_tokens is not None:
                    record["tokens_in"], record["tokens_out"] = count_tokens(messages, task.tools, answer)
                records.append(record)
                if not answer.get("tool_calls"):
                    messages.append({"role": "assistant", "content": answer["content"]})
                    continue
                messages.append({"role": "assistant", "tool_calls": answer["tool_calls"]})
                for call in answer["tool_calls"]:
                    try:
                        content = executor.execute(call["name"], call["arguments"])
                    except ToolCallError as err:
                        raise ValueError(f"task {task.id}: the gold call {call['name']} does not run: {err}") from None
                    messages.append({"role": "tool", "name": call["name"], "content": content})
    return records


def run_suite(tasks: Iterable[Task], registry: ToolRegistry, policy: Policy, *, max_steps: int,
              on_task: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Run ``policy`` on every task, turn by turn (each turn's user messages, then :func:`run_turn` up to
    ``max_steps`` steps; a turn that ends without a text answer ends the task), over the registry's implementations
    of the task's tools. Returns ``{"rows": [...], "summary": {...}}`` (:func:`summarize_suite`); a row's ``turns``
    holds each turn's trace. A task whose run raises (an endpoint that fails, ...) is a failed row with its
    ``failure`` and the traces of the turns it finished; the others go on."""
    rows = []
    for task in tasks:
        row: dict[str, Any] = {"id": task.id, "category": task.category, "gold_calls": task.gold_calls,
                               "failure": None}
        traces: list[TurnTrace] = []
        try:
            executor = RegistryExecutor(registry, [t["name"] for t in task.tools])
            messages: list[dict] = []
            for turn in task.turns:
                messages.extend(dict(m) for m in turn.messages)
                traces.append(run_turn(messages, executor, policy, max_steps=max_steps))
                if traces[-1].stopped != "answer":
                    break
        except Exception as err:  # noqa: BLE001 - one task's failure must not stop the suite
            row["failure"] = f"{type(err).__name__}: {err}"
        row["success"] = row["failure"] is None and task_succeeded(task, traces)
        row["turns"] = [trace.to_dict() for trace in traces]
        rows.append(row)
        if on_task is not None:
            on_task(row)
    return {"rows": rows, "summary": summarize_suite(rows)}


def summarize_suite(rows: list[dict]) -> dict[str, Any]:
    """Success rate, total cost, CPS (total cost of every attempt ÷ successful tasks), and per model: steps answered
    (its share of all steps), attempts, tokens and cost; steps by reason; tasks that used each model at least once."""
    n = len(rows)
    successes = sum(bool(r["success"]) for r in rows)
    steps = [s for r in rows for turn in r["turns"] for s in turn["steps"]]
    answered = Counter(s["answered_by"] for s in steps)
    models: dict[str, dict[str, float]] = {}
    for s in steps:
        for attempt in [*s["attempts"], s]:
            entry = models.setdefault(attempt["answered_by"], {"attempts": 0, "tokens_in": 0, "tokens_out": 0,
                                                               "cost_usd": 0.0, "latency_s": 0.0})
            entry["attempts"] += 1
            own = attempt if attempt is not s else s["usage"]
            for key in ("tokens_in", "tokens_out", "cost_usd", "latency_s"):
                entry[key] += own[key]
    cost = sum(m["cost_usd"] for m in models.values())
    total_steps = len(steps)
    used = Counter(name for r in rows for name in {s["answered_by"] for turn in r["turns"] for s in turn["steps"]})
    return {
        "n": n, "successes": successes, "success_rate": successes / n if n else None,
        "failed_runs": sum(r["failure"] is not None for r in rows),
        "steps": total_steps, "cost_usd": cost, "cps_usd": cost / successes if successes else None,
        "share": {name: count / total_steps for name, count in sorted(answered.items())} if total_steps else {},
        "tasks_using": {name: count / n for name, count in sorted(used.items())} if n else {},
        "reasons": {reason: sum(s["reason"] == reason for s in steps) for reason in REASONS},
        "models": models,
    }

