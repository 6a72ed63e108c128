"""Dialect base class: one tool-call text format (render, parse, grammar, spans, Jinja)."""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from slmtune.data.jsonlimits import DECODER, MAX_DEPTH, JSONLimitError, check_value, has_surrogate, nesting_depth
from slmtune.data.jsonlimits import loads as json_loads
from slmtune.eval.grammar import EBNFBuilder, GrammarLimits, Style, ebnf_literal

MAX_OUTPUT_CHARS = 1_000_000  # a model output longer than this is not parsed (no decoding budget comes near)

__all__ = [
    "Dialect",
    "Located",
    "ParseResult",
    "Span",
    "canonical_arguments",
    "jinja_str",
    "normalize_call",
    "normalize_tool",
]


@dataclass(frozen=True)
class ParseResult:
    """What a model output says.

    ``calls``: ``[{"name": str, "arguments": dict}, …]`` (empty for a plain answer or on error).
    ``content``: the plain-text answer, or the text before the first call (stripped; ``None`` if
    empty); on error the whole raw output, as vLLM's parsers return it.
    ``error``: why the output is malformed (``None`` when it parsed).
    """

    calls: list[dict] = field(default_factory=list)
    content: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Span:
    """Character span ``text[start:end]`` of a function name (``kind="name"``, without quotes) or of
    one top-level argument value (``kind="value"``, the value's literal text, strings with their
    quotes).  ``call`` is the call's index, ``key`` the argument name (``None`` for names)."""

    start: int
    end: int
    kind: str
    call: int = 0
    key: str | None = None


@dataclass
class Located:
    """A parsed call with the positions of its name and argument values."""

    name: str
    arguments: dict
    name_span: tuple[int, int] | None = None
    value_spans: list[tuple[str, int, int]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# tool / call normalisation


def normalize_tool(tool: dict) -> dict:
    """OpenAI ``{"type": "function", "function": {...}}`` or a bare function dict -> function dict."""
    if not isinstance(tool, dict):
        raise TypeError(f"a tool must be a dict, got {type(tool).__name__}")
    fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
    if not isinstance(fn.get("name"), str) or not fn["name"]:
        raise ValueError(f"tool without a name: {tool!r}")
    return fn


def normalize_call(call: dict) -> dict:
    """``{"name", "arguments"}`` or OpenAI ``{"type": "function", "function": {...}}`` ->
    ``{"name": str, "arguments": dict}`` (JSON-string arguments are decoded)."""
    if not isinstance(call, dict):
        raise TypeError(f"a call must be a dict, got {type(call).__name__}")
    fn = call.get("function") if isinstance(call.get("function"), dict) else call
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"call without a name: {call!r}")
    args = fn.get("arguments", fn.get("parameters"))
    if args is None:
        args = {}
    if isinstance(args, str):
        try:
            args = json_loads(args, f"arguments of {name!r}") if args.strip() else {}
        except json.JSONDecodeError as e:
            raise ValueError(f"arguments of {name!r} are not valid JSON: {e}") from None
    if not isinstance(args, dict):
        raise ValueError(f"arguments of {name!r} must be a JSON object, got {type(args).__name__}")
    return {"name": name, "arguments": args}


def _properties(name: str, tools: list[dict] | None) -> dict:
    for tool in tools or []:
        fn = normalize_tool(tool)
        if fn["name"] == name:
            params = fn.get("parameters")
            props = params.get("properties") if isinstance(params, dict) else None
            return props if isinstance(props, dict) else {}
    return {}


def canonical_arguments(name: str, arguments: dict, tools: list[dict] | None) -> dict:
    """Arguments in the tool schema's property order, unknown keys after (in given order)."""
    props = _properties(name, tools)
    ordered = {k: arguments[k] for k in props if k in arguments}
    ordered.update((k, v) for k, v in arguments.items() if k not in ordered)
    return ordered


def jinja_str(text: str) -> str:
    """A Jinja string literal for ``text`` (JSON escapes are Jinja/Python escapes)."""
    return json.dumps(text, ensure_ascii=True)


# ---------------------------------------------------------------------------------------------
# position-aware JSON scanning

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = DECODER  # refuses NaN/Infinity, out-of-range numbers and over-long integers


def skip_ws(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()


def scan_object(text: str, pos: int) -> tuple[dict, int, dict[str, tuple[int, int]]]:
    """Decode the JSON object starting at ``text[pos]``; return ``(obj, end, {key: (vstart, vend)})``.
    Raises ``ValueError`` (incl. ``json.JSONDecodeError``) on malformed JSON."""
    if text[pos : pos + 1] != "{":
        raise ValueError(f"expected '{{' at offset {pos}")
    pos = skip_ws(text, pos + 1)
    obj: dict = {}
    spans: dict[str, tuple[int, int]] = {}
    if text[pos : pos + 1] == "}":
        return obj, pos + 1, spans
    while True:
        if text[pos : pos + 1] != '"':
            raise ValueError(f"expected a key string at offset {pos}")
        key, pos = json.decoder.scanstring(text, pos + 1)
        pos = skip_ws(text, pos)
        if text[pos : pos + 1] != ":":
            raise ValueError(f"expected ':' at offset {pos}")
        pos = skip_ws(text, pos + 1)
        start = pos
        value, pos = _DECODER.raw_decode(text, pos)
        obj[key] = value
        spans[key] = (start, pos)
        pos = skip_ws(text, pos)
        ch = text[pos : pos + 1]
        if ch == ",":
            pos = skip_ws(text, pos + 1)
        elif ch == "}":
            return obj, pos + 1, spans
        else:
            raise ValueError(f"expected ',' or '}}' at offset {pos}" if ch else "unterminated JSON object")


def scan_call(text: str, pos: int, arg_keys: tuple[str, ...]) -> tuple[Located, int]:
    """Decode a ``{"name": …, "<arg_key>": {…}}`` call object starting at ``text[pos]``."""
    obj, end, spans = scan_object(text, pos)
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError('call object without a string "name"')
    key = next((k for k in arg_keys if k in obj), None)
    if key is None:
        raise ValueError(f"call {name!r} has no {' or '.join(repr(k) for k in arg_keys)} key")
    args = obj[key]
    if not isinstance(args, dict):
        raise ValueError(f"{key} of {name!r} must be a JSON object, got {type(args).__name__}")
    _, _, arg_spans = scan_object(text, spans[key][0])
    ns, ne = spans["name"]
    return Located(name, args, (ns + 1, ne - 1), [(k, s, e) for k, (s, e) in arg_spans.items()]), end


def _content(text: str) -> str | None:
    text = text.strip()
    return text or None


# ---------------------------------------------------------------------------------------------


class Dialect(ABC):
    """One tool-call format.  Subclasses set the class attributes and implement the hooks."""

    name: ClassVar[str]
    vllm_tool_parser: ClassVar[str]
    # SGLang's --tool-call-parser for this format (a key of SGLang's FunctionCallParser.ToolCallParserEnum, which
    # the launcher's argparse choices are built from); None: SGLang has no parser that reads it
    sglang_tool_parser: ClassVar[str | None] = None
    call_trigger: ClassVar[str]
    supports_parallel: ClassVar[bool] = True
    value_style: ClassVar[Style] = "json"
    # text that ends a call for the parser wherever it occurs, so string values may not contain it raw
    string_forbids: ClassVar[str | None] = None

    def __repr__(self) -> str:
        return f"<dialect {self.name}>"

    # -- tools -------------------------------------------------------------------------------

    def validate_tools(self, tools: list[dict]) -> None:  # noqa: B027 - optional hook
        """Raise ``ValueError`` for tools this dialect cannot express (default: all are fine)."""

    @abstractmethod
    def tools_instruction(self, tools: list[dict]) -> str:
        """Text presenting the tools (schemas first), how to call them, and that a plain answer is
        allowed when none fits.  Tools: OpenAI function dicts or ``{"type": "function", …}``."""

    # -- rendering ---------------------------------------------------------------------------

    def render_calls(self, calls: list[dict], tools: list[dict] | None = None) -> str:
        """Canonical assistant text for ``calls`` (no end-of-turn token)."""
        if not calls:
            raise ValueError("render_calls needs at least one call")
        norm = [normalize_call(c) for c in calls]
        out = [self._render_call(c["name"], canonical_arguments(c["name"], c["arguments"], tools)) for c in norm]
        return self._join_calls(out)

    @abstractmethod
    def _render_call(self, name: str, arguments: dict) -> str: ...

    @abstractmethod
    def _join_calls(self, rendered: list[str]) -> str: ...

    # -- parsing -----------------------------------------------------------------------------

    @abstractmethod
    def _locate(self, text: str) -> tuple[list[Located], str | None, str | None]:
        """``(located calls, content, error)``."""

    def _bounded_locate(self, text: str) -> tuple[list[Located], str | None, str | None]:
        """:meth:`_locate` within limits: any text gives calls or an error, never an exception. Refused: outputs
        over ``MAX_OUTPUT_CHARS``, nesting deeper than ``MAX_DEPTH``, lone surrogates, and arguments that are not
        JSON values (NaN, infinities, over-long integers)."""
        if not isinstance(text, str):
            raise TypeError(f"a model output must be a string, got {type(text).__name__}")
        if len(text) > MAX_OUTPUT_CHARS:
            return [], None, f"output of {len(text)} characters is over the {MAX_OUTPUT_CHARS} parsed"
        if has_surrogate(text):
            return [], None, "output holds a lone surrogate code point (not valid Unicode text)"
        if nesting_depth(text) > MAX_DEPTH:
            return [], None, f"output nests brackets deeper than {MAX_DEPTH} levels"
        try:
            located, content, error = self._locate(text)
            if error is None:
                for i, call in enumerate(located):
                    check_value(call.arguments, f"call {i + 1} ({call.name}) arguments")
        except JSONLimitError as err:
            return [], None, str(err)
        except (RecursionError, MemoryError):
            return [], None, "output is too deeply nested or too complex to parse"
        return located, content, error

    def parse(self, text: str) -> ParseResult:
        """Parse raw model text into calls (see :class:`ParseResult`); total: any string gives a result."""
        located, content, error = self._bounded_locate(text)
        if error is not None:
            return ParseResult([], text, error)
        return ParseResult([{"name": c.name, "arguments": c.arguments} for c in located], content, None)

    def spans(self, text: str) -> list[Span]:
        """Spans of every call's name and top-level argument values (empty if ``text`` does not parse)."""
        located, _, error = self._bounded_locate(text)
        if error is not None:
            return []
        out: list[Span] = []
        for i, c in enumerate(located):
            if c.name_span is not None:
                out.append(Span(c.name_span[0], c.name_span[1], "name", i, None))
            out.extend(Span(s, e, "value", i, k) for k, s, e in c.value_spans)
        return out

    # -- grammar -----------------------------------------------------------------------------

    def grammar(
        self,
        tools: list[dict],
        *,
        allow_text: bool,
        min_calls: int = 1,
        max_calls: int | None = None,
        limits: GrammarLimits | None = None,
    ) -> str:
        """Complete XGrammar EBNF (with ``root``): a bounded plain-text answer (if ``allow_text``)
        or ``min_calls``..``max_calls`` calls of the offered tools in canonical form."""
        limits = limits or GrammarLimits()
        fns = [normalize_tool(t) for t in tools or []]
        if fns:
            self.validate_tools(fns)
        hi = limits.max_calls if max_calls is None else max_calls
        if not self.supports_parallel:
            hi = 1
        if min_calls < 1 or hi < min_calls:
            raise ValueError(f"need 1 <= min_calls <= max_calls, got {min_calls}..{hi}")
        b = EBNFBuilder("g", limits, self.value_style, string_forbids=self.string_forbids)
        alts = []
        if allow_text:
            alts.append(self._text_rule(b))
        if fns:
            call_alts = [b.add(b.fresh(f"t{i}_call"), self._call_body(b, fn, i)) for i, fn in enumerate(fns)]
            call = b.add(b.fresh("call"), " | ".join(call_alts))
            alts.append(b.add(b.fresh("calls"), self._calls_ebnf(b, call, min_calls, hi)))
        if not alts:
            raise ValueError("grammar needs tools or allow_text=True")
        return f"root ::= {' | '.join(alts)}\n" + b.render()

    def _call_body(self, b: EBNFBuilder, fn: dict, index: int) -> str:
        """EBNF body of one call of tool ``fn`` (default: ``_call_ebnf`` around its arguments object)."""
        params = fn.get("parameters")
        if not isinstance(params, dict) or not params:
            params = {"type": "object", "properties": {}, "additionalProperties": False}
        return self._call_ebnf(fn["name"], b.schema_rule(params, f"t{index}_args"))

    def _call_ebnf(self, name: str, args_rule: str) -> str:
        """EBNF body of one call of tool ``name`` whose arguments object matches ``args_rule``."""
        raise NotImplementedError

    @abstractmethod
    def _calls_ebnf(self, b: EBNFBuilder, call_rule: str, lo: int, hi: int) -> str:
        """EBNF body of ``lo``..``hi`` calls."""

    @abstractmethod
    def _text_rule(self, b: EBNFBuilder) -> str:
        """Name of a rule for a plain-text answer that the vLLM parser reads as no call."""

    @staticmethod
    def _joined(b: EBNFBuilder, call_rule: str, sep: str, lo: int, hi: int) -> str:
        """``call_rule`` lo..hi times, separated by ``sep``."""
        if hi == 1:
            return call_rule
        more = b.add(b.fresh("more_calls"), f"{ebnf_literal(sep)} {call_rule}")
        return f"{call_rule} {more}{{{lo - 1},{hi - 1}}}"

    # -- Jinja ---------------------------------------------------------------------------------

    @abstractmethod
    def jinja_macros(self) -> str:
        """Jinja macro definitions ``slm_tools_instruction(fns)`` and ``slm_render_calls(calls, fns)``
        (``fns``: list of function dicts) producing exactly ``tools_instruction`` / ``render_calls``."""

    @staticmethod
    def _jinja_args_macro() -> str:
        """``slm_args(args, name, fns, py)``: arguments in schema order, unknown keys after; JSON
        object text (``py`` false) or Python keyword-argument text ``k=v, …`` (``py`` true)."""
        return r"""
{%- macro slm_py(v) -%}
{%- if v is none -%}None
{%- elif v is sameas true -%}True
{%- elif v is sameas false -%}False
{%- elif v is string -%}{{ v | tojson }}
{%- elif v is mapping -%}
{{- "{" -}}
{%- for k in v -%}
{%- if not loop.first -%}{{ ", " }}{%- endif -%}
{{- k | tojson -}}{{- ": " -}}{{- slm_py(v[k]) -}}
{%- endfor -%}
{{- "}" -}}
{%- elif v is iterable -%}
{{- "[" -}}
{%- for x in v -%}
{%- if not loop.first -%}{{ ", " }}{%- endif -%}
{{- slm_py(x) -}}
{%- endfor -%}
{{- "]" -}}
{%- else -%}{{ v | tojson }}
{%- endif -%}
{%- endmacro -%}
{%- macro slm_arg(k, v, py) -%}
{%- if py -%}{{- k ~ "=" ~ slm_py(v) -}}
{%- else -%}{{- (k | tojson) ~ ": " ~ (v | tojson) -}}
{%- endif -%}
{%- endmacro -%}
{%- macro slm_args(args, name, fns, py) -%}
{%- if args is string and not py -%}{{- args -}}
{%- elif args is string -%}{{- raise_exception("pythonic tool calls need arguments as a mapping") -}}
{%- else -%}
{%- if args is none or args is not defined -%}{%- set args = {} -%}{%- endif -%}
{%- set ns = namespace(props=none, first=true) -%}
{%- for fn in fns -%}
{%- if ns.props is none and fn.name == name -%}
{%- if fn.parameters is mapping and fn.parameters.properties is mapping -%}
{%- set ns.props = fn.parameters.properties -%}
{%- else -%}
{%- set ns.props = {} -%}
{%- endif -%}
{%- endif -%}
{%- endfor -%}
{%- set props = ns.props if ns.props is not none else {} -%}
{%- if not py -%}{{- "{" -}}{%- endif -%}
{%- for k in props -%}
{%- if k in args -%}
{%- if not ns.first -%}{{- ", " -}}{%- endif -%}
{%- set ns.first = false -%}
{{- slm_arg(k, args[k], py) -}}
{%- endif -%}
{%- endfor -%}
{%- for k in args -%}
{%- if k not in props -%}
{%- if not ns.first -%}{{- ", " -}}{%- endif -%}
{%- set ns.first = false -%}
{{- slm_arg(k, args[k], py) -}}
{%- endif -%}
{%- endfor -%}
{%- if not py -%}{{- "}" -}}{%- endif -%}
{%- endif -%}
{%- endmacro -%}
"""
