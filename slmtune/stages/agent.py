"""``python -m slmtune agent``: run the SLM-default, LLM-fallback stack on one request over catalog tools and print
its trace, or measure it on a suite of conversations (success, CPS, SLM and fallback shares).

Usage:
  python -m slmtune agent +recipe=gemma270m agent.adapter=outputs/gemma270m/main/train/adapter \\
      agent.request='Cancel EVT-7731 and tell the attendees.' 'agent.tools=[cal.cancel_event,cal.events_in_range]'
  python -m slmtune agent +recipe=gemma270m agent.adapter=... agent.suite=outputs/gemma270m/main/data/test.jsonl \\
      agent.router=outputs/gemma270m/main/export/router.json agent.fallback=gold
Unlike the pipeline's stages it writes nothing into the run directory: ``agent.output`` writes the trace or the
suite's report as JSON (a suite's finished tasks go to ``<output>.rows.partial.jsonl`` as they finish, removed once
the report is written).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from slmtune.agent.cascade import VerifierCascade
from slmtune.agent.executors import RegistryExecutor
from slmtune.agent.loop import LocalModelPolicy, Price, TurnTrace, run_turn
from slmtune.agent.policies import OpenAIEndpointPolicy, RecordedPolicy
from slmtune.agent.suite import Task, gold_recordings, run_suite, runnable_tasks, tasks_from_samples
from slmtune.config import CostConfig, SlmtuneConfig
from slmtune.data.registry import load_catalog
from slmtune.progress import Progress
from slmtune.rundir import atomic_write_json, read_jsonl
from slmtune.stages.common import dialect_of, family_of, log

SLM, FALLBACK = "slm", "fallback"


def price(cost: CostConfig) -> Price:
    return Price(cost.usd_per_1m_input_tokens, cost.usd_per_1m_output_tokens, cost.usd_per_hour)


def check_inputs(cfg: SlmtuneConfig) -> None:
    """Fail before any model loads on what the config names wrongly."""
    agent = cfg.agent
    if (agent.request is None) == (agent.suite is None):
        raise ValueError("agent: give either agent.request (with agent.tools) or agent.suite")
    if agent.request is not None and not agent.tools:
        raise ValueError("agent.tools: name the catalog tools to offer, e.g. 'agent.tools=[cal.cancel_event]'")
    if agent.suite is not None and not Path(agent.suite).is_file():
        raise FileNotFoundError(f"agent.suite: {agent.suite} is not a file")
    if agent.adapter is not None and not Path(agent.adapter).is_dir():
        raise FileNotFoundError(f"agent.adapter: {agent.adapter} is not a directory")
    if agent.router is not None and not Path(agent.router).is_file():
        raise FileNotFoundError(f"agent.router: {agent.router} is not a file")
    if agent.max_steps < 1:
        raise ValueError(f"agent.max_steps: {agent.max_steps} must be >= 1")
    fallback = agent.fallback
    if fallback is None:
        return
    if fallback.startswith(("http://", "https://")):
        if not agent.fallback_model:
            raise ValueError("agent.fallback_model: name the model the endpoint serves")
        if agent.fallback_api_key_env and agent.fallback_api_key_env not in os.environ:
            raise ValueError(f"agent.fallback_api_key_env: the environment has no {agent.fallback_api_key_env}")
    elif fallback == "gold":
        if agent.suite is None:
            raise ValueError("agent.fallback=gold answers from a suite's labels: it needs agent.suite")
    elif not Path(fallback).is_file():
        raise FileNotFoundError(f"agent.fallback: {fallback} is neither http(s)://…, 'gold' nor a recorded-answers "
                                "file")


def _slm(cfg: SlmtuneConfig) -> LocalModelPolicy:
    from slmtune.eval.decoding import resolve_dtype
    from slmtune.models.loading import (
        attach_adapter,
        default_device,
        load_base_model,
        load_tokenizer,
        resolve_model_source,
    )

    source = resolve_model_source(cfg.model)
    tokenizer = load_tokenizer(source, cfg.model.trust_remote_code)
    device = default_device()
    model = load_base_model(source, dtype=resolve_dtype(cfg.agent.precision, device),
                            trust_remote_code=cfg.model.trust_remote_code, device=device)
    if cfg.agent.adapter is not None:
        model = attach_adapter(model, cfg.agent.adapter)
    model.eval()
    return LocalModelPolicy(model, tokenizer, family_of(cfg), dialect_of(cfg), name=SLM,
                            max_new_tokens=cfg.agent.max_new_tokens, max_text_tokens=cfg.agent.max_text_tokens,
                            closing_reserve=cfg.agent.closing_reserve, price=price(cfg.agent.slm_cost))


def _fallback(cfg: SlmtuneConfig, slm: LocalModelPolicy, tasks: list[Task], registry):
    agent = cfg.agent
    if agent.fallback is None:
        return None
    cost = price(agent.fallback_cost)
    if agent.fallback.startswith(("http://", "https://")):
        key = os.environ[agent.fallback_api_key_env] if agent.fallback_api_key_env else None
        return OpenAIEndpointPolicy(agent.fallback, agent.fallback_model, name=FALLBACK, api_key=key, price=cost)
    if agent.fallback == "gold":
        def count_tokens(messages: list[dict], tools: list[dict], answer: dict) -> tuple[int, int]:
            prompt = slm.family.render_prompt(messages, tools, slm.dialect)
            completion = slm.family.render_completion(answer.get("tool_calls"), answer.get("content"), slm.dialect,
                                                      tools)
            count = slm.tokenizer
            return (len(count(prompt, add_special_tokens=False)["input_ids"]),
                    len(count(completion, add_special_tokens=False)["input_ids"]))

        return RecordedPolicy(gold_recordings(tasks, registry, count_tokens=count_tokens), name=FALLBACK, price=cost,
                              source=f"the labels of {agent.suite}")
    return RecordedPolicy.load(agent.fallback, name=FALLBACK, price=cost)


def run(cfg: SlmtuneConfig) -> dict[str, Any]:
    """Run one request (printing its trace) or a suite (printing its summary); returns the trace or report dict."""
    check_inputs(cfg)
    agent = cfg.agent
    registry = load_catalog(cfg.data.catalog_dir) if cfg.data.catalog_dir else load_catalog()
    tasks = []
    if agent.suite is not None:
        every = tasks_from_samples(read_jsonl(agent.suite))
        tasks = runnable_tasks(every, registry)[: agent.limit]
        if len(tasks) < min(len(every), agent.limit or len(every)):
            log.info("agent: %d of %d suite tasks need tools this registry cannot run; the first %d runnable ones run",
                     len(every) - len(runnable_tasks(every, registry)), len(every), len(tasks))
    else:
        RegistryExecutor(registry, agent.tools)  # unknown tool names fail before the model loads
    router = None
    if agent.router is not None:
        from slmtune.router import Router

        router = Router.load(agent.router)
        router.threshold_for(agent.target_precision)
    slm = _slm(cfg)
    fallback = _fallback(cfg, slm, tasks, registry)
    cascade = VerifierCascade(slm, fallback, router=router, target_precision=agent.target_precision,
                              route_text=agent.route_text)
    if agent.request is not None:
        messages = [{"role": "user", "content": agent.request}]
        trace = run_turn(messages, RegistryExecutor(registry, agent.tools), cascade, max_steps=agent.max_steps)
        print(format_trace(trace))
        result = trace.to_dict() | {"messages": messages}
    else:
        rows_file = Path(f"{agent.output}.rows.partial.jsonl") if agent.output is not None else None
        if rows_file is not None:
            rows_file.unlink(missing_ok=True)

        def finished(row: dict[str, Any]) -> None:
            bar.update(1)
            log.info("agent: %s", task_line(row))
            if rows_file is not None:  # what a killed run leaves behind
                with rows_file.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")

        with Progress("agent: suite", total=len(tasks), unit="tasks") as bar:
            result = run_suite(tasks, registry, cascade, max_steps=agent.max_steps, on_task=finished)
        if rows_file is not None:
            rows_file.unlink(missing_ok=True)
        result["config"] = {"suite": agent.suite, "n": len(tasks), "router": agent.router,
                            "target_precision": agent.target_precision, "fallback": agent.fallback,
                            "adapter": agent.adapter, "model": cfg.model.source}
        print(format_summary(result["summary"]))
    if agent.output is not None:
        atomic_write_json(Path(agent.output), result)
        log.info("agent: wrote %s", agent.output)
    return result


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_trace(trace: TurnTrace) -> str:
    """The trace as text: one block per step (who answered and why, p_correct, tokens, cost, time), its calls with
    their results, rejected attempts, and the final answer."""
    lines = []
    for record in trace.steps:
        step = record.step
        p = f" p_correct={step.p_correct:.3f}" if step.p_correct is not None else ""
        lines.append(f"step {record.index + 1}: {record.answered_by} ({record.reason}){p} tokens {record.tokens_in} in"
                     f" / {record.tokens_out} out, ${record.cost_usd:.6f}, {record.latency_s:.2f} s")
        for attempt in step.attempts:
            ap = f" p_correct={attempt.p_correct:.3f}" if attempt.p_correct is not None else ""
            said = attempt.calls or attempt.content or attempt.error
            lines.append(f"  rejected {attempt.answered_by} answer ({attempt.reason}{ap}): {_short(said)}")
        for result in record.results:
            lines.append(f"  call {result.name} {_short(result.arguments)}")
            lines.append(f"    {'->' if result.ok else 'refused/failed ->'} {_short(result.content)}")
        if not step.calls:
            lines.append(f"  answer: {_short(step.content or '', 400)}" + (f" [{step.error}]" if step.error else ""))
    by = ", ".join(f"{name} {count}" for name, count in trace.answered_by().items())
    lines.append(f"stopped: {trace.stopped}; steps by {by}; tokens {trace.tokens_in} in / {trace.tokens_out} out; "
                 f"cost ${trace.cost_usd:.6f}; {trace.latency_s:.2f} s")
    return "\n".join(lines)


def task_line(row: dict[str, Any]) -> str:
    """One suite task's outcome: success, who answered each step and why, cost."""
    turns = " | ".join(" ".join(f"{s['answered_by']}:{s['reason']}" for s in turn["steps"]) + f" ({turn['stopped']})"
                       for turn in row["turns"])
    failure = f"; failed to run: {row['failure']}" if row["failure"] else ""
    cost = sum(turn["cost_usd"] for turn in row["turns"])
    return f"{row['id']} ({row['category']}): {'success' if row['success'] else 'fail'}; {turns}; ${cost:.6f}{failure}"


def format_summary(summary: dict[str, Any]) -> str:
    """The suite summary as text."""
    cps = f"${summary['cps_usd']:.6f}" if summary["cps_usd"] is not None else "n/a (no success)"
    rate = summary["success_rate"]
    lines = [f"tasks {summary['n']}: {summary['successes']} succeeded ({(rate or 0) * 100:.1f} %), "
             f"{summary['failed_runs']} failed to run; steps {summary['steps']}; cost ${summary['cost_usd']:.6f}; "
             f"CPS {cps}",
             "share of steps: " + ", ".join(f"{k} {v * 100:.1f} %" for k, v in summary["share"].items()),
             "tasks using: " + ", ".join(f"{k} {v * 100:.1f} %" for k, v in summary["tasks_using"].items()),
             "steps by reason: " + ", ".join(f"{k} {v}" for k, v in summary["reasons"].items())]
    for name, m in summary["models"].items():
        lines.append(f"{name}: {m['attempts']} answers, tokens {m['tokens_in']} in / {m['tokens_out']} out, "
                     f"${m['cost_usd']:.6f}, {m['latency_s']:.1f} s")
    return "\n".join(lines)
