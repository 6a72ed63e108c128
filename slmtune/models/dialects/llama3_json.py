"""Llama 3.x JSON tool calls (vLLM parser ``llama3_json``).

Call text: ``{"name": "f", "parameters": {…}}``; several calls separated by ``; `` (what vLLM's
streaming path expects; its non-streaming path finds every top-level JSON object).  The tools are
presented like Llama 3.2's own template: each tool as ``{"type": "function", "function": …}``
JSON with ``indent=4``, followed by the ``Respond in the format {"name": function name,
"parameters": …}`` instruction.

Plain-text answers produced under the grammar contain no ``{`` at all: vLLM's parser tries every
``{`` in the output, so braces in prose are the one way a no-call answer could be misread.
"""

from __future__ import annotations

import json
import re

from slmtune.eval.grammar import EBNFBuilder, ebnf_literal
from slmtune.models.dialects.base import Dialect, Located, _content, jinja_str, normalize_tool, scan_call

_HEAD = "You have access to the following functions:\n\n"
_TAIL = (
    "To call a function, respond with a JSON object in the format "
    '{"name": function name, "parameters": dictionary of argument name and its value}. '
    'To call several functions, separate their JSON objects with "; ". Do not use variables. '
    "If none of the functions fits the request, reply in plain text without any JSON."
)

_ATTEMPT = re.compile(r'\{\s*"name"\s*:')
_PYTHON_TAG = "<|python_tag|>"


class Llama3JsonDialect(Dialect):
    name = "llama3_json"
    vllm_tool_parser = "llama3_json"
    sglang_tool_parser = "llama3"  # Llama32Detector: bare JSON objects
    call_trigger = '{"name": '
    supports_parallel = True

    def tools_instruction(self, tools: list[dict]) -> str:
        fns = [normalize_tool(t) for t in tools]
        body = "".join(
            json.dumps({"type": "function", "function": f}, ensure_ascii=False, indent=4) + "\n\n" for f in fns
        )
        return _HEAD + body + _TAIL

    def _render_call(self, name: str, arguments: dict) -> str:
        return json.dumps({"name": name, "parameters": arguments}, ensure_ascii=False)

    def _join_calls(self, rendered: list[str]) -> str:
        return "; ".join(rendered)

    def _locate(self, text: str) -> tuple[list[Located], str | None, str | None]:
        if not _ATTEMPT.search(text):
            # vLLM: no JSON call object -> the whole output is content
            return [], _content(text), None
        calls: list[Located] = []
        first = text.find("{")
        pos = first
        while pos >= 0:
            try:
                call, end = scan_call(text, pos, ("arguments", "parameters"))
            except ValueError as e:
                # vLLM gives up on the whole output when any top-level '{' is not a call
                return [], None, f"JSON object at offset {pos} is not a call: {e}"
            calls.append(call)
            pos = text.find("{", end)
        return calls, _content(text[:first].replace(_PYTHON_TAG, "")), None

    def _call_ebnf(self, name: str, args_rule: str) -> str:
        head = '{"name": ' + json.dumps(name, ensure_ascii=False) + ', "parameters": '
        return f'{ebnf_literal(head)} {args_rule} "}}"'

    def _calls_ebnf(self, b: EBNFBuilder, call_rule: str, lo: int, hi: int) -> str:
        return self._joined(b, call_rule, "; ", lo, hi)

    def _text_rule(self, b: EBNFBuilder) -> str:
        return b.text_rule(forbid_substring="{")

    def jinja_macros(self) -> str:
        return (
            self._jinja_args_macro()
            + r"""
{%- macro slm_tools_instruction(fns) -%}
{{- __SLM_HEAD__ -}}
{%- for f in fns -%}
{{- {"type": "function", "function": f} | tojson(indent=4) -}}{{- "\n\n" -}}
{%- endfor -%}
{{- __SLM_TAIL__ -}}
{%- endmacro -%}
{%- macro slm_render_calls(calls, fns) -%}
{%- for c in calls -%}
{%- set f = c.function if c.function is defined else c -%}
{%- if not loop.first -%}{{- "; " -}}{%- endif -%}
{{- "{\"name\": " ~ (f.name | tojson) ~ ", \"parameters\": " ~ slm_args(f.arguments, f.name, fns, false) ~ "}" -}}
{%- endfor -%}
{%- endmacro -%}
""".replace("__SLM_HEAD__", jinja_str(_HEAD)).replace("__SLM_TAIL__", jinja_str(_TAIL))
        )
