"""Running an agent stack (usually a :class:`~slmtune.agent.cascade.VerifierCascade`) over a suite of conversations
and measuring it: task success, Cost per Successful Task of the whole stack, and the share of steps each model
answered (SLM share, fallback share).

A task comes from a data sample (DESIGN §6): the conversation up to its first assistant turn is the request; the
calls of its assistant turns plus its target ``tool_calls`` are the gold calls (single-turn samples: the target
alone; no-call samples: none). A task succeeds when the turn ends in a text answer and the calls that ran without
error are exactly the gold calls as a multiset (arguments compared with the tool's top-level defaults filled in, and
integral floats as integers), whatever steps they came in. Calls refused or failed on the way do not count against
it (the loop feeds the error back and the model may correct itself); they cost what they cost.

Usage::

    tasks = tasks_from_samples(read_jsonl("outputs/gemma270m/main/data/test.jsonl"))
    fallback = RecordedPolicy(gold_recordings(tasks, registry), name="fallback", price=Price(0.15, 0.6))
    report = run_suite(tasks, registry, VerifierCascade(slm, fallback, router=router), max_steps=4)
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

__all__ = ["Task", "gold_recordings", "run_suite", "runnable_tasks", "summarize_suite", "task_succeeded",
           "tasks_from_samples"]


@dataclass
class Task:
    """One request of a suite: offered tools (function dicts), the conversation so far, and the gold calls."""

    id: str
    category: str
    tools: list[dict]
    messages: list[dict]
    gold_steps: list[list[dict]] = field(default_factory=list)  # the gold assistant turns' calls, in order

    @property
    def gold_calls(self) -> list[dict]:
        return [call for step in self.gold_steps for call in step]


def tasks_from_samples(samples: Iterable[Mapping[str, Any]]) -> list[Task]:
    """Tasks from data samples (single-turn or multi-turn); samples that share a request (the prefixes of one
    multi-turn conversation) give one task, the one with the most gold steps."""
    by_request: dict[str, Task] = {}
    for index, sample in enumerate(samples):
        where = f"sample {sample.get('id', index)}"
        messages = sample.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError(f"{where}: no messages")
        first = next((i for i, m in enumerate(messages) if m.get("role") == "assistant"), len(messages))
        steps = [[normalize_call(c) for c in m["tool_calls"]] for m in messages[first:]
                 if m.get("role") == "assistant" and m.get("tool_calls")]
        target = [normalize_call(c) for c in sample.get("tool_calls") or []]
        if target:
            steps.append(target)
        tools = function_dicts(sample.get("tools") or [])
        task = Task(str(sample.get("id", index)), str(sample.get("category", "")), tools,
                    [dict(m) for m in messages[:first]], steps)
        key = json.dumps([messages[:first], sorted(t["name"] for t in tools)], sort_keys=True, default=str)
        if key not in by_request or len(steps) > len(by_request[key].gold_steps):
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


def task_succeeded(task: Task, trace: TurnTrace) -> bool:
    """The turn ended in a text answer and its calls that ran without error are the gold calls (as a multiset)."""
    if trace.stopped != "answer":
        return False
    tools = {t["name"]: t for t in task.tools}
    ran = Counter(_call_key({"name": r.name, "arguments": r.arguments}, tools)
                  for record in trace.steps for r in record.results if r.ok)
    return ran == Counter(_call_key(c, tools) for c in task.gold_calls)


def gold_recordings(tasks: Iterable[Task], registry: ToolRegistry, *, final_text: Callable[[Task], str] | None = None,
                    count_tokens: Callable[[list[dict], list[dict], dict], tuple[int, int]] | None = None
                    ) -> list[dict]:
    """:class:`~slmtune.agent.policies.RecordedPolicy` records that answer every step of every task as its gold
    labels do (an oracle fallback): at each gold step the conversation so far (gold calls executed through the
    registry, as the loop would) and the gold calls, then a final text answer (``final_text(task)``, default a
    sentence naming the tools called). ``count_tokens(messages, tools, answer)`` gives each record's
    ``(tokens_in, tokens_out)``; without it the records carry none (their cost is then zero)."""
    records = []
    for task in tasks:
        executor = RegistryExecutor(registry, [t["name"] for t in task.tools])
        messages = [dict(m) for m in task.messages]
        answers = [{"tool_calls": step} for step in task.gold_steps]
        names = sorted({c["name"] for c in task.gold_calls})
        text = final_text(task) if final_text else (f"Done (called {', '.join(names)})." if names else
                                                    "None of the available tools can do that.")
        answers.append({"content": text})
        for answer in answers:
            record = {"id": task.id, "messages": [dict(m) for m in messages], "answer": answer}
            if count_tokens is not None:
                record["tokens_in"], record["tokens_out"] = count_tokens(messages, task.tools, answer)
            records.append(record)
            if answer.get("tool_calls"):
                messages.append({"role": "assistant", "tool_calls": answer["tool_calls"]})
            for call in answer.get("tool_calls", []):
                try:
                    content = executor.execute(call["name"], call["arguments"])
                except ToolCallError as err:
                    raise ValueError(f"task {task.id}: the gold call {call['name']} does not run: {err}") from None
                messages.append({"role": "tool", "name": call["name"], "content": content})
    return records


def run_suite(tasks: Iterable[Task], registry: ToolRegistry, policy: Policy, *, max_steps: int,
              on_task: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Run ``policy`` on every task over the registry's implementations of the task's tools; returns ``{"rows":
    [...], "summary": {...}}`` (:func:`summarize_suite`). A task whose run raises (an endpoint that fails, ...) is a
    failed row with its ``failure``; the others go on."""
    rows = []
    for task in tasks:
        row: dict[str, Any] = {"id": task.id, "category": task.category, "gold_calls": task.gold_calls}
        try:
            executor = RegistryExecutor(registry, [t["name"] for t in task.tools])
            messages = [dict(m) for m in task.messages]
            trace = run_turn(messages, executor, policy, max_steps=max_steps)
        except Exception as err:  # noqa: BLE001 - one task's failure must not stop the suite
            row |= {"success": False, "failure": f"{type(err).__name__}: {err}", "trace": None}
        else:
            row |= {"success": task_succeeded(task, trace), "failure": None, "trace": trace.to_dict()}
        rows.append(row)
        if on_task is not None:
            on_task(row)
    return {"rows": rows, "summary": summarize_suite(rows)}


def summarize_suite(rows: list[dict]) -> dict[str, Any]:
    """Success rate, total cost, CPS (total cost of every attempt ÷ successful tasks), and per model: steps answered
    (its share of all steps), attempts, tokens and cost; steps by reason; tasks that used each model at least once."""
    n = len(rows)
    successes = sum(bool(r["success"]) for r in rows)
    steps = [s for r in rows if r["trace"] for s in r["trace"]["steps"]]
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
    used = Counter(name for r in rows if r["trace"] for name in r["trace"]["answered_by"])
    return {
        "n": n, "successes": successes, "success_rate": successes / n if n else None,
        "failed_runs": sum(r["failure"] is not None for r in rows),
        "steps": total_steps, "cost_usd": cost, "cps_usd": cost / successes if successes else None,
        "share": {name: count / total_steps for name, count in sorted(answered.items())} if total_steps else {},
        "tasks_using": {name: count / n for name, count in sorted(used.items())} if n else {},
        "reasons": {reason: sum(s["reason"] == reason for s in steps) for reason in REASONS},
        "models": models,
    }

