"""Hermes / Qwen2.5 ``<tool_call>`` blocks (vLLM parser ``hermes``).

Call text: ``<tool_call>\\n{"name": "f", "arguments": {…}}\\n</tool_call>``, several blocks joined
by ``\\n``.  The tools are presented the way Qwen2.5-Instruct's chat template does (one
``{"type": "function", "function": …}`` JSON line per tool inside ``<tools></tools>``).
vLLM's parser needs no special tokens for the tags (it sets ``skip_special_tokens=False``), so the
dialect also serves families without native tool tokens (Gemma).
"""

from __future__ import annotations

import json
import re

from slmtune.eval.grammar import EBNFBuilder, ebnf_literal
from slmtune.models.dialects.base import Dialect, Located, _content, jinja_str, normalize_tool, scan_call, skip_ws

_HEAD = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
_TAIL = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>\n\n'
    "If none of the functions fits the query, reply in plain text without a tool call."
)

_BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)", re.DOTALL)


class HermesDialect(Dialect):
    name = "hermes"
    vllm_tool_parser = "hermes"
    sglang_tool_parser = "hermes"  # HermesDetector: `<tool_call>` + one JSON object per call
    call_trigger = "<tool_call>"
    supports_parallel = True
    # the parsers (ours, vLLM's regex) end a block at the first "</tool_call>", so string values may not contain it;
    # its prefix "</t" is forbidden instead (one DFA state per character costs ~0.1 s of compile time per grammar)
    string_forbids = "</t"

    def tools_instruction(self, tools: list[dict]) -> str:
        fns = [normalize_tool(t) for t in tools]
        lines = "".join("\n" + json.dumps({"type": "function", "function": f}, ensure_ascii=False) for f in fns)
        return _HEAD + lines + _TAIL

    def _render_call(self, name: str, arguments: dict) -> str:
        body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
        return "<tool_call>\n" + body + "\n</tool_call>"

    def _join_calls(self, rendered: list[str]) -> str:
        return "\n".join(rendered)

    def _locate(self, text: str) -> tuple[list[Located], str | None, str | None]:
        first = text.find(self.call_trigger)
        if first < 0:
            return [], _content(text), None
        calls: list[Located] = []
        for m in _BLOCK.finditer(text):
            group = 1 if m.group(1) is not None else 2
            start, stop = m.start(group), m.end(group)
            pos = skip_ws(text, start)
            if text[pos : pos + 1] != "{":
                return [], None, f"<tool_call> block {len(calls) + 1} does not hold a JSON object"
            try:
                call, end = scan_call(text[:stop], pos, ("arguments",))
            except ValueError as e:
                return [], None, f"<tool_call> block {len(calls) + 1}: {e}"
            if skip_ws(text, end) < stop:
                return [], None, f"<tool_call> block {len(calls) + 1}: unexpected text after the call object"
            calls.append(call)
        return calls, _content(text[:first]), None

    def _call_ebnf(self, name: str, args_rule: str) -> str:
        head = '<tool_call>\n{"name": ' + json.dumps(name, ensure_ascii=False) + ', "arguments": '
        return f"{ebnf_literal(head)} {args_rule} {ebnf_literal('}' + chr(10) + '</tool_call>')}"

    def _calls_ebnf(self, b: EBNFBuilder, call_rule: str, lo: int, hi: int) -> str:
        return self._joined(b, call_rule, "\n", lo, hi)

    def _text_rule(self, b: EBNFBuilder) -> str:
        # vLLM reads a call wherever "<tool_call>" occurs; text without "<t" cannot contain it
        # (a 2-state DFA compiles in ~0.2 s on a 262k vocabulary, the full tag in ~1 s)
        return b.text_rule(forbid_substring="<t")

    def jinja_macros(self) -> str:
        return (
            self._jinja_args_macro()
            + r"""
{%- macro slm_tools_instruction(fns) -%}
{{- __SLM_HEAD__ -}}
{%- for f in fns -%}
{{- "\n" -}}{{- {"type": "function", "function": f} | tojson -}}
{%- endfor -%}
{{- __SLM_TAIL__ -}}
{%- endmacro -%}
{%- macro slm_render_calls(calls, fns) -%}
{%- for c in calls -%}
{%- set f = c.function if c.function is defined else c -%}
{%- if not loop.first -%}{{- "\n" -}}{%- endif -%}
{{- "<tool_call>\n{\"name\": " ~ (f.name | tojson) ~ ", \"arguments\": " -}}
{{- slm_args(f.arguments, f.name, fns, false) ~ "}\n</tool_call>" -}}
{%- endfor -%}
{%- endmacro -%}
""".replace("__SLM_HEAD__", jinja_str(_HEAD)).replace("__SLM_TAIL__", jinja_str(_TAIL))
        )
