"""scripts/check_serving.py: its pure parts (the card's commands, responses, comparisons, the verdict) and that a
server it starts is killed with its children on every exit path. The live check against vLLM is the ``serving``
test at the end (deselected by default; it skips where no vLLM venv or export is found)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slmtune.config import PACKAGE_ROOT
from slmtune.export.card import render_model_card
from slmtune.models.dialects import DIALECTS

SCRIPT = PACKAGE_ROOT / "scripts" / "check_serving.py"
_spec = importlib.util.spec_from_file_location("check_serving", SCRIPT)
cs = importlib.util.module_from_spec(_spec)
sys.modules["check_serving"] = cs
_spec.loader.exec_module(cs)


def _card(dialect: str = "hermes", base: str = "gguf:abc") -> str:
    return render_model_card({"dialect": dialect, "vllm_tool_parser": DIALECTS[dialect].vllm_tool_parser,
                              "base_model": base, "adapter": {"max_lora_rank": 16}})


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_the_cards_commands_parse_and_carry_what_serving_needs(dialect):
    commands = cs.card_commands(_card(dialect))
    merged, lora = commands["merged"], commands["lora"]
    parser = DIALECTS[dialect].vllm_tool_parser
    assert merged[:3] == ["vllm", "serve", "./merged"]
    for argv in (merged, lora):
        assert cs.option(argv, "--tool-call-parser") == parser and "--enable-auto-tool-choice" in argv
        assert cs.option(argv, "--chat-template") == "./merged/chat_template.jinja"
        assert json.loads(cs.option(argv, "--structured-outputs-config")) == {"backend": "xgrammar"}
    assert lora[2] == cs.BASE_PLACEHOLDER and "--enable-lora" in lora
    assert cs.option(lora, "--generation-config") == "./merged"  # stops at end-of-turn (measured: never without)
    assert cs.lora_model_name(lora) == "slmtune"


def test_a_hub_base_is_served_as_named():
    lora = cs.card_commands(_card(base="org/model@abc123"))["lora"]
    assert lora[2:5] == ["org/model", "--revision", "abc123"]
    assert cs.server_argv(lora, vllm_exe="/v/bin/vllm", port=9, base_dir=None)[:3] == ["/v/bin/vllm", "serve",
                                                                                      "org/model"]


def test_card_problems_are_named():
    with pytest.raises(cs.CardError, match="no lora"):
        cs.card_commands("```bash\nvllm serve ./merged --tool-call-parser hermes\n```\n")
    with pytest.raises(cs.CardError, match="two merged"):
        cs.card_commands("```bash\nvllm serve ./a\n```\n```bash\nvllm serve ./b\n```\n")
    with pytest.raises(cs.CardError, match="no merged and no lora"):
        cs.card_commands("```bash\npython -m sglang.launch_server --model-path ./merged\n```\n")
    with pytest.raises(cs.CardError, match="--lora-modules"):
        cs.lora_model_name(["vllm", "serve", "x", "--enable-lora"])


def test_server_argv_changes_only_the_executable_the_base_and_the_address():
    card = ["vllm", "serve", cs.BASE_PLACEHOLDER, "--enable-lora", "--lora-modules", "slmtune=./adapter"]
    argv = cs.server_argv(card, vllm_exe="/venv/bin/vllm", port=8123, base_dir="/cache/base")
    assert argv == ["/venv/bin/vllm", "serve", "/cache/base", "--enable-lora", "--lora-modules", "slmtune=./adapter",
                    "--host", "127.0.0.1", "--port", "8123", "--max-model-len", "4096"]
    with pytest.raises(cs.CardError, match="no base checkpoint"):
        cs.server_argv(card, vllm_exe="vllm", port=1, base_dir=None)
    with pytest.raises(cs.CardError, match="not a vllm serve command"):
        cs.server_argv(["python", "-m", "x"], vllm_exe="vllm", port=1, base_dir=None)
    assert cs.lora_model_name(["--lora-modules", '{"name": "a", "path": "./adapter"}']) == "a"


def test_message_calls_and_streamed_deltas():
    message = {"content": None, "tool_calls": [
        {"id": "c0", "type": "function", "function": {"name": "f", "arguments": '{"x": 1, "y": [2]}'}},
        {"id": "c1", "type": "function", "function": {"name": "g", "arguments": "not json"}}]}
    assert cs.message_calls(message) == [{"name": "f", "arguments": {"x": 1, "y": [2]}},
                                         {"name": "g", "arguments": "not json"}]
    chunks = [{"choices": [{"delta": {"role": "assistant", "content": ""}}]},
              {"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c0", "function": {"name": "f",
                                                                                           "arguments": ""}}]}}]},
              {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"x": '}}]}}]},
              {"choices": [{"delta": {"tool_calls": [{"index": 1, "function": {"name": "g", "arguments": "{}"}}]}}]},
              {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]},
              {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}, {"choices": []}]
    streamed = cs.stream_message(chunks)
    assert streamed["finish_reason"] == "tool_calls" and streamed["content"] is None
    assert cs.message_calls(streamed) == [{"name": "f", "arguments": {"x": 1}}, {"name": "g", "arguments": {}}]
    text = cs.stream_message([{"choices": [{"delta": {"content": "Hel"}}]}, {"choices": [{"delta": {"content": "lo"},
                                                                                          "finish_reason": "stop"}]}])
    assert text["content"] == "Hello" and text["tool_calls"] == []


def test_answers_compare_calls_in_order_and_text_only_without_calls():
    f, g = {"name": "f", "arguments": {"x": 1}}, {"name": "g", "arguments": {}}
    assert cs.compare_answer([f, g], None, [f, g], "ignored")["equal"]
    assert not cs.compare_answer([f, g], None, [g, f], None)["equal"]
    assert not cs.compare_answer([f], None, [{"name": "f", "arguments": {"x": 1.5}}], None)["equal"]
    assert not cs.compare_answer([f], None, [], "text")["equal"]
    assert cs.compare_answer([], " no tool fits ", [], "no tool fits")["equal"]
    assert cs.compare_answer([], "a", [], "b") == {"equal": False, "calls_equal": True, "text_equal": False}
    assert cs.first_difference("abc", "abc") is None
    assert cs.first_difference("abX", "abc") == 2 and cs.first_difference("ab", "abc") == 2


def test_the_verdict_fails_on_any_failed_check_or_server_and_ignores_information_rows():
    ok = cs.check("tokenize_single", True, "202 tokens")
    info = cs.check("auto_grammar_vs_eval", None, "8/10")
    report = {"servers": {"merged": {"checks": [ok, info]}}}
    assert cs.overall(report)
    assert not cs.overall({"servers": {"merged": {"checks": [ok, cs.check("stops", False, "3/10")]}}})
    assert not cs.overall({"servers": {"merged": {"checks": [ok]}, "lora": {"error": "exited", "checks": []}}})
    assert not cs.overall({"servers": {}})
    shown = cs.table({"servers": {"merged": {"startup_s": 61.0, "checks": [ok, info]},
                                  "lora": {"error": "exited with code 1", "checks": []}}})
    assert "| merged | tokenize_single | pass | 202 tokens |" in shown and "| merged | auto_grammar_vs_eval | info |" \
        in shown and "| lora | start | FAIL | exited with code 1 |" in shown


def test_an_answer_stops_at_end_of_turn_when_the_stop_token_ends_it_and_nothing_runs_past_it():
    eot = "<end_of_turn>"
    tokens = [{"token": t} for t in ("<tool_call>", "\n{}\n", "</tool_call>", eot)]
    stopped = {"finish_reason": "tool_calls", "logprobs": {"content": tokens}}
    assert cs.raw_text(stopped, eot) == "<tool_call>\n{}\n</tool_call>"  # vLLM lists the stop token; it is no text
    answer = {"id": "a", "finish_reason": "tool_calls", "content": None, "raw": cs.raw_text(stopped, eot),
              "completion_tokens": 4}
    assert cs.stops_check([answer], eot, None)[0]["passed"]
    # the base checkpoint's generation config alone: the turn marker is written as text and generation runs on
    ran_on = {**answer, "id": "b", "finish_reason": "length", "content": f"<tool_call>...{eot}\nmodel\n...",
              "raw": f"x{eot}y"}
    row = cs.stops_check([answer, ran_on], eot, None)[0]
    assert row["passed"] is False and "1/2" in row["detail"] and "'b'" in row["detail"]
    assert cs.raw_text({"finish_reason": "length", "logprobs": {"content": tokens}}, eot).endswith(eot)
    # beside the merged server's answers (the crash this guards: an answer with calls)
    called = {**answer, "calls": [{"name": "f", "arguments": {}}]}
    texted = {**answer, "id": "c", "calls": [], "content": "No."}
    rows = cs.stops_check([called, texted], eot, [called, {**texted, "content": "Yes."}])
    assert rows[1]["check"] == "lora_vs_merged" and rows[1]["detail"].startswith("1/2")


def _router_file(tmp_path) -> Path:
    doc = {"schema_version": 1, "model": {"name": "t", "source": "random:gemma3", "adapter_sha256": None},
           "signals": ["seq_logprob"], "calibrator": {"type": "temperature", "params": {"a": 1.0, "b": 1.0}},
           "operating_points": [{"target_precision": 0.95, "threshold": 0.5, "coverage": 0.5, "precision": 0.95}],
           "metrics": {k: {"value": 0.1} for k in ("auroc", "ece", "brier", "aurc")}, "cascade": None,
           "fitted_on": {"suites": ["s"], "n": 10, "n_positive": 5, "cross_fit_folds": 2, "seed": 0}}
    path = tmp_path / "router.json"
    path.write_text(json.dumps(doc))
    return path


def test_the_router_check_compares_decisions_from_the_response_and_from_slmtune_s_records(tmp_path):
    from slmtune.eval.decoding import Generation, TokenRecord

    # a plain-text answer of two chosen tokens; seq_logprob -0.8 -> p = sigmoid(0.2) >= 0.5: kept on the SLM
    pieces, logprobs = ["No", " tool"], [-0.5, -0.3]
    tops = [(lp, -2.0) + (-math.inf,) * 18 for lp in logprobs]
    records, at = [], 0
    for piece, lp, top in zip(pieces, logprobs, tops):
        records.append(TokenRecord(at, at + len(piece), False, lp, lp, top[0] - top[1], top))
        at += len(piece)
    generation = Generation("No tool", 2, 0, False, 1.0, 1, records)

    def response(first_logprob: float) -> dict:
        content = [{"token": piece, "logprob": lp, "bytes": list(piece.encode()),
                    "top_logprobs": [{"token": "x", "logprob": max(v, -9999.0), "bytes": None} for v in top]}
                   for piece, lp, top in zip(pieces, [first_logprob, logprobs[1]], tops)]
        return {"choices": [{"finish_reason": "stop", "message": {"content": "No tool"},
                             "logprobs": {"content": content}}]}

    request = cs.SmokeRequest("r0", [], [], "", None, "No tool")
    hermes = DIALECTS["hermes"]
    row = cs.router_check([request], [{"response": response(-0.5)}], [generation], hermes, "<end_of_turn>",
                          _router_file(tmp_path))
    assert row["passed"] and row["decisions"][0]["vllm"]["use_slm"] is True
    # the server's first token far less likely: seq_logprob -2.3 -> p = sigmoid(-1.3) < 0.5: falls back
    row = cs.router_check([request], [{"response": response(-2.0)}], [generation], hermes, "<end_of_turn>",
                          _router_file(tmp_path))
    assert row["passed"] is False and "0/1 decisions" in row["detail"]
    assert cs.router_check([], [], [], hermes, "<end_of_turn>", tmp_path / "none.json")["passed"] is None



def test_an_answer_that_parts_only_at_an_exact_tie_is_not_a_mismatch_and_is_left_out_of_the_router_check(tmp_path):
    from slmtune.eval.decoding import Generation, TokenRecord

    hermes = DIALECTS["hermes"]
    tied = (-0.69, -0.69) + (-math.inf,) * 18
    clear = (-0.1, -3.0) + (-math.inf,) * 18

    def generation(first_top):  # slmtune answered "A", whose only token had the top-2 log-probs first_top
        return Generation("A", 1, 0, False, 1.0, 1, [TokenRecord(0, 1, False, first_top[0], first_top[0],
                                                                 first_top[0] - first_top[1], first_top)])

    request = cs.SmokeRequest("r0", [], [], "", None, "A")
    served = [{"calls": [], "content": "B", "raw": "B", "response": {}}]
    tie_row = cs.auto_grammar_checks([request], served, [generation(tied)], hermes)[0]
    assert tie_row["passed"] and tie_row["answers"][0]["parted_at_a_tie"] and "exact tie" in tie_row["detail"]
    clear_row = cs.auto_grammar_checks([request], served, [generation(clear)], hermes)[0]
    assert clear_row["passed"] is False and not clear_row["answers"][0]["parted_at_a_tie"]
    router = cs.router_check([request], served, [generation(tied)], hermes, "<end_of_turn>", _router_file(tmp_path))
    assert router["passed"] is None and router["not_compared"] == ["r0"] and router["decisions"] == []

FAKE_SERVER = """
import http.server, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open(sys.argv[1], "w").write(str(child.pid))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[2])), H).serve_forever()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")


def test_a_server_and_its_children_are_killed_when_the_check_fails(tmp_path):
    port = cs.free_port()
    pid_file = tmp_path / "child.pid"
    server = cs.Server([sys.executable, "-c", FAKE_SERVER, str(pid_file), str(port)], cwd=tmp_path,
                       log_path=tmp_path / "server.log", port=port, env=dict(os.environ))
    with pytest.raises(RuntimeError, match="a check failed"), cs.running(server, timeout=60):
        assert server.startup_s is not None
        raise RuntimeError("a check failed")
    child = int(pid_file.read_text())
    deadline = time.time() + 10
    while _alive(child) and time.time() < deadline:
        time.sleep(0.1)
    assert server.process.poll() is not None and not _alive(child)


def test_a_server_that_exits_is_reported_with_its_log(tmp_path):
    code = "print('ValueError: Unsupported CPU attention configuration', flush=True); raise SystemExit(3)"
    server = cs.Server([sys.executable, "-c", code],
                       cwd=tmp_path, log_path=tmp_path / "server.log", port=cs.free_port(), env=dict(os.environ))
    with pytest.raises(cs.ServerDown, match="exited with code 3 before it was healthy: ValueError: Unsupported CPU "
                       "attention configuration; last lines"), cs.running(server, timeout=60):
        pass


def test_usage_errors_exit_2_before_anything_starts(tmp_path):
    (tmp_path / "README.md").write_text("no commands here")
    (tmp_path / "manifest.json").write_text("{}")
    result = subprocess.run([sys.executable, str(SCRIPT), "--export", str(tmp_path)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)})
    assert result.returncode == 2 and "no merged and no lora" in result.stderr


def test_the_setup_script_parses_and_names_a_failing_step(tmp_path):
    setup = PACKAGE_ROOT / "scripts" / "setup_vllm_cpu.sh"
    subprocess.run(["bash", "-n", str(setup)], check=True)
    result = subprocess.run(["bash", str(setup), str(tmp_path / "venv")], capture_output=True, text=True,
                            env={**os.environ, "PYTHON": str(tmp_path / "no-python")})
    assert result.returncode == 1 and "FAILED: could not create the venv" in result.stderr


# ------------------------------------------------------------------------------------------------------------------
# live: a real vLLM server (pytest -m serving)
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.serving
def test_vllm_serves_the_export_as_the_card_says(tmp_path):
    """Runs scripts/check_serving.py on the export named by SLMTUNE_SERVING_EXPORT (its run directory holds
    eval/smoke.jsonl) with the vLLM of SLMTUNE_VLLM_PYTHON or .venv-vllm (scripts/setup_vllm_cpu.sh). Minutes."""
    python = Path(os.environ.get(cs.VLLM_PYTHON_ENV) or cs.DEFAULT_VENV_PYTHON)
    if not python.is_file():
        pytest.skip(f"no vLLM venv: {python} does not exist (run scripts/setup_vllm_cpu.sh or set "
                    f"{cs.VLLM_PYTHON_ENV})")
    export = os.environ.get("SLMTUNE_SERVING_EXPORT")
    if not export or not (Path(export) / "README.md").is_file():
        pytest.skip("set SLMTUNE_SERVING_EXPORT to an export directory of a servable model (not the tiny recipe: "
                    "vLLM's CPU attention refuses head_dim 16), e.g. outputs/gemma270m/main/export")
    out = tmp_path / "report.json"
    limit = os.environ.get("SLMTUNE_SERVING_LIMIT", "3")
    result = subprocess.run([sys.executable, str(SCRIPT), "--export", export, "--vllm-python", str(python),
                             "--out", str(out), "--limit", limit], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)})
    print(result.stdout[-4000:], result.stderr[-4000:])
    report = json.loads(out.read_text())
    assert result.returncode == 0 and report["passed"], cs.table(report)
    assert {"merged", "lora"} <= set(report["servers"])



def test_slmtune_messages_become_openai_messages_with_call_ids():
    messages = [{"role": "user", "content": "Time in Oslo, then Bergen?"},
                {"role": "assistant", "tool_calls": [{"name": "get_time", "arguments": {"city": "Oslo"}},
                                                     {"name": "get_time", "arguments": {"city": "Bergen"}}]},
                {"role": "tool", "name": "get_time", "content": "{\"time\": \"10:00\"}"},
                {"role": "tool", "name": "get_time", "content": "{\"time\": \"10:01\"}"},
                {"role": "assistant", "content": "10:00 and 10:01."}]
    converted = cs.openai_messages(messages)
    calls = converted[1]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_0", "call_1"] and calls[0]["type"] == "function"
    assert json.loads(calls[1]["function"]["arguments"]) == {"city": "Bergen"}
    assert [m.get("tool_call_id") for m in converted[2:4]] == ["call_0", "call_1"]
    assert converted[0] == messages[0] and converted[4] == messages[4]
    assert cs.openai_messages(converted) == converted  # already OpenAI-shaped: unchanged
