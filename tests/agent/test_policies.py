"""slmtune.agent.policies: an OpenAI-compatible endpoint (a stdlib fake server) and recorded answers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from agent_helpers import recording_registry

from slmtune.agent.executors import RegistryExecutor
from slmtune.agent.loop import Price, run_turn
from slmtune.agent.policies import EndpointError, OpenAIEndpointPolicy, RecordedPolicy, openai_messages


class FakeServer:
    """A /v1/chat/completions server that answers from a script and keeps every request body and header."""

    def __init__(self, responses: list[tuple[int, object]]) -> None:
        self.responses, self.requests = list(responses), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                status, payload = outer.responses.pop(0)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def completion(message: dict, prompt_tokens: int, completion_tokens: int) -> dict:
    return {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": message,
                                                                 "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}


@pytest.fixture
def server():
    servers = []

    def make(responses):
        servers.append(FakeServer(responses))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def test_endpoint_policy_sends_openai_tools_and_reads_calls_and_usage(server):
    fake = server([
        (200, completion({"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc", "type": "function",
             "function": {"name": "get_price", "arguments": "{\"symbol\": \"ACME\"}"}}]}, 120, 15)),
        (200, completion({"role": "assistant", "content": "ACME trades at 101.5."}, 160, 9)),
    ])
    registry, ran = recording_registry()
    policy = OpenAIEndpointPolicy(fake.url, "served-model", name="llm", api_key="k-123",
                                  price=Price(usd_per_1m_input=1.0, usd_per_1m_output=4.0))
    messages = [{"role": "user", "content": "Price of ACME?"}]
    trace = run_turn(messages, RegistryExecutor(registry, ["get_price"]), policy, max_steps=3)

    assert ran == [("get_price", "ACME")] and trace.answer == "ACME trades at 101.5."
    first, second = fake.requests
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer k-123"
    assert first["body"]["model"] == "served-model" and first["body"]["tool_choice"] == "auto"
    assert first["body"]["tools"][0]["type"] == "function"
    assert first["body"]["tools"][0]["function"]["name"] == "get_price"
    # the second request carries the call (with an id and JSON-string arguments) and its result, linked by id
    sent = second["body"]["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {"name": "get_price", "arguments": "{\"symbol\": \"ACME\"}"}
    assert sent[2] == {"role": "tool", "tool_call_id": sent[1]["tool_calls"][0]["id"],
                       "content": json.dumps({"symbol": "ACME", "price": 101.5})}
    steps = [r.step for r in trace.steps]
    assert [(s.tokens_in, s.tokens_out) for s in steps] == [(120, 15), (160, 9)]
    assert steps[0].cost_usd == pytest.approx((120 * 1.0 + 15 * 4.0) / 1e6)
    assert all(s.answered_by == "llm" and s.latency_s > 0 and s.signals is None for s in steps)


def test_endpoint_policy_keeps_unreadable_arguments_as_an_error_not_a_call(server):
    fake = server([(200, completion({"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "get_price", "arguments": "{not json"}}]}, 5, 5))])
    step = OpenAIEndpointPolicy(fake.url, "m").step([{"role": "user", "content": "x"}], [])
    assert step.calls == [] and "not valid JSON" in step.error


def test_endpoint_errors_are_named(server):
    fake = server([(500, {"error": "boom"}), (200, b"<html>"), (200, {"choices": []})])
    policy = OpenAIEndpointPolicy(fake.url, "m")
    for expected in ("HTTP 500: {\"error\": \"boom\"}", "not JSON", "no choices"):
        with pytest.raises(EndpointError, match=expected.replace("{", "\\{")):
            policy.step([{"role": "user", "content": "x"}], [])
    with pytest.raises(EndpointError, match="127.0.0.1:9"):
        OpenAIEndpointPolicy("http://127.0.0.1:9/v1", "m", timeout_s=2).step([], [])
    with pytest.raises(ValueError, match="http"):
        OpenAIEndpointPolicy("file:///etc/passwd", "m")


def test_openai_messages_link_tool_results_to_their_calls():
    out = openai_messages([
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"name": "a", "arguments": {}}, {"name": "b", "arguments": {"k": 1}}]},
        {"role": "tool", "name": "a", "content": "1"}, {"role": "tool", "name": "b", "content": {"v": 2}},
    ])
    ids = [c["id"] for c in out[1]["tool_calls"]]
    assert [m.get("tool_call_id") for m in out[2:]] == ids and len(set(ids)) == 2
    assert out[3]["content"] == "{\"v\": 2}"
    with pytest.raises(ValueError, match="follows no assistant call"):
        openai_messages([{"role": "tool", "content": "x"}])


def test_recorded_policy_answers_by_conversation_and_says_when_it_has_none(tmp_path):
    conversation = [{"role": "user", "content": "Price of ACME?"}]
    call = {"name": "get_price", "arguments": {"symbol": "ACME"}}
    after = conversation + [{"role": "assistant", "tool_calls": [call]},
                            {"role": "tool", "name": "get_price", "content": "{\"price\":101.5,\"symbol\":\"ACME\"}"}]
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"messages": conversation, "answer": {"tool_calls": [call]},
         "tokens_in": 50, "tokens_out": 8},
        {"messages": after, "answer": {"content": "101.5"}, "tokens_in": 80, "tokens_out": 3},
    ]) + "\n")
    registry, ran = recording_registry()
    policy = RecordedPolicy.load(path, name="fallback", price=Price(usd_per_1m_input=2.0, usd_per_1m_output=8.0))
    messages = [dict(m) for m in conversation]
    trace = run_turn(messages, RegistryExecutor(registry, ["get_price"]), policy, max_steps=3)
    # the executor writes the result as compact JSON of another spacing: the key compares JSON values
    assert trace.answer == "101.5" and ran == [("get_price", "ACME")] and len(policy) == 2
    assert trace.cost_usd == pytest.approx((50 * 2 + 8 * 8 + 80 * 2 + 3 * 8) / 1e6)
    missing = policy.step([{"role": "user", "content": "something else"}], [])
    assert missing.calls == [] and "no recorded answer" in missing.error and missing.tokens_in == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [], "answer": {}}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl: record 1"):
        RecordedPolicy.load(bad)
