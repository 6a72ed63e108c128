"""Pythonic tool calls ``[f(a=1), g(b="x")]`` (vLLM parser ``pythonic``).

The output must *start* with ``[`` (vLLM matches its regex at position 0), must be a Python list
of calls with keyword arguments only and literal values (``True``/``False``/``None``), and names
must match ``[a-zA-Z]\\w*``: dotted names cannot be read, so this dialect refuses tools (and
argument names) that are not plain Python identifiers.  Values are written canonically: strings,
numbers, lists and dicts exactly as ``json.dumps(ensure_ascii=False)`` writes them (all valid
Python literals), booleans/null as ``True``/``False``/``None``.

Known vLLM limitation (``pythonic_tool_parser.py`` ``_get_parameter_value``): only constants,
lists and dicts are accepted, so a negative number (``-1`` is a unary minus in Python's AST)
makes vLLM return the whole output as content.  :meth:`parse` here accepts negative numbers.
"""

from __future__ import annotations

import ast
import json
import keyword
import re

from slmtune.eval.grammar import EBNFBuilder, ebnf_literal, python_literal
from slmtune.models.dialects.base import Dialect, Located, _content, jinja_str, normalize_tool

_HEAD = "You have access to the following functions:\n\n"
_TAIL = (
    "To call functions, respond with a Python list of the calls and nothing else, in the format "
    "[func_name1(param_name1=value1, param_name2=value2), func_name2(param=value)]. "
    "Use keyword arguments with literal values (strings in double quotes, True, False, None); "
    "do not use variables. If none of the functions fits the request, reply in plain text instead."
)

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_ATTEMPT = re.compile(r"\s*\[\s*[A-Za-z_][\w.]*\s*\(")


def _check_identifier(name: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or keyword.iskeyword(name):
        raise ValueError(
            f"pythonic dialect: {what} {name!r} is not a plain Python identifier ([A-Za-z][A-Za-z0-9_]*, "
            "not a keyword); vLLM's pythonic parser cannot read it. Rename the tool or use another dialect."
        )


class _LiteralError(ValueError):
    pass


def _literal(node: ast.expr):
    if isinstance(node, ast.Constant):
        v = node.value
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        raise _LiteralError(f"unsupported constant {v!r}")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = node.operand
        number = isinstance(inner, ast.Constant) and type(inner.value) in (int, float)
        if number:
            return -inner.value if isinstance(node.op, ast.USub) else inner.value
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        out = {}
        for k, v in zip(node.keys, node.values, strict=True):
            if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
                raise _LiteralError("dict keys must be string literals")
            out[k.value] = _literal(v)
        return out
    raise _LiteralError(f"argument values must be literals, got {type(node).__name__}")


class _Positions:
    """Convert ast (line, UTF-8 byte column) positions to character offsets."""

    def __init__(self, text: str):
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]

    def __call__(self, line: int, col: int) -> int:
        start = self.starts[line - 1]
        return start + len(self.text[start:].encode("utf-8")[:col].decode("utf-8", errors="ignore"))


class PythonicDialect(Dialect):
    name = "pythonic"
    vllm_tool_parser = "pythonic"
    sglang_tool_parser = "pythonic"  # PythonicDetector: a Python list of calls
    call_trigger = "["
    supports_parallel = True
    value_style = "python"

    def validate_tools(self, tools: list[dict]) -> None:
        for t in tools:
            fn = normalize_tool(t)
            _check_identifier(fn["name"], "tool name")
            params = fn.get("parameters")
            props = params.get("properties") if isinstance(params, dict) else None
            for arg in props or {}:
                _check_identifier(arg, f"argument name of {fn['name']!r}:")

    def tools_instruction(self, tools: list[dict]) -> str:
        self.validate_tools(tools)
        fns = [normalize_tool(t) for t in tools]
        body = "".join(
            json.dumps({"type": "function", "function": f}, ensure_ascii=False, indent=4) + "\n\n" for f in fns
        )
        return _HEAD + body + _TAIL

    def _render_call(self, name: str, arguments: dict) -> str:
        _check_identifier(name, "tool name")
        for k in arguments:
            _check_identifier(k, f"argument name of {name!r}:")
        return f"{name}(" + ", ".join(f"{k}={python_literal(v)}" for k, v in arguments.items()) + ")"

    def _join_calls(self, rendered: list[str]) -> str:
        return "[" + ", ".join(rendered) + "]"

    def _locate(self, text: str) -> tuple[list[Located], str | None, str | None]:
        if not _ATTEMPT.match(text):
            return [], _content(text), None
        if not text.startswith("["):
            return [], None, "a pythonic call list must start with '[' (no leading text or whitespace)"
        try:
            module = ast.parse(text.rstrip(), mode="exec")
        except SyntaxError as e:
            return [], None, f"not valid Python: {e.msg} (line {e.lineno}, column {e.offset})"
        except (MemoryError, RecursionError):  # Python's parser gives up on e.g. 10,000 chained unary minus signs
            return [], None, "too deeply nested or too complex for Python's parser"
        if len(module.body) != 1 or not isinstance(module.body[0], ast.Expr):
            return [], None, "expected a single list expression"
        lst = module.body[0].value
        if not isinstance(lst, ast.List) or not lst.elts:
            return [], None, "expected a non-empty list of calls"
        pos = _Positions(text)
        calls: list[Located] = []
        for i, node in enumerate(lst.elts, 1):
            if not isinstance(node, ast.Call):
                return [], None, f"item {i} is not a call"
            if isinstance(node.func, ast.Attribute):
                return [], None, f"call {i}: dotted function name {ast.unparse(node.func)!r} (vLLM cannot read it)"
            if not isinstance(node.func, ast.Name):
                return [], None, f"call {i}: function must be a plain name"
            name = node.func.id
            if not _NAME.fullmatch(name):
                return [], None, f"call {i}: function name {name!r} does not match [A-Za-z]\\w*"
            if node.args:
                return [], None, f"call {i} ({name}): positional arguments are not allowed"
            args: dict = {}
            spans = []
            for kw in node.keywords:
                if kw.arg is None:
                    return [], None, f"call {i} ({name}): **kwargs are not allowed"
                try:
                    args[kw.arg] = _literal(kw.value)
                except _LiteralError as e:
                    return [], None, f"call {i} ({name}), argument {kw.arg!r}: {e}"
                v = kw.value
                spans.append((kw.arg, pos(v.lineno, v.col_offset), pos(v.end_lineno, v.end_col_offset)))
            f = node.func
            calls.append(Located(name, args, (pos(f.lineno, f.col_offset), pos(f.end_lineno, f.end_col_offset)), spans))
        return calls, None, None

    def _call_body(self, b: EBNFBuilder, fn: dict, index: int) -> str:
        """``name(k1=v1, k2=v2)``: keywords in schema order, required always, optional skippable."""
        params = fn.get("parameters") if isinstance(fn.get("parameters"), dict) else {}
        props = params.get("properties") or {}
        required = set(params.get("required") or [])
        keys = list(props)
        kvs = [f"{ebnf_literal(k + '=')} {b.schema_rule(props[k], f't{index}_p')}" for k in keys]
        n = len(keys)
        memo: dict[tuple[str, int], str] = {}

        def ref(kind: str, j: int) -> str:
            # F(j): no keyword written yet; R(j): one written already (", " before the next)
            if j == n:
                return ""
            if (kind, j) not in memo:
                rule = b.fresh(f"t{index}_{kind}{j}")
                memo[(kind, j)] = rule
                take = " ".join(p for p in ('", "' if kind == "R" else "", kvs[j], ref("R", j + 1)) if p)
                skip = ref(kind, j + 1) or '""'
                b.add(rule, take if keys[j] in required else f"{take} | {skip}")
            return memo[(kind, j)]

        return " ".join(p for p in (ebnf_literal(fn["name"] + "("), ref("F", 0), ebnf_literal(")")) if p)

    def _calls_ebnf(self, b: EBNFBuilder, call_rule: str, lo: int, hi: int) -> str:
        return f'"[" {self._joined(b, call_rule, ", ", lo, hi)} "]"'

    def _text_rule(self, b: EBNFBuilder) -> str:
        return b.text_rule(forbid_start="[")

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
{{- "[" -}}
{%- for c in calls -%}
{%- set f = c.function if c.function is defined else c -%}
{%- if not loop.first -%}{{- ", " -}}{%- endif -%}
{{- f.name ~ "(" ~ slm_args(f.arguments, f.name, fns, true) ~ ")" -}}
{%- endfor -%}
{{- "]" -}}
{%- endmacro -%}
""".replace("__SLM_HEAD__", jinja_str(_HEAD)).replace("__SLM_TAIL__", jinja_str(_TAIL))
        )
