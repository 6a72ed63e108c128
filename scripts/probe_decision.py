"""Probe: how an adapter decides between a call and a plain-text answer, on many more requests than eval decodes.

One forward pass per request (no generation): at the prompt's last position, the logit of the first token of a call
completion minus that of the no-call answer's first token (> 0: the model starts a call). Reports per suite and gold
answer (call / no call) the share decided right and the mean margin, then the AUROC of the margin between call and
no-call requests (BFCL: simple_python vs irrelevance; synthetic: its calls vs its no-calls): how well the model tells
them apart whatever its bias towards calling (0.5 = not at all).

Usage: python scripts/probe_decision.py ADAPTER_DIR|base [--recipe gemma270m] [--n 100]
       [--synthetic outputs/gemma270m/main/data/test.jsonl]
(BFCL irrelevance and simple_python: the first N requests; the synthetic split: the first 1.5 N)
"""

from __future__ import annotations

import argparse
import time

import torch

from slmtune.config import compose
from slmtune.data.registry import make_tool
from slmtune.eval.suites import load_bfcl, load_synthetic_split
from slmtune.models.loading import attach_adapter, load_base_model, load_tokenizer, resolve_model_source
from slmtune.route.metrics import auroc
from slmtune.stages.common import dialect_of, family_of
from slmtune.train.trainer import NO_CALL_ANSWER


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("adapter", help="adapter directory, or 'base'")
    parser.add_argument("--recipe", default="gemma270m")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--synthetic", default="outputs/gemma270m/main/data/test.jsonl")
    args = parser.parse_args()

    cfg = compose([f"+recipe={args.recipe}"])
    family, dialect = family_of(cfg), dialect_of(cfg)
    source = resolve_model_source(cfg.model)
    tokenizer = load_tokenizer(source, cfg.model.trust_remote_code)
    model = load_base_model(source, dtype=torch.float32, device=torch.device("cpu"),
                            trust_remote_code=cfg.model.trust_remote_code)
    if args.adapter != "base":
        model = attach_adapter(model, args.adapter)
    model.eval()
    call_completion = family.render_completion([{"name": "f", "arguments": {}}], None, dialect, tools=[])
    call_id = tokenizer(call_completion, add_special_tokens=False)["input_ids"][0]
    no_call_id = tokenizer(NO_CALL_ANSWER, add_special_tokens=False)["input_ids"][0]
    print(f"call token {tokenizer.decode([call_id])!r}, no-call token {tokenizer.decode([no_call_id])!r}")
    suites = {"bfcl:irrelevance": load_bfcl("irrelevance", limit=args.n),
              "bfcl:simple_python": load_bfcl("simple_python", limit=args.n),
              "synthetic": load_synthetic_split(args.synthetic, limit=int(1.5 * args.n))}
    started = time.perf_counter()
    by_source: dict[str, dict[str, list[float]]] = {}  # "bfcl" / "synthetic" -> gold -> margins
    for name, requests in suites.items():
        margins: dict[str, list[float]] = {"call": [], "no call": []}
        for request in requests:
            tools = [make_tool(t, source=f"{request.id}.tools[{i}]").function_dict()
                     for i, t in enumerate(request.tools)]
            prompt = family.render_prompt(request.messages, tools, dialect)
            ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
            with torch.inference_mode():
                logits = model(input_ids=ids, logits_to_keep=1).logits[0, -1].float()
            gold = "call" if request.possible_answer is not None else "no call"
            margins[gold].append(float(logits[call_id] - logits[no_call_id]))
        for gold, values in margins.items():
            if values:
                right = sum((m > 0) == (gold == "call") for m in values)
                print(f"{name:20s} gold={gold:7s} n={len(values):3d} decided_right={right / len(values):.3f} "
                      f"mean_margin={sum(values) / len(values):+.2f}")
                by_source.setdefault(name.split(":")[0], {}).setdefault(gold, []).extend(values)
    for source, gold_margins in by_source.items():
        calls, no_calls = gold_margins.get("call", []), gold_margins.get("no call", [])
        separation = auroc(calls + no_calls, [1] * len(calls) + [0] * len(no_calls))
        print(f"{source:20s} margin AUROC call vs no call = {separation:.3f}")
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
