"""Phi-4-mini ``functools[…]`` JSON list (vLLM parser ``phi4_mini_json``).

Call text: ``functools[{"name": "f", "arguments": {…}}, {"name": "g", "arguments": {…}}]``.
``functools`` is plain text, not a model token (vLLM's own Phi-4-mini tool template asks for it in
prose).  The tools are presented the way Phi-4-mini's native template does: a JSON list of the
function dicts between ``<|tool|>`` and ``<|/tool|>``, followed by the instruction.

Known vLLM limitation (``phi4mini_tool_parser.py``): it extracts ``functools\\[(.*?)\\]`` with a
non-greedy ``]``, so a call whose arguments contain ``]`` (any array, or a string with ``]``) is
truncated and the output is returned as content.  :meth:`parse` here decodes the full JSON list
and therefore reads such calls; serve tools with array parameters with another dialect/parser
(e.g. ``hermes``) if that matters.
"""

from __future__ import annotations

import json

from slmtune.eval.grammar import EBNFBuilder, ebnf_literal
from slmtune.models.dialects.base import Dialect, Located, _content, jinja_str, normalize_tool, scan_call, skip_ws

_OPEN = "<|tool|>"
_CLOSE = "<|/tool|>\n"
_TAIL = (
    "To call functions, respond with functools followed by a JSON list of the calls, in the format "
    'functools[{"name": function name, "arguments": dictionary of argument name and its value}, ...]. '
    "Do not use variables. If none of the functions fits the request, reply in plain text without functools."
)
_MARK = "functools["


class Phi4MiniJsonDialect(Dialect):
    name = "phi4_mini_json"
    vllm_tool_parser = "phi4_mini_json"
    call_trigger = _MARK
    supports_parallel = True

    def tools_instruction(self, tools: list[dict]) -> str:
        fns = [normalize_tool(t) for t in tools]
        return _OPEN + json.dumps(fns, ensure_ascii=False) + _CLOSE + _TAIL

    def _render_call(self, name: str, arguments: dict) -> str:
        return json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)

    def _join_calls(self, rendered: list[str]) -> str:
        return _MARK + ", ".join(rendered) + "]"

    def _locate(self, text: str) -> tuple[list[Located], str | None, str | None]:
        first = text.find(_MARK)
        if first < 0:
            return [], _content(text), None
        pos = skip_ws(text, first + len(_MARK))
        calls: list[Located] = []
        while True:
            if text[pos : pos + 1] == "]" and not calls:
                return [], None, "empty functools[] call list"
            if text[pos : pos + 1] != "{":
                return [], None, f"expected a call object at offset {pos}"
            try:
                call, end = scan_call(text, pos, ("arguments", "parameters"))
            except ValueError as e:
                return [], None, f"call {len(calls) + 1}: {e}"
            calls.append(call)
            pos = skip_ws(text, end)
            ch = text[pos : pos + 1]
            if ch == ",":
                pos = skip_ws(text, pos + 1)
            elif ch == "]":
                break
            elif not ch:
                return [], None, "functools[ list is not closed with ']'"
            else:
                return [], None, f"expected ',' or ']' at offset {pos}"
        return calls, _content(text[:first]), None

    def _call_ebnf(self, name: str, args_rule: str) -> str:
        head = '{"name": ' + json.dumps(name, ensure_ascii=False) + ', "arguments": '
        return f'{ebnf_literal(head)} {args_rule} "}}"'

    def _calls_ebnf(self, b: EBNFBuilder, call_rule: str, lo: int, hi: int) -> str:
        return f'{ebnf_literal(_MARK)} {self._joined(b, call_rule, ", ", lo, hi)} "]"'

    def _text_rule(self, b: EBNFBuilder) -> str:
        # vLLM reads a call wherever "functools[" occurs; text without "s[" cannot contain it
        # (a 2-state DFA compiles in ~0.3 s on a 262k vocabulary, the full marker in ~1 s)
        return b.text_rule(forbid_substring="s[")

    def jinja_macros(self) -> str:
        return (
            self._jinja_args_macro()
            + r"""
{%- macro slm_tools_instruction(fns) -%}
{{- __SLM_OPEN__ ~ (fns | tojson) ~ __SLM_CLOSE__ ~ __SLM_TAIL__ -}}
{%- endmacro -%}
{%- macro slm_render_calls(calls, fns) -%}
{{- "functools[" -}}
{%- for c in calls -%}
{%- set f = c.function if c.function is defined else c -%}
{%- if not loop.first -%}{{- ", " -}}{%- endif -%}
{{- "{\"name\": " ~ (f.name | tojson) ~ ", \"arguments\": " ~ slm_args(f.arguments, f.name, fns, false) ~ "}" -}}
{%- endfor -%}
{{- "]" -}}
{%- endmacro -%}
""".replace("__SLM_OPEN__", jinja_str(_OPEN))
            .replace("__SLM_CLOSE__", jinja_str(_CLOSE))
            .replace("__SLM_TAIL__", jinja_str(_TAIL))
        )
