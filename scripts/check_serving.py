"""Serve an slmtune export with vLLM exactly as its model card says, and check the server against slmtune itself.

Usage::

    python scripts/check_serving.py --export outputs/<recipe>/<run>/export [--run DIR] [--vllm-python PATH]
        [--out report.json] [--limit N] [--only merged|lora] [--startup-timeout S]

The ``vllm serve`` commands are read from the export's README.md (the model card: the merged command first, then the
LoRA one), run from the export directory as written, with only ``--host 127.0.0.1 --port <free port>
--max-model-len 4096`` appended (and ``<base-model-dir>`` replaced by the base checkpoint slmtune resolves from the
manifest's ``config.model``). ``VLLM_CPU_KVCACHE_SPACE`` defaults to 2 (GiB). Requests are plain HTTP JSON in the
OpenAI chat-completions shape. Checks, per server:

- ``tokenize_single`` / ``tokenize_multiturn``: vLLM's ``/tokenize`` of a tools request (the first smoke request; a
  conversation with a tool call and its tool result) equals the tokens of slmtune's rendered prompt;
- ``auto_grammar`` (merged): the eval's smoke requests (``<run>/eval/smoke.jsonl``: prompts and grammars, rebuilt
  here from the suites and checked to be the eval's own), sent with ``tool_choice="auto"``, greedy, the eval's grammar
  in ``structured_outputs`` and ``max_tokens`` = ``eval.max_new_tokens``: vLLM's parsed tool calls (and text, for
  no-call answers) equal slmtune's :class:`Decoder` on ``merged/`` in this process, decoding plainly as vLLM does
  (no jump-forward, no text cut, no closing steer, batch 1). The eval's own answers (``smoke.jsonl`` ``raw``, decoded
  with those extras) are compared too, for information;
- ``router`` (merged): the export's ``router.json`` decides the same (SLM or fallback) from each live response
  (``slmtune.router.signals_from_openai`` on ``logprobs``/``top_logprobs=20``) as from slmtune's own signals of the
  reference decoding;
- ``stream`` (merged): the first smoke request streamed gives the same calls as unstreamed;
- ``required`` / ``named`` (merged): ``tool_choice="required"`` returns at least one call of an offered tool and a
  named tool choice returns that tool; whether vLLM logged that it ignored the grammar, and whether the answer equals
  the ``auto`` + grammar one, are reported (vLLM 0.32 constrains only the call wrapper there);
- ``stops`` (LoRA): every answer of the LoRA server ends at end-of-turn (finish reason ``stop``/``tool_calls``, no
  end-of-turn text in the content); its calls are compared with the merged server's for information.

Writes a JSON report (default ``<export>/../serving/report.json``), prints a table, and exits 1 on any failed check
(2 on a usage error, 3 when a server does not come up). Servers are killed on every exit path (errors, Ctrl-C,
SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VENV_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
VLLM_PYTHON_ENV = "SLMTUNE_VLLM_PYTHON"
BASE_PLACEHOLDER = "<base-model-dir>"
HOST = "127.0.0.1"
MAX_MODEL_LEN = 4096
# Text that vLLM logs when tool_choice="required" or a named tool overrides the request's structured outputs.
IGNORED_GRAMMAR_LOG = "structured outputs are ignored"
# Top log-probs requested per token: OpenAI's maximum and vLLM's default --max-logprobs (the router's signals use them).
TOP_LOGPROBS = 20


class CardError(ValueError):
    """The model card does not hold the commands this check runs."""


# ------------------------------------------------------------------------------------------------------------------
# pure parts: the card's commands, responses, comparisons, the table
# ------------------------------------------------------------------------------------------------------------------


def card_commands(readme: str) -> dict[str, list[str]]:
    """The card's ``vllm serve`` commands as argv lists: ``{"merged": [...], "lora": [...]}``.

    Every fenced ``bash`` block whose command starts with ``vllm serve`` is read (backslash continuations joined,
    shell-quoted as written); the one with ``--enable-lora`` is the LoRA command, the other the merged one.
    ``CardError`` names what is missing or doubled."""
    found: dict[str, list[str]] = {}
    for block in re.findall(r"```bash\n(.*?)```", readme, flags=re.S):
        text = re.sub(r"\\\n", " ", block).strip()
        if not text.startswith("vllm serve"):
            continue
        try:
            argv = shlex.split(text)
        except ValueError as err:
            raise CardError(f"README.md: a vllm serve command does not parse as shell words ({err}): {text}") from None
        kind = "lora" if "--enable-lora" in argv else "merged"
        if kind in found:
            raise CardError(f"README.md: two {kind} vllm serve commands; expected one merged and one LoRA command")
        found[kind] = argv
    missing = [k for k in ("merged", "lora") if k not in found]
    if missing:
        raise CardError(f"README.md: no {' and no '.join(missing)} `vllm serve` command in a ```bash block")
    return {"merged": found["merged"], "lora": found["lora"]}


def option(argv: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``argv`` (the last one), or None."""
    value = None
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1:]
    return value


def lora_model_name(argv: list[str]) -> str:
    """The model name a LoRA server serves the adapter under (``--lora-modules NAME=PATH``, or its JSON form)."""
    spec = option(argv, "--lora-modules")
    if not spec:
        raise CardError("README.md: the LoRA command has no --lora-modules NAME=PATH")
    if spec.lstrip().startswith("{"):
        return json.loads(spec)["name"]
    return spec.split("=", 1)[0]


def server_argv(card_argv: list[str], *, vllm_exe: str, port: int, base_dir: str | None,
                extra: list[str] = ()) -> list[str]:
    """The argv that runs a card command here: ``vllm`` replaced by ``vllm_exe``, the base placeholder by
    ``base_dir``, and the host, port and context length appended (nothing else of the card is changed)."""
    if card_argv[:2] != ["vllm", "serve"]:
        raise CardError(f"not a vllm serve command: {shlex.join(card_argv)}")
    argv = [vllm_exe, *card_argv[1:]]
    if BASE_PLACEHOLDER in argv:
        if not base_dir:
            raise CardError(f"the card's command names {BASE_PLACEHOLDER} and no base checkpoint was resolved")
        argv = [base_dir if a == BASE_PLACEHOLDER else a for a in argv]
    return argv + ["--host", HOST, "--port", str(port), "--max-model-len", str(MAX_MODEL_LEN), *extra]


def message_calls(message: dict) -> list[dict]:
    """``[{"name", "arguments": dict}]`` of an OpenAI chat message's ``tool_calls`` (JSON-string arguments decoded;
    arguments that are not JSON are kept as the string, so that they compare unequal)."""
    calls = []
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        args = fn.get("arguments")
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError:
                pass
        calls.append({"name": fn.get("name"), "arguments": args})
    return calls


def stream_message(chunks: list[dict]) -> dict:
    """The message that streamed ``chat.completion.chunk`` objects add up to: content concatenated, tool-call
    deltas joined per ``index`` (name and argument pieces), finish reason of the last choice that has one."""
    content, calls, finish = [], {}, None
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                content.append(delta["content"])
            for piece in delta.get("tool_calls") or []:
                slot = calls.setdefault(piece.get("index", 0), {"name": "", "arguments": ""})
                fn = piece.get("function") or {}
                slot["name"] += fn.get("name") or ""
                slot["arguments"] += fn.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    return {"content": "".join(content) or None, "finish_reason": finish,
            "tool_calls": [{"type": "function", "function": calls[i]} for i in sorted(calls)]}


def first_difference(a: str, b: str) -> int | None:
    """Index of the first character where ``a`` and ``b`` differ (the shorter length if one is a prefix of the
    other); None when equal."""
    if a == b:
        return None
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def compare_answer(expected_calls: list[dict], expected_text: str | None, got_calls: list[dict],
                   got_text: str | None) -> dict[str, Any]:
    """Whether a served answer equals the reference: the same calls (names and decoded arguments, in order) and,
    when neither has calls, the same text (stripped)."""
    same_calls = expected_calls == got_calls
    same_text = True
    if not expected_calls and not got_calls:
        same_text = (expected_text or "").strip() == (got_text or "").strip()
    return {"equal": same_calls and same_text, "calls_equal": same_calls, "text_equal": same_text}


def check(name: str, passed: bool | None, detail: str, **data: Any) -> dict[str, Any]:
    """One row of the report: ``passed`` None = reported for information, not checked."""
    return {"check": name, "passed": passed, "detail": detail, **data}


def overall(report: dict) -> bool:
    """True when the report ran at least one check and none failed (information rows do not count)."""
    rows = [row for server in report.get("servers", {}).values() for row in server.get("checks", [])]
    startup_failed = any(server.get("error") for server in report.get("servers", {}).values())
    return bool(rows) and not startup_failed and all(row["passed"] is not False for row in rows)


def table(report: dict) -> str:
    """The short table printed at the end: server, check, result, detail."""
    lines = ["| server | check | result | detail |", "|---|---|---|---|"]
    for server, body in report.get("servers", {}).items():
        if body.get("error"):
            lines.append(f"| {server} | start | FAIL | {body['error']} |")
        if body.get("startup_s") is not None:
            lines.append(f"| {server} | start | ok | ready in {body['startup_s']:.0f} s |")
        for row in body.get("checks", []):
            result = {True: "pass", False: "FAIL", None: "info"}[row["passed"]]
            lines.append(f"| {server} | {row['check']} | {result} | {row['detail']} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------------
# the server
# ------------------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def http_json(url: str, payload: dict | None = None, timeout: float = 600.0) -> dict:
    """POST ``payload`` (GET without) and decode the JSON answer; an HTTP error raises with the server's body."""
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        raise RuntimeError(f"{url}: HTTP {err.code}: {err.read().decode(errors='replace')[:2000]}") from None


def http_stream(url: str, payload: dict, timeout: float = 600.0) -> list[dict]:
    """POST a streaming request and collect its server-sent ``data:`` chunks (until ``[DONE]``)."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    chunks = []
    with urllib.request.urlopen(request, timeout=timeout) as response:
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            body = line[len("data:"):].strip()
            if body == "[DONE]":
                break
            chunks.append(json.loads(body))
    return chunks


class ServerDown(RuntimeError):
    """The server exited or did not become healthy in time."""


@dataclass
class Server:
    """A running ``vllm serve`` process (its own process group, killed as a whole) and its log file."""

    argv: list[str]
    cwd: Path
    log_path: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen | None = None
    startup_s: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float, while_starting: Callable[[], None] | None = None) -> None:
        """Launch the server, run ``while_starting`` (work that overlaps the server's start-up), then wait until
        ``/health`` answers 200 (``ServerDown`` when the process exits first or ``timeout`` s pass from launch)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with open(self.log_path, "w", encoding="utf-8") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        launched = started
        if while_starting is not None:
            while_starting()
            started = time.perf_counter()  # the wait for health starts after that work
        while time.perf_counter() - started < timeout:
            if self.process.poll() is not None:
                raise ServerDown(f"vllm serve exited with code {self.process.returncode} before it was healthy"
                                 f"{self.log_error()}; last lines of {self.log_path}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/health", timeout=5) as response:
                    if response.status == 200:  # (an upper bound when work overlapped the start-up)
                        self.startup_s = time.perf_counter() - launched
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(2)
        raise ServerDown(f"vllm serve was not healthy within {timeout:.0f} s; last lines of {self.log_path}:\n"
                         f"{self.log_tail()}")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_error(self) -> str:
        """``": <the last exception line of the log>"`` (``""`` when it has none), for the one-line error."""
        found = [line for line in self.log_text().splitlines() if re.search(r"\w+(Error|Exception): ", line)]
        return f": {found[-1].split('] ')[-1].strip()}" if found else ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after 20 s (vLLM forks engine workers)."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@contextlib.contextmanager
def running(server: Server, timeout: float, while_starting: Callable[[], None] | None = None):
    """Start ``server`` and stop it on leaving, whatever happens (SIGTERM is turned into an exception first)."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        server.start(timeout, while_starting)
        yield server
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum, frame):  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt(f"signal {signum}")


# ------------------------------------------------------------------------------------------------------------------
# slmtune's side: the eval's requests, prompts, plain decoding
# ------------------------------------------------------------------------------------------------------------------


@dataclass
class SmokeRequest:
    id: str
    messages: list[dict]
    tools: list[dict]          # normalised function dicts (as slmtune renders them)
    prompt: str
    grammar: str | None
    eval_raw: str              # the eval's own answer

    @property
    def openai_tools(self) -> list[dict]:
        return [{"type": "function", "function": t} for t in self.tools]

    @property
    def openai_messages(self) -> list[dict]:
        return openai_messages(self.messages)


def openai_messages(messages: list[dict]) -> list[dict]:
    """slmtune's message shapes as the OpenAI API takes them: an assistant's ``tool_calls`` with ids, ``type`` and
    JSON-string arguments, and each tool result with the ``tool_call_id`` of the call it answers (in call order)."""
    out, pending, count = [], [], 0
    for message in messages:
        if message.get("role") == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                function = call.get("function", call)
                arguments = function.get("arguments", {})
                calls.append({"id": call.get("id") or f"call_{count}", "type": "function",
                              "function": {"name": function["name"], "arguments": arguments
                                           if isinstance(arguments, str) else json.dumps(arguments)}})
                count += 1
            pending = [c["id"] for c in calls]
            out.append({"role": "assistant", "content": message.get("content"), "tool_calls": calls})
        elif message.get("role") == "tool" and "tool_call_id" not in message:
            out.append({**message, "tool_call_id": pending.pop(0) if pending else f"call_{count}"})
        else:
            out.append(message)
    return out


def smoke_requests(run_dir: Path, manifest: dict, family, dialect) -> list[SmokeRequest]:
    """The eval's smoke batch (``<run>/eval/smoke.jsonl``) with each request's messages and tools, found in the
    eval's suites (loaded as the eval loaded them) and prepared again: its prompt and grammar must equal the eval's,
    so that the check sends what the eval decoded."""
    from slmtune.eval.evaluation import prepare_requests
    from slmtune.eval.suites import load_bfcl, load_synthetic_split

    smoke_path = run_dir / "eval" / "smoke.jsonl"
    if not smoke_path.is_file():
        raise FileNotFoundError(f"{smoke_path}: no eval smoke requests (pass --run <the run directory>)")
    smoke = [json.loads(line) for line in smoke_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    eval_cfg = manifest["config"]["eval"]
    by_id = {}
    for suite in eval_cfg["suites"]:
        if suite == "synthetic":
            requests = load_synthetic_split(run_dir / "data" / "test.jsonl", limit=eval_cfg.get("limit"))
        elif suite.startswith("bfcl:"):
            requests = load_bfcl(suite.split(":", 1)[1], limit=eval_cfg.get("limit"))
        else:
            continue
        by_id.update({r.id: r for r in requests})
    wanted = [by_id.get(row["id"]) for row in smoke]
    missing = [row["id"] for row, r in zip(smoke, wanted) if r is None]
    if missing:
        raise ValueError(f"{smoke_path}: requests {missing} are in none of the eval's suites {eval_cfg['suites']}")
    prepared = prepare_requests(wanted, family, dialect, constrained=eval_cfg.get("constrained", True),
                                shape_policy=eval_cfg.get("call_shape", "category"))
    out = []
    for row, p in zip(smoke, prepared):
        if p.error or p.prompt != row["prompt"] or p.grammar != row["grammar"]:
            raise ValueError(f"{smoke_path}: request {row['id']}: rebuilt here, its "
                             f"{'prompt' if p.prompt != row['prompt'] else 'grammar'} differs from the eval's "
                             f"({p.error or 'different slmtune version?'})")
        out.append(SmokeRequest(row["id"], p.request.messages, p.tools, p.prompt, p.grammar, row["raw"]))
    return out


def tool_result_conversation(request: SmokeRequest, dialect) -> list[dict] | None:
    """The request's messages plus an assistant turn with the eval's first call (OpenAI shape, JSON-string
    arguments) and a tool result for it; None when the eval's answer has no call."""
    parsed = dialect.parse(request.eval_raw)
    if not parsed.calls:
        return None
    call = parsed.calls[0]
    return [*request.messages,
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_0", "type": "function",
                 "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])}}]},
            {"role": "tool", "tool_call_id": "call_0", "name": call["name"],
             "content": json.dumps({"status": "ok", "result": 42})}]


class Reference:
    """slmtune on ``merged/`` in this process: tokenizer, prompts and plain greedy decoding."""

    def __init__(self, merged: Path, family, dialect, max_new_tokens: int, precision: str):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from slmtune.eval.decoding import Decoder, resolve_dtype

        self.family, self.dialect = family, dialect
        self.tokenizer = AutoTokenizer.from_pretrained(merged)
        self.dtype = resolve_dtype(precision, torch.device("cpu"))
        self.model = AutoModelForCausalLM.from_pretrained(merged, dtype=self.dtype, use_safetensors=True).eval()
        self.decoder = Decoder(self.model, self.tokenizer, stop_strings=[family.end_of_turn],
                               max_new_tokens=max_new_tokens, jump_forward=False, call_trigger=dialect.call_trigger,
                               max_text_tokens=None, closing_reserve=0)

    def prompt_tokens(self, messages: list[dict], tools: list[dict]) -> list[int]:
        prompt = self.family.render_prompt(messages, tools, self.dialect)
        return self.tokenizer(prompt, add_special_tokens=False)["input_ids"]

    def decode(self, requests: list[SmokeRequest]):
        from slmtune.eval.decoding import DecodeRequest

        generations = []
        for number, request in enumerate(requests, 1):  # one at a time (batch 1), as a server decodes a request
            generations += self.decoder.generate([DecodeRequest(request.prompt, request.grammar)], batch_size=1)
            print(f"check_serving: reference {number}/{len(requests)} ({generations[-1].output_tokens} tokens, "
                  f"{generations[-1].latency_s:.0f} s)", file=sys.stderr)
        return generations


def margin_at(generation, char: int) -> float | None:
    """slmtune's top-2 margin (nats) at the token that covers character ``char`` of its answer."""
    for token in generation.tokens:
        if token.start <= char < token.end or (char == token.start == token.end):
            return token.margin
    return generation.stop_margin if generation.tokens and char >= generation.tokens[-1].end else None


# ------------------------------------------------------------------------------------------------------------------
# the checks
# ------------------------------------------------------------------------------------------------------------------


def chat_payload(model: str, request: SmokeRequest, max_tokens: int, *, tool_choice: Any = "auto",
                 grammar: bool = True, stream: bool = False) -> dict:
    payload = {"model": model, "messages": request.openai_messages, "tools": request.openai_tools,
               "tool_choice": tool_choice, "temperature": 0, "max_tokens": max_tokens, "stream": stream}
    if grammar and request.grammar:
        payload["structured_outputs"] = {"grammar": request.grammar}
    if not stream:
        payload |= {"logprobs": True, "top_logprobs": TOP_LOGPROBS}
    return payload


def raw_text(choice: dict, end_of_turn: str) -> str | None:
    """The answer's raw text (before the tool parser), from the per-token log-probability entries, less the final
    end-of-turn token that vLLM lists there (slmtune's decoder leaves the stop token out of its text)."""
    content = (choice.get("logprobs") or {}).get("content")
    if not content:
        return None
    if choice.get("finish_reason") != "length" and content[-1].get("token") == end_of_turn:
        content = content[:-1]
    return "".join(entry["token"] for entry in content)


def tokenize_checks(server: Server, model: str, reference: Reference, requests: list[SmokeRequest], dialect
                    ) -> list[dict]:
    rows = []
    conversation = next((c for c in (tool_result_conversation(r, dialect) for r in requests) if c), None)
    source = next((r for r in requests if tool_result_conversation(r, dialect)), None)
    cases = [("tokenize_single", requests[0].messages, requests[0])]
    if conversation is not None:
        cases.append(("tokenize_multiturn", conversation, source))
    for name, messages, request in cases:
        got = http_json(f"{server.base_url}/tokenize", {"model": model, "messages": openai_messages(messages),
                                                        "tools": request.openai_tools,
                                                        "add_generation_prompt": True})["tokens"]
        want = reference.prompt_tokens(messages, request.tools)
        at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
        if at is None and len(got) != len(want):
            at = min(len(got), len(want))
        rows.append(check(name, got == want, f"{len(got)} tokens (slmtune {len(want)})"
                          + ("" if at is None else f", first difference at token {at}"), request=request.id,
                          turns=len(messages)))
    if conversation is None:
        rows.append(check("tokenize_multiturn", None, "no smoke answer has a call to build a tool result from"))
    return rows


def served_answers(server: Server, model: str, requests: list[SmokeRequest], max_tokens: int,
                   end_of_turn: str) -> list[dict]:
    answers = []
    for request in requests:
        started = time.perf_counter()
        response = http_json(f"{server.base_url}/v1/chat/completions", chat_payload(model, request, max_tokens))
        choice = response["choices"][0]
        raw = raw_text(choice, end_of_turn)
        answers.append({"id": request.id, "calls": message_calls(choice["message"]),
                        "content": choice["message"].get("content"), "finish_reason": choice.get("finish_reason"),
                        "raw": raw, "seconds": round(time.perf_counter() - started, 2),
                        "completion_tokens": (response.get("usage") or {}).get("completion_tokens"),
                        "response": response})
    return answers


def parted_at_a_tie(item: dict) -> bool:
    """True when a served answer parts from slmtune's at a token where slmtune's own top two were exactly tied
    (margin 0 in its precision): greedy decoding may take either, so the server's other pick is not a mismatch."""
    return item.get("slmtune_margin_there") == 0.0


def auto_grammar_checks(requests: list[SmokeRequest], answers: list[dict], generations, dialect) -> list[dict]:
    details, equal, ties, eval_equal = [], 0, 0, 0
    for request, answer, generation in zip(requests, answers, generations):
        parsed = dialect.parse(generation.text)
        verdict = compare_answer(parsed.calls, parsed.content or generation.text, answer["calls"], answer["content"])
        eval_parsed = dialect.parse(request.eval_raw)
        eval_verdict = compare_answer(eval_parsed.calls, eval_parsed.content or request.eval_raw, answer["calls"],
                                      answer["content"])
        equal += verdict["equal"]
        eval_equal += eval_verdict["equal"]
        item = {"id": request.id, **verdict, "slmtune_raw": generation.text, "vllm_raw": answer["raw"],
                "vllm_calls": answer["calls"], "slmtune_calls": parsed.calls, "equal_to_eval": eval_verdict["equal"]}
        if not verdict["equal"] and answer["raw"] is not None:
            at = first_difference(generation.text, answer["raw"])
            item["first_difference_char"] = at
            item["slmtune_margin_there"] = margin_at(generation, at) if at is not None else None
            item["parted_at_a_tie"] = parted_at_a_tie(item)
            ties += item["parted_at_a_tie"]
        details.append(item)
    n = len(requests)
    tie_note = f"; {ties} parted only at an exact tie of slmtune's top two tokens" if ties else ""
    return [check("auto_grammar", equal + ties == n,
                  f"{equal}/{n} answers equal to slmtune's decoding of merged/{tie_note}", answers=details),
            check("auto_grammar_vs_eval", None, f"{eval_equal}/{n} equal to the eval's own answers (eval decoding: "
                  "jump-forward, text cut, other batch)")]


def router_check(requests: list[SmokeRequest], answers: list[dict], generations, dialect, end_of_turn: str,
                 router_path: Path) -> dict:
    """The router's decision from each live response (:func:`slmtune.router.signals_from_openai` on its log-probs)
    equals its decision from slmtune's own signals (the reference decoding's token records) on the same request.

    Both sides read the whole answer (the reference decodes plain-text answers to the end, as the server does, so
    no ``max_text_tokens`` cut is applied on either side)."""
    from slmtune.eval.evaluation import confidence_signals
    from slmtune.router import Router, signals_from_openai

    if not router_path.is_file():
        return check("router", None, f"no {router_path.name} in the export (calibrate did not run)")
    router = Router.load(router_path)
    rows, same, skipped = [], 0, []
    for request, answer, generation in zip(requests, answers, generations):
        if answer.get("raw") is not None and answer["raw"] != generation.text:
            skipped.append(request.id)  # other tokens, other signals: only the same answer can be compared
            continue
        parsed = dialect.parse(generation.text)
        spans = dialect.spans(generation.text) if parsed.calls and not parsed.error else []
        own = confidence_signals(generation, spans, len(parsed.calls))
        live = signals_from_openai(answer["response"], dialect=dialect.name, stop_tokens=[end_of_turn])
        (own_use, own_p), (live_use, live_p) = router.decide(own), router.decide(live)
        same += own_use == live_use
        rows.append({"id": request.id, "slmtune": {"use_slm": own_use, "p_correct": own_p, "signals": own},
                     "vllm": {"use_slm": live_use, "p_correct": live_p, "signals": live}})
    max_dp = max((abs(r["slmtune"]["p_correct"] - r["vllm"]["p_correct"]) for r in rows), default=0.0)
    note = f"; {len(skipped)} answer(s) with other tokens than slmtune's not compared: {skipped}" if skipped else ""
    return check("router", same == len(rows) if rows else None, f"{same}/{len(rows)} decisions (SLM or fallback, "
                 f"target precision 0.95) equal on identical answers; max |Δ p_correct| {max_dp:.2g}{note}",
                 decisions=rows, not_compared=skipped)


def stream_check(server: Server, model: str, request: SmokeRequest, unstreamed: dict, max_tokens: int) -> dict:
    chunks = http_stream(f"{server.base_url}/v1/chat/completions",
                         chat_payload(model, request, max_tokens, stream=True))
    message = stream_message(chunks)
    calls = message_calls(message)
    verdict = compare_answer(unstreamed["calls"], unstreamed["content"], calls, message["content"])
    return check("stream", verdict["equal"], f"{len(chunks)} chunks; calls {'equal' if verdict['equal'] else 'DIFFER'}"
                 f" to the unstreamed answer ({len(calls)} call(s))", request=request.id, calls=calls)


def forced_choice_checks(server: Server, model: str, request: SmokeRequest, auto_answer: dict,
                         max_tokens: int) -> list[dict]:
    rows = []
    offered = {t["name"] for t in request.tools}
    named = auto_answer["calls"][0]["name"] if auto_answer["calls"] else sorted(offered)[0]
    for name, choice in (("required", "required"), ("named", {"type": "function", "function": {"name": named}})):
        before = server.log_text().count(IGNORED_GRAMMAR_LOG)
        response = http_json(f"{server.base_url}/v1/chat/completions",
                             chat_payload(model, request, max_tokens, tool_choice=choice))
        time.sleep(0.5)
        ignored = server.log_text().count(IGNORED_GRAMMAR_LOG) > before
        calls = message_calls(response["choices"][0]["message"])
        if name == "required":
            passed = bool(calls) and all(c["name"] in offered for c in calls)
        else:
            passed = bool(calls) and all(c["name"] == named for c in calls)
        same = calls == auto_answer["calls"]
        rows.append(check(name, passed, f"{len(calls)} call(s) {[c['name'] for c in calls]}; grammar "
                          f"{'ignored (vLLM log)' if ignored else 'not reported ignored'}; "
                          f"{'equal to' if same else 'differs from'} the auto+grammar answer",
                          request=request.id, calls=calls, grammar_ignored=ignored, equal_to_auto=same))
    return rows


def stops_check(answers: list[dict], end_of_turn: str, merged_answers: list[dict] | None) -> list[dict]:
    bad = [a["id"] for a in answers
           if a["finish_reason"] not in ("stop", "tool_calls") or end_of_turn in (a["content"] or "")
           or end_of_turn in (a["raw"] or "")]
    rows = [check("stops", not bad, f"{len(answers) - len(bad)}/{len(answers)} answers ended at end-of-turn"
                  + (f" (not: {bad})" if bad else ""),
                  finish_reasons=[a["finish_reason"] for a in answers],
                  completion_tokens=[a["completion_tokens"] for a in answers])]
    if merged_answers:
        same = sum(compare_answer(m["calls"], m["content"], a["calls"], a["content"])["equal"]
                   for a, m in zip(answers, merged_answers))
        rows.append(check("lora_vs_merged", None, f"{same}/{len(answers)} answers equal to the merged server's"))
    return rows


# ------------------------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------------------------


def resolve_vllm_python(given: str | None) -> Path:
    path = Path(given or os.environ.get(VLLM_PYTHON_ENV) or DEFAULT_VENV_PYTHON).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no vLLM python at {path}: run scripts/setup_vllm_cpu.sh or pass --vllm-python / "
                                f"set {VLLM_PYTHON_ENV}")
    return path


def vllm_executable(python: Path) -> str:
    exe = python.parent / "vllm"
    if not exe.is_file():
        raise FileNotFoundError(f"{exe}: no vllm command next to {python} (is vllm-cpu installed in that venv?)")
    return str(exe)


def base_checkpoint(manifest: dict) -> str:
    """The base checkpoint directory slmtune resolves from the manifest's ``config.model`` (for LoRA serving)."""
    from slmtune.models.loading import resolve_model_source

    model = manifest["config"]["model"]
    source = resolve_model_source(SimpleNamespace(
        source=model["source"], tokenizer_source=model.get("tokenizer_source"), revision=model.get("revision"),
        seed=model.get("seed", 0), trust_remote_code=model.get("trust_remote_code", False)))
    return str(source.path)


def run_server(kind: str, card_argv: list[str], args, context: dict, report: dict) -> None:
    """Start one server from its card command, run its checks into ``report["servers"][kind]``, stop it."""
    entry: dict[str, Any] = {"card_command": shlex.join(card_argv), "checks": []}
    report["servers"][kind] = entry
    port = free_port()
    argv = server_argv(card_argv, vllm_exe=context["vllm_exe"], port=port,
                       base_dir=context["base_dir"] if BASE_PLACEHOLDER in card_argv else None)
    entry["command"] = shlex.join(argv)
    env = dict(os.environ)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    entry["env"] = {"VLLM_CPU_KVCACHE_SPACE": env["VLLM_CPU_KVCACHE_SPACE"]}
    server = Server(argv, cwd=args.export, log_path=args.out.parent / f"vllm-{kind}.log", port=port, env=env)
    entry["log"] = str(server.log_path)
    print(f"check_serving: starting the {kind} server: {entry['command']}", file=sys.stderr)
    try:
        with running(server, args.startup_timeout, context["while_starting"] if kind == "merged" else None):
            entry["startup_s"] = round(server.startup_s, 1)
            print(f"check_serving: {kind} server ready in {server.startup_s:.0f} s", file=sys.stderr)
            model = lora_model_name(card_argv) if kind == "lora" else http_json(
                f"{server.base_url}/v1/models")["data"][0]["id"]
            entry["model"] = model
            requests, reference, dialect = context["requests"], context["reference"], context["dialect"]
            started = time.perf_counter()
            entry["checks"] += tokenize_checks(server, model, reference, requests, dialect)
            answers = served_answers(server, model, requests, context["max_tokens"], context["end_of_turn"])
            entry["answers_s"] = round(time.perf_counter() - started, 1)
            if kind == "merged":
                context["merged_answers"] = answers
                entry["checks"] += auto_grammar_checks(requests, answers, context["generations"], dialect)
                entry["checks"].append(router_check(requests, answers, context["generations"], dialect,
                                                    context["end_of_turn"], args.export / "router.json"))
                first = next((i for i, a in enumerate(answers) if a["calls"]), 0)
                entry["checks"].append(stream_check(server, model, requests[first], answers[first],
                                                    context["max_tokens"]))
                entry["checks"] += forced_choice_checks(server, model, requests[first], answers[first],
                                                        context["max_tokens"])
            else:
                entry["checks"] += stops_check(answers, context["end_of_turn"], context.get("merged_answers"))
            entry["checks_s"] = round(time.perf_counter() - started, 1)
    except ServerDown as err:
        entry["error"] = str(err).splitlines()[0]
        entry["log_tail"] = str(err)
        print(f"check_serving: {err}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", type=Path, required=True, help="the export directory (README.md, merged/, ...)")
    parser.add_argument("--run", type=Path, help="the run directory with eval/smoke.jsonl (default: export's parent)")
    parser.add_argument("--vllm-python", help=f"python of a venv with vllm (default ${VLLM_PYTHON_ENV} or "
                        f"{DEFAULT_VENV_PYTHON.relative_to(ROOT)})")
    parser.add_argument("--out", type=Path, help="report path (default <run>/serving/report.json)")
    parser.add_argument("--limit", type=int, help="check only the first N smoke requests")
    parser.add_argument("--only", choices=["merged", "lora"], help="start only this server")
    parser.add_argument("--precision", default="auto", help="slmtune's reference decoding precision (auto: bf16 "
                        "where the CPU has native bf16, as vLLM's CPU backend computes)")
    parser.add_argument("--startup-timeout", type=float, default=900.0, help="seconds to wait for /health")
    args = parser.parse_args(argv)
    args.export = args.export.resolve()
    args.run = (args.run or args.export.parent).resolve()
    args.out = (args.out or args.run / "serving" / "report.json").resolve()
    try:
        readme = (args.export / "README.md").read_text(encoding="utf-8")
        manifest = json.loads((args.export / "manifest.json").read_text(encoding="utf-8"))
        commands = card_commands(readme)
        python = resolve_vllm_python(args.vllm_python)
        vllm_exe = vllm_executable(python)
    except (OSError, CardError, ValueError) as err:
        print(f"check_serving: {err}", file=sys.stderr)
        return 2

    sys.path.insert(0, str(ROOT))
    from slmtune.models.dialects import get_dialect
    from slmtune.models.families import FAMILIES

    model_cfg = manifest["config"]["model"]
    family = FAMILIES[model_cfg["family"]]
    dialect = get_dialect(model_cfg.get("dialect") or family.default_dialect)
    parser_name = option(commands["merged"], "--tool-call-parser")
    report: dict[str, Any] = {"export": str(args.export), "run": str(args.run), "vllm_python": str(python),
                              "dialect": dialect.name, "card_tool_parser": parser_name, "servers": {}}
    total = time.perf_counter()
    requests = smoke_requests(args.run, manifest, family, dialect)[: args.limit]
    max_tokens = int(manifest["config"]["eval"]["max_new_tokens"])
    started = time.perf_counter()
    reference = Reference(args.export / "merged", family, dialect, max_tokens, args.precision)
    report["reference"] = {"dtype": str(reference.dtype), "requests": len(requests), "max_tokens": max_tokens}

    def decode_reference() -> None:  # while the merged server starts: its answers are compared with these
        print(f"check_serving: slmtune decodes {len(requests)} smoke requests on merged/ (reference)",
              file=sys.stderr)
        context["generations"] = reference.decode(requests)
        report["reference"]["seconds"] = round(time.perf_counter() - started, 1)
    context = {"vllm_exe": vllm_exe, "requests": requests, "reference": reference, "dialect": dialect,
               "while_starting": decode_reference, "max_tokens": max_tokens, "end_of_turn": family.end_of_turn,
               "base_dir": base_checkpoint(manifest) if BASE_PLACEHOLDER in commands["lora"] else None}
    report["checks_common"] = [check("tool_parser", parser_name == dialect.vllm_tool_parser,
                                     f"card --tool-call-parser {parser_name}, dialect's {dialect.vllm_tool_parser}")]
    report["servers"]["card"] = {"checks": report.pop("checks_common")}
    try:
        for kind in ("merged", "lora"):
            if args.only in (None, kind):
                run_server(kind, commands[kind], args, context, report)
    except KeyboardInterrupt:
        report["interrupted"] = True
        raise
    except Exception as err:  # a check that crashed: the report says so and the run fails
        report["error"] = f"{type(err).__name__}: {err}"[:2000]
        raise
    finally:  # the report of what ran, also when interrupted (its servers are already stopped)
        report["seconds"] = round(time.perf_counter() - total, 1)
        report["passed"] = overall(report) and not report.get("interrupted") and not report.get("error")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, args.out)
        print(table(report))
        print(f"check_serving: {'PASSED' if report['passed'] else 'FAILED'} in {report['seconds']:.0f} s; "
              f"report {args.out}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
