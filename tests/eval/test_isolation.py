"""Per-request isolation and per-batch resume of the evaluation loop (issue 21)."""

from __future__ import annotations

import pytest

from slmtune.eval import evaluation
from slmtune.eval.decoding import Generation
from slmtune.eval.evaluation import evaluate, prepare_requests, summarize
from slmtune.eval.suites import EvalRequest
from slmtune.models.families import FAMILIES

FAMILY = FAMILIES["qwen2"]
DIALECT = FAMILY.dialect()  # hermes


def tool(name: str) -> dict:
    return {"name": name, "description": "Current time in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def request(i: int, tool_name: str = "get_time", tools: list | None = None) -> EvalRequest:
    return EvalRequest(id=f"r{i}", category="simple", messages=[{"role": "user", "content": f"Time in city {i}?"}],
                       tools=tools or [tool(tool_name)], possible_answer=[{tool_name: {"city": [f"c{i}"]}}],
                       suite="test")


class Crash(BaseException):
    """A simulated kill (not an Exception: nothing may catch it)."""


class FakeDecoder:
    """Answers every request with a call to its first tool; poisons chosen by prompt / grammar text."""

    def __init__(self, crash_on_call: int | None = None) -> None:
        self.calls = 0
        self.decoded: list[str] = []
        self.crash_on_call = crash_on_call

    def compiled(self, grammar: str):
        if "no_compile" in grammar:
            raise RuntimeError("xgrammar: cannot compile")
        return grammar

    def generate(self, requests, batch_size=8):
        self.calls += 1
        if self.calls == self.crash_on_call:
            raise Crash
        if any("city 3?" in r.prompt for r in requests):
            raise RuntimeError("CUDA error: device-side assert")
        out = []
        for r in requests:
            self.decoded.append(r.prompt)
            number = r.prompt.split("city ")[1].split("?")[0]
            name = "get_time" if "no_score" not in r.prompt and "no_compile" not in r.prompt else "x"
            text = DIALECT.render_calls([{"name": name, "arguments": {"city": f"c{number}"}}])
            out.append(Generation(text=text, output_tokens=5, forced_tokens=0, truncated=False, latency_s=0.1,
                                  batch_size=len(requests)))
        return out


def test_one_poisoned_request_of_each_kind_leaves_the_others_scored(monkeypatch):
    bad_schema = [{"name": "get_time", "parameters": {"type": "object", "properties": {"city": {}},
                                                       "required": [["city"]]}}]
    requests = [request(0), request(1, tools=bad_schema), request(2, "no_compile"), request(3), request(4),
                request(5, "no_score"), request(6)]
    real = evaluation.ast_check

    def ast_check(calls, tools, possible_answer, category):
        if "no_score" in str(tools):
            raise TypeError("unhashable type: 'list'")
        return real(calls, tools, possible_answer, category)

    monkeypatch.setattr(evaluation, "ast_check", ast_check)
    prepared = prepare_requests(requests, FAMILY, DIALECT, constrained=True)
    rows, _ = evaluate(prepared, FakeDecoder(), DIALECT, batch_size=2)
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(7)]
    failure = {r["id"]: r["failure"] for r in rows}
    assert failure == {"r0": None, "r1": "prepare", "r2": "compile", "r3": "decode", "r4": None, "r5": "score",
                       "r6": None}
    assert [r["valid"] for r in rows] == [True, False, False, False, True, False, True]
    assert rows[3]["error"].startswith("decode: RuntimeError") and rows[5]["error"].startswith("score: TypeError")
    metrics = summarize(rows, 1.0, usd_per_hour=1.0)
    assert metrics["failed"] == {"prepare": 1, "compile": 1, "decode": 1, "score": 1}
    assert metrics["ast_accuracy"] == pytest.approx(3 / 7)


def test_a_crash_after_batch_k_resumes_without_decoding_finished_batches(tmp_path):
    requests = [request(i) for i in (0, 1, 2, 4, 5, 6, 7)]  # 4 batches of <= 2
    prepared = prepare_requests(requests, FAMILY, DIALECT, constrained=True)
    reference, _ = evaluate(prepared, FakeDecoder(), DIALECT, batch_size=2)
    log = tmp_path / "s--v.batches.partial.jsonl"
    crashing = FakeDecoder(crash_on_call=3)
    with pytest.raises(Crash):
        evaluate(prepared, crashing, DIALECT, batch_size=2, batch_log=log)
    assert crashing.calls == 3 and len(log.read_text().splitlines()) == 2  # batches 0 and 1 finished
    with log.open("a") as handle:
        handle.write('{"batch": 2, "keys": ["r')  # killed while writing batch 2's record
    resumed = FakeDecoder()
    rows, wall = evaluate(prepared, resumed, DIALECT, batch_size=2, batch_log=log)
    assert resumed.calls == 2 and len(resumed.decoded) == 3  # batches 2 and 3 only
    assert rows == reference and wall > 0
    again = FakeDecoder()
    assert evaluate(prepared, again, DIALECT, batch_size=2, batch_log=log)[0] == reference and again.calls == 0
