"""Remote and recorded policies: any OpenAI-compatible ``/v1/chat/completions`` endpoint (stdlib only), and answers
recorded in a JSONL file (the fallback of a measured cascade when no live endpoint is at hand).

Usage::

    llm = OpenAIEndpointPolicy("http://127.0.0.1:8000/v1", "slmtune-gemma270m", name="fallback",
                               price=Price(usd_per_1m_input=0.15, usd_per_1m_output=0.60))
    recorded = RecordedPolicy.load("answers.jsonl", name="fallback")
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from slmtune.agent.loop import Price, Step, function_dicts
from slmtune.data.jsonlimits import JSONLimitError
from slmtune.data.jsonlimits import loads as json_loads
from slmtune.models.dialects import normalize_call

__all__ = ["EndpointError", "OpenAIEndpointPolicy", "RecordedPolicy", "conversation_key", "openai_messages"]


class EndpointError(RuntimeError):
    """An OpenAI-compatible endpoint could not be reached or gave no usable answer (the message says which)."""


def _text(content: Any) -> str:
    if content is None:
        return ""
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def openai_messages(messages: list[dict]) -> list[dict]:
    """slmtune's messages in OpenAI chat format: assistant calls get ids (``call_<n>`` unless they carry one) and
    JSON-string arguments; each tool result names the id of the call it answers (in order), as the API requires."""
    out: list[dict] = []
    pending: list[str] = []
    counter = 0
    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                norm = normalize_call(call)
                call_id = call.get("id") if isinstance(call.get("id"), str) else f"call_{counter}"
                counter += 1
                calls.append({"id": call_id, "type": "function",
                              "function": {"name": norm["name"],
                                           "arguments": json.dumps(norm["arguments"], ensure_ascii=False)}})
            pending = [c["id"] for c in calls]
            out.append({"role": "assistant", "content": None, "tool_calls": calls})
        elif role == "tool":
            call_id = message.get("tool_call_id") or (pending.pop(0) if pending else None)
            if call_id is None:
                raise ValueError(f"messages[{i}]: a tool result that follows no assistant call")
            out.append({"role": "tool", "tool_call_id": call_id, "content": _text(message.get("content"))})
        elif role in ("system", "user", "assistant"):
            out.append({"role": role, "content": _text(message.get("content"))})
        else:
            raise ValueError(f"messages[{i}]: unsupported role {role!r}")
    return out


class OpenAIEndpointPolicy:
    """A model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, SGLang, a hosted API) as a policy.

    Tools go out as OpenAI tools with ``tool_choice="auto"``; calls come back from the response's
    ``message.tool_calls`` (the server's tool parser reads them), token counts from ``usage``. Greedy
    (``temperature=0``) unless ``extra_body`` says otherwise. A call whose arguments are not a JSON object is kept as
    the step's ``error`` (an invalid answer, not a crash)."""

    def __init__(self, base_url: str, model: str, *, name: str = "llm", api_key: str | None = None,
                 price: Price | None = None, timeout_s: float = 120.0, max_tokens: int | None = None,
                 extra_body: Mapping[str, Any] | None = None) -> None:
        """``base_url``: the API root, e.g. ``http://127.0.0.1:8000/v1``; ``api_key`` is sent as a bearer token."""
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.name, self.api_key = model, name, api_key
        self.price = price or Price()
        self.timeout_s, self.max_tokens = timeout_s, max_tokens
        self.extra_body = dict(extra_body or {})

    def request_body(self, messages: list[dict], tools: list[dict]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": openai_messages(messages), "temperature": 0.0}
        if tools:
            body["tools"] = [{"type": "function", "function": fn} for fn in function_dicts(tools)]
            body["tool_choice"] = "auto"
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        return body | self.extra_body

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - http(s) only
                payload = response.read()
        except urllib.error.HTTPError as err:
            detail = err.read()[:300].decode("utf-8", "replace")
            raise EndpointError(f"{self.url}: HTTP {err.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise EndpointError(f"{self.url}: {getattr(err, 'reason', err)}") from None
        try:
            doc = json_loads(payload, self.url)
        except (ValueError, JSONLimitError) as err:
            raise EndpointError(f"{self.url}: the response is not JSON: {err}") from None
        if not isinstance(doc, dict):
            raise EndpointError(f"{self.url}: the response is not a JSON object")
        return doc

    def step(self, messages: list[dict], tools: list[dict]) -> Step:
        started = time.perf_counter()
        doc = self._post(self.request_body(messages, tools))
        latency = time.perf_counter() - started
        try:
            message = doc["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise EndpointError(f"{self.url}: no choices[0].message in the response: {str(doc)[:300]}") from None
        usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else {}
        tokens_in, tokens_out = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        calls, error = [], None
        for raw_call in message.get("tool_calls") or []:
            try:
                calls.append(normalize_call(raw_call))
            except (TypeError, ValueError) as err:
                error = f"tool call not readable: {err}"
        content = message.get("content")
        if error is not None:
            calls = []
        return Step(content=None if calls else _text(content), calls=calls, tokens_in=tokens_in,
                    tokens_out=tokens_out, latency_s=latency, answered_by=self.name,
                    raw=json.dumps(message, ensure_ascii=False), error=error,
                    cost_usd=self.price.cost(tokens_in, tokens_out, latency))


def _canonical_content(content: Any) -> Any:
    """Tool results compare as JSON values where they are JSON (formatting differences do not matter)."""
    if isinstance(content, str):
        try:
            return json_loads(content, "content")
        except (ValueError, JSONLimitError):
            return content
    return content


def conversation_key(messages: Iterable[Mapping[str, Any]]) -> str:
    """A canonical text of a conversation: roles, user and system texts, calls (arguments as sorted JSON) and tool
    results (as JSON values), so that the same conversation written twice gives the same key. An assistant's text
    answer counts as one whatever its words (the model that reached this point may word an ``ask`` turn its own
    way)."""
    items = []
    for message in messages:
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            items.append([role, [normalize_call(c) for c in message["tool_calls"]]])
        elif role == "tool":
            items.append([role, message.get("name"), _canonical_content(message.get("content"))])
        elif role == "assistant":  # a text answer changes no tool's state: any wording matches
            items.append([role, "<text>"])
        else:
            items.append([role, _text(message.get("content")).strip()])
    return json.dumps(items, sort_keys=True, ensure_ascii=False)


class RecordedPolicy:
    """Answers recorded per conversation: each record is ``{"messages": [...], "answer": {"tool_calls": [...]} or
    {"content": "..."}}`` with optional ``tokens_in``, ``tokens_out``, ``latency_s`` (what the recorded model used;
    they price its answers). A step is answered by the record whose ``messages`` equal the conversation so far
    (:func:`conversation_key`); a conversation with no record gets an answer whose ``error`` says so, with no tokens
    (a turn that reaches it ends there)."""

    def __init__(self, records: Iterable[Mapping[str, Any]], *, name: str = "recorded", price: Price | None = None,
                 source: str = "<records>") -> None:
        self.name, self.price, self.source = name, price or Price(), source
        self.answers: dict[str, Mapping[str, Any]] = {}
        for i, record in enumerate(records):
            where = f"{source}: record {i + 1}"
            if not isinstance(record, Mapping) or not isinstance(record.get("messages"), list) \
                    or not isinstance(record.get("answer"), Mapping):
                raise ValueError(f"{where}: expected an object with 'messages' (list) and 'answer' (object)")
            answer = record["answer"]
            if not answer.get("tool_calls") and not isinstance(answer.get("content"), str):
                raise ValueError(f"{where}: 'answer' needs 'tool_calls' (non-empty) or 'content' (string)")
            try:
                calls = [normalize_call(c) for c in answer.get("tool_calls") or []]
                key = conversation_key(record["messages"])
            except (TypeError, ValueError) as err:
                raise ValueError(f"{where}: {err}") from None
            self.answers[key] = {"calls": calls, "content": answer.get("content"),
                                 "tokens_in": int(record.get("tokens_in") or 0),
                                 "tokens_out": int(record.get("tokens_out") or 0),
                                 "latency_s": float(record.get("latency_s") or 0.0)}

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> RecordedPolicy:
        """Read a JSONL file of records (one JSON object per line; blank lines skipped)."""
        path = Path(path)
        records = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    records.append(json_loads(line, f"{path}:{number}"))
                except (ValueError, JSONLimitError) as err:
                    raise ValueError(f"{path}:{number}: not a JSON object: {err}") from None
        return cls(records, source=str(path), **kwargs)

    def __len__(self) -> int:
        return len(self.answers)

    def step(self, messages: list[dict], tools: list[dict]) -> Step:
        found = self.answers.get(conversation_key(messages))
        if found is None:
            return Step(content="", answered_by=self.name,
                        error=f"no recorded answer for this conversation in {self.source}")
        calls = [dict(c) for c in found["calls"]]
        return Step(content=None if calls else found["content"], calls=calls, tokens_in=found["tokens_in"],
                    tokens_out=found["tokens_out"], latency_s=found["latency_s"], answered_by=self.name,
                    cost_usd=self.price.cost(found["tokens_in"], found["tokens_out"], found["latency_s"]))
